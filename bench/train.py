"""Training-loop overhead: ``train.py`` iterations/s against the bare forward-backward, and the
cost of the per-batch NaN / infinity check.

    python -m bench.train --data data/retinaface [--batch_images 4] [--workers 2]

The loop's time per iteration is measured black-box, from two ``train.py`` runs of
different length (``--max_iters``; both on ``--prefix``, with ``--overwrite``),
so start-up cancels out. The bare forward-backward (+ update) runs the same symbol,
bound as ``train.py`` binds it (``facekit.mx.trainer.bind_module``,
``rcnn.commands.train.make_optimizer``), on one cached batch, so it costs no
data loading, metric or logging; it runs with and without ``train.py``'s finiteness
check (``facekit.mx.finite.ModuleCheck.step``: queued after the update, read after the
metric, as in the loop), interleaved, medians. Ratio = loop / bare; 1.0 is no overhead.
"""
import argparse
import os
import pathlib
import subprocess
import sys
import time

import mxnet as mx
import numpy as np

from facekit.cpu import CpuLoad
from facekit.labels import split_paths
from facekit.mx.finite import ModuleCheck
from facekit.mx.runtime import configure_cpu_training
from facekit.mx.trainer import bind_module
from rcnn.commands.train import make_optimizer
from rcnn.config import get_config
from rcnn.core.loader import CropLoader
from rcnn.core.metric import get_train_metrics
from rcnn.dataset.retinaface import retinaface
from rcnn.symbol import get_symbol_train

REPO = pathlib.Path(__file__).resolve().parents[1]


def loop_seconds(args, iterations, prefix):
    command = [sys.executable, 'train.py', '--network', 'mnet', '--dataset', 'retinaface',
               '--dataset_path', args.data, '--prefix', prefix, '--batch_images', str(args.batch_images),
               '--workers', str(args.workers), '--max_iters', str(iterations), '--frequent', '1000', '--overwrite']
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise SystemExit('%s failed (exit status %d):\n%s'
                         % (' '.join(command), result.returncode, result.stderr[-2000:]))
    return seconds


def bare_seconds(args, iterations):
    """Median s per iteration: (forward-backward + update + metric, the same with the check),
    in the CPU runtime train.py chooses (``facekit.mx.runtime.configure_cpu_training``)."""
    configure_cpu_training(CpuLoad())
    cfg, _ = get_config('mnet', 'retinaface')
    roidb = retinaface('train', args.data, cfg).gt_roidb()
    sym = get_symbol_train('mnet', cfg)
    with CropLoader(sym, roidb, cfg, batch_size=args.batch_images, seed=0) as loader:
        batch = loader.next()
        data_shapes, label_shapes = loader.provide_data, loader.provide_label
    mod = bind_module(sym, [mx.cpu()], data_shapes, label_shapes, None, None, make_optimizer(0.01, 0.0005, 1),
                      kvstore=mx.kv.create('device'))
    metrics = get_train_metrics(cfg.RPN_FEAT_STRIDE, cfg.FACE_LANDMARK)
    check = ModuleCheck(mod)
    times = {False: [], True: []}
    for i in range(2 * (iterations + 3)):
        checked = bool(i % 2)
        mx.nd.waitall()
        start = time.perf_counter()
        if checked:
            assert check.step(batch, metrics) == []
        else:
            mod.forward_backward(batch)
            mod.update()
            mod.update_metric(metrics, batch.label)
        mx.nd.waitall()
        times[checked].append(time.perf_counter() - start)
    return tuple(float(np.median(times[checked][3:])) for checked in (False, True))


def main():
    parser = argparse.ArgumentParser(prog='python -m bench.train', description=__doc__.splitlines()[0])
    parser.add_argument('--data', default='data/retinaface')
    parser.add_argument('--batch_images', type=int, default=4)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--short', type=int, default=5, help='iterations of the short train.py run')
    parser.add_argument('--long', type=int, default=45, help='iterations of the long train.py run')
    parser.add_argument('--bare', type=int, default=20, help='iterations of each bare loop')
    parser.add_argument('--prefix', default='/tmp/bench_train/mnet')
    args = parser.parse_args()
    if not os.path.isfile(split_paths(args.data, 'train')[0]):
        raise SystemExit('no data at %s; make it with: python -m rcnn.dataset.synthetic --output %s'
                         % (args.data, args.data))
    bare, checked = bare_seconds(args, args.bare)
    short = loop_seconds(args, args.short, args.prefix)
    long = loop_seconds(args, args.long, args.prefix)
    loop = (long - short) / (args.long - args.short)
    print('%-40s %10s %10s' % ('mnet, batch %d, %d workers' % (args.batch_images, args.workers), 's/iter', 'iter/s'))
    print('%-40s %10.3f %10.2f' % ('bare forward-backward + update + metric', bare, 1 / bare))
    print('%-40s %10.3f %10.2f' % ('the same + finite check', checked, 1 / checked))
    print('%-40s %10.3fx' % ('ratio with / without check', checked / bare))
    print('%-40s %10.3f %10.2f' % ('train.py loop (checked)', loop, 1 / loop))
    print('%-40s %10.2fx' % ('ratio loop / bare', loop / bare))


if __name__ == '__main__':
    main()
