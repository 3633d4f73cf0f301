"""Detect faces in images with a RetinaFace checkpoint or its ONNX export; draw them and write JSON.

    python detect.py --prefix model/retinaface --epoch 0 --image photo.jpg --output out/ \
        [--json out/faces.json] [--thresh 0.8] [--scales 1.0] [--flip] [--gpu -1] [--max-megapixels 20]
    python detect.py --onnx model/retinaface.onnx --image photo.jpg --output out/    # onnxruntime, CPU

``--image`` is an image file or a folder (its .jpg/.jpeg/.png/.bmp files). Each image
is written to ``--output`` under its own name with the boxes (green), scores and the
five landmarks drawn; ``--json`` collects, per image, the boxes (x1, y1, x2, y2 in
pixels), scores and landmarks (5 x (x, y)). Images are read upright (EXIF orientation
applied, ``rcnn.io.image``). Before any work the arguments are checked: an output that
would replace an input image (the same file, through symbolic links too) is refused,
as is a scale that would make a network input above ``--max-megapixels``.
Unreadable images are reported and skipped; the exit status is then 1.
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np
from tqdm import tqdm

from rcnn import cli, runtime
from rcnn.draw import draw_detections
from rcnn.fileio import atomic_open, atomic_path, params_path, symbol_path
from rcnn.io.image import MAX_MEGAPIXELS, check_scales, image_size, read_image

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')


def parse_args(argv=None, load=None):
    """Checked arguments and the image list; ``args.gpu`` is the chosen device (-1: the CPU; its
    threads yield to the ``load`` of other processes, a ``rcnn.runtime.CpuLoad``: detect.py is
    often one of several such processes)."""
    parser = argparse.ArgumentParser(description='Detect faces with a RetinaFace model.')
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument('--prefix', help='checkpoint prefix (PREFIX-symbol.json, PREFIX-EPOCH.params)')
    model.add_argument('--onnx', help='an ONNX export (tools/export_onnx.py), run by onnxruntime on the CPU')
    parser.add_argument('--epoch', type=cli.int_at_least(0), help='checkpoint epoch (with --prefix)')
    parser.add_argument('--image', required=True, help='an image file or a folder of images')
    parser.add_argument('--output', required=True, help='folder for the annotated images')
    parser.add_argument('--json', help='write the detections of all images to this JSON file')
    parser.add_argument('--thresh', type=cli.probability, default=0.8, help='face score threshold (default 0.8)')
    parser.add_argument('--scales', type=cli.positive_float, nargs='+', default=[1.0],
                        help='image scales (default 1.0)')
    parser.add_argument('--flip', action='store_true', help='also detect on the mirrored image')
    parser.add_argument('--gpu', type=cli.gpu_id, default=None,
                        help='GPU id, -1 for the CPU (default: GPU 0 if MXNet has CUDA and sees a GPU, else the CPU)')
    parser.add_argument('--max-megapixels', type=cli.positive_float, default=MAX_MEGAPIXELS,
                        help='largest network input (scaled image) in megapixels (default %g)' % MAX_MEGAPIXELS)
    args = parser.parse_args(argv)
    if args.prefix is not None:
        if args.epoch is None:
            parser.error('--epoch is required with --prefix')
        cli.check_checkpoint(parser, args.prefix, args.epoch)
    else:
        if args.epoch is not None:
            parser.error('--epoch goes with --prefix, not with --onnx')
        if args.gpu not in (None, -1):
            parser.error('--gpu %d: an ONNX model runs on the CPU (onnxruntime); leave --gpu out' % args.gpu)
        cli.check_existing_file(parser, args.onnx, '--onnx')
    images = list_images(parser, args.image)
    cli.check_writable_dir(parser, args.output, '--output')
    if args.json:
        cli.check_output_file(parser, args.json, '--json')
    check_outputs_keep_inputs(parser, images, args.output, args.json)
    check_sizes(parser, images, args.scales, args.max_megapixels)
    args.gpu = cli.choose_device(parser, args.gpu, load=load) if args.prefix is not None else -1
    return args, images


def load_detector(args):
    """The RetinaFace of ``--prefix``/``--epoch`` (MXNet) or of ``--onnx`` (onnxruntime)."""
    from retinaface import RetinaFace  # MXNet loads here, after prepare_openmp
    if args.onnx is not None:
        with cli.model_load_errors(args.onnx):
            return RetinaFace.from_onnx(args.onnx, max_megapixels=args.max_megapixels)
    with cli.model_load_errors(symbol_path(args.prefix), params_path(args.prefix, args.epoch)):
        return RetinaFace(args.prefix, args.epoch, ctx_id=args.gpu, max_megapixels=args.max_megapixels)


def list_images(parser, path):
    """The image files of ``--image`` ``path`` (a file, or a folder's image files sorted by name)."""
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTENSIONS))
        if not names:
            parser.error('--image: no %s files in folder %s' % ('/'.join(IMAGE_EXTENSIONS), path))
        return [os.path.join(path, n) for n in names]
    if not os.path.isfile(path):
        parser.error('--image: image %s does not exist' % path)
    return [path]


