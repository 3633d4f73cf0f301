"""``python -m mtcnn.demo``: the command is ``mtcnn/commands/demo.py``."""
import sys

from mtcnn.commands import mtcnn_detect

if __name__ == '__main__':
    sys.exit(mtcnn_detect(prog='python -m mtcnn.demo'))
