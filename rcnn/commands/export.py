"""Export a RetinaFace checkpoint to ONNX, checked against MXNet with onnxruntime.

    python tools/export_onnx.py retinaface --prefix P --epoch N --output F.onnx [--shape H W] [--overwrite]

The export has a dynamic batch, height and width (``--shape H W``: a static (1, 3, H, W)
input for runtimes that need one, at most ``facekit.image.MAX_MEGAPIXELS``). Before the
file is written, onnxruntime and MXNet run the same seeded inputs and every output must
agree within 1e-5 + 1e-3 * max |mxnet| (``facekit.mx.onnx_export``); a model that cannot be
exported faithfully, or an output that disagrees, is an error naming the layer or the
output, and no file is written. ``--output`` may not be one of the model's files.
"""
import os

from facekit import args as cli
from facekit.args import UsageError
from facekit.mx import runtime
from facekit.mx.onnx_export import add_export_arguments, check_export_args, describe
from facekit.prefix import params_path, symbol_path
from rcnn.export import MIN_SIZE, export_retinaface

__all__ = ['build_parser', 'check_args', 'run']


def build_parser():
    parser = cli.ArgumentParser(description='a RetinaFace checkpoint (PREFIX-symbol.json, PREFIX-EPOCH.params)')
    parser.add_argument('--prefix', required=True, help='checkpoint prefix')
    parser.add_argument('--epoch', type=cli.int_at_least(0), required=True, help='checkpoint epoch')
    add_export_arguments(parser)
    return parser


def check_args(args):
    files = (symbol_path(args.prefix), params_path(args.prefix, args.epoch))
    for path, flag in zip(files, ('--prefix', '--epoch')):
        if not os.path.isfile(path):
            raise UsageError('%s: %s not found' % (flag, path))
    check_export_args(args, files, MIN_SIZE, 'RetinaFace')


def run(args, context):
    runtime.configure_cpu_inference(load=context.cpu_load)
    print(describe(export_retinaface(args.prefix, args.epoch, args.output, static_shape=args.shape,
                                     overwrite=args.overwrite)))
