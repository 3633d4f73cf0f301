"""Convert the canonical MTCNN weights of facenet-pytorch to MXNet ``.params`` files (``mtcnn.facenet``).

    python -m mtcnn.convert --facenet DIR_OR_WHEEL --output model/mtcnn-canonical [--overwrite]

Writes ``pnet-0000.params``, ``rnet-0000.params`` and ``onet-0000.params`` into ``--output``,
all three or none. The folder is checked before anything is read; existing files are
replaced only with ``--overwrite``, and never the files read.
"""
import os
import zipfile

from facekit import args as cli
from facekit.args import UsageError
from mtcnn.facenet import NETS, convert_facenet, output_paths, save_params

__all__ = ['build_parser', 'check_args', 'run']


def build_parser():
    parser = cli.ArgumentParser(description='Convert the canonical MTCNN weights of facenet-pytorch to MXNet '
                                            '.params files')
    parser.add_argument('--facenet', required=True,
                        help='folder with pnet.pt, rnet.pt and onet.pt, or a facenet-pytorch wheel file')
    parser.add_argument('--output', required=True, help='folder for pnet-0000.params, rnet-0000.params, '
                                                        'onet-0000.params')
    parser.add_argument('--overwrite', action='store_true', help='replace existing output files')
    return parser


def check_args(args):
    if not os.path.exists(args.facenet):
        raise UsageError('--facenet: %s does not exist' % args.facenet)
    if os.path.isdir(args.facenet):
        inputs = [os.path.join(args.facenet, net + '.pt') for net in NETS]
    elif zipfile.is_zipfile(args.facenet):
        inputs = [args.facenet]
    else:
        raise UsageError('--facenet: %s is neither a folder nor a wheel (zip) file' % args.facenet)
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise UsageError('--output: %s exists and is not a folder' % args.output)
    cli.check_writable_dir(args.output, '--output')
    for path in output_paths(args.output).values():
        cli.check_output_file(path, '--output', inputs, args.overwrite)


def run(args, context):
    paths = output_paths(args.output)
    save_params(paths, convert_facenet(args.facenet))
    print('converted %s -> %s' % (args.facenet, ', '.join(paths[net] for net in NETS)))
