#!/usr/bin/env python
"""Start an MXNet parameter-server job on this host (``rcnn/commands/launch.py``).

    python tools/launch.py -n 2 -s 1 -- python train.py --network mnet --kvstore dist_sync ...
"""
import os
import sys

if __name__ == '__main__':
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from rcnn.commands import retinaface_launch
    sys.exit(retinaface_launch())
