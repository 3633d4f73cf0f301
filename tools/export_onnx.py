#!/usr/bin/env python
"""Export a RetinaFace checkpoint or an MTCNN net to ONNX, checked against MXNet with onnxruntime.

    python tools/export_onnx.py retinaface --prefix P --epoch N --output F.onnx [--shape H W] [--overwrite]
    python tools/export_onnx.py mtcnn --net pnet|rnet|onet --params F.params --output F.onnx [--shape H W]

The commands are ``rcnn/commands/export.py`` and ``mtcnn/commands/export.py``.
"""
import os
import sys

if __name__ == '__main__':
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from facekit.command import main
    sys.exit(main({'retinaface': 'rcnn.commands.export', 'mtcnn': 'mtcnn.commands.export'},
                  description='Export a RetinaFace or MTCNN model to ONNX, checked against MXNet with onnxruntime.'))
