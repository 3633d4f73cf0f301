"""Export a RetinaFace checkpoint or an MTCNN net to ONNX, checked against MXNet with onnxruntime.

    python tools/export_onnx.py retinaface --prefix P --epoch N --output F.onnx [--shape H W] [--overwrite]
    python tools/export_onnx.py mtcnn --net pnet|rnet|onet --params F.params --output F.onnx [--shape H W] [--overwrite]

RetinaFace models get a dynamic batch, height and width (``--shape H W``: a static
(1, 3, H, W) input for runtimes that need one); P-Net likewise; R-Net and O-Net a
dynamic batch of 24x24 / 48x48 crops. Before the file is written, onnxruntime and
MXNet run the same seeded inputs and every output must agree within
1e-5 + 1e-3 * max |mxnet| (``rcnn.deploy.onnx_export``); a model that cannot be
exported faithfully, or an output that disagrees, is an error naming the layer or
the output, and no file is written. The opset is 13, the newest MXNet 1.9.1's
converters are written for.
"""
import argparse
import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

if __name__ == '__main__':
    # Before MXNet loads (rcnn.runtime.prepare_openmp).
    from rcnn.runtime import prepare_openmp
    _LOAD = prepare_openmp()

from rcnn import cli, runtime  # noqa: E402
from rcnn.fileio import params_path, symbol_path  # noqa: E402
from rcnn.deploy import onnx_export  # noqa: E402

NETS = ('pnet', 'rnet', 'onet')


def build_parser():
    parser = argparse.ArgumentParser(description='Export a RetinaFace or MTCNN model to ONNX, checked against '
                                                 'MXNet with onnxruntime.')
    commands = parser.add_subparsers(dest='model', required=True, metavar='{retinaface,mtcnn}')

    retina = commands.add_parser('retinaface', help='a RetinaFace checkpoint (PREFIX-symbol.json, '
                                                    'PREFIX-EPOCH.params)')
    retina.add_argument('--prefix', required=True, help='checkpoint prefix')
    retina.add_argument('--epoch', type=cli.int_at_least(0), required=True, help='checkpoint epoch')
    retina.add_argument('--shape', type=cli.int_at_least(1), nargs=2, metavar=('H', 'W'),
                        help='export a static (1, 3, H, W) input instead of dynamic batch, height and width')

    mtcnn = commands.add_parser('mtcnn', help='an MTCNN net from its .params')
    mtcnn.add_argument('--net', required=True, choices=NETS, help='which net the weights are')
    mtcnn.add_argument('--params', required=True, help='the MXNet .params file of the net')
    mtcnn.add_argument('--shape', type=cli.int_at_least(1), nargs=2, metavar=('H', 'W'),
                       help='pnet only: a static (1, 3, H, W) input instead of dynamic batch, height and width')

    for sub in (retina, mtcnn):
        sub.add_argument('--output', required=True, help='the ONNX file to write')
        sub.add_argument('--overwrite', action='store_true', help='replace an existing --output')
    return parser, {'retinaface': retina, 'mtcnn': mtcnn}


def parse_args(argv=None):
    """Parsed arguments; argparse errors (exit 2) name the argument, before any model is loaded."""
    parser, subparsers = build_parser()
    args = parser.parse_args(argv)
    sub = subparsers[args.model]
    if args.model == 'retinaface':
        for path, argument in ((symbol_path(args.prefix), '--prefix'),
                               (params_path(args.prefix, args.epoch), '--epoch')):
            if not os.path.isfile(path):
                sub.error('argument %s: %s not found' % (argument, path))
        minimum, what = onnx_export.MIN_RETINAFACE_SIZE, 'RetinaFace'
    else:
        if not os.path.isfile(args.params):
            sub.error('argument --params: %s not found' % args.params)
        if args.shape and args.net != 'pnet':
            sub.error('argument --shape: %s takes fixed-size crops; --shape applies to pnet only' % args.net)
        minimum, what = onnx_export.MIN_PNET_SIZE, 'P-Net'
    if args.shape and min(args.shape) < minimum:
        sub.error('argument --shape: a %s input is at least %d x %d, got %d x %d'
                  % (what, minimum, minimum, args.shape[0], args.shape[1]))
    try:
        onnx_export.check_output(args.output, args.overwrite)
    except OSError as err:
        sub.error('argument --output: %s' % err)
    return args


def main(argv=None, load=None):
    """Exit status 0, 2 for bad arguments, 1 for a model that cannot be read or exported
    faithfully (one line naming the file, the layer or the output)."""
    args = parse_args(argv)
    cli.setup_logging()
    runtime.configure_cpu_inference(load=load)
    if args.model == 'retinaface':
        files = (symbol_path(args.prefix), params_path(args.prefix, args.epoch))
        export = functools.partial(onnx_export.export_retinaface, args.prefix, args.epoch)
    else:
        files = (args.params,)
        export = functools.partial(onnx_export.export_mtcnn, args.net, args.params)
    with cli.model_load_errors(*files):
        try:
            result = export(args.output, static_shape=args.shape, overwrite=args.overwrite)
        except onnx_export.VerificationError as err:
            cli.exit_error(err)
    worst = max(result.errors, key=lambda n: result.errors[n][0] / result.errors[n][1])
    error, allowed = result.errors[worst]
    print('%s: opset %d, input data %s, %d outputs; onnxruntime matches MXNet on %s, largest error %.2g '
          '(%s, allowed %.2g = %g + %g * max|mxnet|)'
          % (result.path, result.opset, '(%s)' % ', '.join(map(str, result.input_shape)), len(result.output_names),
             ', '.join('x'.join(map(str, s)) for s in result.checked_shapes), error, worst, allowed,
             onnx_export.ATOL, onnx_export.RTOL))


if __name__ == '__main__':
    main(load=_LOAD)
