"""Generate the synthetic WIDER FACE-style data set (see rcnn/dataset/synthetic.py).

    python tools/make_synthetic_widerface.py --output data/retinaface --num-train 1000 --num-val 200 --num-test 50
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rcnn.dataset.synthetic import main  # noqa: E402

if __name__ == '__main__':
    main()
