"""Detect faces in images with a RetinaFace checkpoint; draw them and write JSON.

    python detect.py --prefix model/retinaface --epoch 0 --image photo.jpg --output out/ \
        [--json out/faces.json] [--thresh 0.8] [--scales 1.0] [--flip] [--gpu -1]

``--image`` is an image file or a folder (its .jpg/.jpeg/.png/.bmp files). Each image
is written to ``--output`` under its own name with the boxes (green), scores and the
five landmarks drawn; ``--json`` collects, per image, the boxes (x1, y1, x2, y2 in
pixels), scores and landmarks (5 x (x, y)). Unreadable images are reported and
skipped; the exit status is then 1.
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np
from tqdm import tqdm

from rcnn.cli import setup_logging
from rcnn.draw import draw_detections
from rcnn.fileio import atomic_open, atomic_path

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Detect faces with a RetinaFace model.')
    parser.add_argument('--prefix', required=True, help='checkpoint prefix (PREFIX-symbol.json, PREFIX-EPOCH.params)')
    parser.add_argument('--epoch', type=int, required=True, help='checkpoint epoch')
    parser.add_argument('--image', required=True, help='an image file or a folder of images')
    parser.add_argument('--output', required=True, help='folder for the annotated images')
    parser.add_argument('--json', help='write the detections of all images to this JSON file')
    parser.add_argument('--thresh', type=float, default=0.8, help='face score threshold (default 0.8)')
    parser.add_argument('--scales', type=float, nargs='+', default=[1.0], help='image scales (default 1.0)')
    parser.add_argument('--flip', action='store_true', help='also detect on the mirrored image')
    parser.add_argument('--gpu', type=int, default=-1, help='GPU id, -1 for the CPU (default)')
    args = parser.parse_args(argv)
    if any(s <= 0 for s in args.scales):
        parser.error('--scales must be positive, got %s' % args.scales)
    return args


def list_images(path):
    """The image files of ``path`` (a file, or a folder's image files sorted by name)."""
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTENSIONS))
        return [os.path.join(path, n) for n in names]
    if not os.path.exists(path):
        raise FileNotFoundError('image %s does not exist' % path)
    return [path]


def faces_json(det, landmarks):
    """JSON-ready list of {'box', 'score', 'landmarks'} for (N, 5) det and (N, 5, 2) landmarks."""
    faces = []
    for i, row in enumerate(det):
        face = {'box': [float(v) for v in row[:4]], 'score': float(row[4])}
        if landmarks is not None:
            face['landmarks'] = np.asarray(landmarks[i], dtype=np.float64).tolist()
        faces.append(face)
    return faces


def main(argv=None):
    args = parse_args(argv)
    setup_logging()
    from rcnn import runtime
    from retinaface import RetinaFace
    if args.gpu < 0:
        runtime.configure_cpu_inference()
    try:
        images = list_images(args.image)
        detector = RetinaFace(args.prefix, args.epoch, ctx_id=args.gpu)
    except (FileNotFoundError, ValueError) as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    os.makedirs(args.output, exist_ok=True)
    results, failed = [], []
    for path in tqdm(images, desc='detect', unit='image', disable=len(images) < 2):
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            print('error: cannot read image %s' % path, file=sys.stderr)
            failed.append(path)
            continue
        det, landmarks = detector.detect(img, threshold=args.thresh, scales=args.scales, do_flip=args.flip)
        out_path = os.path.join(args.output, os.path.basename(path))
        with atomic_path(out_path) as tmp:
            if not cv2.imwrite(tmp, draw_detections(img, det, landmarks)):
                raise OSError('cannot write image %s' % out_path)
        results.append({'image': path, 'output': out_path, 'faces': faces_json(det, landmarks)})
        print('%s: %d faces -> %s' % (path, det.shape[0], out_path))
    if args.json:
        with atomic_open(args.json, 'w') as f:
            json.dump({'prefix': args.prefix, 'epoch': args.epoch, 'thresh': args.thresh, 'scales': args.scales,
                       'flip': args.flip, 'images': results}, f, indent=1)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
