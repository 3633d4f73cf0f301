"""INT8 RetinaFace checkpoints for the CPU (``tools/quantize.py``), with ``facekit.mx.quantize``.

Calibration images are prepared as ``test_widerface.py --mode 0`` prepares them (short side
1600, long side at most 2150, cv2 INTER_LINEAR) and fed as ``RetinaFace`` feeds them (RGB
float32). The convolutions at output strides 2 and 4 stay FP32: quantizing these
high-resolution layers costs the small faces most (docs/benchmarks.md has the measurements).
The INT8 checkpoint records the anchors it decodes with and how it was made.
"""
import json

import cv2
import numpy as np

from facekit.mx.quantize import quantize
from rcnn.contract import record_anchors
from rcnn.evaluation.modes import get_scales

__all__ = ['CALIBRATION_MODE', 'MAX_FP32_STRIDE', 'calibration_input', 'high_resolution_layers',
           'quantize_retinaface']

CALIBRATION_MODE = 0  # test_widerface.py's --mode whose scale calibration images get
MAX_FP32_STRIDE = 4  # convolutions with an output stride up to this stay FP32
_PROBE = 64  # input side (pixels) at which the output strides are measured


def calibration_input(img):
    """The float32 (1, 3, H, W) network input of a BGR uint8 image at the calibration scale."""
    (scale,), _ = get_scales(img.shape, CALIBRATION_MODE)
    scaled = cv2.resize(img, None, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(scaled.transpose(2, 0, 1)[::-1][None], dtype=np.float32)


def high_resolution_layers(symbol, max_stride=MAX_FP32_STRIDE):
    """Names of the Convolution operators of ``symbol`` whose output stride is at most ``max_stride``."""
    convolutions = [node['name'] for node in json.loads(symbol.tojson())['nodes'] if node['op'] == 'Convolution']
    internals = symbol.get_internals()
    _, shapes, _ = internals.infer_shape(data=(1, 3, _PROBE, _PROBE))
    heights = {name: shape[2] for name, shape in zip(internals.list_outputs(), shapes) if len(shape) == 4}
    return [name for name in convolutions if _PROBE // heights[name + '_output'] <= max_stride]


def quantize_retinaface(symbol, arg_params, aux_params, images, anchors, record):
    """The INT8 form of a RetinaFace model (``facekit.mx.quantize.quantize``), calibrated on
    ``images`` (BGR uint8 (H, W, 3) arrays, any sizes), with ``anchors`` (an
    ``rcnn.contract.anchor_settings`` result) recorded; ``record`` is stored as the model's
    quantization record. Returns (symbol, arg_params, aux_params, layers)."""
    qsym, qarg, qaux, layers = quantize(symbol, arg_params, aux_params, (calibration_input(img) for img in images),
                                        fp32_layers=high_resolution_layers(symbol), record=record)
    record_anchors(qsym, anchors)
    return qsym, qarg, qaux, layers
