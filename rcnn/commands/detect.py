"""Detect faces in images or a video with a RetinaFace checkpoint or its ONNX export; draw or blur
them and write JSON.

    python detect.py --prefix model/retinaface --epoch 0 --image photo.jpg --output out/ \\
        [--json out/faces.json] [--thresh 0.8] [--scales 1.0] [--flip] [--blur] [--gpu -1] [--max_megapixels 20]
    python detect.py --onnx model/retinaface.onnx --image photo.jpg --output out/    # onnxruntime, CPU
    python detect.py --prefix model/retinaface --epoch 0 --video in.mp4 --output out.mp4 \\
        [--json faces.jsonl] [--every N] [--batch B] [--blur]

``--image`` is an image file or a folder (its .jpg/.jpeg/.png/.bmp files). Each image
is written to ``--output`` under its own name with the boxes (green), scores and the
five landmarks drawn, or with ``--blur`` the faces blurred (``facekit.draw.blur_faces``)
and nothing drawn; ``--json`` collects, per image, the boxes (x1, y1, x2, y2 in
pixels), scores and landmarks (5 x (x, y)). Images are read upright (EXIF orientation
applied, ``facekit.image``).

``--video`` is a video file OpenCV reads; ``--output`` the MP4 (``mp4v``) written, at the
input's frame size and rate, with every frame drawn or blurred as an image is. ``--json``
writes JSON Lines, one record per frame::

    {"frame": 7, "time": 0.28, "detected_on": 5, "faces": [{"box": [x1, y1, x2, y2], "score": s,
     "landmarks": [[x, y], ...5]}, ...]}

``time`` in seconds (frame / frame rate); ``faces`` as for an image. Frames go through the
detector ``--batch`` at a time (``RetinaFace.detect_batch``). ``--every N`` detects on frames
0, N, 2N, ... and gives each frame in between the faces of the last detected frame before it;
``detected_on`` is the frame its faces were detected on (the frame itself without ``--every``).
Ctrl-C (or SIGTERM) stops the run: the video written so far is closed, playable, under
``--output``, the JSON Lines file holds the records of the same frames (``facekit.video``),
a warning says how far it got, and the exit status is 130 (143).

Before any work the arguments are checked: an output that would replace a file the command
reads (an image, the video, a model file; by any path or link) is refused whatever the
flags, an existing output file without ``--overwrite``, a video OpenCV cannot decode, and
a scale that makes a network input above ``--max_megapixels`` or, for a static ONNX export,
one of another size. An ONNX detector never loads MXNet. Unreadable images are reported
and skipped; the exit status is then 1.
"""
import contextlib
import json
import logging
import os

import cv2
from tqdm import tqdm

from facekit import args as cli
from facekit.args import UsageError
from facekit.command import Terminated
from facekit.draw import blur_faces, draw_detections
from facekit.faces import faces_json
from facekit.files import atomic_open, atomic_path, input_replaced_by
from facekit.image import IMAGE_EXTENSIONS, MAX_MEGAPIXELS, image_files, image_size, read_image
from facekit.prefix import params_path, symbol_path
from facekit.video import JsonLinesWriter, VideoReader, VideoWriter, quiet_ffmpeg, signals_deferred
from rcnn.detector import MAX_BATCH, RetinaFace

__all__ = ['build_parser', 'check_args', 'run', 'list_images', 'output_path']

logger = logging.getLogger('detect')


def build_parser():
    parser = cli.ArgumentParser(description='Detect faces with a RetinaFace model in images or a video.')
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument('--prefix', help='checkpoint prefix (PREFIX-symbol.json, PREFIX-EPOCH.params)')
    model.add_argument('--onnx', help='an ONNX export (tools/export_onnx.py), run by onnxruntime on the CPU')
    parser.add_argument('--epoch', type=cli.int_at_least(0), help='checkpoint epoch (with --prefix)')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--image', help='an image file or a folder of images')
    source.add_argument('--video', help='a video file (anything OpenCV reads: .mp4, .avi, ...)')
    parser.add_argument('--output', required=True,
                        help='folder for the annotated images; with --video, the annotated video (.mp4)')
    parser.add_argument('--json', help='write the detections of all images to this JSON file; with --video, '
                                       'one JSON line per frame')
    parser.add_argument('--overwrite', action='store_true', help='replace output files that exist')
    parser.add_argument('--blur', action='store_true',
                        help='blur the faces (unrecognisable) instead of drawing boxes, scores and landmarks')
    parser.add_argument('--thresh', type=cli.probability, default=0.8, help='face score threshold (default 0.8)')
    parser.add_argument('--scales', type=cli.positive_float, nargs='+', default=[1.0],
                        help='image scales (default 1.0)')
    parser.add_argument('--flip', action='store_true', help='also detect on the mirrored image')
    parser.add_argument('--every', type=cli.int_at_least(1), default=None,
                        help='with --video: detect on every Nth frame, the frames between keep the last faces '
                             '(default 1)')
    parser.add_argument('--batch', type=cli.int_at_least(1), default=None,
                        help='with --video: frames per network forward (default %d)' % MAX_BATCH)
    parser.add_argument('--gpu', type=cli.gpu_id, default=None,
                        help='GPU id, -1 for the CPU (default: GPU 0 if MXNet has CUDA and sees a GPU, else the CPU)')
    parser.add_argument('--max_megapixels', type=cli.positive_float, default=MAX_MEGAPIXELS,
                        help='largest network input (scaled image) in megapixels (default %g)' % MAX_MEGAPIXELS)
    return parser


