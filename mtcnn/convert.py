"""``python -m mtcnn.convert``: the command is ``mtcnn/commands/convert.py``, the conversion ``mtcnn.facenet``."""
import sys

from mtcnn.commands import mtcnn_convert

if __name__ == '__main__':
    sys.exit(mtcnn_convert(prog='python -m mtcnn.convert'))
