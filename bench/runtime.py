"""The commands' CPU runtime ("ours") against MXNet's default runtime, on a quiet and on a shared machine.

    python -m bench.runtime [--repeat 3] [--rows mode0,mode1,detect,mtcnn,train] [--shared ../shared]

Rows, each a command run in child processes, timed by the wall clock and by the CPU time
the commands used:

- mode0: ``test_widerface.py --mode 0 --gpu -1`` on 20 synthetic val images (released mnet.25);
- mode1: ``--mode 1`` on 5 of them;
- detect: ``detect.py --gpu -1`` on the shared photos;
- mtcnn: ``python -m mtcnn.demo --gpu -1`` on the largest shared photo (released MXNet weights);
- train: the ``train.py`` loop of ``bench.train`` (mnet, batch 4, 2 loader workers, 40
  synthetic images): seconds per iteration from a short and a long run.

Runtimes, in turn for every measurement:

- ours: the commands as they ship (``facekit.mx.runtime`` chooses; the variables below unset);
- default: MXNet's own, ``MXNET_ENGINE_TYPE=ThreadedEnginePerDevice`` with ``OMP_NUM_THREADS``
  and ``OMP_WAIT_POLICY`` unset and ``RETINAFACE_CPU_RUNTIME=mxnet`` (the commands then
  change nothing).

Conditions:

- quiet: nothing else runs (the script cannot stop other users; it prints the load average);
- busy: one busy-loop process per usable CPU, started by this script before each run and
  stopped after it (each loop also ends by itself after ``--busy-limit`` seconds);
- parts: two processes at once, timed until both have finished: ``--parts 2 --part 0`` and
  ``--part 1`` for the test_widerface rows, two copies of the command for the others.

Every (row, condition) runs ``--repeat`` times, ours and default alternating. The first
table gives median wall seconds and the ratio ours / default; the second the median CPU
seconds (user + system, OpenMP's spinning included) of the commands themselves, busy
loops not counted.
"""
import argparse
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from facekit.cpu import RUNTIME_VARIABLE, usable_cpus
from facekit.labels import read_label_file, split_paths, write_label_file
from facekit.mx.runtime import DEFAULT_ENGINE
from rcnn.dataset.synthetic import generate_widerface

REPO = pathlib.Path(__file__).resolve().parents[1]

ROWS = ('mode0', 'mode1', 'detect', 'mtcnn', 'train')
CONDITIONS = ('quiet', 'busy', 'parts')
RUNTIMES = ('ours', 'default')
# What the commands' runtime choice reads; cleared for "ours", set for "default".
RUNTIME_ENV = ('MXNET_ENGINE_TYPE', 'OMP_NUM_THREADS', 'OMP_WAIT_POLICY', 'GOMP_SPINCOUNT', 'MXNET_OMP_MAX_THREADS',
               RUNTIME_VARIABLE)
TRAIN_SHORT, TRAIN_LONG = 4, 16
BUSY_LOOP = 'import time\nend = time.time() + %d\nwhile time.time() < end:\n    pass\n'


def runtime_env(runtime):
    env = {k: v for k, v in os.environ.items() if k not in RUNTIME_ENV}
    env['PYTHONPATH'] = str(REPO)
    if runtime == 'default':
        env.update({'MXNET_ENGINE_TYPE': DEFAULT_ENGINE, RUNTIME_VARIABLE: 'mxnet'})
    return env


