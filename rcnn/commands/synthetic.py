"""Generate the synthetic WIDER FACE-style data set (``rcnn.dataset.synthetic``).

    python -m rcnn.dataset.synthetic --output data/synthetic --num_train 1000 --num_val 200 --num_test 50

``--output`` should be a fresh folder: one that already holds a data set is refused
(``--overwrite`` regenerates only what the generator wrote there). The free disk space is
checked before anything is written.
"""
import os
import shutil

from facekit import args as cli
from facekit.args import UsageError
from rcnn.dataset.synthetic import OutputConflict, generate_widerface
from rcnn.dataset.synthetic.writer import BYTES_PER_IMAGE

__all__ = ['build_parser', 'check_args', 'run']


def build_parser():
    parser = cli.ArgumentParser(description='Generate a synthetic WIDER FACE-style data set '
                                            '(RetinaFace label.txt layout + WIDER val .mat files).')
    parser.add_argument('--output', default='data/retinaface', help='output root (a fresh folder)')
    parser.add_argument('--overwrite', action='store_true',
                        help='regenerate in a folder this generator wrote before (only its own files are replaced)')
    parser.add_argument('--num_train', type=cli.int_at_least(0), default=1000)
    parser.add_argument('--num_val', type=cli.int_at_least(0), default=200)
    parser.add_argument('--num_test', type=cli.int_at_least(0), default=50)
    parser.add_argument('--seed', type=cli.int_at_least(0), default=0)
    parser.add_argument('--workers', type=cli.int_at_least(1), default=None, help='processes (default: CPU count)')
    return parser


def check_args(args):
    cli.check_writable_dir(args.output, '--output')
    existing = os.path.abspath(args.output)
    while not os.path.isdir(existing):
        existing = os.path.dirname(existing)
    count = args.num_train + args.num_val + args.num_test
    free = shutil.disk_usage(existing).free
    if count * BYTES_PER_IMAGE > free:
        raise UsageError('--output: %d images need about %.1f GB, and %s has %.1f GB free'
                         % (count, count * BYTES_PER_IMAGE / 1e9, existing, free / 1e9))


def run(args, context):
    try:
        seconds = generate_widerface(args.output, args.num_train, args.num_val, args.num_test, args.seed,
                                     args.workers, args.overwrite)
    except OutputConflict as error:
        raise UsageError('--output: %s' % error) from None
    print('wrote %s in %.1f s' % (args.output, seconds))
