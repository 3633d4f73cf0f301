"""Image files, training crops (``crop_image``), colour jitter and the network's input transform.

Images are BGR uint8 as decoded by OpenCV; the network input is RGB float32
(1, 3, H, W). Boxes are x1, y1, x2, y2 in pixels; landmarks (N, 5, 3) x, y,
visibility with -1 marking a missing point. Every random draw comes from an
explicit ``np.random.Generator`` so a crop is reproducible from its seed.

Reading images: :func:`read_image` is the one reader of training
(``load_image``), testing (``test_widerface.py``), detection (``detect.py``)
and the MTCNN commands, and :func:`image_size` gives the size it will return
without decoding the pixels (the roidb's width and height).

* EXIF orientation is applied: a JPEG (APP1) or PNG (eXIf) whose EXIF
  Orientation tag is 2..8 is flipped / rotated upright, exactly as
  ``cv2.imread`` does by default (the original's reader at test time).
  ``label.txt`` coordinates are therefore in the upright frame, the frame
  every image viewer shows; files without the tag are decoded unchanged.
* A truncated JPEG (no end-of-image marker reached through its segment
  structure) is decoded as ``cv2.imread`` decodes it, the missing rows grey,
  and a warning names the file once per process: the data stays usable, and
  the cause of libjpeg's anonymous "Premature end of JPEG file" is known.
  The file is read once; the check walks the bytes already read and the
  pixels come from ``cv2.imdecode`` of the same buffer.
"""
import logging
import math
import numbers
import os
import re

import cv2
import numpy as np
from PIL import Image

__all__ = ['read_image', 'image_size', 'exif_orientation', 'MAX_MEGAPIXELS', 'check_megapixels', 'nocrop_shape',
           'input_shape', 'check_scales', 'check_image', 'load_image', 'crop_image', 'get_crop_image1', 'color_aug',
           'brightness_aug', 'contrast_aug', 'saturation_aug', 'transform']

logger = logging.getLogger(__name__)

_JPEG_SOI = b'\xff\xd8'
_JPEG_EOI = b'\xff\xd9'
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# A marker inside entropy-coded data: 0xFF followed by neither a stuffed 0x00,
# a restart marker RST0..7 nor another (fill) 0xFF.
_SCAN_MARKER = re.compile(b'\xff[^\x00\xd0-\xd7\xff]')
# Bytes image_size reads first: the EXIF segment (at most 64 KiB) comes before the pixel data.
_HEADER_BYTES = 1 << 17
_TRANSPOSED = (5, 6, 7, 8)  # orientations that swap width and height
_warned_truncated = set()

# Largest network input the detectors accept unless told otherwise, in megapixels: 4.6 times the
# largest input of test_widerface.py --mode 1 (1700 x 2550 = 4.3 MP), about 1.3 GB for mnet.25 and
# 5 GB for ResNet-50 on the CPU. A scale that asks for more (detect.py --scales 40 on a 1280 x 886
# photo: 1814 MP) is refused before anything is allocated.
MAX_MEGAPIXELS = 20.0


def _tiff_orientation(tiff):
    """The Orientation tag (0x0112) of the first IFD of EXIF data (a TIFF structure); 1 if absent or invalid."""
    order = {b'II': 'little', b'MM': 'big'}.get(tiff[:2])
    if order is None or len(tiff) < 8 or int.from_bytes(tiff[2:4], order) != 42:
        return 1
    ifd = int.from_bytes(tiff[4:8], order)
    count = int.from_bytes(tiff[ifd:ifd + 2], order) if ifd + 2 <= len(tiff) else 0
    for entry in range(ifd + 2, min(ifd + 2 + 12 * count, len(tiff) - 11), 12):
        if int.from_bytes(tiff[entry:entry + 2], order) == 0x0112:
            value = int.from_bytes(tiff[entry + 8:entry + 10], order)  # type SHORT, value inline
            return value if 1 <= value <= 8 else 1
    return 1


