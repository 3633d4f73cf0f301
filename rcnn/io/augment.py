"""Training crops (``crop_image``), colour jitter and the network's input transform (RetinaFace).

Images are BGR uint8 as read by ``facekit.image.read_image``; the network input is RGB
float32 (1, 3, H, W). Boxes are x1, y1, x2, y2 in pixels; landmarks (N, 5, 3) x, y,
visibility with -1 marking a missing point. Every random draw comes from an explicit
``np.random.Generator`` so a crop is reproducible from its seed.
"""
import cv2
import numpy as np

from facekit.image import read_image

__all__ = ['CROP_RETRIES', 'load_image', 'crop_image', 'get_crop_image1', 'color_aug', 'brightness_aug',
           'contrast_aug', 'saturation_aug', 'transform']

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
