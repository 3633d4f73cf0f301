#!/usr/bin/env python
"""The whole system on built-in data, ``make demo`` (``rcnn/commands/demo.py``)."""
import os
import sys

if __name__ == '__main__':
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from rcnn.commands import retinaface_demo
    sys.exit(retinaface_demo())
