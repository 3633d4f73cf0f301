"""Time the synthetic WIDER generator at 1 and 2 worker processes.

    .venv/bin/python bench/synthetic.py [--images 200] [--repeat 1]

Generates ``--images`` training images into a temporary folder per run, prints
the median seconds, images per second, the extrapolation to 1000 images and the
speed-up over one worker (all measured within this run).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rcnn.dataset.synthetic import generate_widerface  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--images', type=int, default=200)
    parser.add_argument('--repeat', type=int, default=1)
    parser.add_argument('--workers', type=int, nargs='+', default=[1, 2])
    args = parser.parse_args()

    medians = {}
    for workers in args.workers:
        times = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as root:
                start = time.perf_counter()
                generate_widerface(root, args.images, 0, 0, seed=0, workers=workers)
                times.append(time.perf_counter() - start)
        medians[workers] = statistics.median(times)

    base = medians[args.workers[0]]
    print('%-8s %12s %8s %16s %8s' % ('workers', 's/%d img' % args.images, 'img/s', 's/1000 img (ext)', 'speedup'))
    for workers, seconds in medians.items():
        print('%-8d %12.2f %8.1f %16.1f %8.2f' % (workers, seconds, args.images / seconds,
                                                  seconds * 1000 / args.images, base / seconds))


if __name__ == '__main__':
    main()
