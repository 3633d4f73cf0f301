"""Detections drawn on an image: the pictures of ``detect.py`` and ``python -m mtcnn.demo``."""
import cv2
import numpy as np

__all__ = ['BOX_COLOR', 'LANDMARK_COLORS', 'draw_detections']

BOX_COLOR = (0, 255, 0)  # BGR
# BGR colours of the five landmarks: left eye, right eye, nose, left and right mouth corner.
LANDMARK_COLORS = [(0, 0, 255), (0, 255, 255), (255, 0, 255), (0, 255, 0), (255, 0, 0)]


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
