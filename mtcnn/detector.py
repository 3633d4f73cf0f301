"""The MTCNN cascade at test time (Zhang et al.).

Images are BGR uint8 (H, W, 3) as read by ``facekit.image.read_image``. Every stage returns
float64 boxes (N, 5) ``x1, y1, x2, y2, score`` in pixels of the input image with
the +1 width convention; an empty (0, 5) array when nothing survives.

This module imports no MXNet: nets from ``.onnx`` files run on onnxruntime, and only nets
from ``.params`` files load MXNet (``mtcnn.predictor``).
"""
import numbers
import os

import cv2
import numpy as np

from facekit.image import MAX_MEGAPIXELS, check_image, check_megapixels
from facekit.ort import OnnxForward
from mtcnn.boxes import calibrate, nms, pad, square
from mtcnn.defaults import INPUT_SIZE, MIN_FACE_SIZE, SCALE_FACTOR, THRESHOLDS

__all__ = ['MtcnnDetector', 'transform', 'load_net']


_CELL = INPUT_SIZE['pnet']    # P-Net's receptive field, pixels of the scaled image
_STRIDE = 2   # P-Net output stride


def transform(images):
    """uint8 BGR (..., H, W, 3) -> C-contiguous float32 (..., 3, H, W) with (x - 127.5) * 0.0078125.

    Exact in float32: x - 127.5 has one decimal bit and 0.0078125 is 2**-7.
    """
    data = np.ascontiguousarray(np.moveaxis(images, -1, -3), dtype=np.float32)
    data -= np.float32(127.5)
    data *= np.float32(0.0078125)
    return data


def _empty():
    return np.zeros((0, 5), np.float64)


def load_net(net, path, ctx=None):
    """The detector's net ``net`` ('pnet', 'rnet', 'onet') from a ``.params`` or ``.onnx`` path.

    ``.onnx`` (``tools/export_onnx.py mtcnn``): an onnxruntime forward on the CPU
    (``facekit.ort.OnnxForward``; any batch size in one call), whatever ``ctx``.
    ``.params``: ``mtcnn.predictor.load_predictor`` on MXNet context ``ctx`` (None: the CPU).

    Raises:
        ValueError: an ONNX file exported from another net.
    """
    if str(path).endswith('.onnx'):
        forward = OnnxForward(path)
        model = forward.metadata.get('model')
        if model is not None and model != 'mtcnn-' + net:
            raise ValueError('%s is an ONNX export of %r, not of the %s' % (path, model, net))
        return forward
    from mtcnn.predictor import load_predictor  # MXNet, for .params files only
    return load_predictor(net, path, ctx)


