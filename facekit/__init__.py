"""What both detectors (``rcnn``: RetinaFace, ``mtcnn``: MTCNN) and their commands share.

Framework-free (no MXNet import): ``command`` (the one way into every command line),
``args`` (arguments and their checks), ``cpu`` (the CPUs a command may use, what must be
set before MXNet loads), ``files`` (atomic output, digests), ``prefix`` (checkpoint file
names, the prefix lock), ``image`` (reading images, input checks), ``labels``
(``label.txt``), ``boxes`` and ``cython`` (box operations, NMS), ``faces`` (what a detection
is), ``draw`` (pictures), ``ort`` (the onnxruntime forward).

``facekit.mx`` is the MXNet side: the runtime, executors, checkpoints, the training loop,
the ONNX export. Nothing outside it imports MXNet, so that the ONNX detectors run without it.
"""
