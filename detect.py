#!/usr/bin/env python
"""Detect faces in images or a video: ``python detect.py --prefix P --epoch N --image photo.jpg --output out/``.

The command is ``rcnn/commands/detect.py``; ``--help`` lists its options.
"""
import sys

from rcnn.commands import retinaface_detect

if __name__ == '__main__':
    sys.exit(retinaface_detect())
