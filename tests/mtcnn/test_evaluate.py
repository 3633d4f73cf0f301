"""Recall and precision (``mtcnn.evaluate``): each face matched once."""
import numpy as np
import pytest

from mtcnn.evaluate import match


def test_match_counts_each_face_once():
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0], [100.0, 100.0, 104.0, 104.0]])
    dets = np.array([[0, 0, 10, 10, 0.9], [1, 1, 10, 10, 0.8], [200, 200, 210, 210, 0.7],
                     [100, 100, 104, 104, 0.6]], np.float64)
    counts = match(dets, boxes, ignore=np.array([False, False, True]))
    assert (counts.faces, counts.detections, counts.true_positives) == (2, 3, 1)
    assert counts.recall == 0.5 and counts.precision == pytest.approx(1 / 3)