def output_path(output, image):
    return os.path.join(output, os.path.basename(image))


def check_outputs_keep_inputs(parser, images, output, json_path):
    """Exit through ``parser.error`` if an annotated image or the JSON would replace an input image.

    Real paths are compared, so a symbolic link in ``--output`` to an input, or an input
    that is a link into ``--output``, counts; so does another (hard) link of the same file.
    """
    inputs = {os.path.realpath(image): image for image in images}
    for image in images:
        target = output_path(output, image)
        replaced = inputs.get(os.path.realpath(target))
        if replaced is None and os.path.exists(target) and os.path.samefile(target, image):
            replaced = image
        if replaced is not None:
            parser.error('--output %s: the annotated copy %s would replace the input image %s; '
                         'choose another folder' % (output, target, replaced))
    if json_path and os.path.realpath(json_path) in inputs:
        parser.error('--json %s would replace the input image %s' % (json_path, inputs[os.path.realpath(json_path)]))


def check_sizes(parser, images, scales, max_megapixels):
    """Exit through ``parser.error`` if a scale makes an image's network input empty or too large
    (sizes from the file headers; a file that is not an image is reported when it is read)."""
    for image in images:
        try:
            width, height = image_size(image)
        except (OSError, ValueError):
            continue
        try:
            check_scales(height, width, scales, max_megapixels)
        except ValueError as err:
            parser.error('--scales: %s: %s' % (image, err))


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
    load = runtime.prepare_openmp()  # before MXNet loads
    cli.setup_logging()
    args, images = parse_args(argv, load)
    detector = load_detector(args)
    os.makedirs(args.output, exist_ok=True)
    results, failed = [], []
    for path in tqdm(images, desc='detect', unit='image', disable=len(images) < 2):
        try:
            img = read_image(path)
        except (OSError, ValueError) as err:
            print('error: %s; skipped' % err, file=sys.stderr)
            failed.append(path)
            continue
        det, landmarks = detector.detect(img, threshold=args.thresh, scales=args.scales, do_flip=args.flip)
        out_path = output_path(args.output, path)
        with atomic_path(out_path) as tmp:
            if not cv2.imwrite(tmp, draw_detections(img, det, landmarks)):
                raise OSError('cannot write image %s' % out_path)
        results.append({'image': path, 'output': out_path, 'faces': faces_json(det, landmarks)})
        print('%s: %d faces -> %s' % (path, det.shape[0], out_path))
    if args.json:
        with atomic_open(args.json, 'w') as f:
            model = {'onnx': args.onnx} if args.onnx is not None else {'prefix': args.prefix, 'epoch': args.epoch}
            json.dump(dict(model, thresh=args.thresh, scales=args.scales, flip=args.flip, images=results), f,
                      indent=1)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
