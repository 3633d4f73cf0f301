"""Detect faces in one image and draw them.

    python -m mtcnn.demo --image photo.jpg --out result.jpg \\
        --pnet model/pnet-0016.params --rnet model/rnet-0016.params --onet model/onet-0016.params

Boxes are drawn in yellow with their score, landmarks as red dots when the
O-Net has the landmark branch (the canonical weights converted by
``mtcnn.convert``, or a cascade trained ``--with-landmark``); one line per face
is printed: x1 y1 x2 y2 score.
"""
import argparse

import cv2
import mxnet as mx

from mtcnn.detector import MtcnnDetector
from mtcnn.samples import read_image
from rcnn import runtime
from rcnn.fileio import atomic_path

__all__ = ['draw', 'main']


def draw(img, boxes, landmarks=None):
    """Copy of ``img`` with boxes (N, 5) and optional landmarks (N, 5, 2) drawn."""
    out = img.copy()
    for box in boxes:
        x1, y1, x2, y2 = (int(round(v)) for v in box[:4])
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 255, 255), 2)
        cv2.putText(out, '%.3f' % box[4], (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (255, 255, 255), 1)
    if landmarks is not None:
        for points in landmarks:
            for x, y in points:
                cv2.circle(out, (int(round(x)), int(round(y))), 2, (0, 0, 255), -1)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description='MTCNN face detection demo',
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--image', required=True)
    parser.add_argument('--out', required=True, help='where to write the annotated image')
    parser.add_argument('--pnet', default='model/pnet-0016.params')
    parser.add_argument('--rnet', default='model/rnet-0016.params')
    parser.add_argument('--onet', default='model/onet-0016.params')
    parser.add_argument('--min-face-size', type=int, default=24)
    parser.add_argument('--threshold', default='0.6,0.7,0.7')
    parser.add_argument('--gpu', type=int, default=-1, help='GPU id; -1 for CPU')
    args = parser.parse_args(argv)
    if args.gpu < 0:
        runtime.configure_cpu_inference()
    ctx = mx.gpu(args.gpu) if args.gpu >= 0 else mx.cpu()
    threshold = [float(t) for t in args.threshold.split(',')]
    detector = MtcnnDetector(args.pnet, args.rnet, args.onet, ctx, args.min_face_size, threshold)
    img = read_image(args.image)
    boxes, landmarks = detector.detect(img)
    for box in boxes:
        print('%.2f %.2f %.2f %.2f %.4f' % tuple(box))
    with atomic_path(args.out) as tmp:
        if not cv2.imwrite(tmp, draw(img, boxes, landmarks)):
            raise OSError('cannot write %s' % args.out)
    print('%d faces -> %s' % (len(boxes), args.out))


if __name__ == '__main__':
    main()
