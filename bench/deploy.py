"""Bare network forward on MXNet against onnxruntime, same nets, same inputs; and the whole
detection process on each, from a cold start.

    python -m bench.deploy [--repeat 10] [--rounds 4] [--processes 5] [--shared ../shared]

The released mnet.25 and the three MTCNN nets are exported to ONNX first
(``rcnn.export.export_retinaface``, ``mtcnn.export.export_mtcnn``; into a temporary
folder). Each runtime then runs in its own child process, in alternating rounds (MXNet,
onnxruntime, MXNet, ...; one process's leftover threads never slow the other's
measurements):

- mxnet: as our detection commands run it (``GOMP_SPINCOUNT`` set before the
  child starts, then ``facekit.mx.runtime.configure_cpu_inference()``: on 2+ CPUs the naive engine,
  one OpenMP thread per CPU). mnet.25 is ``RetinaFace``'s forward
  (``facekit.mx.executor.ShapeCachedExecutor``: input copied in, forward, every
  output read back); the MTCNN nets are the detector's
  (``mtcnn.predictor.load_predictor``: oneDNN form, crops in chunks of 32).
- onnxruntime: ``facekit.ort.OnnxForward`` with its defaults (sequential
  execution, one intra-op thread per CPU, spinning off); the crops in one batch.

Inputs: mnet.25 on t4, t6 and t1 (RGB float, full size); P-Net on test01 at the
first pyramid scale of a 24-pixel minimum face (0.5); R-Net on 128 and O-Net on
32 seeded crops of test01. Prints the median and the minimum of all rounds' runs
(ms) and the ratios mxnet / onnxruntime of both (> 1: onnxruntime is faster). On a
machine shared with other processes, MXNet's OpenMP threads stall whenever a CPU is
taken away (a forward waits for every thread), onnxruntime's pool much less: the
medians then move, the minimums say what each does on free CPUs.

Then the whole process of a detection on t1, one new process per run, alternating:
``retinaface-detect --onnx mnet.onnx`` (the console script of ``pip install .``, no MXNet)
against ``python detect.py --prefix mnet.25 --epoch 0`` (MXNet), both writing the picture and
the JSON. Prints the median wall and CPU seconds of ``--processes`` runs each and their ratio:
what a user waits for one photo, start-up (imports, model load) included.
"""
import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

import cv2
import mxnet as mx
import numpy as np

from facekit.cpu import SPIN_COUNT, usable_cpus
from facekit.mx.runtime import configure_cpu_inference
from mtcnn.defaults import INPUT_SIZE
from mtcnn.detector import transform

REPO = pathlib.Path(__file__).resolve().parents[1]

RUNTIMES = ('mxnet', 'onnxruntime')
MNET = os.path.join('assets', 'models', 'retinaface-mnet025', 'mnet.25')
MTCNN = os.path.join('assets', 'models', 'mtcnn-mxnet', '%s-0016.params')
# (label, model, image, what is fed)
CASES = (('mnet.25 t4', 'mnet', 't4', 'image'), ('mnet.25 t6', 'mnet', 't6', 'image'),
         ('mnet.25 t1', 'mnet', 't1', 'image'), ('pnet test01', 'pnet', 'test01', 0.5),
         ('rnet 128 crops', 'rnet', 'test01', 128), ('onet 32 crops', 'onet', 'test01', 32))


def case_input(shared, model, image, feed):
    """The float32 (B, 3, H, W) input of a case."""
    img = cv2.imread(os.path.join(shared, 'assets', 'images', image + '.jpg'))
    if img is None:
        sys.exit('cannot read %s.jpg under %s/assets/images' % (image, shared))
    if model == 'mnet':
        return np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32)
    if model == 'pnet':
        images = [cv2.resize(img, None, fx=feed, fy=feed)]
    else:
        rng = np.random.RandomState(0)
        images = []
        for _ in range(feed):
            side = rng.randint(24, min(img.shape[:2]) // 2)
            y, x = rng.randint(0, img.shape[0] - side), rng.randint(0, img.shape[1] - side)
            images.append(cv2.resize(img[y:y + side, x:x + side], (INPUT_SIZE[model],) * 2))
    return transform(np.stack(images))


def forwards(name, shared, models):
    """{case label: callable(data) -> outputs} of runtime ``name``."""
    if name == 'mxnet':
        configure_cpu_inference()
        from facekit.mx.checkpoint import load_checkpoint
        from facekit.mx.executor import ShapeCachedExecutor
        from mtcnn.predictor import load_predictor
        nets = {net: load_predictor(net, os.path.join(shared, MTCNN % net)) for net in ('pnet', 'rnet', 'onet')}
        nets['mnet'] = ShapeCachedExecutor(*load_checkpoint(os.path.join(shared, MNET), 0))  # as RetinaFace runs it
        return {label: nets[model] for label, model, _, _ in CASES}
    from facekit.ort import OnnxForward
    sessions = {model: OnnxForward(os.path.join(models, model + '.onnx')) for _, model, _, _ in CASES}
    return {label: sessions[model] for label, model, _, _ in CASES}


def measure_here(name, repeat, shared, models):
    """Milliseconds of ``repeat`` calls per case in this process (after two warm-up calls)."""
    times = {}
    for label, forward in forwards(name, shared, models).items():
        model, image, feed = next(case[1:] for case in CASES if case[0] == label)
        data = case_input(shared, model, image, feed)
        for _ in range(2):  # binds executors, plans memory, warms oneDNN
            forward(data)
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            forward(data)
            samples.append(1e3 * (time.perf_counter() - start))
        times[label] = samples
    return times


def export_models(shared, folder):
    from mtcnn.export import export_mtcnn
    from rcnn.export import export_retinaface
    export_retinaface(os.path.join(shared, MNET), 0, os.path.join(folder, 'mnet.onnx'))
    for net in ('pnet', 'rnet', 'onet'):
        export_mtcnn(net, os.path.join(shared, MTCNN % net), os.path.join(folder, net + '.onnx'))


def run_child(name, repeat, shared, models):
    command = [sys.executable, '-m', 'bench.deploy', '--runtime', name, '--repeat', str(repeat),
               '--shared', shared, '--models', models]
    # The MXNet child starts with the spin count the commands set before MXNet loads.
    env = dict(os.environ, GOMP_SPINCOUNT=SPIN_COUNT) if name == 'mxnet' else None
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)
    if result.returncode:
        sys.exit('the %s run failed:\n%s' % (name, result.stderr))
    return json.loads(result.stdout.splitlines()[-1])


