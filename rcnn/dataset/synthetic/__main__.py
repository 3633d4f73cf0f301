"""``python -m rcnn.dataset.synthetic``: the command is ``rcnn/commands/synthetic.py``."""
import sys

from rcnn.commands import retinaface_synthetic

if __name__ == '__main__':
    sys.exit(retinaface_synthetic(prog='python -m rcnn.dataset.synthetic'))
