"""The cascade's options shared by ``mtcnn.demo``, ``mtcnn.evaluate`` and ``mtcnn.prepare``.

One ``--<stage>`` .params or .onnx file per stage, ``--min-face-size``, ``--threshold``
(three probabilities) and ``--gpu``, checked before any work (``rcnn.cli``). MXNet is
imported only once the command has prepared OpenMP (``rcnn.runtime.prepare_openmp``).
"""
from mtcnn.defaults import MIN_FACE_SIZE, THRESHOLDS
from rcnn import cli

__all__ = ['add_detector_arguments', 'check_detector_arguments', 'build_detector']


def add_detector_arguments(parser, stages=('pnet', 'rnet', 'onet'), required=(), released_defaults=False):
    """The cascade's options: a ``--<stage>`` .params file per stage (``required`` ones, or with
    ``released_defaults`` ``model/<stage>-0016.params``, else None), --min-face-size, --threshold, --gpu."""
    for stage in stages:
        default = 'model/%s-0016.params' % stage if released_defaults and stage not in required else None
        parser.add_argument('--' + stage, required=stage in required, default=default,
                            help='%s .params (or .onnx) file' % stage.upper().replace('NET', '-Net'))
    parser.add_argument('--min-face-size', type=cli.int_at_least(12), default=MIN_FACE_SIZE,
                        help="smallest face searched, pixels (>= 12, P-Net's input size)")
    parser.add_argument('--threshold', type=cli.probability_list(3), default=','.join(map(str, THRESHOLDS)),
                        help='face-probability thresholds of P-Net, R-Net, O-Net')
    parser.add_argument('--gpu', type=cli.gpu_id, default=None,
                        help='GPU id, -1 for the CPU (default: GPU 0 if MXNet has CUDA and sees a GPU, else the CPU)')


def check_detector_arguments(parser, args, stages, load):
    """Exit through ``parser.error`` unless every given stage file exists; returns the MXNet context
    of the chosen device (``rcnn.cli.choose_device``: on the CPU, the threads also yield to the
    ``load`` of other processes, as suits MTCNN's small operators)."""
    import mxnet as mx
    for stage in stages:
        if getattr(args, stage) is not None:
            cli.check_existing_file(parser, getattr(args, stage), '--' + stage)
    gpu = cli.choose_device(parser, args.gpu, load=load)
    return mx.gpu(gpu) if gpu >= 0 else mx.cpu()


def build_detector(args, ctx, stages=('pnet', 'rnet', 'onet')):
    """The MtcnnDetector of the given stage files; a corrupt file ends the command with one line."""
    from mtcnn.detector import MtcnnDetector
    files = [getattr(args, stage) for stage in stages]
    with cli.model_load_errors(*[f for f in files if f]):
        return MtcnnDetector(*files, ctx=ctx, min_face_size=args.min_face_size, threshold=args.threshold)
