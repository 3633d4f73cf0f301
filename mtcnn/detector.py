"""The MTCNN cascade at test time (Zhang et al.).

Images are BGR uint8 (H, W, 3) as read by ``facekit.image.read_image``; ``detect`` takes one,
``detect_batch`` several (video frames: P-Net batches the images of one size, R-Net and O-Net
the crops of all). Every stage returns float64 boxes (N, 5) ``x1, y1, x2, y2, score`` in
pixels of the input image with the +1 width convention; an empty (0, 5) array when nothing
survives.

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

__all__ = ['MAX_BATCH', 'MtcnnDetector', 'transform', 'load_net']


_CELL = INPUT_SIZE['pnet']    # P-Net's receptive field, pixels of the scaled image
_STRIDE = 2   # P-Net output stride
# Images per P-Net forward in ``detect_batch`` unless told otherwise.
MAX_BATCH = 8


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
        return self._pnet([img], 1)[0]

    def _pnet(self, images, max_batch):
        """``detect_pnet`` of each image: at every pyramid scale, the images of one size resized and
        run through P-Net in batches of up to ``max_batch``."""
        levels = [[] for _ in images]
        groups = {}
        for index, img in enumerate(images):
            groups.setdefault(img.shape[:2], []).append(index)
        for (height, width), indices in groups.items():
            for scale in self.scales(height, width):
                size = (int(width * scale), int(height * scale))
                for start in range(0, len(indices), max_batch):
                    chunk = indices[start:start + max_batch]
                    resized = [cv2.resize(images[i], size, interpolation=cv2.INTER_LINEAR) for i in chunk]
                    prob, reg = self.pnet(transform(np.stack(resized)))[:2]
                    for row, index in enumerate(chunk):
                        boxes = self._generate(prob[row, 1], reg[row], scale)
                        if len(boxes):
                            levels[index].append(boxes[nms(boxes, 0.5, 'Union')])
        return [self._pnet_boxes(found) for found in levels]

    @staticmethod
    def _pnet_boxes(levels):
        """One image's P-Net boxes (N, 5) from its candidates (K, 9) per pyramid level: NMS across
        the levels, then calibrated."""
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

    @staticmethod
    def _run_crops(net, crops):
        """``net`` on the crops of several images in one call (the net chunks them): ``crops`` holds
        per image the (boxes, squared, data) of ``_crops`` or None; returns per image its rows of
        the outputs, or None."""
        datas = [found[2] for found in crops if found is not None]
        if not datas:
            return [None] * len(crops)
        outputs = net(np.concatenate(datas))
        rows, start = [], 0
        for found in crops:
            if found is None:
                rows.append(None)
                continue
            stop = start + len(found[2])
            rows.append([out[start:stop] for out in outputs])
            start = stop
        return rows

    def detect_rnet(self, img, dets):
        """Refine P-Net boxes (N, 5) with R-Net; returns calibrated boxes (M, 5)."""
        return self._rnet([img], [dets])[0]

    def _rnet(self, images, dets):
        """``detect_rnet`` of each image and its boxes, the crops of all in one R-Net call."""
        if self.rnet is None:
            return [_empty() for _ in images]
        crops = [self._crops(img, d, INPUT_SIZE['rnet']) if len(d) else None for img, d in zip(images, dets)]
        results = []
        for found, outputs in zip(crops, self._run_crops(self.rnet, crops)):
            if found is None:
                results.append(_empty())
                continue
            boxes, _, _ = found
            prob, reg = outputs[:2]
            keep = np.flatnonzero(prob[:, 1] > self.threshold[1])
            boxes, reg = boxes[keep], reg[keep]
            boxes[:, 4] = prob[keep, 1]
            keep = nms(boxes, 0.7, 'Union')
            results.append(calibrate(boxes[keep], reg[keep]))
        return results

    def detect_onet(self, img, dets):
        """Final stage on R-Net boxes (N, 5).

        Returns:
            boxes (K, 5) calibrated and NMS'ed (0.7, Minimum);
            landmarks (K, 5, 2) x, y in pixels, or None without a landmark branch.
        """
        return self._onet([img], [dets])[0]

    def _onet(self, images, dets):
        """``detect_onet`` of each image and its boxes, the crops of all in one O-Net call."""
        if self.onet is None:
            return [(_empty(), None) for _ in images]
        crops = [self._crops(img, d, INPUT_SIZE['onet']) if len(d) else None for img, d in zip(images, dets)]
        results = []
        for found, outputs in zip(crops, self._run_crops(self.onet, crops)):
            if found is None:
                results.append((_empty(), None))
                continue
            boxes, squared, _ = found
            prob, reg = outputs[:2]
            keep = np.flatnonzero(prob[:, 1] > self.threshold[2])
            boxes, squared, reg = boxes[keep], squared[keep], reg[keep]
            boxes[:, 4] = prob[keep, 1]
            boxes = calibrate(boxes, reg)
            final = nms(boxes, 0.7, 'Minimum')
            if len(outputs) < 3:
                results.append((boxes[final], None))
                continue
            # Landmarks are relative to the square crop the net saw.
            squared = squared[final]
            side = (squared[:, 2] - squared[:, 0] + 1)[:, None]
            points = outputs[2][keep][final].reshape(-1, 5, 2).astype(np.float64)
            results.append((boxes[final], squared[:, None, 0:2] + points * side[:, None]))
        return results

    def _check_input(self, img, caller):
        """ValueError unless ``img`` is a BGR uint8 image (H, W, 3) whose first pyramid level is
        within ``max_megapixels``; ``caller`` names the API in the message."""
        check_image(img, caller)
        height, width = img.shape[:2]
        scale = float(_CELL) / self.min_face_size
        pixels = int(height * scale) * int(width * scale)
        if pixels > self.max_megapixels * 1e6:
            raise ValueError('%s: the %dx%d image at the first pyramid scale %g (12 / min_face_size) '
                             'is %.1f megapixels, above the limit of %g (max_megapixels)'
                             % (caller, width, height, scale, pixels / 1e6, self.max_megapixels))

    def detect(self, img):
        """Full cascade on a BGR uint8 image (H, W, 3).

        Returns:
            boxes (N, 5) float64 and landmarks (N, 5, 2) or None (no O-Net
            landmark branch). Stages missing from the detector are skipped.

        Raises:
            ValueError: not such an image, or its first pyramid level is above
                ``max_megapixels``; before any work.
        """
        self._check_input(img, 'MtcnnDetector.detect')
        return self.detect_batch([img])[0]

    def detect_batch(self, images, max_batch=MAX_BATCH):
        """``detect`` on several images: each (boxes, landmarks) is what ``detect`` gives for it.

        P-Net runs the images of one size together, up to ``max_batch`` per forward at each
        pyramid scale; R-Net and O-Net run the crops of all images in one call each (an MXNet
        net in its chunks of crops, an ONNX net at once).

        Args:
            images: a sequence of BGR uint8 images (H, W, 3), of one size or several.
            max_batch: most images per P-Net forward, an integer >= 1.

        Returns:
            a list with one (boxes (N, 5), landmarks (N, 5, 2) or None) per image, in order.

        Raises:
            ValueError: a bad ``max_batch``, or an image ``detect`` refuses (named by its index);
                before any work.
        """
        images = list(images)
        for index, img in enumerate(images):
            self._check_input(img, 'MtcnnDetector.detect_batch (image %d)' % index)
        if isinstance(max_batch, bool) or not isinstance(max_batch, numbers.Integral) or max_batch < 1:
            raise ValueError('max_batch must be an integer >= 1, got %r' % (max_batch,))
        boxes = self._pnet(images, max_batch)
        if self.rnet is not None:
            boxes = self._rnet(images, boxes)
        if self.onet is None:
            return [(found, None) for found in boxes]
        return self._onet(images, boxes)