def _scan_jpeg(data):
    """Walk the marker segments of JPEG bytes ``data``.

    Returns:
        (orientation, header_read, complete): the EXIF Orientation of the first
        APP1 Exif segment before the first scan (1 if none); whether ``data``
        holds every header segment up to the first scan; whether the
        end-of-image marker is reached.
    """
    orientation, header_read = None, False
    pos, size = 2, len(data)
    while pos + 1 < size:
        if data[pos] != 0xFF:  # stray bytes: libjpeg skips them to the next marker
            pos = data.find(b'\xff', pos)
            if pos < 0:
                break
            continue
        marker = data[pos + 1]
        if marker == 0xD9:
            return orientation or 1, True, True
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x00, 0x01) or 0xD0 <= marker <= 0xD8:  # no length field
            pos += 2
            continue
        if pos + 4 > size:
            break
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], 'big')
        if end > size:
            break
        if (marker == 0xE1 and orientation is None and not header_read
                and data[pos + 4:pos + 10] == b'Exif\x00\x00'):
            orientation = _tiff_orientation(data[pos + 10:end])
        pos = end
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next marker
            header_read = True
            found = _SCAN_MARKER.search(data, pos)
            if found is None:
                break
            pos = found.start()
    return orientation or 1, header_read, False


def _png_orientation(data):
    """EXIF Orientation of PNG bytes: the eXIf chunk before the image data; 1 if none."""
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], 'big')
        kind = data[pos + 4:pos + 8]
        if kind == b'eXIf':
            return _tiff_orientation(data[pos + 8:pos + 8 + length])
        if kind == b'IDAT':
            break
        pos += 12 + length
    return 1


def exif_orientation(data):
    """EXIF Orientation (1..8, 1 = upright) of image file bytes ``data`` (or their start); 1 for other formats."""
    if data.startswith(_JPEG_SOI):
        return _scan_jpeg(data)[0]
    if data.startswith(_PNG_SIGNATURE):
        return _png_orientation(data)
    return 1


def _orient(im, orientation):
    """Apply an EXIF orientation to decoded pixels with the operations OpenCV's own decoder uses."""
    if orientation in _TRANSPOSED:
        im = cv2.transpose(im)
    flip = {2: 1, 3: -1, 4: 0, 6: 1, 7: -1, 8: 0}.get(orientation)
    return im if flip is None else cv2.flip(im, flip)


