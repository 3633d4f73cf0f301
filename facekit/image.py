"""Image files as every command reads them, and the checks of detector inputs. No MXNet import here.

Images are BGR uint8 (H, W, 3) as decoded by OpenCV. :func:`read_image` is the one reader
of training, testing, detection and the MTCNN commands, and :func:`image_size` gives the
size it will return without decoding the pixels.

* EXIF orientation is applied: a JPEG (APP1) or PNG (eXIf) whose EXIF Orientation tag
  is 2..8 is flipped / rotated upright, exactly as ``cv2.imread`` does by default (the
  original's reader at test time). ``label.txt`` coordinates are therefore in the upright
  frame, the frame every image viewer shows; files without the tag are decoded unchanged.
* A truncated JPEG (no end-of-image marker reached through its segment structure) is
  decoded as ``cv2.imread`` decodes it, the missing rows grey, and a warning names the
  file once per process: the data stays usable, and the cause of libjpeg's anonymous
  "Premature end of JPEG file" is known.
* An empty file, or bytes OpenCV cannot decode, is a ValueError naming the file.
"""
import logging
import math
import numbers
import os
import re

import cv2
import numpy as np

__all__ = ['IMAGE_EXTENSIONS', 'image_files', 'read_image', 'image_size', 'exif_orientation', 'MAX_MEGAPIXELS',
           'check_megapixels', 'nocrop_shape', 'input_shape', 'check_scales', 'check_image']

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

# Largest network input the detectors accept unless told otherwise, in megapixels: several times
# the largest input of test_widerface.py --mode 1 (1700 x 2550). A scale that asks for more is
# refused before anything is allocated (memory per megapixel: docs/benchmarks.md).
MAX_MEGAPIXELS = 20.0
# What a folder of images means to the commands that take one (detect.py --image, --calib).
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')


def image_files(folder):
    """The paths of ``folder``'s image files (by :data:`IMAGE_EXTENSIONS`, any case), sorted by name."""
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))
            if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, name))]


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
        ValueError: an empty file, or bytes that are not an image OpenCV can decode; names the file.
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
    if not data:
        raise ValueError('image %s is empty (0 bytes)' % path)
    try:
        im = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as error:
        raise ValueError('cannot decode image %s: %s' % (path, str(error).strip().splitlines()[-1])) from None
    if im is None:
        raise ValueError('cannot decode image %s (corrupt or not an image)' % path)
    return _orient(im, orientation)


def _jpeg_size(data):
    """(width, height) of the first frame header (SOF0..SOF15) of JPEG bytes ``data``, or None."""
    pos, size = 2, len(data)
    while pos + 9 <= size:
        if data[pos] != 0xFF:
            pos = data.find(b'\xff', pos)
            if pos < 0:
                return None
            continue
        marker = data[pos + 1]
        if marker == 0xFF or marker in (0x00, 0x01) or 0xD0 <= marker <= 0xD8:
            pos += 1 if marker == 0xFF else 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[pos + 7:pos + 9], 'big'), int.from_bytes(data[pos + 5:pos + 7], 'big')
        if marker in (0xD9, 0xDA):  # the end, or a scan before any frame header
            return None
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], 'big')
    return None


def _stored_size(path, head):
    """(width, height) as stored (before the EXIF orientation) from the header bytes ``head``: JPEG,
    PNG and BMP headers are read; other formats are decoded."""
    if head.startswith(_JPEG_SOI):
        size = _jpeg_size(head)
    elif head.startswith(_PNG_SIGNATURE) and head[12:16] == b'IHDR':
        size = int.from_bytes(head[16:20], 'big'), int.from_bytes(head[20:24], 'big')
    elif head.startswith(b'BM') and len(head) >= 26:
        width = int.from_bytes(head[18:22], 'little', signed=True)
        size = width, abs(int.from_bytes(head[22:26], 'little', signed=True))  # negative: stored top-down
    else:
        size = None
    if size is None or min(size) < 1:
        im = read_image(path)  # another format, or a damaged header: decode it (the error names the file)
        return im.shape[1], im.shape[0]
    return size


def image_size(path):
    """(width, height) in pixels of the image ``read_image(path)`` returns, from the file's header.

    Raises:
        FileNotFoundError, or ValueError naming the file for one that is not an image.
    """
    path = os.fspath(path)
    try:
        with open(path, 'rb') as f:
            head = f.read(_HEADER_BYTES)
            if (head.startswith(_JPEG_SOI) and not _scan_jpeg(head)[1]
                    or head.startswith(_PNG_SIGNATURE) and b'IDAT' not in head):
                head += f.read()  # metadata longer than the first read: rare, read it all
    except FileNotFoundError:
        raise FileNotFoundError('image %s does not exist' % path) from None
    width, height = _stored_size(path, head)
    if exif_orientation(head) in _TRANSPOSED:
        return height, width
    return width, height
