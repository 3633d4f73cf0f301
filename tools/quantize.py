#!/usr/bin/env python
"""Quantize a RetinaFace checkpoint to INT8 for the CPU (``rcnn/commands/quantize.py``).

    python tools/quantize.py --prefix model/mnet.25 --epoch 0 --calib photos/ --output model/mnet.25-int8
"""
import os
import sys

if __name__ == '__main__':
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from rcnn.commands import retinaface_quantize
    sys.exit(retinaface_quantize())
