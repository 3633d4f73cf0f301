"""The image scales and flips of ``test_widerface.py --mode``, as the original's
test_widerface.py chose them; INT8 calibration prepares its images at mode 0's scale."""
import numpy as np

__all__ = ['SINGLE_SCALE', 'PYRAMID_BASE', 'TEST_SCALES', 'MODES', 'base_scale', 'get_scales']

SINGLE_SCALE = (1600, 2150)  # mode 0: target short side, maximum long side
PYRAMID_BASE = (800, 1200)  # modes 1, 2: base scale the pyramid is relative to
TEST_SCALES = (500, 800, 1100, 1400, 1700)
MODES = {  # mode -> (pyramid and flip, bbox voting)
    0: (False, False),
    1: (True, True),
    2: (True, False),
}


def base_scale(im_shape, target_size, max_size):
    """Scale bringing the short side to ``target_size`` unless the long side would exceed ``max_size``."""
    im_size_min = min(im_shape[0:2])
    im_size_max = max(im_shape[0:2])
    im_scale = float(target_size) / float(im_size_min)
    # np.round (half to even) as the original: a long side of exactly max_size + 0.5 still fits.
    if np.round(im_scale * im_size_max) > max_size:
        im_scale = float(max_size) / float(im_size_max)
    return im_scale


def get_scales(im_shape, mode):
    """Scales and flip for one image of shape (H, W[, C]) under ``--mode``.

    Returns:
        (scales, do_flip): list of float resize factors, bool.
    """
    pyramid, _ = MODES[mode]
    if not pyramid:
        return [base_scale(im_shape, *SINGLE_SCALE)], False
    target_size, max_size = PYRAMID_BASE
    im_scale = base_scale(im_shape, target_size, max_size)
    return [float(s) / target_size * im_scale for s in TEST_SCALES], True
