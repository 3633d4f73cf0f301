"""Generate the synthetic WIDER FACE-style data set (see rcnn/dataset/synthetic.py).

    python tools/make_synthetic_widerface.py --output data/synthetic --num-train 1000 --num-val 200 --num-test 50

``--output`` should be a fresh folder: one that already holds a data set is refused
(``--overwrite`` regenerates only what the generator wrote there).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rcnn.dataset.synthetic import main  # noqa: E402

if __name__ == '__main__':
    main()
