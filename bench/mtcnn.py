"""Benchmark of MtcnnDetector.detect() on the shared photos.

    python bench/mtcnn.py [--repeat 15] [--shared ../shared]

For each of test01.jpg, t4.jpg and t6.jpg it prints the median detect() time
and the summed bare forward time of the three nets inside it (Predictor calls:
copy in, forward, copy out) for two cascades:

- ours: the nets of ``mtcnn.predictor.load_net``, i.e. the test graphs in
  their oneDNN form (``prelu='onednn'``, P-Net's heads as one convolution) and
  R-Net / O-Net crops in chunks of 32 padded to a multiple of 16;
- "orig.": nets that spend their time the way the original MXNet
  implementation does: the stock test graphs (``LeakyReLU`` PReLU), a fresh
  executor bound for every P-Net pyramid level, and R-Net / O-Net fed in fixed
  batches of 256 / 16 (the original's defaults). Box arithmetic, NMS and crops
  are ours in both, so the orig. column is faster than the original.

Each cascade runs in three MXNet runtimes, each in its own child process (the
engine is chosen once per process):

- default: MXNet's threaded engine, OMP_NUM_THREADS and MXNET_ENGINE_TYPE
  unset (on 2 cores operators get one OpenMP thread); the original runs this way;
- configured: ``rcnn.runtime.configure_cpu_inference``, called as the MTCNN
  command lines call it (naive engine, one OpenMP thread per CPU for oneDNN;
  MXNet's own kernels keep the thread count chosen at import);
- naive-env: MXNET_ENGINE_TYPE=NaiveEngine and OMP_NUM_THREADS=<CPUs> set
  before the child starts, so MXNet's own kernels (the stock PReLU of orig.)
  use every CPU too.

All six runs must return identical boxes. The first table compares the two
cascades within each runtime (ratio orig. / ours); the next two compare them as
their programs run (ours configured, orig. default), and each in its fastest runtime.
"""
import argparse
import json
import os
import subprocess
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
from rcnn.core.executor import ShapeCachedExecutor  # noqa: E402
from rcnn.runtime import configure_cpu_inference, usable_cpus  # noqa: E402

IMAGES = ('test01', 't4', 't6')
RUNTIMES = ('default', 'configured', 'naive-env')


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

    def __init__(self, symbol, arg_params):
        super().__init__(symbol, arg_params)
        self.arg_params = arg_params

    def __call__(self, data):
        self.forward = ShapeCachedExecutor(self.symbol, self.arg_params)
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


def runtime_environment(runtime):
    """The child's environment: MXNet's defaults, except what ``runtime`` sets before start."""
    env = {k: v for k, v in os.environ.items() if k not in ('MXNET_ENGINE_TYPE', 'OMP_NUM_THREADS')}
    if runtime == 'naive-env':
        env.update(MXNET_ENGINE_TYPE='NaiveEngine', OMP_NUM_THREADS=str(usable_cpus()))
    return env


def run_runtime(runtime, repeat, shared):
    """Measure both cascades on every image in a child process that uses ``runtime``."""
    command = [sys.executable, os.path.abspath(__file__), '--runtime', runtime, '--repeat', str(repeat),
               '--shared', shared]
    result = subprocess.run(command, env=runtime_environment(runtime), capture_output=True, text=True)
    if result.returncode:
        sys.exit('the %s runtime failed:\n%s' % (runtime, result.stderr))
    return json.loads(result.stdout)


def measure_here(runtime, repeat, shared):
    """Rows of the current process, which uses ``runtime``: times (ms) and boxes of each image."""
    if runtime == 'configured':
        configure_cpu_inference()
    models = os.path.join(shared, 'assets', 'models', 'mtcnn-mxnet')
    ours, ours_timed = build(models, original_style=False)
    original, original_timed = build(models, original_style=True)
    rows = {}
    for name in IMAGES:
        img = cv2.imread(os.path.join(shared, 'assets', 'images', name + '.jpg'))
        if img is None:
            sys.exit('cannot read %s.jpg under %s/assets/images' % (name, shared))
        total, forward, boxes = measure(ours, ours_timed, img, repeat)
        base_total, base_forward, base_boxes = measure(original, original_timed, img, repeat)
        if not np.array_equal(boxes, base_boxes):
            sys.exit('%s: the two cascades disagree in the %s runtime' % (name, runtime))
        rows[name] = {'ours': [total * 1e3, forward * 1e3], 'orig': [base_total * 1e3, base_forward * 1e3],
                      'boxes': boxes.tolist()}
    return rows


def print_comparison(title, ours, original):
    """One row per image: ours and orig. detect() (ms, each from the runtime named) and their ratio."""
    print('\n' + title)
    print('%-8s %-22s %-22s %7s' % ('image', 'detect', 'orig. detect', 'ratio'))
    for name in IMAGES:
        print('%-8s %-22s %-22s %6.2fx' % (name, '%.1f (%s)' % ours[name], '%.1f (%s)' % original[name],
                                           original[name][0] / ours[name][0]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeat', type=int, default=15)
    parser.add_argument('--shared', default=os.environ.get(
        'RETINAFACE_SHARED', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared')))
    parser.add_argument('--runtime', choices=RUNTIMES,
                        help='measure in this process with this runtime only and print JSON (the children)')
    args = parser.parse_args()
    if args.runtime:
        print(json.dumps(measure_here(args.runtime, args.repeat, args.shared)))
        return
    results = {runtime: run_runtime(runtime, args.repeat, args.shared) for runtime in RUNTIMES}
    for name in IMAGES:
        if any(results[r][name]['boxes'] != results['default'][name]['boxes'] for r in RUNTIMES):
            sys.exit('%s: the runtimes disagree' % name)
    print('MXNet %s, %d CPUs, median of %d runs, milliseconds' % (mx.__version__, os.cpu_count(), args.repeat))
    print('%-8s %6s %-10s %9s %9s %14s %14s %7s' % ('image', 'faces', 'runtime', 'detect', 'forward',
                                                     'orig. detect', 'orig. forward', 'ratio'))
    for name in IMAGES:
        for runtime in RUNTIMES:
            row = results[runtime][name]
            print('%-8s %6d %-10s %9.1f %9.1f %14.1f %14.1f %6.2fx'
                  % (name, len(row['boxes']), runtime, *row['ours'], *row['orig'], row['orig'][0] / row['ours'][0]))
    print_comparison('as the programs run (MTCNN command lines configured, the original in the default runtime)',
                     {n: (results['configured'][n]['ours'][0], 'configured') for n in IMAGES},
                     {n: (results['default'][n]['orig'][0], 'default') for n in IMAGES})
    best = {side: {n: min((results[r][n][side][0], r) for r in RUNTIMES) for n in IMAGES} for side in ('ours', 'orig')}
    print_comparison('each in its fastest runtime', best['ours'], best['orig'])


if __name__ == '__main__':
    main()
