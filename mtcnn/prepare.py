"""Write the training samples of one net from a RetinaFace ``label.txt``.

    python -m mtcnn.prepare --net pnet --label data/retinaface/train/label.txt --output data/mtcnn
    python -m mtcnn.prepare --net rnet ... --pnet model/pnet-0016.params
    python -m mtcnn.prepare --net onet ... --pnet model/pnet-0016.params --rnet model/rnet-0016.params

P-Net samples are random crops; R-Net and O-Net samples are the hard
examples left by the trained earlier stages, run with the default
detection settings. Landmark faces are added for every net unless
``--no-landmark``. Prints the merged list ``<output>/train_<size>.txt``.
"""
import argparse

import numpy as np

from mtcnn.cli import add_detector_arguments, check_detector_arguments
from mtcnn.defaults import MIN_FACE_SIZE, THRESHOLDS
from mtcnn.samples import generate, load_annotations
from rcnn import cli, runtime

__all__ = ['prepare', 'main']


def prepare(net, label, output, pnet=None, rnet=None, image_root=None, min_face=40,
            min_face_size=MIN_FACE_SIZE, threshold=THRESHOLDS, with_landmark=True, seed=0, ctx=None):
    """Samples of ``net`` ('pnet', 'rnet', 'onet'); returns (merged list, counts).

    ``pnet`` / ``rnet`` are ``.params`` paths or loaded nets (``MtcnnDetector``);
    ``min_face_size`` and ``threshold`` configure the detector that mines the
    hard examples of R-Net (P-Net alone) and O-Net (P-Net and R-Net), on MXNet
    context ``ctx`` (None: the CPU).
    """
    import mxnet as mx
    from mtcnn.detector import MtcnnDetector
    from mtcnn.symbol import INPUT_SIZE
    ctx = mx.cpu() if ctx is None else ctx
    annotations = load_annotations(label, image_root)
    detector = None
    if net == 'rnet':
        if pnet is None:
            raise ValueError('R-Net samples need --pnet')
        detector = MtcnnDetector(pnet, ctx=ctx, min_face_size=min_face_size, threshold=threshold)
    elif net == 'onet':
        if pnet is None or rnet is None:
            raise ValueError('O-Net samples need --pnet and --rnet')
        detector = MtcnnDetector(pnet, rnet, ctx=ctx, min_face_size=min_face_size, threshold=threshold)
    rng = np.random.default_rng(seed)
    return generate(annotations, output, INPUT_SIZE[net], rng, detector, min_face=min_face,
                    with_landmark=with_landmark)


# The trained stages each net's hard examples are mined with.
MINING_STAGES = {'pnet': (), 'rnet': ('pnet',), 'onet': ('pnet', 'rnet')}


def main(argv=None):
    load = runtime.prepare_openmp()  # before MXNet loads
    from mtcnn.predictor import load_net
    from mtcnn.symbol import INPUT_SIZE
    cli.setup_logging()
    parser = argparse.ArgumentParser(description='Generate MTCNN training samples',
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--net', required=True, choices=sorted(INPUT_SIZE))
    parser.add_argument('--label', required=True, help='RetinaFace label.txt of the training split')
    parser.add_argument('--images', default=None, help='image root (default: images/ beside the label)')
    parser.add_argument('--output', required=True, help='sample root')
    add_detector_arguments(parser, stages=('pnet', 'rnet'))
    parser.add_argument('--min-face', type=cli.int_at_least(1), default=40,
                        help='smallest face side (pixels) used for positives and landmark faces')
    parser.add_argument('--no-landmark', action='store_true', help='write no landmark faces')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    cli.check_existing_file(parser, args.label, '--label')
    if args.images is not None:
        cli.check_existing_dir(parser, args.images, '--images')
    cli.check_writable_dir(parser, args.output, '--output')
    for stage in MINING_STAGES[args.net]:
        if getattr(args, stage) is None:
            parser.error('--net %s mines hard examples with the trained %s: pass --%s'
                         % (args.net, ' and '.join(MINING_STAGES[args.net]), stage))
    ctx = check_detector_arguments(parser, args, MINING_STAGES[args.net], load)
    with cli.input_errors():
        annotations = load_annotations(args.label, args.images)
    cli.check_listed_images([ann.path for ann in annotations], args.label)
    nets = {}
    for stage in MINING_STAGES[args.net]:
        with cli.model_load_errors(getattr(args, stage)):
            nets[stage] = load_net(stage, getattr(args, stage), ctx)
    with cli.input_errors():
        merged, counts = prepare(args.net, args.label, args.output, nets.get('pnet'), nets.get('rnet'), args.images,
                                 args.min_face, args.min_face_size, args.threshold, not args.no_landmark, args.seed,
                                 ctx)
    print('%s: %s' % (merged, ', '.join('%s %d' % kv for kv in counts.items())))


if __name__ == '__main__':
    main()
