"""Training-loop overhead: ``train.py`` iterations/s against the bare forward-backward.

    python bench/train.py --data data/retinaface [--batch_images 4] [--workers 2]

The loop's time per iteration is measured black-box, from two ``train.py`` runs of
different length (``--max_iters``), so start-up cancels out. The bare
forward-backward (+ update) runs the same symbol on one cached batch, so it costs no
data loading, metric or logging. Ratio = loop / bare; 1.0 is no overhead.
"""
import argparse
import os
import subprocess
import sys
import time

import mxnet as mx
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import train  # noqa: E402
from rcnn.config import config, generate_config  # noqa: E402
from rcnn.core.loader import CropLoader  # noqa: E402
from rcnn.dataset.retinaface import retinaface  # noqa: E402
from rcnn.symbol import get_symbol_train  # noqa: E402


def loop_seconds(args, iterations, prefix):
    command = [sys.executable, 'train.py', '--network', 'mnet', '--dataset', 'retinaface',
               '--dataset_path', args.data, '--prefix', prefix, '--batch_images', str(args.batch_images),
               '--workers', str(args.workers), '--max_iters', str(iterations), '--frequent', '1000']
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def bare_seconds(args, iterations):
    generate_config('mnet', 'retinaface')
    roidb = retinaface('train', '', args.data).gt_roidb()
    sym = get_symbol_train('mnet', config)
    with CropLoader(sym, roidb, config, batch_size=args.batch_images, seed=0) as loader:
        batch = loader.next()
        data_shapes, label_shapes = loader.provide_data, loader.provide_label
    mod = train.create_module(sym, [mx.cpu()], data_shapes, label_shapes, None, None, [],
                              train.make_optimizer(0.01, 0.0005, 1), 'device')
    times = []
    for _ in range(iterations + 3):
        start = time.perf_counter()
        mod.forward_backward(batch)
        mod.update()
        for output in mod.get_outputs():
            output.wait_to_read()
        times.append(time.perf_counter() - start)
    return float(np.median(times[3:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', default='data/retinaface')
    parser.add_argument('--batch_images', type=int, default=4)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--short', type=int, default=5, help='iterations of the short train.py run')
    parser.add_argument('--long', type=int, default=45, help='iterations of the long train.py run')
    parser.add_argument('--prefix', default='/tmp/bench_train/mnet')
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(args.data, 'train', 'label.txt')):
        raise SystemExit('no data at %s; make it with: python -m rcnn.dataset.synthetic --output %s'
                         % (args.data, args.data))
    bare = bare_seconds(args, 20)
    short = loop_seconds(args, args.short, args.prefix)
    long = loop_seconds(args, args.long, args.prefix)
    loop = (long - short) / (args.long - args.short)
    print('%-34s %10s %10s' % ('mnet, batch %d, %d workers' % (args.batch_images, args.workers), 's/iter', 'iter/s'))
    print('%-34s %10.3f %10.2f' % ('bare forward-backward + update', bare, 1 / bare))
    print('%-34s %10.3f %10.2f' % ('train.py loop', loop, 1 / loop))
    print('%-34s %10.2fx' % ('ratio loop / bare', loop / bare))


if __name__ == '__main__':
    main()
