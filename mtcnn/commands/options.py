"""The cascade's options shared by ``mtcnn.demo``, ``mtcnn.evaluate`` and ``mtcnn.prepare``.

One ``--<stage>`` .params or .onnx file per stage, ``--min_face_size``, ``--threshold``
(three probabilities) and ``--gpu``, checked before any work (``facekit.args``). A cascade
of ``.onnx`` nets runs on onnxruntime without loading MXNet.
"""
from facekit import args as cli
from mtcnn.defaults import MIN_FACE_SIZE, THRESHOLDS
from mtcnn.detector import MtcnnDetector

__all__ = ['STAGES', 'add_detector_arguments', 'check_detector_arguments', 'build_detector']

STAGES = ('pnet', 'rnet', 'onet')


def add_detector_arguments(parser, stages=STAGES, required=(), released_defaults=False):
    """The cascade's options: a ``--<stage>`` .params file per stage (``required`` ones, or with
    ``released_defaults`` ``model/<stage>-0016.params``, else None), --min_face_size, --threshold, --gpu."""
    for stage in stages:
        default = 'model/%s-0016.params' % stage if released_defaults and stage not in required else None
        parser.add_argument('--' + stage, required=stage in required, default=default,
                            help='%s .params (or .onnx) file' % stage.upper().replace('NET', '-Net'))
    parser.add_argument('--min_face_size', type=cli.int_at_least(12), default=MIN_FACE_SIZE,
                        help="smallest face searched, pixels (>= 12, P-Net's input size)")
    parser.add_argument('--threshold', type=cli.probability_list(3), default=','.join(map(str, THRESHOLDS)),
                        help='face-probability thresholds of P-Net, R-Net, O-Net')
    parser.add_argument('--gpu', type=cli.gpu_id, default=None,
                        help='GPU id, -1 for the CPU (default: GPU 0 if MXNet has CUDA and sees a GPU, else the CPU)')


def check_detector_arguments(args, stages=STAGES):
    """UsageError unless every stage file given exists."""
    for stage in stages:
        if getattr(args, stage) is not None:
            cli.check_existing_file(getattr(args, stage), '--' + stage)


def stage_files(args, stages=STAGES):
    """The given stage files, in cascade order."""
    return [getattr(args, stage) for stage in stages if getattr(args, stage) is not None]


def build_detector(args, context, stages=STAGES):
    """The MtcnnDetector of the given stage files. With a ``.params`` file the device is chosen
    (``--gpu``) and, on the CPU, the threads yield to the load of other processes, as suits
    MTCNN's small operators; a cascade of ``.onnx`` nets does not load MXNet."""
    files = [getattr(args, stage) for stage in stages]
    ctx = None
    if any(f is not None and not f.endswith('.onnx') for f in files):
        from facekit.mx.runtime import inference_context  # MXNet, for .params nets only
        ctx = inference_context(args.gpu, load=context.cpu_load)
    elif args.gpu not in (None, -1):
        raise cli.UsageError('--gpu %d: ONNX nets run on the CPU (onnxruntime); leave --gpu out' % args.gpu)
    return MtcnnDetector(*files, ctx=ctx, min_face_size=args.min_face_size, threshold=args.threshold)
