"""Benchmark of the training data pipeline on synthetic WIDER-style data.

    python -m bench.loader [--data DIR] [--images 48] [--batch 8] [--rounds 5]

Prints images/s of the original-style serial path (decode + crop + assign in this
process: ``CropLoader(num_workers=0)``, with OpenCV's default threads and with one
thread) and of the parallel loader with 1, 2 and 4 workers, with the CPU time per
image of the loader's processes (this one and its workers), then ms per
``assign_anchor_fpn`` call at 5, 50 and 500 faces (median of 50 calls).

Every loader is built and warmed up (one epoch) first; then each round times one
epoch of every loader in turn, so a load change on a shared machine hits all of
them alike. Figures are medians over the rounds; ratios are against the serial
path with OpenCV's default threads. The data is generated under --data when it
has no train/label.txt yet.
"""
import argparse
import os
import time

import cv2
import numpy as np

from facekit.labels import split_paths
from rcnn.config import get_config
from rcnn.core.loader import CropLoader
from rcnn.dataset.retinaface import retinaface
from rcnn.dataset.synthetic import generate_widerface
from rcnn.io.rpn import AA

FEATS = [(20, 20), (40, 40), (80, 80)]


def cpu_seconds(pids):
    """User + system CPU seconds of the processes ``pids`` so far (Linux /proc)."""
    total = 0
    for pid in pids:
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf('SC_CLK_TCK')


def epoch_seconds(loader):
    """Wall and CPU (this process + workers) seconds of one epoch, from reset() (which starts
    the prefetch) to the last batch."""
    pids = [os.getpid()] + [p.pid for p in loader._workers]
    cpu, start = cpu_seconds(pids), time.perf_counter()
    loader.reset()
    for _ in loader:
        pass
    return time.perf_counter() - start, cpu_seconds(pids) - cpu


def random_faces(rng, n):
    """n faces of 8..256 px (log-uniform) in a 640 crop, with landmarks."""
    size = np.exp(rng.uniform(np.log(8), np.log(256), n))
    xy = rng.uniform(-0.1, 1.0, (n, 2)) * 640
    boxes = np.stack([xy[:, 0], xy[:, 1], xy[:, 0] + size, xy[:, 1] + size * 1.2, np.ones(n)], axis=1)
    landmarks = np.concatenate([xy[:, None] + rng.uniform(0, 1, (n, 5, 2)) * size[:, None, None],
                                np.ones((n, 5, 1))], axis=2)
    return {'gt_boxes': boxes.astype(np.float32), 'gt_landmarks': landmarks.astype(np.float32)}


def main():
    parser = argparse.ArgumentParser(prog='python -m bench.loader', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', default=os.path.join('data', 'bench_loader'), help='synthetic data root')
    parser.add_argument('--images', type=int, default=48, help='train images to generate (flipped: twice)')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--rounds', type=int, default=5, help='timed epochs per loader')
    parser.add_argument('--workers', default='1,2,4')
    args = parser.parse_args()

    config, _ = get_config('mnet', 'retinaface')
    if not os.path.isfile(split_paths(args.data, 'train')[0]):
        print('generating %d synthetic images in %s' % (args.images, args.data))
        generate_widerface(args.data, args.images, 0, 0, seed=0)
    imdb = retinaface('train', args.data, config)
    roidb = imdb.append_flipped_images(imdb.gt_roidb())
    images = len(roidb) // args.batch * args.batch
    print('%d roidb entries, batch %d, %d CPUs, OpenCV threads %d in the serial process'
          % (len(roidb), args.batch, os.cpu_count(), cv2.getNumThreads()))

    settings = [('serial (one process)', 0, None), ('serial, OpenCV 1 thread', 0, 1)]
    settings += [('parallel, %d worker%s' % (w, 's' * (w > 1)), w, None) for w in map(int, args.workers.split(','))]
    loaders, startup = [], []
    for _, workers, _ in settings:
        start = time.perf_counter()
        loaders.append(CropLoader(FEATS, roidb, config, batch_size=args.batch, shuffle=True, seed=0,
                                  num_workers=workers))
        startup.append(time.perf_counter() - start)
    default_threads = cv2.getNumThreads()
    seconds = [[] for _ in settings]
    cpu = [[] for _ in settings]
    try:
        for round_index in range(args.rounds + 1):  # round 0 warms up
            for (_, _, threads), loader, times, cpu_times in zip(settings, loaders, seconds, cpu):
                cv2.setNumThreads(threads or default_threads)
                elapsed, cpu_elapsed = epoch_seconds(loader)
                if round_index:
                    times.append(elapsed)
                    cpu_times.append(cpu_elapsed)
    finally:
        cv2.setNumThreads(default_threads)
        for loader in loaders:
            loader.close()

    rates = [images / np.median(times) for times in seconds]
    print('\n%-28s %10s %10s %12s %10s' % ('loader', 'images/s', 'vs serial', 'CPU ms/img', 'startup s'))
    for (name, _, _), rate, cpu_times, start in zip(settings, rates, cpu, startup):
        print('%-28s %10.1f %9.2fx %12.1f %10.2f'
              % (name, rate, rate / rates[0], 1e3 * np.median(cpu_times) / images, start))

    aa = AA(FEATS, config)
    rng = np.random.default_rng(0)
    print('\n%-28s %10s' % ('assign_anchor_fpn', 'ms/call'))
    for faces in (5, 50, 500):
        gt = random_faces(rng, faces)
        times = []
        for _ in range(50):
            start = time.perf_counter()
            aa.assign_anchor_fpn(gt, [[640, 640, 1.0]], landmark=True)
            times.append(time.perf_counter() - start)
        print('%-28s %10.2f' % ('%d faces' % faces, 1e3 * np.median(times)))


if __name__ == '__main__':
    main()