def check_megapixels(value):
    """A detector's ``max_megapixels`` as a float; ValueError unless it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError('max_megapixels must be a finite number > 0, got %r' % (value,))
    return float(value)


def nocrop_shape(height, width):
    """(H, W) rounded up to multiples of 32: the input RetinaFace's ``nocrop`` zero-pads an image to."""
    return -(-height // 32) * 32, -(-width // 32) * 32


def input_shape(height, width, scale, nocrop=False):
    """(H, W) of the network input for an image of ``height`` x ``width`` pixels at ``scale``
    (cv2.resize rounds to the nearest pixel; ``nocrop``: :func:`nocrop_shape`)."""
    if scale != 1.0:
        height, width = int(round(height * scale)), int(round(width * scale))
    if nocrop:
        height, width = nocrop_shape(height, width)
    return height, width


def check_scales(height, width, scales, max_megapixels=MAX_MEGAPIXELS, nocrop=False):
    """``scales`` as a list of floats, checked for an image of ``height`` x ``width`` pixels.

    Raises:
        ValueError: ``scales`` is not a non-empty list of finite numbers > 0, or a scale
            gives an empty network input or one above ``max_megapixels`` (``input_shape``).
    """
    try:
        scales = list(scales)
    except TypeError:
        scales = None
    if not scales or not all(isinstance(s, numbers.Real) and not isinstance(s, bool) and math.isfinite(s) and s > 0
                             for s in scales):
        raise ValueError('scales must be a non-empty list of finite numbers > 0, got %r' % (scales,))
    for scale in scales:
        out_height, out_width = input_shape(height, width, scale, nocrop)
        if min(out_height, out_width) < 1:
            raise ValueError('scale %g turns the %dx%d image into an empty network input' % (scale, width, height))
        if out_height * out_width > max_megapixels * 1e6:
            raise ValueError('scale %g turns the %dx%d image into a %dx%d network input (%.1f megapixels), above '
                             'the limit of %g megapixels (RetinaFace max_megapixels, detect.py --max-megapixels)'
                             % (scale, width, height, out_width, out_height, out_height * out_width / 1e6,
                                max_megapixels))
    return [float(s) for s in scales]


def check_image(img, caller):
    """Raise ValueError unless ``img`` is a BGR uint8 array (H, W, 3) with H, W >= 1; ``caller`` names the API."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 \
            or 0 in img.shape:
        got = ('%s %s' % (img.dtype, img.shape)) if isinstance(img, np.ndarray) else type(img).__name__
        raise ValueError('%s expects a BGR uint8 image of shape (H, W, 3), got %s' % (caller, got))


def read_image(path):
    """Decode an image file: BGR uint8 (H, W, 3), upright (see the module docstring).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the bytes are not an image OpenCV can decode; names the file.
    """
    path = os.fspath(path)
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError('image %s does not exist' % path) from None
    orientation = 1
    if data.startswith(_JPEG_SOI):
        orientation, _, complete = _scan_jpeg(data)
        if not complete:
            if path not in _warned_truncated:
                _warned_truncated.add(path)
                logger.warning('%s: truncated JPEG (no end-of-image marker); decoded as cv2.imread does, '
                               'the missing part grey', path)
            # What libjpeg's file reader does at a premature end: pretend the marker is there.
            data += _JPEG_EOI
    elif data.startswith(_PNG_SIGNATURE):
        orientation = _png_orientation(data)
    im = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if im is None:
        raise ValueError('cannot decode image %s (corrupt or not an image)' % path)
    return _orient(im, orientation)


def image_size(path):
    """(width, height) in pixels of the image ``read_image(path)`` returns, from the file's header.

    Raises:
        FileNotFoundError, or OSError / PIL.UnidentifiedImageError for a file that is not an image.
    """
    with open(path, 'rb') as f:
        head = f.read(_HEADER_BYTES)
        if (head.startswith(_JPEG_SOI) and not _scan_jpeg(head)[1]
                or head.startswith(_PNG_SIGNATURE) and b'IDAT' not in head):
            head += f.read()  # metadata longer than the first read: rare, read it all
    with Image.open(path) as im:
        width, height = im.size
    return (height, width) if exif_orientation(head) in _TRANSPOSED else (width, height)


# Retries of the random crop before accepting one without a face (the original's LIMIT).
CROP_RETRIES = 25
# Luma weights as the original applies them: to channels in OpenCV's B, G, R order.
_GRAY_COEF = np.array([0.299, 0.587, 0.114])


def brightness_aug(src, x, rng):
    """Scale (H, W, 3) float32 ``src`` in place by 1 + U(-x, x); returns ``src``."""
    src *= np.float32(1.0 + rng.uniform(-x, x))
    return src


def contrast_aug(src, x, rng):
    """Blend ``src`` in place towards its mean grey level with alpha = 1 + U(-x, x)."""
    alpha = 1.0 + rng.uniform(-x, x)
    channel_sums = src.reshape(-1, 3).sum(axis=0, dtype=np.float64)
    gray = 3.0 * (1.0 - alpha) / src.size * float(channel_sums @ _GRAY_COEF)
    src *= np.float32(alpha)
    src += np.float32(gray)
    return src


def saturation_aug(src, x, rng):
    """Blend every pixel of ``src`` in place towards its own grey value, alpha = 1 + U(-x, x)."""
    alpha = 1.0 + rng.uniform(-x, x)
    gray = src @ _GRAY_COEF.astype(np.float32)
    gray *= np.float32(1.0 - alpha)
    src *= np.float32(alpha)
    src += gray[:, :, np.newaxis]
    return src


def color_aug(img, x, color_mode, rng):
    """Colour jitter of an (H, W, 3) float32 image, in place.

    ``color_mode`` 1: brightness only; >= 2: brightness, contrast and saturation in a
    random order. Values are not clipped (as in the original).
    """
    augs = [brightness_aug]
    if color_mode > 1:
        augs = [brightness_aug, contrast_aug, saturation_aug]
        augs = [augs[i] for i in rng.permutation(len(augs))]
    for aug in augs:
        img = aug(img, x, rng)
    return img


def transform(im, pixel_means, pixel_stds, pixel_scale, out=None):
    """(H, W, 3) BGR image -> (1, 3, H, W) float32 RGB tensor (written into ``out`` if given).

    RGB channel i is ``(im[:, :, 2 - i] / pixel_scale - pixel_means[2 - i]) / pixel_stds[2 - i]``,
    i.e. means and stds are given in B, G, R order as in the original.
    """
    if out is None:
        out = np.empty((1, 3) + im.shape[:2], dtype=np.float32)
    for i in range(3):
        # Channel by channel into contiguous planes: much faster than a strided whole-image transpose.
        # Identity steps (scale 1, mean 0, std 1: the mnet/resnet presets) are skipped; they are exact no-ops.
        plane = out[0, i]
        scale, mean, std = np.float32(pixel_scale), np.float32(pixel_means[2 - i]), np.float32(pixel_stds[2 - i])
        if scale != 1:
            np.divide(im[:, :, 2 - i], scale, out=plane)
        else:
            plane[:] = im[:, :, 2 - i]
        if mean != 0:
            plane -= mean
        if std != 1:
            plane /= std
    return out


def load_image(roi_rec):
    """Read ``roi_rec['image']`` (``read_image``), mirror it if ``flipped``, paint ``boxes_mask`` grey.

    The roidb's 'height' and 'width', when present, must be the upright size
    (``image_size``). Raises FileNotFoundError / ValueError naming the file.
    """
    path = roi_rec['image']
    im = read_image(path)
    if 'height' in roi_rec and im.shape[:2] != (roi_rec['height'], roi_rec['width']):
        raise ValueError('image %s is %dx%d but the roidb says %dx%d (width x height)'
                         % (path, im.shape[1], im.shape[0], roi_rec['width'], roi_rec['height']))
    if roi_rec['flipped']:
        im = im[:, ::-1, :]
    if 'boxes_mask' in roi_rec:
        # Regions to ignore are painted mid-grey; negative starts are clipped instead of wrapping.
        for x1, y1, x2, y2 in np.maximum(roi_rec['boxes_mask'][:, :4].astype(int), 0):
            im[y1:y2, x1:x2, :] = 127
    return im


def crop_image(im, roi_rec, rng, cfg):
    """Random square crop of side ``SIZE = cfg.SCALES[0][0]`` at a random scale, plus colour jitter.

    The short side is scaled so that ``int(short * p)`` pixels become SIZE, p drawn
    from ``cfg.PRE_SCALES`` (INTER_LINEAR); then up to CROP_RETRIES random SIZE x SIZE
    windows are tried until one keeps a face: a face is kept when its box centre lies
    inside the window and max(w, h) >= ``cfg.TRAIN.MIN_BOX_SIZE`` (w = x2 - x1). After
    the last retry the window is taken even without faces. Boxes and present landmarks
    are scaled and shifted with the image; missing landmarks stay (-1, -1, -1).

    Args:
        im: (H, W, 3) uint8 BGR image from ``load_image``.
        roi_rec: roidb entry with 'boxes' (N, 4), 'gt_classes' (N,) and, with
            ``cfg.FACE_LANDMARK``, 'landmarks' (N, 5, 3).
        rng: ``np.random.Generator``.

    Returns:
        (SIZE, SIZE, 3) image (float32 after jitter, else uint8) and a copy of
        ``roi_rec`` with 'boxes' (M, 4) float32, 'gt_classes' (M,), 'landmarks'
        (M, 5, 3) float32 and 'im_info' [SIZE, SIZE, im_scale] float32.
    """
    size = cfg.SCALES[0][0]
    pre_scale = cfg.PRE_SCALES[rng.integers(len(cfg.PRE_SCALES))]
    short = int(min(im.shape[:2]) * pre_scale)
    if short < 1:
        raise ValueError('image %s (%dx%d) is too small to crop' % (roi_rec['image'], im.shape[1], im.shape[0]))
    im_scale = float(size) / short
    im = cv2.resize(im, None, None, fx=im_scale, fy=im_scale, interpolation=cv2.INTER_LINEAR)
    if im.shape[0] < size or im.shape[1] < size:
        raise ValueError('PRE_SCALES %s must be <= 1: image %s scaled to %dx%d is smaller than %d'
                         % (cfg.PRE_SCALES, roi_rec['image'], im.shape[1], im.shape[0], size))

    boxes = np.asarray(roi_rec['boxes'], dtype=np.float64).reshape(-1, 4) * im_scale
    if cfg.FACE_LANDMARK:
        landmarks = np.array(roi_rec['landmarks'], dtype=np.float64).reshape(-1, 5, 3)
        present = landmarks[:, :, 2] >= 0
        landmarks[present, :2] *= im_scale

    for retry in range(CROP_RETRIES):
        up = rng.integers(0, im.shape[0] - size + 1)
        left = rng.integers(0, im.shape[1] - size + 1)
        shifted = boxes - [left, up, left, up]
        centre_x = (shifted[:, 0] + shifted[:, 2]) / 2
        centre_y = (shifted[:, 1] + shifted[:, 3]) / 2
        box_size = np.maximum(shifted[:, 2] - shifted[:, 0], shifted[:, 3] - shifted[:, 1])
        valid = np.flatnonzero((centre_x >= 0) & (centre_y >= 0) & (centre_x < size) & (centre_y < size)
                               & (box_size >= cfg.TRAIN.MIN_BOX_SIZE))
        if len(valid) or retry == CROP_RETRIES - 1:
            break

    new_rec = dict(roi_rec)
    new_rec['boxes'] = shifted[valid].astype(np.float32)
    new_rec['gt_classes'] = np.asarray(roi_rec['gt_classes'])[valid]
    if cfg.FACE_LANDMARK:
        landmarks = landmarks[valid]
        present = present[valid]
        landmarks[present, :2] -= [left, up]
        new_rec['landmarks'] = landmarks.astype(np.float32)
    new_rec['im_info'] = np.array([size, size, im_scale], dtype=np.float32)

    im = im[up:up + size, left:left + size, :]
    if cfg.COLOR_MODE > 0 and cfg.COLOR_JITTERING > 0.0:
        im = color_aug(im.astype(np.float32), cfg.COLOR_JITTERING, cfg.COLOR_MODE, rng)
    return im, new_rec


def get_crop_image1(roidb, rng, cfg):
    """Decode, crop and transform every roidb entry; the entries are not modified.

    Compatibility: the original's name for a batch of training crops, for scripts
    written against it; the loader crops sample by sample (``crop_image``).

    Args:
        roidb: list of entries with 'image', 'flipped', 'boxes', 'gt_classes' and
            'landmarks' (optional 'boxes_mask', 'height', 'width').
        rng: ``np.random.Generator`` for every draw (None: freshly seeded).
        cfg: the configuration (``rcnn.config.get_config``).

    Returns:
        processed_ims: list of (1, 3, SIZE, SIZE) float32 RGB tensors (``transform``).
        processed_roidb: list of cropped entries (see ``crop_image``).
    """
    if rng is None:
        rng = np.random.default_rng()
    processed_ims, processed_roidb = [], []
    for roi_rec in roidb:
        im, new_rec = crop_image(load_image(roi_rec), roi_rec, rng, cfg)
        processed_ims.append(transform(im, cfg.PIXEL_MEANS, cfg.PIXEL_STDS, cfg.PIXEL_SCALE))
        processed_roidb.append(new_rec)
    return processed_ims, processed_roidb
