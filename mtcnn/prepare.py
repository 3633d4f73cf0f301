"""Write the training samples of one net from a RetinaFace ``label.txt``.

    python -m mtcnn.prepare --net pnet --label data/retinaface/train/label.txt --output data/mtcnn
    python -m mtcnn.prepare --net rnet ... --pnet model/pnet-0016.params
    python -m mtcnn.prepare --net onet ... --pnet model/pnet-0016.params --rnet model/rnet-0016.params

P-Net samples are random crops (seed 000); R-Net and O-Net samples are the hard
examples left by the trained earlier stages (seed 001), run with the default
detection settings. Landmark faces are added for every net unless
``--no-landmark``. Prints the merged list ``<output>/train_<size>.txt``.
"""
import argparse

import mxnet as mx
import numpy as np

from mtcnn.detector import MtcnnDetector
from mtcnn.samples import generate, load_annotations
from mtcnn.symbol import INPUT_SIZE
from rcnn import runtime
from rcnn.cli import setup_logging

__all__ = ['prepare', 'main']


def prepare(net, label, output, pnet=None, rnet=None, image_root=None, min_face=40,
            min_face_size=24, threshold=(0.6, 0.7, 0.7), with_landmark=True, seed=0, ctx=mx.cpu()):
    """Samples of ``net`` ('pnet', 'rnet', 'onet'); returns (merged list, counts).

    ``min_face_size`` and ``threshold`` configure the detector that mines the
    hard examples of R-Net (P-Net alone) and O-Net (P-Net and R-Net).
    """
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


def main(argv=None):
    parser = argparse.ArgumentParser(description='Generate MTCNN training samples',
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--net', required=True, choices=sorted(INPUT_SIZE))
    parser.add_argument('--label', required=True, help='RetinaFace label.txt of the training split')
    parser.add_argument('--images', default=None, help='image root (default: images/ beside the label)')
    parser.add_argument('--output', required=True, help='sample root')
    parser.add_argument('--pnet', help='P-Net .params (R-Net and O-Net samples)')
    parser.add_argument('--rnet', help='R-Net .params (O-Net samples)')
    parser.add_argument('--min-face', type=int, default=40,
                        help='smallest face side (pixels) used for positives and landmark faces')
    parser.add_argument('--min-face-size', type=int, default=24, help='detector min_face_size for mining')
    parser.add_argument('--threshold', default='0.6,0.7,0.7', help='detector thresholds for mining')
    parser.add_argument('--no-landmark', action='store_true', help='write no landmark faces')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    setup_logging()
    threshold = [float(t) for t in args.threshold.split(',')]
    runtime.configure_cpu_inference()  # mining runs the cascade one image at a time
    merged, counts = prepare(args.net, args.label, args.output, args.pnet, args.rnet, args.images,
                             args.min_face, args.min_face_size, threshold, not args.no_landmark, args.seed)
    print('%s: %s' % (merged, ', '.join('%s %d' % kv for kv in counts.items())))


if __name__ == '__main__':
    main()
