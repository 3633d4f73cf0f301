"""The original's detector module: ``from retinaface import RetinaFace``.

``RetinaFace`` (``rcnn.detector``) runs an MXNet checkpoint or, with ``RetinaFace.from_onnx``,
an ONNX export on onnxruntime without MXNet.
"""
from rcnn.detector import RetinaFace, bbox_vote

__all__ = ['RetinaFace', 'bbox_vote']
