"""Detections drawn on an image, or blurred out of it: the pictures and videos of ``detect.py``
and ``python -m mtcnn.demo``, and the anonymising ``blur_faces`` of the Python API."""
import math

import cv2
import numpy as np

__all__ = ['BOX_COLOR', 'LANDMARK_COLORS', 'draw_detections', 'face_region', 'blur_faces']

BOX_COLOR = (0, 255, 0)  # BGR
# BGR colours of the five landmarks: left eye, right eye, nose, left and right mouth corner.
LANDMARK_COLORS = [(0, 0, 255), (0, 255, 255), (255, 0, 255), (0, 255, 0), (255, 0, 0)]
# blur_faces blurs a box at this resolution (pixels on its longer side) and scales it back:
# the same smooth result as a blur at full size, at a cost that does not grow with the box.
_BLUR_SIDE = 16


def draw_detections(img, boxes, landmarks=None):
    """A copy of the BGR image ``img`` with the boxes, their scores and their landmarks drawn.

    Args:
        boxes: (N, 5) x1, y1, x2, y2, score in pixels.
        landmarks: (N, 5, 2) x, y in pixels, or None.
    """
    out = img.copy()
    for x1, y1, x2, y2, score in np.asarray(boxes, np.float64)[:, :5]:
        p1, p2 = (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2)))
        cv2.rectangle(out, p1, p2, BOX_COLOR, 2)
        cv2.putText(out, '%.3f' % score, (p1[0], max(p1[1] - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, BOX_COLOR, 1)
    # Landmarks after every box, so that no box or score covers them.
    for points in ([] if landmarks is None else landmarks):
        for (x, y), color in zip(points, LANDMARK_COLORS):
            cv2.circle(out, (int(round(x)), int(round(y))), 2, color, -1)
    return out


def face_region(box, height, width):
    """The pixels a box covers in an image of ``height`` x ``width``, as slices (rows, columns):
    columns floor(x1)..ceil(x2) and rows floor(y1)..ceil(y2) (the +1 convention: x2 is the last
    column), clipped to the image; empty for a box outside it."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    columns = slice(min(max(math.floor(x1), 0), width), min(max(math.ceil(x2) + 1, 0), width))
    rows = slice(min(max(math.floor(y1), 0), height), min(max(math.ceil(y2) + 1, 0), height))
    return rows, columns


def blur_faces(image, faces):
    """A copy of ``image`` with every face blurred beyond recognition, the other pixels unchanged.

    Each box's region (``face_region``) becomes a Gaussian blur of itself with a standard
    deviation of half the box's longer side (edges reflected), which leaves only its colours'
    slow gradient: no eyes, mouth or outline. Overlapping boxes are blurred one after another.

    Args:
        image: (H, W, C) or (H, W) array, e.g. a BGR uint8 image.
        faces: (N, 4+) boxes x1, y1, x2, y2 (then e.g. the score, ignored) in pixels, as the
            detectors return them.

    Raises:
        ValueError: ``faces`` is not (N, 4+) finite numbers.
    """
    faces = np.asarray(faces, dtype=np.float64)
    if faces.size == 0:
        return image.copy()
    if faces.ndim != 2 or faces.shape[1] < 4 or not np.isfinite(faces[:, :4]).all():
        raise ValueError('blur_faces expects (N, 4+) finite boxes x1, y1, x2, y2 in pixels, got shape %s'
                         % (faces.shape,))
    out = image.copy()
    height, width = out.shape[:2]
    for box in faces:
        rows, columns = face_region(box, height, width)
        region = out[rows, columns]
        if region.size == 0:
            continue
        h, w = region.shape[:2]
        scale = min(1.0, _BLUR_SIDE / max(h, w))
        small = cv2.resize(region, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), max(small.shape[:2]) / 2.0, borderType=cv2.BORDER_REFLECT)
        out[rows, columns] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).reshape(region.shape)
    return out
