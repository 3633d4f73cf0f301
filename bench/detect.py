"""Time ``RetinaFace.detect`` against the bare network forward on the same input.

    python -m bench.detect [--prefix P --epoch E] [--images t4 t6 t1] [--repeat 30] [--thresh 0.5 0.02]

The bare forward is the same bound executor run on the already prepared RGB tensor,
including reading all its outputs back (``asnumpy``); ``detect`` adds the image
conversion, decoding, NMS. Prints medians (ms) and detect/forward ratios.
Defaults use the released mnet.25 model and photos under ../shared (or $RETINAFACE_SHARED).
"""
import argparse
import functools
import os
import pathlib
import time

import cv2
import numpy as np

from rcnn.detector import RetinaFace

REPO = pathlib.Path(__file__).resolve().parents[1]


def _timed_ms(fn):
    start = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - start)


def _bare_forward(detector, img):
    """The detector's network on ``img``'s RGB tensor, already in place (outputs read back)."""
    buffer = detector.net.input_buffer((1, 3) + img.shape[:2])
    buffer[0] = img.transpose(2, 0, 1)[::-1]
    return functools.partial(detector.net, buffer)


def main(argv=None):
    shared = pathlib.Path(os.environ.get('RETINAFACE_SHARED', REPO.parent / 'shared'))
    parser = argparse.ArgumentParser(prog='python -m bench.detect', description=__doc__.split('\n')[0])
    parser.add_argument('--prefix', default=str(shared / 'assets/models/retinaface-mnet025/mnet.25'))
    parser.add_argument('--epoch', type=int, default=0)
    parser.add_argument('--images', nargs='+', default=['t4', 't6', 't1'],
                        help='image paths or names of ../shared/assets/images/<name>.jpg')
    parser.add_argument('--thresh', nargs='+', type=float, default=[0.5, 0.02])
    parser.add_argument('--repeat', type=int, default=30)
    parser.add_argument('--gpu', type=int, default=-1)
    args = parser.parse_args(argv)

    detector = RetinaFace(args.prefix, args.epoch, ctx_id=args.gpu)
    print('%-8s %-10s %7s %12s %12s %7s %6s' % ('image', 'size', 'thresh', 'forward ms', 'detect ms', 'ratio', 'faces'))
    for name in args.images:
        path = name if os.path.isfile(name) else str(shared / 'assets/images' / ('%s.jpg' % name))
        img = cv2.imread(path)
        if img is None:
            raise SystemExit('cannot read image %s' % path)
        forward = _bare_forward(detector, img)
        runs = [forward] + [functools.partial(detector.detect, img, threshold=t) for t in args.thresh]
        for fn in runs:
            fn()
        # Interleaved runs, so that load from other processes hits all of them alike.
        times = np.array([[_timed_ms(fn) for fn in runs] for _ in range(args.repeat)])
        medians = np.median(times, axis=0)
        for thresh, detect_ms in zip(args.thresh, medians[1:]):
            faces = detector.detect(img, threshold=thresh)[0].shape[0]
            print('%-8s %-10s %7.2f %12.2f %12.2f %7.3f %6d' % (
                pathlib.Path(path).stem, '%dx%d' % (img.shape[1], img.shape[0]), thresh, medians[0], detect_ms,
                detect_ms / medians[0], faces))


if __name__ == '__main__':
    main()
