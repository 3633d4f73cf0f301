"""Run a RetinaFace model over a WIDER FACE split and write the official prediction files.

    python test_widerface.py --prefix model/retinaface --epoch 0 --mode 1 \
        --dataset-path data/retinaface --image-set val --output wout --gt ground_truth/

Images are the ``# path`` entries of ``<dataset-path>/<image-set>/label.txt``,
read from ``<dataset-path>/<image-set>/images/<path>``.  Each image gets
``<output>/<event>/<name>.txt``: the relative image name, the number of
detections, then one ``x y w h score`` line per detection, as the original
script wrote it.  Files that already exist are skipped unless ``--overwrite``,
so an interrupted run resumes where it stopped.

Modes: 0 single scale (short side 1600, long side <= 2150); 1 five-scale pyramid
with flip and bbox voting; 2 pyramid with flip, NMS.
"""
import argparse
import logging
import os
import sys

import cv2
import numpy as np
from tqdm import tqdm

from rcnn import runtime
from rcnn.cli import setup_logging
from rcnn.dataset.label_file import read_label_file
from rcnn.evaluation import widerface
from rcnn.fileio import atomic_open
from retinaface import RetinaFace

logger = logging.getLogger('test_widerface')

SINGLE_SCALE = (1600, 2150)  # mode 0: target short side, maximum long side
PYRAMID_BASE = (800, 1200)  # modes 1, 2: base scale the pyramid is relative to
TEST_SCALES = (500, 800, 1100, 1400, 1700)
MODES = {  # mode -> (pyramid and flip, bbox voting)
    0: (False, False),
    1: (True, True),
    2: (True, False),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test widerface by retinaface detector')
    parser.add_argument('--network', default=None, type=str,
                        help="anchor layout passed to RetinaFace (default: the checkpoint's, else net3)")
    parser.add_argument('--dataset', default='retinaface', choices=['retinaface'], help='dataset name')
    parser.add_argument('--image-set', default='val', type=str, help='image set name (a folder of --dataset-path)')
    parser.add_argument('--root-path', default='./data', type=str,
                        help='output data folder of the original (roidb cache); accepted, nothing is cached')
    parser.add_argument('--dataset-path', default='./data/retinaface', type=str, help='dataset path')
    parser.add_argument('--gpu', default=0, type=int, help='GPU device to test with, -1 for CPU')
    parser.add_argument('--prefix', default='', type=str, help='model prefix')
    parser.add_argument('--epoch', default=0, type=int, help='model epoch')
    parser.add_argument('--output', default='./wout', type=str, help='output folder')
    parser.add_argument('--nocrop', action='store_true', help='RetinaFace nocrop option')
    parser.add_argument('--thresh', default=0.02, type=float, help='valid detection threshold')
    parser.add_argument('--mode', default=1, type=int, choices=sorted(MODES),
                        help='0 single scale; 1 pyramid + flip + bbox voting; 2 pyramid + flip')
    parser.add_argument('--part', default=0, type=int, help='process images i with i %% parts == part')
    parser.add_argument('--parts', default=1, type=int, help='number of parts the image list is split into')
    parser.add_argument('--overwrite', action='store_true', help='redo images whose result file exists')
    parser.add_argument('--gt', default=None, type=str,
                        help='WIDER FACE ground_truth folder: evaluate easy/medium/hard AP when done')
    args = parser.parse_args(argv)
    if args.parts < 1 or not 0 <= args.part < args.parts:
        parser.error('--part must be in [0, --parts), got --part %d --parts %d' % (args.part, args.parts))
    return args


def _base_scale(im_shape, target_size, max_size):
    """Scale bringing the short side to ``target_size`` unless the long side would exceed ``max_size``."""
    im_size_min = min(im_shape[0:2])
    im_size_max = max(im_shape[0:2])
    im_scale = float(target_size) / float(im_size_min)
    # np.round (half to even) as the original: a long side of exactly max_size + 0.5 still fits.
    if np.round(im_scale * im_size_max) > max_size:
        im_scale = float(max_size) / float(im_size_max)
    return im_scale


def get_scales(im_shape, mode):
    """Scales and flip for one image of shape (H, W[, C]) under ``--mode``.

    Returns:
        (scales, do_flip): list of float resize factors, bool.
    """
    pyramid, _ = MODES[mode]
    if not pyramid:
        return [_base_scale(im_shape, *SINGLE_SCALE)], False
    target_size, max_size = PYRAMID_BASE
    im_scale = _base_scale(im_shape, target_size, max_size)
    return [float(s) / target_size * im_scale for s in TEST_SCALES], True


def result_path(output, image_path):
    """``<output>/<event>/<name>.txt`` for the relative image path ``<event>/<name>.jpg``."""
    event = os.path.basename(os.path.dirname(image_path))
    name = os.path.splitext(os.path.basename(image_path))[0]
    return os.path.join(output, event, name + '.txt')


def write_result(path, image_path, boxes):
    """Write one prediction file atomically.

    Args:
        image_path: relative image path; its last two components head the file.
        boxes: (N, 5) ``x1 y1 x2 y2 score`` in pixels of the original image.

    The lines are ``x1 y1 x2-x1 y2-y1 score`` with ``%d`` (truncating) coordinates,
    ``%g`` score and a trailing space, byte for byte the original's format.
    """
    name = '/'.join(image_path.replace(os.sep, '/').split('/')[-2:])
    with atomic_open(path, 'w') as f:
        f.write('%s\n' % name)
        f.write('%d\n' % boxes.shape[0])
        for box in boxes:
            f.write('%d %d %d %d %g \n' % (box[0], box[1], box[2] - box[0], box[3] - box[1], box[4]))


def image_list(dataset_path, image_set):
    """Relative image paths of ``<dataset_path>/<image_set>/label.txt``, in file order."""
    return [record.path for record in read_label_file(os.path.join(dataset_path, image_set, 'label.txt'))]


def detect_split(args):
    """Detect on this part's images still without a result file, then evaluate if ``--gt``."""
    images = image_list(args.dataset_path, args.image_set)
    mine = [p for i, p in enumerate(images) if i % args.parts == args.part]
    todo = [p for p in mine if args.overwrite or not os.path.exists(result_path(args.output, p))]
    logger.info('%d images in %s, %d in part %d/%d, %d to do', len(images), args.image_set,
                len(mine), args.part, args.parts, len(todo))

    if todo:
        _, vote = MODES[args.mode]
        detector = RetinaFace(args.prefix, args.epoch, ctx_id=args.gpu, network=args.network,
                              nocrop=args.nocrop, vote=vote)
        image_root = os.path.join(args.dataset_path, args.image_set, 'images')
        for rel in tqdm(todo, desc='widerface %s' % args.image_set, unit='img'):
            path = os.path.join(image_root, rel)
            im = cv2.imread(path)
            if im is None:
                raise IOError('cannot read image %s (listed in %s)'
                              % (path, os.path.join(args.dataset_path, args.image_set, 'label.txt')))
            scales, do_flip = get_scales(im.shape, args.mode)
            boxes, _ = detector.detect(im, threshold=args.thresh, scales=scales, do_flip=do_flip)
            write_result(result_path(args.output, rel), rel, boxes)

    if args.gt:
        result = widerface.evaluate(args.output, args.gt)
        widerface.write_summary(result, os.path.join(args.output, 'widerface_eval.json'))
        widerface.plot_pr_curves(result, os.path.join(args.output, 'widerface_pr.png'))
        print(widerface.format_table(result))
        return result
    return None


def main(argv=None):
    args = parse_args(argv)
    setup_logging()
    logger.info('Called with argument: %s', args)
    if args.gpu < 0:
        runtime.configure_cpu_inference()
    detect_split(args)


if __name__ == '__main__':
    main(sys.argv[1:])
