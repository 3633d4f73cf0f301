"""Export an MTCNN net to ONNX, checked against MXNet with onnxruntime.

    python tools/export_onnx.py mtcnn --net pnet|rnet|onet --params F.params --output F.onnx [--shape H W]

P-Net gets a dynamic batch, height and width (``--shape H W``: a static (1, 3, H, W)
input); R-Net and O-Net a dynamic batch of 24x24 / 48x48 crops. The check and the errors
are those of every export (``facekit.mx.onnx_export``).
"""
from facekit import args as cli
from facekit.args import UsageError
from facekit.mx import runtime
from facekit.mx.onnx_export import add_export_arguments, check_export_args, describe
from mtcnn.defaults import INPUT_SIZE
from mtcnn.export import export_mtcnn

__all__ = ['build_parser', 'check_args', 'run']


def build_parser():
    parser = cli.ArgumentParser(description='an MTCNN net from its .params')
    parser.add_argument('--net', required=True, choices=sorted(INPUT_SIZE), help='which net the weights are')
    parser.add_argument('--params', required=True, help='the MXNet .params file of the net')
    add_export_arguments(parser)
    return parser


def check_args(args):
    cli.check_existing_file(args.params, '--params')
    if args.shape and args.net != 'pnet':
        raise UsageError('--shape: %s takes fixed-size crops; --shape applies to pnet only' % args.net)
    check_export_args(args, (args.params,), INPUT_SIZE['pnet'], 'P-Net')


def run(args, context):
    runtime.configure_cpu_inference(load=context.cpu_load)
    print(describe(export_mtcnn(args.net, args.params, args.output, static_shape=args.shape,
                                overwrite=args.overwrite)))
