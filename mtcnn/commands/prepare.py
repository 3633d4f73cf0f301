"""Write the training samples of one net of the cascade from a RetinaFace ``label.txt``.

    python -m mtcnn.prepare --net pnet --label data/retinaface/train/label.txt --output data/mtcnn
    python -m mtcnn.prepare --net rnet ... --pnet model/pnet-0016.params
    python -m mtcnn.prepare --net onet ... --pnet model/pnet-0016.params --rnet model/rnet-0016.params

P-Net samples are random crops; R-Net and O-Net samples are the hard examples left by the
trained earlier stages, run with the default detection settings. Landmark faces are added
for every net unless ``--no_landmark``. Prints the merged list ``<output>/train_<size>.txt``.
A label file without a face of at least ``--min_face`` pixels is refused before any work.
"""

import numpy as np

from facekit import args as cli
from facekit.args import UsageError
from mtcnn.commands.evaluate import check_listed_images
from mtcnn.commands.options import add_detector_arguments, build_detector, check_detector_arguments
from mtcnn.defaults import INPUT_SIZE
from mtcnn.samples import generate, load_annotations

__all__ = ['MINING_STAGES', 'build_parser', 'check_args', 'run', 'check_usable_faces']

# The trained stages each net's hard examples are mined with.
MINING_STAGES = {'pnet': (), 'rnet': ('pnet',), 'onet': ('pnet', 'rnet')}


def build_parser():
    parser = cli.ArgumentParser(description='Generate MTCNN training samples',
                                formatter_class=cli.DefaultsHelpFormatter)
    parser.add_argument('--net', required=True, choices=sorted(INPUT_SIZE))
    parser.add_argument('--label', required=True, help='RetinaFace label.txt of the training split')
    parser.add_argument('--images', default=None, help='image root (default: images/ beside the label)')
    parser.add_argument('--output', required=True, help='sample root')
    add_detector_arguments(parser, stages=('pnet', 'rnet'))
    parser.add_argument('--min_face', type=cli.int_at_least(1), default=40,
                        help='smallest face side (pixels) used for positives and landmark faces')
    parser.add_argument('--no_landmark', action='store_true', help='write no landmark faces')
    parser.add_argument('--seed', type=int, default=0)
    return parser


def check_args(args):
    cli.check_existing_file(args.label, '--label')
    if args.images is not None:
        cli.check_existing_dir(args.images, '--images')
    cli.check_writable_dir(args.output, '--output')
    for stage in MINING_STAGES[args.net]:
        if getattr(args, stage) is None:
            raise UsageError('--net %s mines hard examples with the trained %s: pass --%s'
                             % (args.net, ' and '.join(MINING_STAGES[args.net]), stage))
    check_detector_arguments(args, MINING_STAGES[args.net])


def check_usable_faces(annotations, label, min_face):
    """ValueError naming ``label`` when no face has a side of ``min_face`` pixels: no positive, part
    or landmark sample could be made."""
    if not any(len(ann.boxes) and (np.maximum(ann.boxes[:, 2] - ann.boxes[:, 0],
                                              ann.boxes[:, 3] - ann.boxes[:, 1]) >= min_face).any()
               for ann in annotations):
        raise ValueError('%s: no face with a side of at least %d pixels (--min_face) in %d images: no training '
                         'sample can be made' % (label, min_face, len(annotations)))


def run(args, context):
    annotations = load_annotations(args.label, args.images)
    check_listed_images(annotations, args.label)
    check_usable_faces(annotations, args.label, args.min_face)
    stages = MINING_STAGES[args.net]
    detector = build_detector(args, context, stages) if stages else None
    rng = np.random.default_rng(args.seed)
    merged, counts = generate(annotations, args.output, INPUT_SIZE[args.net], rng, detector, min_face=args.min_face,
                              with_landmark=not args.no_landmark)
    print('%s: %s' % (merged, ', '.join('%s %d' % kv for kv in counts.items())))
