"""What a RetinaFace checkpoint exports to ONNX: its input, the shapes it is checked on, its anchors.

The conversion and the check against MXNet are ``facekit.mx.onnx_export``'s; the detector
on the result is ``RetinaFace.from_onnx``.
"""
import os

from facekit.image import MAX_MEGAPIXELS
from facekit.mx.checkpoint import load_checkpoint
from facekit.mx.onnx_convert import InputSpec, check_static_shape
from facekit.mx.onnx_export import export
from facekit.prefix import params_path, symbol_path
from rcnn.contract import anchors_to_json, recorded_anchors

__all__ = ['MIN_SIZE', 'INPUT', 'CHECK_SHAPES', 'input_spec', 'export_retinaface']

# Smallest static size: one stride-32 cell.
MIN_SIZE = 32
INPUT = 'RGB float32 0..255, (batch, 3, height, width)'
# Seeded inputs of dynamic exports: two shapes that differ in every dynamic dimension
# (batch 1 and 2; odd sizes exercise the Crop of the upsampled FPN maps).
CHECK_SHAPES = ((1, 3, 320, 448), (2, 3, 289, 353))


def input_spec(static_shape=None):
    """Dynamic batch, height and width, or static (1, 3, H, W) for ``static_shape=(H, W)`` (at
    most ``facekit.image.MAX_MEGAPIXELS``, the detector's own limit)."""
    if static_shape is None:
        return InputSpec(('batch', None, 'height', 'width'), CHECK_SHAPES, 0.0, 255.0, INPUT)
    height, width = check_static_shape(static_shape, MIN_SIZE, 'RetinaFace', MAX_MEGAPIXELS)
    return InputSpec((None,) * 4, ((1, 3, height, width),), 0.0, 255.0, INPUT)


def export_retinaface(prefix, epoch, output, static_shape=None, overwrite=False, **kwargs):
    """Export checkpoint ``prefix-epoch`` (its deploy symbol) to ``output``; ``kwargs`` go to ``export``.
    The anchors a ``train.py`` checkpoint records go into the metadata, where the detector reads them."""
    spec = input_spec(static_shape)
    files = (symbol_path(prefix), params_path(prefix, epoch))
    symbol, arg_params, aux_params = load_checkpoint(prefix, epoch)
    anchors = recorded_anchors(symbol)
    metadata = {'anchors': anchors_to_json(anchors)} if anchors is not None else {}
    source = '%s, %s' % tuple(os.path.basename(f) for f in files)
    return export(symbol, arg_params, aux_params, output, spec, 'retinaface', source, overwrite, metadata=metadata,
                  model_files=files, **kwargs)
