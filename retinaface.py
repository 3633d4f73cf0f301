"""The original's detector module: ``from retinaface import RetinaFace, blur_faces``.

``RetinaFace`` (``rcnn.detector``) runs an MXNet checkpoint or, with ``RetinaFace.from_onnx``,
an ONNX export on onnxruntime without MXNet; ``detect`` takes an image, ``detect_batch`` several
(video frames). ``blur_faces(image, faces)`` (``facekit.draw``) returns the image with the
detected faces blurred beyond recognition.
"""
from facekit.draw import blur_faces
from rcnn.detector import RetinaFace, bbox_vote

__all__ = ['RetinaFace', 'bbox_vote', 'blur_faces']