class Workload:
    """Data, models and scratch folders of the rows, made once in ``root``."""

    def __init__(self, root, shared):
        self.root = pathlib.Path(root)
        self.shared = pathlib.Path(shared)
        self.mnet = self.shared / 'assets/models/retinaface-mnet025/mnet.25'
        self.mtcnn = [str(self.shared / ('assets/models/mtcnn-mxnet/%s-0016.params' % n))
                      for n in ('pnet', 'rnet', 'onet')]
        self.photos = self.shared / 'assets/images'
        self.data = self.root / 'data'
        generate_widerface(str(self.data), num_train=40, num_val=20, num_test=0, seed=0)
        # mode1's image set: the first 5 val images, read from val/images.
        val_label, val_images = split_paths(str(self.data), 'val')
        val5_label, val5_images = split_paths(str(self.data), 'val5')
        os.makedirs(os.path.dirname(val5_label))
        os.symlink(val_images, val5_images)
        write_label_file(val5_label, read_label_file(val_label)[:5])
        self.runs = 0

    def scratch(self):
        self.runs += 1
        path = self.root / ('run%d' % self.runs)
        path.mkdir()
        return path

    def commands(self, row, copies):
        """The command lines of one measurement of ``row``: ``copies`` processes run at once."""
        out = self.scratch()
        if row in ('mode0', 'mode1'):
            image_set, mode = ('val', '0') if row == 'mode0' else ('val5', '1')
            base = [sys.executable, 'test_widerface.py', '--mode', mode, '--gpu', '-1', '--prefix', str(self.mnet),
                    '--epoch', '0', '--dataset_path', str(self.data), '--image_set', image_set,
                    '--output', str(out)]
            if copies == 1:
                return [base]
            return [base + ['--parts', str(copies), '--part', str(k)] for k in range(copies)]
        if row == 'detect':
            return [[sys.executable, 'detect.py', '--prefix', str(self.mnet), '--epoch', '0', '--gpu', '-1',
                     '--image', str(self.photos), '--output', str(out / str(k))] for k in range(copies)]
        if row == 'mtcnn':
            image = max(self.photos.glob('*.jpg'), key=lambda p: p.stat().st_size)
            return [[sys.executable, '-m', 'mtcnn.demo', '--image', str(image), '--output', str(out / ('%d.jpg' % k)),
                     '--gpu', '-1', '--pnet', self.mtcnn[0], '--rnet', self.mtcnn[1], '--onet', self.mtcnn[2]]
                    for k in range(copies)]
        raise ValueError(row)

    def train_commands(self, iterations, copies):
        out = self.scratch()
        return [[sys.executable, 'train.py', '--network', 'mnet', '--dataset', 'retinaface', '--dataset_path',
                 str(self.data), '--prefix', str(out / str(k) / 'mnet'), '--batch_images', '4', '--workers', '2',
                 '--max_iters', str(iterations), '--frequent', '1000'] for k in range(copies)]


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_all(commands, env, busy, busy_limit):
    """(wall, cpu) seconds until every command (started together) has finished, with ``busy`` busy
    loops: the wall clock, and the commands' CPU time (the loops are reaped after it is read)."""
    loops = [subprocess.Popen([sys.executable, '-c', BUSY_LOOP % busy_limit]) for _ in range(busy)]
    try:
        if loops:
            time.sleep(0.5)  # let the loops take the cores
        cpu = _children_cpu()
        start = time.perf_counter()
        procs = [subprocess.Popen(c, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for c in commands]
        failures = []
        for proc, command in zip(procs, commands):
            _, stderr = proc.communicate()
            if proc.returncode:
                failures.append('%s\n%s' % (' '.join(command), stderr.decode(errors='replace')[-2000:]))
        seconds = time.perf_counter() - start
        cpu = _children_cpu() - cpu
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    if failures:
        raise SystemExit('a benchmark command failed:\n' + '\n'.join(failures))
    return seconds, cpu


def measure(work, row, condition, runtime, busy_limit):
    """(wall, cpu) seconds of one measurement; for train, per iteration."""
    copies = 2 if condition == 'parts' else 1
    busy = usable_cpus() if condition == 'busy' else 0
    env = runtime_env(runtime)
    if row != 'train':
        return run_all(work.commands(row, copies), env, busy, busy_limit)
    short = run_all(work.train_commands(TRAIN_SHORT, copies), env, busy, busy_limit)
    long = run_all(work.train_commands(TRAIN_LONG, copies), env, busy, busy_limit)
    return tuple((b - a) / (TRAIN_LONG - TRAIN_SHORT) for a, b in zip(short, long))


def print_table(title, rows, conditions, medians):
    """One line per row: per condition, ours, default and their ratio."""
    print('\n' + title)
    print('%-8s' % 'row' + ''.join(' | %-7s %7s %7s %6s' % (c, 'ours', 'default', 'ratio') for c in conditions))
    for row in rows:
        cells = []
        for condition in conditions:
            m = medians[row, condition]
            cells.append(' | %-7s %7.3f %7.3f %5.2fx' % ('', m['ours'], m['default'], m['ours'] / m['default']))
        print('%-8s' % row + ''.join(cells))


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m bench.runtime', description=__doc__.split('\n')[0])
    parser.add_argument('--repeat', type=int, default=3, help='runs of each runtime per row and condition')
    parser.add_argument('--rows', default=','.join(ROWS), help='comma-separated subset of %s' % ', '.join(ROWS))
    parser.add_argument('--conditions', default=','.join(CONDITIONS),
                        help='comma-separated subset of %s' % ', '.join(CONDITIONS))
    parser.add_argument('--shared', default=os.environ.get('RETINAFACE_SHARED', str(REPO.parent / 'shared')))
    parser.add_argument('--busy-limit', type=int, default=900, help='seconds after which a busy loop ends itself')
    args = parser.parse_args(argv)
    rows = [r for r in args.rows.split(',') if r]
    conditions = [c for c in args.conditions.split(',') if c]
    for name, values, known in (('--rows', rows, ROWS), ('--conditions', conditions, CONDITIONS)):
        if not values or set(values) - set(known):
            parser.error('%s: expected a comma-separated subset of %s, got %r' % (name, ', '.join(known), values))

    root = tempfile.mkdtemp(prefix='bench_runtime_')
    try:
        work = Workload(root, args.shared)
        load = ' '.join('%.2f' % v for v in os.getloadavg())
        print('%d usable CPUs, load average %s at the start' % (usable_cpus(), load))
        walls, cpus = {}, {}
        for row in rows:
            for condition in conditions:
                runs = {runtime: [] for runtime in RUNTIMES}
                for _ in range(args.repeat):
                    for runtime in RUNTIMES:
                        runs[runtime].append(measure(work, row, condition, runtime, args.busy_limit))
                walls[row, condition] = {r: float(np.median([w for w, _ in m])) for r, m in runs.items()}
                cpus[row, condition] = {r: float(np.median([c for _, c in m])) for r, m in runs.items()}
                print('  %s, %s: wall (cpu) ours %s, default %s' % (
                    row, condition, *(' '.join('%.2f (%.2f)' % run for run in runs[r]) for r in RUNTIMES)), flush=True)
        print_table('wall seconds (train: per iteration), median of %d; ratio = ours / default' % args.repeat,
                    rows, conditions, walls)
        print_table("the commands' CPU seconds, user + system (train: per iteration), median of %d" % args.repeat,
                    rows, conditions, cpus)
        print('load average %s at the end' % ' '.join('%.2f' % v for v in os.getloadavg()))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
