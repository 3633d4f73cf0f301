"""Quantize a RetinaFace checkpoint to INT8 for the CPU, with MXNet's own oneDNN flow.

    python tools/quantize.py --prefix model/mnet.25 --epoch 0 --calib photos/ \\
        --output model/mnet.25-int8 [--calib_images 16] [--network net3] [--overwrite]

``--calib`` is a folder of images (its .jpg/.jpeg/.png/.bmp files, by name) or a data split
(``label.txt`` and ``images/``, the images in label order). ``--calib_images`` of them, spread
evenly over that list, calibrate the model (``rcnn.quantize``: prepared as test_widerface.py's
mode 0 prepares images; the convolutions at output strides 2 and 4 stay FP32).

The output is an ordinary checkpoint, ``OUTPUT-symbol.json`` and ``OUTPUT-0000.params``, that
``RetinaFace(OUTPUT, 0, ctx_id=-1)``, ``detect.py`` and ``test_widerface.py`` load with
``--epoch 0`` on the CPU. It records the anchors it decodes with and how it was made
(``facekit.mx.quantize.quantization_record``). The same inputs give the same files. The log
names the layers that run in INT8 and those kept in FP32; on a CPU without VNNI the command
says that INT8 will not be faster there.
"""
import logging
import os

from tqdm import tqdm

from facekit import args as cli
from facekit.args import UsageError
from facekit.files import file_digest
from facekit.image import IMAGE_EXTENSIONS, image_files, read_image
from facekit.labels import read_label_file
from facekit.mx import runtime
from facekit.mx.checkpoint import load_checkpoint, save_checkpoint
from facekit.mx.quantize import VNNI_FLAGS, int8_is_faster, int8_problem, is_quantized
from facekit.prefix import Position, params_path, symbol_path
from rcnn.contract import ANCHOR_PRESETS, recorded_anchors
from rcnn.detector import detector_anchors
from rcnn.quantize import CALIBRATION_MODE, MAX_FP32_STRIDE, quantize_retinaface

__all__ = ['build_parser', 'check_args', 'run', 'calibration_paths']

logger = logging.getLogger(__name__)


def build_parser():
    parser = cli.ArgumentParser(description='Quantize a RetinaFace checkpoint to INT8 for the CPU (oneDNN)')
    parser.add_argument('--prefix', required=True, help='checkpoint prefix of the FP32 model')
    parser.add_argument('--epoch', type=cli.int_at_least(0), required=True, help='checkpoint epoch')
    parser.add_argument('--calib', required=True,
                        help='calibration images: a folder of images, or a data split (label.txt and images/)')
    parser.add_argument('--calib_images', type=cli.int_at_least(1), default=16,
                        help='how many of them, spread evenly over the folder or split (default 16)')
    parser.add_argument('--output', required=True,
                        help='prefix of the INT8 checkpoint: OUTPUT-symbol.json, OUTPUT-0000.params')
    parser.add_argument('--network', choices=sorted(ANCHOR_PRESETS), default=None,
                        help="anchor layout the model decodes with (default: the checkpoint's, else net3)")
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output checkpoint')
    return parser


def calibration_paths(path, count):
    """``count`` image paths of folder or split ``path`` (all of them if it has fewer), evenly
    spread over its list; UsageError naming ``--calib`` if it holds none."""
    label = os.path.join(path, 'label.txt')
    if os.path.isfile(label):
        images = [os.path.join(path, 'images', record.path) for record in read_label_file(label)]
        if not images:
            raise UsageError('--calib: %s lists no image' % label)
    elif os.path.isdir(path):
        images = image_files(path)
        if not images:
            raise UsageError('--calib: no %s files in folder %s (nor a label.txt)' % ('/'.join(IMAGE_EXTENSIONS), path))
    else:
        raise UsageError('--calib: no such folder: %s' % path)
    if count >= len(images):
        return images
    step = (len(images) - 1) / max(count - 1, 1)
    return [images[round(i * step)] for i in range(count)]


def _outputs(prefix):
    return symbol_path(prefix), params_path(prefix, 0)


def check_args(args):
    cli.check_checkpoint(args.prefix, args.epoch)
    args.calib_paths = calibration_paths(args.calib, args.calib_images)
    missing = [p for p in args.calib_paths if not os.path.isfile(p)]
    if missing:
        raise UsageError('--calib: %d listed images do not exist, e.g. %s' % (len(missing), missing[0]))
    inputs = [symbol_path(args.prefix), params_path(args.prefix, args.epoch)] + args.calib_paths
    for path in _outputs(args.output):
        cli.check_output_file(path, '--output', inputs=inputs, overwrite=args.overwrite)
    problem = int8_problem()
    if problem:
        raise ValueError('cannot quantize: %s' % problem)


def run(args, context):
    runtime.configure_cpu_inference(load=context.cpu_load)
    if not int8_is_faster():
        logger.warning('this CPU lacks VNNI (%s): the INT8 model will run no faster than FP32 here',
                       ', '.join(VNNI_FLAGS))
    source = params_path(args.prefix, args.epoch)
    symbol, arg_params, aux_params = load_checkpoint(args.prefix, args.epoch)
    if is_quantized(symbol):
        raise ValueError('%s is already an INT8 model' % symbol_path(args.prefix))
    anchors = detector_anchors(args.network, recorded_anchors(symbol), symbol_path(args.prefix))
    record = {'source': os.path.basename(source), 'source_sha256': file_digest(source),
              'calibration_images': len(args.calib_paths), 'calibration_mode': 'naive',
              'calibration_scale': 'test_widerface.py --mode %d' % CALIBRATION_MODE,
              'fp32': 'convolutions at output stride <= %d' % MAX_FP32_STRIDE}
    images = (read_image(path) for path in tqdm(args.calib_paths, desc='calibrating', unit='image'))
    qsym, qarg, qaux, layers = quantize_retinaface(symbol, arg_params, aux_params, images, anchors, record)
    logger.info('INT8 (%d operators): %s', len(layers['int8']), ', '.join(layers['int8']))
    logger.info('FP32 (%d convolutions at output stride <= %d, with their BatchNorm and activation): %s',
                len(layers['fp32']), MAX_FP32_STRIDE, ', '.join(layers['fp32']))
    save_checkpoint(args.output, Position(0), qsym, qarg, qaux)
    print('%s, %s: INT8 model of %s, calibrated on %d images; %d operators INT8, %d convolutions FP32'
          % (*_outputs(args.output), source, len(args.calib_paths), len(layers['int8']), len(layers['fp32'])))
