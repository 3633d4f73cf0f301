"""Time the synthetic WIDER generator at 1 and 2 worker processes.

    .venv/bin/python -m bench.synthetic [--images 200] [--repeat 1] [--workers 1 2]

Generates ``--images`` training images into a temporary folder per run and prints,
per worker count, the median wall seconds, images per second, the extrapolation
to 1000 images, the speed-up over the first worker count, and the CPU seconds
(this process plus its workers) per 1000 images, which shows the cost
independently of other load on the machine.
"""
import argparse
import os
import resource
import statistics
import tempfile
import time

from rcnn.dataset.synthetic import generate_widerface


def _cpu_seconds():
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main():
    parser = argparse.ArgumentParser(prog='python -m bench.synthetic', description=__doc__.splitlines()[0])
    parser.add_argument('--images', type=int, default=200)
    parser.add_argument('--repeat', type=int, default=1)
    parser.add_argument('--workers', type=int, nargs='+', default=[1, 2])
    args = parser.parse_args()

    wall, cpu = {}, {}
    for workers in args.workers:
        walls, cpus = [], []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as root:
                start, start_cpu = time.perf_counter(), _cpu_seconds()
                generate_widerface(root, args.images, 0, 0, seed=0, workers=workers)
                walls.append(time.perf_counter() - start)
                cpus.append(_cpu_seconds() - start_cpu)
        wall[workers], cpu[workers] = statistics.median(walls), statistics.median(cpus)

    print('load average (1 min) at the end: %.1f on %d cores' % (os.getloadavg()[0], os.cpu_count()))
    header = ('workers', 's/%d img' % args.images, 'img/s', 's/1000 img (ext)', 'speedup', 'cpu s/1000 img')
    print('%-8s %12s %8s %17s %8s %15s' % header)
    base = wall[args.workers[0]]
    for workers, seconds in wall.items():
        print('%-8d %12.2f %8.1f %17.1f %8.2f %15.1f' % (
            workers, seconds, args.images / seconds, seconds * 1000 / args.images, base / seconds,
            cpu[workers] * 1000 / args.images))


if __name__ == '__main__':
    main()
