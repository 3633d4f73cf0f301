#!/usr/bin/env python
"""Train RetinaFace, the original's command line: ``python train.py --network mnet --dataset retinaface``.

The command is ``rcnn/commands/train.py``; ``--help`` lists its options.
"""
import sys

from rcnn.commands import retinaface_train

if __name__ == '__main__':
    sys.exit(retinaface_train())