def detect_commands(shared, models, image):
    """{name: argv} of the two detection processes, each missing only its output arguments."""
    console_script = os.path.join(os.path.dirname(sys.executable), 'retinaface-detect')
    if not os.path.isfile(console_script):
        sys.exit('%s is missing: install the project (pip install -e . or make venv)' % console_script)
    return {
        'retinaface-detect --onnx': [console_script, '--onnx', os.path.join(models, 'mnet.onnx'), '--image', image],
        'detect.py --prefix': [sys.executable, 'detect.py', '--prefix', os.path.join(shared, MNET), '--epoch', '0',
                               '--image', image],
    }


def time_process(argv, folder):
    """(wall seconds, CPU seconds) of one run of ``argv`` writing into the new ``folder``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(argv + ['--output', os.path.join(folder, 'out'), '--json', os.path.join(folder, 'f.json')],
                            cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode:
        sys.exit('%s failed:\n%s' % (' '.join(argv), result.stderr))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure_processes(shared, models, runs):
    """{name: [(wall, cpu), ...]} of ``runs`` alternating cold starts of each detection process."""
    commands = detect_commands(shared, models, os.path.join(shared, 'assets', 'images', 't1.jpg'))
    samples = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            with tempfile.TemporaryDirectory() as folder:
                samples[name].append(time_process(argv, folder))
    return samples


def print_processes(samples):
    print('\nwhole detection process on t1 (cold start: new process, imports, model load), median of %d runs'
          % len(next(iter(samples.values()))))
    print('%-28s %8s %8s' % ('command', 'wall s', 'CPU s'))
    medians = {name: np.median(np.array(runs), axis=0) for name, runs in samples.items()}
    for name, (wall, cpu) in medians.items():
        print('%-28s %8.2f %8.2f' % (name, wall, cpu))
    onnx, mxnet = medians['retinaface-detect --onnx'], medians['detect.py --prefix']
    print('%-28s %7.2fx %7.2fx' % ('onnx / mxnet', onnx[0] / mxnet[0], onnx[1] / mxnet[1]))


def main():
    parser = argparse.ArgumentParser(prog='python -m bench.deploy', description=__doc__.split('\n')[0])
    parser.add_argument('--repeat', type=int, default=10, help='timed calls per case and round')
    parser.add_argument('--rounds', type=int, default=4, help='child processes per runtime, alternating')
    parser.add_argument('--shared', default=os.environ.get('RETINAFACE_SHARED', str(REPO.parent / 'shared')))
    parser.add_argument('--processes', type=int, default=5, help='cold-start detection processes per command')
    parser.add_argument('--runtime', choices=RUNTIMES, help='measure in this process only and print JSON (children)')
    parser.add_argument('--models', help='folder of the exported models (children)')
    args = parser.parse_args()
    if args.runtime:
        print(json.dumps(measure_here(args.runtime, args.repeat, args.shared, args.models)))
        return
    import onnxruntime
    load_before = os.getloadavg()[0]
    samples = {name: {label: [] for label, *_ in CASES} for name in RUNTIMES}
    with tempfile.TemporaryDirectory() as models:
        export_models(args.shared, models)
        for _ in range(args.rounds):
            for name in RUNTIMES:
                for label, times in run_child(name, args.repeat, args.shared, models).items():
                    samples[name][label].extend(times)
        processes = measure_processes(args.shared, models, args.processes)
    print('MXNet %s (configure_cpu_inference) against onnxruntime %s (OnnxForward), %d usable CPUs, '
          'median of %d x %d runs, milliseconds'
          % (mx.__version__, onnxruntime.__version__, usable_cpus(), args.rounds, args.repeat))
    print('1-minute load average %.2f before, %.2f after' % (load_before, os.getloadavg()[0]))
    print('%-16s %-14s %16s %16s %10s %8s'
          % ('case', 'input', 'mxnet med (min)', 'onnxrt med (min)', 'ratio med', 'min'))
    for label, model, image, feed in CASES:
        shape = case_input(args.shared, model, image, feed).shape
        (mxnet_med, mxnet_min), (ort_med, ort_min) = (
            (float(np.median(samples[name][label])), min(samples[name][label])) for name in RUNTIMES)
        print('%-16s %-14s %16s %16s %9.2fx %7.2fx' % (
            label, 'x'.join(map(str, shape)), '%.2f (%.2f)' % (mxnet_med, mxnet_min),
            '%.2f (%.2f)' % (ort_med, ort_min), mxnet_med / ort_med, mxnet_min / ort_min))
    print_processes(processes)


if __name__ == '__main__':
    main()
