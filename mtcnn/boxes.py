"""Box arithmetic of the MTCNN cascade, NumPy only.

Boxes are (N, 4+) float arrays ``x1, y1, x2, y2[, score, ...]`` in pixels with
the +1 convention: a box covers columns x1..x2, so its width is x2 - x1 + 1.
``nms`` ('Union' / 'Minimum') and the overlaps come from ``facekit.boxes``.
"""
import numpy as np

from facekit.boxes import nms, pairwise_overlap

__all__ = ['nms', 'iou', 'square', 'calibrate', 'pad']


def iou(box, boxes):
    """IoU (+1 areas) of one box (4,) against boxes (N, 4+); returns (N,)."""
    return pairwise_overlap(box, boxes)[0]


def square(boxes):
    """Grow each box to a square of side max(w, h) about its centre; other columns kept."""
    out = np.array(boxes, dtype=np.float64, copy=True)
    h = boxes[:, 3] - boxes[:, 1] + 1
    w = boxes[:, 2] - boxes[:, 0] + 1
    side = np.maximum(h, w)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side - 1
    out[:, 3] = out[:, 1] + side - 1
    return out


def calibrate(boxes, reg):
    """Apply regression offsets (N, 4), relative to w/h with +1, to boxes (N, 4+)."""
    out = np.array(boxes, dtype=np.float64, copy=True)
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, 0:4] = out[:, 0:4] + np.stack([w, h, w, h], axis=1) * reg
    return out


def pad(boxes, width, height):
    """Source and target windows for cropping integer boxes out of a W x H image.

    Args:
        boxes: (N, 4+) integral-valued boxes, possibly reaching outside the image.

    Returns:
        src: (N, 4) int ``x1, y1, x2, y2`` clipped to the image (inclusive);
        dst: (N, 4) int where that window lands in the box-sized crop (inclusive);
        size: (N, 2) int crop ``w, h`` = x2 - x1 + 1, y2 - y1 + 1 of the box.
    """
    b = np.asarray(boxes[:, :4], np.float64)
    w = b[:, 2] - b[:, 0] + 1
    h = b[:, 3] - b[:, 1] + 1
    src = np.stack([np.maximum(b[:, 0], 0), np.maximum(b[:, 1], 0),
                    np.minimum(b[:, 2], width - 1), np.minimum(b[:, 3], height - 1)], axis=1)
    dst = np.stack([src[:, 0] - b[:, 0], src[:, 1] - b[:, 1],
                    w - 1 - (b[:, 2] - src[:, 2]), h - 1 - (b[:, 3] - src[:, 3])], axis=1)
    return src.astype(np.int64), dst.astype(np.int64), np.stack([w, h], axis=1).astype(np.int64)