def list_images(path):
    """The image files of ``--image`` ``path`` (a file, or a folder's image files sorted by name)."""
    if os.path.isdir(path):
        images = image_files(path)
        if not images:
            raise UsageError('--image: no %s files in folder %s' % ('/'.join(IMAGE_EXTENSIONS), path))
        return images
    if not os.path.isfile(path):
        raise UsageError('--image: image %s does not exist' % path)
    return [path]


def output_path(output, image):
    return os.path.join(output, os.path.basename(image))


def model_files(args):
    """The files the model of ``args`` is read from."""
    if args.onnx is not None:
        return [args.onnx]
    return [symbol_path(args.prefix), params_path(args.prefix, args.epoch)]


def check_args(args):
    """Model, images or video, and outputs, before any model is loaded (UsageError naming the flag;
    a video OpenCV cannot decode: ValueError naming it). Sets ``args.images``, the image files,
    or ``args.video_size``, (width, height) of the frames, and ``args.every`` and ``args.batch``."""
    if args.prefix is not None:
        if args.epoch is None:
            raise UsageError('--epoch is required with --prefix')
        cli.check_checkpoint(args.prefix, args.epoch)
    else:
        if args.epoch is not None:
            raise UsageError('--epoch goes with --prefix, not with --onnx')
        if args.gpu not in (None, -1):
            raise UsageError('--gpu %d: an ONNX model runs on the CPU (onnxruntime); leave --gpu out' % args.gpu)
        cli.check_existing_file(args.onnx, '--onnx')
    if args.video is not None:
        check_video_args(args)
        return
    for flag in ('every', 'batch'):
        if getattr(args, flag) is not None:
            raise UsageError('--%s goes with --video' % flag)
    args.images = list_images(args.image)
    cli.check_writable_dir(args.output, '--output')
    inputs = args.images + model_files(args)
    for image in args.images:
        cli.check_output_file(output_path(args.output, image), '--output', inputs, args.overwrite)
    if args.json:
        cli.check_output_file(args.json, '--json', inputs, args.overwrite)


def check_video_args(args):
    """``check_args`` of a --video run: the video is opened and its first frame decoded."""
    cli.check_existing_file(args.video, '--video')
    if not args.output.lower().endswith('.mp4'):
        raise UsageError('--output %s: with --video the output is an MP4 video; give a .mp4 file name' % args.output)
    inputs = [args.video] + model_files(args)
    cli.check_output_file(args.output, '--output', inputs, args.overwrite)
    if args.json:
        cli.check_output_file(args.json, '--json', inputs, args.overwrite)
        if input_replaced_by(args.json, [args.output]):
            raise UsageError('--json %s is the --output video; give another file name' % args.json)
    args.every = args.every or 1
    args.batch = args.batch or MAX_BATCH
    quiet_ffmpeg()
    with VideoReader(args.video) as video:
        args.video_size = (video.width, video.height)


def load_detector(args, context):
    """The RetinaFace of ``--prefix``/``--epoch`` (MXNet, on the device ``--gpu`` chooses; on the CPU
    its threads yield to the load of other processes, as detect.py is often one of several) or
    of ``--onnx`` (onnxruntime; MXNet is not loaded)."""
    if args.onnx is not None:
        return RetinaFace.from_onnx(args.onnx, max_megapixels=args.max_megapixels)
    from facekit.mx.runtime import inference_context  # the MXNet detector only
    ctx = inference_context(args.gpu, load=context.cpu_load)
    return RetinaFace(args.prefix, args.epoch, ctx_id=ctx.device_id if ctx.device_type == 'gpu' else -1,
                      max_megapixels=args.max_megapixels)


