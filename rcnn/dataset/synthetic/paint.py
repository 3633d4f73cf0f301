"""Drawing primitives of the synthetic images: palettes and cv2 shapes in 1/16-pixel fixed point."""
import cv2
import numpy as np

__all__ = []

# RGB palettes, converted to BGR when drawn.
SKIN = np.array([(255, 224, 196), (241, 194, 160), (224, 172, 130), (198, 134, 96),
                 (161, 102, 70), (120, 75, 50), (90, 56, 37)], np.float64)
HAIR = np.array([(25, 20, 18), (60, 40, 30), (110, 75, 45), (210, 180, 120),
                 (150, 150, 150), (150, 60, 30), (220, 220, 215)], np.float64)
IRIS = np.array([(70, 45, 25), (40, 25, 15), (70, 110, 160), (80, 120, 70)], np.float64)

SHIFT = 4              # cv2 fixed-point bits: features are drawn with 1/16 px precision
ONE = 1 << SHIFT
HEAD_RADIUS = 1.32     # hair/ears reach, in units of the larger face half-axis


def bgr(rgb, scale=1.0):
    """RGB triple times ``scale`` -> BGR colour tuple for cv2, clipped to 0..255."""
    return tuple(min(max(float(c) * scale, 0.0), 255.0) for c in rgb[::-1])


def fx(points):
    """Float pixel coordinates (..., 2) -> int32 fixed-point for cv2 with shift."""
    return np.round(np.asarray(points, np.float64) * ONE).astype(np.int32)


def ellipse(img, centre, axes, angle, colour, thickness=-1, line=cv2.LINE_AA):
    cx, cy = fx(centre)
    ax, ay = fx(np.maximum(axes, 0))
    cv2.ellipse(img, (int(cx), int(cy)), (int(ax), int(ay)), angle, 0, 360, colour, thickness, line, SHIFT)


def poly(img, points, colour, line=cv2.LINE_AA):
    cv2.fillPoly(img, [fx(points)], colour, line, SHIFT)


def polyline(img, points, colour, thickness, closed=False):
    cv2.polylines(img, [fx(points)], closed, colour, max(1, int(round(thickness))), cv2.LINE_AA, SHIFT)


def both(img, idmap, owner, draw, *args, colour, **kwargs):
    """Draw a shape into the image and, as ``owner``, into the pixel-owner map."""
    draw(img, *args, colour=colour, **kwargs)
    draw(idmap, *args, colour=owner, line=cv2.LINE_8, **kwargs)
