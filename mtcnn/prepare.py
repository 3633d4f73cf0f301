"""``python -m mtcnn.prepare``: the command is ``mtcnn/commands/prepare.py``."""
import sys

from mtcnn.commands import mtcnn_prepare

if __name__ == '__main__':
    sys.exit(mtcnn_prepare(prog='python -m mtcnn.prepare'))
