#!/usr/bin/env python
"""Generate the synthetic WIDER FACE-style data set, as ``python -m rcnn.dataset.synthetic``.

    python tools/make_synthetic_widerface.py --output data/synthetic --num_train 1000 --num_val 200 --num_test 50
"""
import os
import sys

if __name__ == '__main__':
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from rcnn.commands import retinaface_synthetic
    sys.exit(retinaface_synthetic())