def check_sizes(detector, images, scales):
    """UsageError if a scale makes an image's network input one the detector refuses (sizes from
    the file headers; a file that is not an image is reported when it is read)."""
    for image in images:
        try:
            width, height = image_size(image)
        except (OSError, ValueError):
            continue
        try:
            detector.check_input(height, width, scales)
        except ValueError as error:
            raise UsageError('--scales: %s: %s' % (image, error)) from None


def picture(args, img, faces, landmarks):
    """What is written for an image or frame: its faces blurred (``--blur``) or drawn."""
    return blur_faces(img, faces) if args.blur else draw_detections(img, faces, landmarks)


def run(args, context):
    detector = load_detector(args, context)
    if args.video is not None:
        return run_video(args, detector)
    check_sizes(detector, args.images, args.scales)
    os.makedirs(args.output, exist_ok=True)
    results, failed = [], []
    for path in tqdm(args.images, desc='detect', unit='image', disable=len(args.images) < 2):
        try:
            img = read_image(path)
        except (OSError, ValueError) as error:
            logger.error('%s; skipped', error)
            failed.append(path)
            continue
        faces, landmarks = detector.detect(img, threshold=args.thresh, scales=args.scales, do_flip=args.flip)
        out_path = output_path(args.output, path)
        with atomic_path(out_path) as tmp:
            if not cv2.imwrite(tmp, picture(args, img, faces, landmarks)):
                raise OSError('cannot write image %s' % out_path)
        results.append({'image': path, 'output': out_path, 'faces': faces_json(faces, landmarks)})
        print('%s: %d faces -> %s' % (path, faces.shape[0], out_path))
    if args.json:
        model = {'onnx': args.onnx} if args.onnx is not None else {'prefix': args.prefix, 'epoch': args.epoch}
        with atomic_open(args.json, 'w') as f:
            json.dump(dict(model, thresh=args.thresh, scales=args.scales, flip=args.flip, images=results,
                           skipped=failed), f, indent=1)
    if failed:
        logger.error('%d of %d images could not be read: %s', len(failed), len(args.images), ', '.join(failed))
    return 1 if failed else 0


def frame_groups(frames, size):
    """The frames in lists of ``size`` (the last one shorter)."""
    group = []
    for frame in frames:
        group.append(frame)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def run_video(args, detector):
    """Detect, draw or blur, and write every frame of ``--video`` (and its JSON line): the frames in
    groups of ``--batch`` x ``--every``, each group's every Nth frame detected in one call."""
    width, height = args.video_size
    try:
        detector.check_input(height, width, args.scales)
    except ValueError as error:
        raise UsageError('--scales: %s: %s' % (args.video, error)) from None
    records = None
    with contextlib.ExitStack() as stack:
        video = stack.enter_context(VideoReader(args.video))
        out = stack.enter_context(VideoWriter(args.output, video.fps, (width, height)))
        if args.json:
            records = stack.enter_context(JsonLinesWriter(args.json))
        progress = stack.enter_context(tqdm(total=video.frame_count, desc='detect', unit='frame'))
        try:
            for group in frame_groups(video, args.batch * args.every):
                detected = detector.detect_batch([frame.image for frame in group[::args.every]], args.thresh,
                                                 args.scales, args.flip, max_batch=args.batch)
                for k, frame in enumerate(group):
                    faces, landmarks = detected[k // args.every]
                    image = picture(args, frame.image, faces, landmarks)
                    with signals_deferred():
                        out.write(image)
                        if records is not None:
                            records.write({'frame': frame.index, 'time': frame.time,
                                           'detected_on': group[k - k % args.every].index,
                                           'faces': faces_json(faces, landmarks)})
                    progress.update()
        except (KeyboardInterrupt, Terminated):
            stack.close()  # the video and the JSON lines written so far get their names
            logger.warning('interrupted at frame %d of %s: %s', out.count, video.frame_count or 'an unknown number',
                           written(args, out.count, records))
            raise
    print('%s: %d frames -> %s' % (args.video, out.count, written(args, out.count, records)))
    return 0


def written(args, frames, records):
    """What a video run has written, in words."""
    if not frames:
        return 'no frame written, no output'
    text = '%s holds frames 0..%d' % (args.output, frames - 1)
    return text if records is None else text + ', %s their %d records' % (args.json, records.count)
