#!/usr/bin/env python
"""Test on WIDER FACE, the original's command line: ``python test_widerface.py --mode 1 ...``.

The command is ``rcnn/commands/test_widerface.py``; ``--help`` lists its options.
"""
import sys

from rcnn.commands import retinaface_test

if __name__ == '__main__':
    sys.exit(retinaface_test())
