"""Benchmark of MtcnnDetector.detect() on the shared photos.

    python -m bench.mtcnn [--repeat 15] [--shared ../shared] [--facenet-python PYTHON]

For each of test01.jpg, t4.jpg and t6.jpg it prints the median detect() time
and the summed bare forward time of the three nets inside it (Predictor calls:
copy in, forward, copy out) for two cascades:

- ours: the nets of ``mtcnn.predictor.load_predictor``, i.e. the test graphs in
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
- configured: as the MTCNN command lines run (``facekit.mx.runtime``: the spin count
  of ``prepare_openmp`` set before the child starts, then
  ``configure_cpu_inference``: on 2+ CPUs the naive engine, one OpenMP thread per CPU for
  oneDNN; MXNet's own kernels keep the thread count chosen at import);
- naive-env: MXNET_ENGINE_TYPE=NaiveEngine and OMP_NUM_THREADS=<CPUs> set
  before the child starts, so MXNet's own kernels (the stock PReLU of orig.)
  use every CPU too.

All six runs must return identical boxes. The first table compares the two
cascades within each runtime (ratio orig. / ours); the next two compare them as
their programs run (ours configured, orig. default), and each in its fastest runtime.

The last table is our cascade with the canonical weights (facenet-pytorch's
``pnet/rnet/onet.pt`` under ``<shared>/assets/models/mtcnn-canonical``,
converted by ``mtcnn.facenet``) on test01, t4, t6 and t1, in a child in the
configured runtime run after the others. With ``--facenet-python PYTHON``, an
interpreter that has facenet-pytorch and torch (a scratch virtual environment;
neither is a dependency of this project), facenet-pytorch's
``MTCNN(min_face_size=24, thresholds=[0.6, 0.7, 0.7], factor=0.709,
keep_all=True).detect(rgb, landmarks=True)`` then runs in a child of that
interpreter on the same pixels, torch on one thread per CPU, and the table adds
its median time, the ratio facenet / ours and how the faces agree
(``mtcnn.evaluate.compare``: shares of its faces and of ours paired at IoU 0.5,
mean landmark error over its face width).
"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import cv2
import mxnet as mx
import numpy as np

from facekit.cpu import SPIN_COUNT, usable_cpus
from facekit.mx.checkpoint import load_param_file
from facekit.mx.executor import ShapeCachedExecutor
from facekit.mx.runtime import configure_cpu_inference
from mtcnn.detector import MtcnnDetector
from mtcnn.evaluate import compare
from mtcnn.facenet import NETS, convert_facenet, output_paths, save_params
from mtcnn.predictor import Predictor, load_predictor
from mtcnn.symbol import get_symbol

REPO = pathlib.Path(__file__).resolve().parents[1]

IMAGES = ('test01', 't4', 't6')
CANONICAL_IMAGES = ('test01', 't4', 't6', 't1')
RUNTIMES = ('default', 'configured', 'naive-env')

# Run by --facenet-python: facenet-pytorch's cascade on the RGB images of an .npz.
FACENET_CHILD = '''
import importlib.metadata, json, sys, time
import numpy as np
import torch
from facenet_pytorch import MTCNN
images, repeat, threads = np.load(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
mtcnn = MTCNN(min_face_size=24, thresholds=[0.6, 0.7, 0.7], factor=0.709, keep_all=True)
rows = {}
for name in images.files:
    rgb = images[name]
    boxes, probs, points = mtcnn.detect(rgb, landmarks=True)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        mtcnn.detect(rgb, landmarks=True)
        times.append(time.perf_counter() - start)
    found = boxes is not None
    rows[name] = {'ms': 1e3 * float(np.median(times)),
                  'boxes': np.column_stack([boxes, probs]).tolist() if found else [],
                  'landmarks': np.asarray(points).tolist() if found else []}
print(json.dumps({'version': 'facenet-pytorch %s, torch %s, %d threads' % (
    importlib.metadata.version('facenet-pytorch'), torch.__version__, torch.get_num_threads()), 'rows': rows}))
'''


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
        nets = [load_predictor(net, path) for net, path in paths.items()]
    timed = [TimedPredictor(net) for net in nets]
    return MtcnnDetector(*timed), timed


def build_canonical(shared, workdir):
    """Our cascade with the canonical weights, converted into ``workdir``."""
    params = convert_facenet(os.path.join(shared, 'assets', 'models', 'mtcnn-canonical'))
    paths = output_paths(workdir)
    save_params(paths, params)
    timed = [TimedPredictor(load_predictor(net, paths[net])) for net in NETS]
    return MtcnnDetector(*timed), timed


def read_images(shared, names):
    images = {}
    for name in names:
        images[name] = cv2.imread(os.path.join(shared, 'assets', 'images', name + '.jpg'))
        if images[name] is None:
            sys.exit('cannot read %s.jpg under %s/assets/images' % (name, shared))
    return images


def measure(detector, timed, img, repeat):
    """Median seconds of detect() and of the forwards inside it; the boxes and landmarks."""
    boxes, landmarks = detector.detect(img)   # binds executors / warms oneDNN
    totals, forwards = [], []
    for _ in range(repeat):
        for t in timed:
            t.seconds = 0.0
        start = time.perf_counter()
        detector.detect(img)
        totals.append(time.perf_counter() - start)
        forwards.append(sum(t.seconds for t in timed))
    return np.median(totals), np.median(forwards), boxes, landmarks


def runtime_environment(runtime):
    """The child's environment: MXNet's defaults, except what ``runtime`` sets before start."""
    env = {k: v for k, v in os.environ.items()
           if k not in ('MXNET_ENGINE_TYPE', 'OMP_NUM_THREADS', 'OMP_WAIT_POLICY', 'GOMP_SPINCOUNT')}
    if runtime == 'configured':
        env['GOMP_SPINCOUNT'] = SPIN_COUNT
    if runtime == 'naive-env':
        env.update(MXNET_ENGINE_TYPE='NaiveEngine', OMP_NUM_THREADS=str(usable_cpus()))
    return env


def run_runtime(runtime, repeat, shared, canonical=False):
    """Measure both cascades on every image in a child process that uses ``runtime``
    (with ``canonical``: our cascade with the canonical weights, configured runtime)."""
    command = [sys.executable, '-m', 'bench.mtcnn', '--runtime', runtime, '--repeat', str(repeat),
               '--shared', shared] + (['--canonical'] if canonical else [])
    result = subprocess.run(command, cwd=REPO, env=runtime_environment(runtime), capture_output=True, text=True)
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
    images = read_images(shared, IMAGES)
    rows = {}
    for name in IMAGES:
        total, forward, boxes, _ = measure(ours, ours_timed, images[name], repeat)
        base_total, base_forward, base_boxes, _ = measure(original, original_timed, images[name], repeat)
        if not np.array_equal(boxes, base_boxes):
            sys.exit('%s: the two cascades disagree in the %s runtime' % (name, runtime))
        rows[name] = {'ours': [total * 1e3, forward * 1e3], 'orig': [base_total * 1e3, base_forward * 1e3],
                      'boxes': boxes.tolist()}
    return rows


def measure_canonical(repeat, shared):
    """Times (ms), boxes and landmarks of our cascade with the canonical weights on each image,
    in the configured runtime (the current process's)."""
    configure_cpu_inference()
    images = read_images(shared, CANONICAL_IMAGES)
    with tempfile.TemporaryDirectory() as workdir:
        detector, timed = build_canonical(shared, workdir)
        rows = {}
        for name in CANONICAL_IMAGES:
            total, forward, boxes, landmarks = measure(detector, timed, images[name], repeat)
            rows[name] = {'ms': [total * 1e3, forward * 1e3], 'boxes': boxes.tolist(),
                          'landmarks': landmarks.tolist()}
    return rows


def run_facenet(python, repeat, shared):
    """facenet-pytorch's times (ms), boxes and landmarks, run by the interpreter ``python``."""
    images = read_images(shared, CANONICAL_IMAGES)
    with tempfile.TemporaryDirectory() as workdir:
        rgb = os.path.join(workdir, 'images.npz')
        np.savez(rgb, **{name: cv2.cvtColor(img, cv2.COLOR_BGR2RGB) for name, img in images.items()})
        command = [python, '-c', FACENET_CHILD, rgb, str(repeat), str(usable_cpus())]
        try:
            result = subprocess.run(command, capture_output=True, text=True)
        except OSError as error:
            sys.exit('--facenet-python %s cannot run: %s' % (python, error))
    if result.returncode:
        sys.exit('facenet-pytorch failed under --facenet-python %s:\n%s' % (python, result.stderr))
    return json.loads(result.stdout.splitlines()[-1])


def print_comparison(title, ours, original):
    """One row per image: ours and orig. detect() (ms, each from the runtime named) and their ratio."""
    print('\n' + title)
    print('%-8s %-22s %-22s %7s' % ('image', 'detect', 'orig. detect', 'ratio'))
    for name in IMAGES:
        print('%-8s %-22s %-22s %6.2fx' % (name, '%.1f (%s)' % ours[name], '%.1f (%s)' % original[name],
                                           original[name][0] / ours[name][0]))


def main():
    parser = argparse.ArgumentParser(prog='python -m bench.mtcnn', description=__doc__.split('\n')[0])
    parser.add_argument('--repeat', type=int, default=15)
    parser.add_argument('--shared', default=os.environ.get('RETINAFACE_SHARED', str(REPO.parent / 'shared')))
    parser.add_argument('--runtime', choices=RUNTIMES,
                        help='measure in this process with this runtime only and print JSON (the children)')
    parser.add_argument('--canonical', action='store_true',
                        help='measure our cascade with the canonical weights only and print JSON (a child)')
    parser.add_argument('--facenet-python', metavar='PYTHON',
                        help='an interpreter with facenet-pytorch and torch: time facenet-pytorch beside ours')
    args = parser.parse_args()
    if args.facenet_python and not shutil.which(args.facenet_python):
        parser.error('argument --facenet-python: %s is not an executable' % args.facenet_python)
    if args.canonical:
        print(json.dumps(measure_canonical(args.repeat, args.shared)))
        return
    if args.runtime:
        print(json.dumps(measure_here(args.runtime, args.repeat, args.shared)))
        return
    results = {runtime: run_runtime(runtime, args.repeat, args.shared) for runtime in RUNTIMES}
    for name in IMAGES:
        if any(results[r][name]['boxes'] != results['default'][name]['boxes'] for r in RUNTIMES):
            sys.exit('%s: the runtimes disagree' % name)
    print('MXNet %s, %d CPUs, median of %d runs, milliseconds' % (mx.__version__, os.cpu_count(), args.repeat))
    print('%-8s %6s %-10s %9s %9s %14s %14s %7s'
          % ('image', 'faces', 'runtime', 'detect', 'forward', 'orig. detect', 'orig. forward', 'ratio'))
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
    canonical = run_runtime('configured', args.repeat, args.shared, canonical=True)
    facenet = run_facenet(args.facenet_python, args.repeat, args.shared) if args.facenet_python else None
    print_canonical(canonical, facenet)


def print_canonical(ours, facenet):
    """One row per image: our cascade with the canonical weights [and facenet-pytorch beside it]."""
    print('\ncanonical weights (converted from facenet-pytorch), ours in the configured runtime'
          + ('; facenet: %s' % facenet['version'] if facenet else ''))
    header = '%-8s %6s %9s %9s' % ('image', 'faces', 'detect', 'forward')
    if facenet:
        header += ' %14s %15s %7s %15s %13s %10s' % ('facenet faces', 'facenet detect', 'ratio', 'facenet matched',
                                                     'ours matched', 'landmarks')
    print(header)
    for name in CANONICAL_IMAGES:
        row = ours[name]
        line = '%-8s %6d %9.1f %9.1f' % (name, len(row['boxes']), *row['ms'])
        if facenet:
            theirs = facenet['rows'][name]
            agreement = compare(np.array(theirs['boxes']).reshape(-1, 5), np.array(theirs['landmarks']),
                                np.array(row['boxes']).reshape(-1, 5), np.array(row['landmarks']))
            line += ' %14d %15.1f %6.2fx %15.2f %13.2f %9.1f%%' % (
                len(theirs['boxes']), theirs['ms'], theirs['ms'] / row['ms'][0], agreement.reference_matched,
                agreement.detections_matched, 100 * agreement.landmark_error)
        print(line)


if __name__ == '__main__':
    main()