class MtcnnDetector:
    """P-Net -> R-Net -> O-Net face detector.

    Args:
        pnet, rnet, onet: the path of a ``.params`` file (``model/pnet-0016.params``)
            or a loaded net: a ``Predictor`` (or any callable mapping a float32
            (B, 3, H, W) batch to the list of test-symbol outputs as NumPy
            arrays); ``rnet`` / ``onet`` may be None to stop the cascade early
            (used when mining hard examples).
        ctx: MXNet context for ``.params`` paths (None: the CPU).
        min_face_size: smallest face searched, pixels; the first pyramid level
            is scaled by 12 / min_face_size.
        threshold: face-probability thresholds of the three stages, three numbers in [0, 1].
        scale_factor: ratio between consecutive pyramid levels.
        max_megapixels: largest first pyramid level ``detect`` accepts, in megapixels (the
            image scaled by 12 / min_face_size; default ``MAX_MEGAPIXELS``, 20).

    Raises:
        ValueError for a bad setting; facekit.mx.runtime.DeviceError (a ValueError) for a GPU
        ``ctx`` this machine or MXNet build does not have.
    """

    def __init__(self, pnet, rnet=None, onet=None, ctx=None, min_face_size=MIN_FACE_SIZE,
                 threshold=THRESHOLDS, scale_factor=SCALE_FACTOR, max_megapixels=MAX_MEGAPIXELS):
        threshold = tuple(threshold)
        if len(threshold) != 3 or not all(isinstance(t, numbers.Real) and not isinstance(t, bool)
                                          and 0.0 <= t <= 1.0 for t in threshold):
            raise ValueError('threshold must be three numbers in [0, 1] (P-Net, R-Net, O-Net), got %r'
                             % (threshold,))
        max_megapixels = check_megapixels(max_megapixels)

        def load(net, name):
            if isinstance(net, (str, os.PathLike)):
                return load_net(name, net, ctx)
            return net

        self.pnet = load(pnet, 'pnet')
        self.rnet = load(rnet, 'rnet')
        self.onet = load(onet, 'onet')
        if self.pnet is None:
            raise ValueError('MtcnnDetector needs a P-Net')
        if min_face_size < _CELL:
            raise ValueError('min_face_size must be >= %d, got %r' % (_CELL, min_face_size))
        if not 0 < scale_factor < 1:
            raise ValueError('scale_factor must be in (0, 1), got %r' % (scale_factor,))
        self.min_face_size = min_face_size
        self.threshold = threshold
        self.scale_factor = scale_factor
        self.max_megapixels = float(max_megapixels)

    def scales(self, height, width):
        """Pyramid scales used on an image of this size, largest first."""
        scales = []
        scale = float(_CELL) / self.min_face_size
        while min(int(height * scale), int(width * scale)) > _CELL:
            scales.append(scale)
            scale *= self.scale_factor
        return scales

    def _generate(self, prob, reg, scale):
        """Candidate boxes (K, 9): box, score, then the 4 offsets, from one P-Net level."""
        ys, xs = np.nonzero(prob > self.threshold[0])
        return np.stack([np.round(_STRIDE * xs / scale), np.round(_STRIDE * ys / scale),
                         np.round((_STRIDE * xs + _CELL) / scale), np.round((_STRIDE * ys + _CELL) / scale),
                         prob[ys, xs], reg[0, ys, xs], reg[1, ys, xs], reg[2, ys, xs], reg[3, ys, xs]],
                        axis=1).astype(np.float64)

    def detect_pnet(self, img):
        """Run P-Net over the image pyramid; returns calibrated boxes (N, 5)."""
        height, width = img.shape[:2]
        levels = []
        for scale in self.scales(height, width):
            size = (int(width * scale), int(height * scale))
            resized = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
            prob, reg = self.pnet(transform(resized)[None])[:2]
            boxes = self._generate(prob[0, 1], reg[0], scale)
            if len(boxes):
                levels.append(boxes[nms(boxes, 0.5, 'Union')])
        if not levels:
            return _empty()
        boxes = np.concatenate(levels)
        boxes = boxes[nms(boxes, 0.7, 'Union')]
        return calibrate(boxes[:, :5], boxes[:, 5:9])

    def _crops(self, img, dets, size):
        """Square, round, zero-pad and resize each box to size x size.

        Returns the squared boxes (N, 5), clipped to the image as the original
        implementation leaves them (its pad() clips its input in place, and the
        clipped boxes are the ones it calibrates), the unclipped squared boxes,
        and the network input (N, 3, size, size) float32.
        """
        height, width = img.shape[:2]
        squared = square(dets)
        squared[:, 0:4] = np.round(squared[:, 0:4])
        src, dst, crop_size = pad(squared, width, height)
        crops = np.zeros((len(squared), size, size, 3), np.uint8)
        windows = np.concatenate([src, dst, crop_size], axis=1).tolist()  # Python ints index faster
        for i, (x1, y1, x2, y2, dx1, dy1, dx2, dy2, w, h) in enumerate(windows):
            if x2 < x1 or y2 < y1:
                continue  # no pixel of the box inside the image (or a degenerate box): all zeros
            patch = img[y1:y2 + 1, x1:x2 + 1]
            if dx1 or dy1 or w != x2 - x1 + 1 or h != y2 - y1 + 1:
                canvas = np.zeros((h, w, 3), np.uint8)
                canvas[dy1:dy2 + 1, dx1:dx2 + 1] = patch
                patch = canvas
            cv2.resize(patch, (size, size), dst=crops[i], interpolation=cv2.INTER_LINEAR)
        clipped = squared.copy()
        clipped[:, 0:4] = src
        return clipped, squared, transform(crops)

    def detect_rnet(self, img, dets):
        """Refine P-Net boxes (N, 5) with R-Net; returns calibrated boxes (M, 5)."""
        if self.rnet is None or not len(dets):
            return _empty()
        boxes, _, data = self._crops(img, dets, INPUT_SIZE['rnet'])
        prob, reg = self.rnet(data)[:2]
        keep = np.flatnonzero(prob[:, 1] > self.threshold[1])
        boxes, reg = boxes[keep], reg[keep]
        boxes[:, 4] = prob[keep, 1]
        keep = nms(boxes, 0.7, 'Union')
        return calibrate(boxes[keep], reg[keep])

    def detect_onet(self, img, dets):
        """Final stage on R-Net boxes (N, 5).

        Returns:
            boxes (K, 5) calibrated and NMS'ed (0.7, Minimum);
            landmarks (K, 5, 2) x, y in pixels, or None without a landmark branch.
        """
        if self.onet is None or not len(dets):
            return _empty(), None
        boxes, squared, data = self._crops(img, dets, INPUT_SIZE['onet'])
        outputs = self.onet(data)
        prob, reg = outputs[:2]
        keep = np.flatnonzero(prob[:, 1] > self.threshold[2])
        boxes, squared, reg = boxes[keep], squared[keep], reg[keep]
        boxes[:, 4] = prob[keep, 1]
        boxes = calibrate(boxes, reg)
        final = nms(boxes, 0.7, 'Minimum')
        if len(outputs) < 3:
            return boxes[final], None
        # Landmarks are relative to the square crop the net saw.
        squared = squared[final]
        side = (squared[:, 2] - squared[:, 0] + 1)[:, None]
        points = outputs[2][keep][final].reshape(-1, 5, 2).astype(np.float64)
        landmarks = squared[:, None, 0:2] + points * side[:, None]
        return boxes[final], landmarks

    def detect(self, img):
        """Full cascade on a BGR uint8 image (H, W, 3).

        Returns:
            boxes (N, 5) float64 and landmarks (N, 5, 2) or None (no O-Net
            landmark branch). Stages missing from the detector are skipped.

        Raises:
            ValueError: not such an image, or its first pyramid level is above
                ``max_megapixels``; before any work.
        """
        check_image(img, 'MtcnnDetector.detect')
        height, width = img.shape[:2]
        scale = float(_CELL) / self.min_face_size
        pixels = int(height * scale) * int(width * scale)
        if pixels > self.max_megapixels * 1e6:
            raise ValueError('MtcnnDetector.detect: the %dx%d image at the first pyramid scale %g (12 / min_face_size) '
                             'is %.1f megapixels, above the limit of %g (max_megapixels)'
                             % (width, height, scale, pixels / 1e6, self.max_megapixels))
        boxes = self.detect_pnet(img)
        if self.rnet is not None:
            boxes = self.detect_rnet(img, boxes)
        if self.onet is None:
            return boxes, None
        return self.detect_onet(img, boxes)
