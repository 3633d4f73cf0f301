"""Detect faces in one image and draw them.

    python -m mtcnn.demo --image photo.jpg --out result.jpg \\
        --pnet model/pnet-0016.params --rnet model/rnet-0016.params --onet model/onet-0016.params

Boxes are drawn with their score and, when the O-Net has the landmark branch (the
canonical weights converted by ``mtcnn.convert``, or a cascade trained
``--with-landmark``), the five landmarks (``rcnn.draw``); one line per face is
printed: x1 y1 x2 y2 score. The image is read upright (``rcnn.io.image.read_image``);
``--out`` may not be the image.
"""
import argparse
import os

import cv2

from mtcnn.cli import add_detector_arguments, build_detector, check_detector_arguments
from rcnn import cli, runtime
from rcnn.draw import draw_detections
from rcnn.fileio import atomic_path
from rcnn.io.image import read_image

__all__ = ['main']


def main(argv=None):
    load = runtime.prepare_openmp()  # before MXNet loads
    cli.setup_logging()
    parser = argparse.ArgumentParser(description='MTCNN face detection demo',
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--image', required=True)
    parser.add_argument('--out', required=True, help='where to write the annotated image')
    add_detector_arguments(parser, released_defaults=True)
    args = parser.parse_args(argv)
    cli.check_existing_file(parser, args.image, '--image')
    cli.check_output_file(parser, args.out, '--out')
    if os.path.exists(args.out) and os.path.samefile(args.out, args.image):
        parser.error('--out %s would replace the input image %s' % (args.out, args.image))
    ctx = check_detector_arguments(parser, args, ('pnet', 'rnet', 'onet'), load)
    detector = build_detector(args, ctx)
    with cli.input_errors():
        img = read_image(args.image)
    boxes, landmarks = detector.detect(img)
    for box in boxes:
        print('%.2f %.2f %.2f %.2f %.4f' % tuple(box))
    with atomic_path(args.out) as tmp:
        if not cv2.imwrite(tmp, draw_detections(img, boxes, landmarks)):
            raise OSError('cannot write %s' % args.out)
    print('%d faces -> %s' % (len(boxes), args.out))


if __name__ == '__main__':
    main()
