"""Recall and precision of the MTCNN cascade at IoU 0.5 over a RetinaFace ``label.txt``.

    python -m mtcnn.evaluate --label data/retinaface/val/label.txt \\
        --pnet model/pnet-0016.params --rnet model/rnet-0016.params --onet model/onet-0016.params

See ``mtcnn.evaluate`` for the matching. Every listed image must exist; bad input is one
line naming the file and line.
"""
import os

from facekit import args as cli
from mtcnn.commands.options import add_detector_arguments, build_detector, check_detector_arguments
from mtcnn.defaults import MIN_FACE_SIZE
from mtcnn.evaluate import evaluate
from mtcnn.samples import load_annotations

__all__ = ['build_parser', 'check_args', 'run', 'check_listed_images']


def build_parser():
    parser = cli.ArgumentParser(description='Recall / precision of the MTCNN cascade at IoU 0.5',
                                formatter_class=cli.DefaultsHelpFormatter)
    parser.add_argument('--label', required=True)
    parser.add_argument('--images', default=None, help='image root (default: images/ beside the label)')
    add_detector_arguments(parser, required=('pnet',))
    parser.add_argument('--min_gt', type=cli.non_negative_float, default=MIN_FACE_SIZE,
                        help='ignore faces smaller than this (pixels)')
    return parser


def check_args(args):
    cli.check_existing_file(args.label, '--label')
    if args.images is not None:
        cli.check_existing_dir(args.images, '--images')
    check_detector_arguments(args)


def check_listed_images(annotations, label):
    """FileNotFoundError naming the first listed image that is not a file, and ``label``."""
    for ann in annotations:
        if not os.path.isfile(ann.path):
            raise FileNotFoundError('image %s (listed in %s) does not exist' % (ann.path, label))


def run(args, context):
    annotations = load_annotations(args.label, args.images)
    check_listed_images(annotations, args.label)
    detector = build_detector(args, context)
    counts = evaluate(detector, annotations, args.min_gt)
    print('faces %d detections %d recall %.3f precision %.3f'
          % (counts.faces, counts.detections, counts.recall, counts.precision))
