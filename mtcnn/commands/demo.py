"""Detect faces in one image with the MTCNN cascade and draw them.

    python -m mtcnn.demo --image photo.jpg --output result.jpg \\
        --pnet model/pnet-0016.params --rnet model/rnet-0016.params --onet model/onet-0016.params

Boxes are drawn with their score and, when the O-Net has the landmark branch (the
canonical weights converted by ``mtcnn.convert``, or a cascade trained
``--with_landmark``), the five landmarks (``facekit.draw``); one line per face is
printed: x1 y1 x2 y2 score. The image is read upright (``facekit.image.read_image``).
``--output`` must name an image file OpenCV can write, never the image or a net file;
an existing one is replaced only with ``--overwrite``. ``.onnx`` nets run without MXNet.
"""

import cv2

from facekit import args as cli
from facekit.args import UsageError
from facekit.draw import draw_detections
from facekit.files import atomic_path
from facekit.image import read_image
from mtcnn.commands.options import add_detector_arguments, build_detector, check_detector_arguments, stage_files

__all__ = ['build_parser', 'check_args', 'run']


def build_parser():
    parser = cli.ArgumentParser(description='MTCNN face detection demo',
                                formatter_class=cli.DefaultsHelpFormatter)
    parser.add_argument('--image', required=True)
    parser.add_argument('--output', aliases=['--out'], required=True, help='where to write the annotated image')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --output')
    add_detector_arguments(parser, released_defaults=True)
    return parser


def check_args(args):
    cli.check_existing_file(args.image, '--image')
    cli.check_output_file(args.output, '--output', [args.image] + stage_files(args), args.overwrite)
    if not cv2.haveImageWriter(args.output):
        raise UsageError('--output %s: not an image file name OpenCV can write (use .jpg or .png)' % args.output)
    check_detector_arguments(args)


def run(args, context):
    detector = build_detector(args, context)
    img = read_image(args.image)
    boxes, landmarks = detector.detect(img)
    for box in boxes:
        print('%.2f %.2f %.2f %.2f %.4f' % tuple(box))
    with atomic_path(args.output) as tmp:
        if not cv2.imwrite(tmp, draw_detections(img, boxes, landmarks)):
            raise OSError('cannot write %s' % args.output)
    print('%d faces -> %s' % (len(boxes), args.output))
