"""``python -m mtcnn.train``: the command is ``mtcnn/commands/train.py``."""
import sys

from mtcnn.commands import mtcnn_train

if __name__ == '__main__':
    sys.exit(mtcnn_train(prog='python -m mtcnn.train'))
