"""What a face detection is, for both detectors and the commands. No MXNet import here.

A detector returns ``faces`` (N, 5) float64 ``x1, y1, x2, y2, score`` in pixels of the
input image (+1 convention: the box covers columns x1..x2) by descending score, and
``landmarks`` (N, 5, 2) ``x, y`` in pixels or None: left eye, right eye, nose, left and
right mouth corner ("left" = smaller x on a frontal face).
"""
import numpy as np

__all__ = ['LANDMARK_POINTS', 'LANDMARK_FLIP_ORDER', 'faces_json']

LANDMARK_POINTS = 5
# A horizontal mirror swaps the eyes and the mouth corners.
LANDMARK_FLIP_ORDER = [1, 0, 2, 4, 3]


def faces_json(faces, landmarks):
    """JSON-ready list of {'box', 'score'[, 'landmarks']} for (N, 5) faces and (N, 5, 2) landmarks or None."""
    result = []
    for i, row in enumerate(np.asarray(faces, dtype=np.float64)):
        face = {'box': [float(v) for v in row[:4]], 'score': float(row[4])}
        if landmarks is not None:
            face['landmarks'] = np.asarray(landmarks[i], dtype=np.float64).tolist()
        result.append(face)
    return result
