"""Detect faces in one image and draw them.

    python -m mtcnn.demo --image photo.jpg --out result.jpg \\
        --pnet model/pnet-0016.params --rnet model/rnet-0016.params --onet model/onet-0016.params

Boxes are drawn with their score and, when the O-Net has the landmark branch,
the five landmarks (``rcnn.draw``); one line per face is printed: x1 y1 x2 y2 score.
The image is read upright (``rcnn.io.image.read_image``); ``--out`` may not be the image.
"""
import argparse
import os

import cv2
import mxnet as mx

from mtcnn.detector import MtcnnDetector
from rcnn import cli
from rcnn.draw import draw_detections
from rcnn.fileio import atomic_path
from rcnn.io.image import read_image

__all__ = ['main', 'add_detector_arguments', 'check_detector_arguments', 'build_detector']


def add_detector_arguments(parser, stages=('pnet', 'rnet', 'onet'), required=()):
    """The cascade's options: a ``--<stage>`` .params file per stage, --min-face-size, --threshold, --gpu."""
    for stage in stages:
        default = None if stage in required else 'model/%s-0016.params' % stage
        parser.add_argument('--' + stage, required=stage in required, default=default,
                            help='%s .params file' % stage.upper().replace('NET', '-Net'))
    parser.add_argument('--min-face-size', type=cli.int_at_least(12), default=24,
                        help='smallest face searched, pixels (>= 12)')
    parser.add_argument('--threshold', type=cli.probability_list(3), default='0.6,0.7,0.7',
                        help='face-probability thresholds of P-Net, R-Net, O-Net')
    parser.add_argument('--gpu', type=cli.gpu_id, default=None,
                        help='GPU id, -1 for the CPU (default: GPU 0 if MXNet has CUDA and sees a GPU, else the CPU)')


def check_detector_arguments(parser, args, stages):
    """Exit through ``parser.error`` unless every given stage file exists; returns the MXNet context
    of the chosen device (``rcnn.cli.choose_device``)."""
    for stage in stages:
        if getattr(args, stage) is not None:
            cli.check_existing_file(parser, getattr(args, stage), '--' + stage)
    gpu = cli.choose_device(parser, args.gpu)
    return mx.gpu(gpu) if gpu >= 0 else mx.cpu()


def build_detector(args, ctx, stages=('pnet', 'rnet', 'onet')):
    """The MtcnnDetector of the given stage files; a corrupt file ends the command with one line."""
    files = [getattr(args, stage) for stage in stages]
    with cli.model_load_errors(*[f for f in files if f]):
        return MtcnnDetector(*files, ctx=ctx, min_face_size=args.min_face_size, threshold=args.threshold)


def main(argv=None):
    cli.setup_logging()
    parser = argparse.ArgumentParser(description='MTCNN face detection demo',
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--image', required=True)
    parser.add_argument('--out', required=True, help='where to write the annotated image')
    add_detector_arguments(parser)
    args = parser.parse_args(argv)
    cli.check_existing_file(parser, args.image, '--image')
    cli.check_output_file(parser, args.out, '--out')
    if os.path.exists(args.out) and os.path.samefile(args.out, args.image):
        parser.error('--out %s would replace the input image %s' % (args.out, args.image))
    ctx = check_detector_arguments(parser, args, ('pnet', 'rnet', 'onet'))
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
