"""Benchmark of MtcnnDetector.detect() on the shared photos.

    python bench/mtcnn.py [--repeat 15] [--shared ../shared]
    OMP_NUM_THREADS=2 python bench/mtcnn.py     # MXNet's operator threads (see below)

For each of test01.jpg, t4.jpg and t6.jpg it prints the median detect() time
and the summed bare forward time of the three nets inside it (Predictor calls:
copy in, forward, copy out) for two runs of the same cascade code:

- ours: the nets of ``mtcnn.predictor.load_net``, i.e. the test graphs in
  their oneDNN form (``prelu='onednn'``, P-Net's heads as one convolution) and
  R-Net / O-Net crops in chunks of 32 padded to a multiple of 16;
- "orig.": nets that spend their time the way the original MXNet
  implementation does: the stock test graphs (``LeakyReLU`` PReLU), a fresh
  executor bound for every P-Net pyramid level, and R-Net / O-Net fed in fixed
  batches of 256 / 16 (the original's defaults). Box arithmetic, NMS and crops
  are ours in both runs, so the orig. column is faster than the original.

Both runs must return identical boxes; the ratio column is orig. / ours.

MXNet reserves one core for its engine, so on a 2-core machine operators run
on one OpenMP thread unless OMP_NUM_THREADS is set; the header says which.
"""
import argparse
import os
import sys
import time

import cv2
import mxnet as mx
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from mtcnn.detector import MtcnnDetector  # noqa: E402
from mtcnn.predictor import Predictor, load_net  # noqa: E402
from mtcnn.symbol import get_symbol  # noqa: E402
from rcnn.core.checkpoint import load_param_file  # noqa: E402

IMAGES = ('test01', 't4', 't6')


class TimedPredictor:
    """Wraps a predictor and accumulates the seconds spent in its calls."""

    def __init__(self, predictor):
        self.predictor = predictor
        self.seconds = 0.0

    def __call__(self, data):
        start = time.perf_counter()
        outputs = self.predictor(data)
        self.seconds += time.perf_counter() - start
        return outputs


class RebindEveryCall(Predictor):
    """Binds a new executor for each call (the original's fully convolutional P-Net runner)."""

    def __call__(self, data):
        self._executors.clear()
        return super().__call__(data)


class FixedBatch(Predictor):
    """Runs minibatches of exactly ``batch`` rows, the last one filled by repeating
    rows (the original's R-Net / O-Net runner)."""

    def __init__(self, symbol, arg_params, batch):
        super().__init__(symbol, arg_params)
        self.batch = batch

    def __call__(self, data):
        outputs = []
        for start in range(0, len(data), self.batch):
            chunk = data[start:start + self.batch]
            filled = chunk[np.resize(np.arange(len(chunk)), self.batch)]
            outputs.append([o[:len(chunk)] for o in super().__call__(filled)])
        return [np.concatenate(parts) for parts in zip(*outputs)]


def build(models, original_style):
    paths = {net: os.path.join(models, '%s-0016.params' % net) for net in ('pnet', 'rnet', 'onet')}
    if original_style:
        params = {net: load_param_file(path)[0] for net, path in paths.items()}
        nets = [RebindEveryCall(get_symbol('pnet', 'test'), params['pnet']),
                FixedBatch(get_symbol('rnet', 'test'), params['rnet'], 256),
                FixedBatch(get_symbol('onet', 'test'), params['onet'], 16)]
    else:
        nets = [load_net(net, path) for net, path in paths.items()]
    timed = [TimedPredictor(net) for net in nets]
    return MtcnnDetector(*timed), timed


def measure(detector, timed, img, repeat):
    """Median seconds of detect() and of the forwards inside it; the boxes."""
    boxes, _ = detector.detect(img)   # binds executors / warms oneDNN
    totals, forwards = [], []
    for _ in range(repeat):
        for t in timed:
            t.seconds = 0.0
        start = time.perf_counter()
        detector.detect(img)
        totals.append(time.perf_counter() - start)
        forwards.append(sum(t.seconds for t in timed))
    return np.median(totals), np.median(forwards), boxes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeat', type=int, default=15)
    parser.add_argument('--shared', default=os.environ.get(
        'RETINAFACE_SHARED', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared')))
    args = parser.parse_args()
    models = os.path.join(args.shared, 'assets', 'models', 'mtcnn-mxnet')
    ours, ours_timed = build(models, original_style=False)
    original, original_timed = build(models, original_style=True)
    print('MXNet %s, OMP_NUM_THREADS=%s, %d CPUs, median of %d runs, milliseconds'
          % (mx.__version__, os.environ.get('OMP_NUM_THREADS', 'unset'), os.cpu_count(), args.repeat))
    print('%-8s %6s %9s %9s %14s %14s %7s' % ('image', 'faces', 'detect', 'forward', 'orig. detect',
                                              'orig. forward', 'ratio'))
    for name in IMAGES:
        img = cv2.imread(os.path.join(args.shared, 'assets', 'images', name + '.jpg'))
        if img is None:
            sys.exit('cannot read %s.jpg under %s/assets/images' % (name, args.shared))
        total, forward, boxes = measure(ours, ours_timed, img, args.repeat)
        base_total, base_forward, base_boxes = measure(original, original_timed, img, args.repeat)
        if not np.array_equal(boxes, base_boxes):
            sys.exit('%s: the two runs disagree' % name)
        print('%-8s %6d %9.1f %9.1f %14.1f %14.1f %6.2fx' % (name, len(boxes), total * 1e3, forward * 1e3,
                                                             base_total * 1e3, base_forward * 1e3,
                                                             base_total / total))


if __name__ == '__main__':
    main()
