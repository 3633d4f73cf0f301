# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Pairwise IoU of two box sets, +1 pixel convention (a box [0, 0, 9, 9] is 10 x 10)."""
import numpy as np

from rcnn.cython._checks import as_real_matrix


def bbox_overlaps_cython(boxes, query_boxes):
    """IoU of every box with every query box.

    Args:
        boxes: (N, >=4) x1, y1, x2, y2 in pixels; extra columns (a class, a score) are ignored.
        query_boxes: (K, >=4) likewise.

    Returns:
        (N, K) float64 IoU; pairs that do not intersect (including degenerate
        boxes with x2 < x1) are 0.
    """
    b_arr = as_real_matrix(boxes, 'boxes', np.float64, 4)
    q_arr = as_real_matrix(query_boxes, 'query_boxes', np.float64, 4)
    cdef const double[:, ::1] b = b_arr
    cdef const double[:, ::1] q = q_arr
    cdef Py_ssize_t n_boxes = b.shape[0]
    cdef Py_ssize_t n_query = q.shape[0]
    out = np.zeros((n_boxes, n_query), dtype=np.float64)
    cdef double[:, ::1] o = out
    cdef double[::1] box_areas = np.empty(n_boxes, dtype=np.float64)
    cdef Py_ssize_t n, k
    cdef double iw, ih, inter, qx1, qy1, qx2, qy2, q_area
    with nogil:
        for n in range(n_boxes):
            box_areas[n] = (b[n, 2] - b[n, 0] + 1) * (b[n, 3] - b[n, 1] + 1)
        for n in range(n_boxes):
            for k in range(n_query):
                iw = min(b[n, 2], q[k, 2]) - max(b[n, 0], q[k, 0]) + 1
                if iw <= 0:
                    continue
                ih = min(b[n, 3], q[k, 3]) - max(b[n, 1], q[k, 1]) + 1
                if ih <= 0:
                    continue
                inter = iw * ih
                q_area = (q[k, 2] - q[k, 0] + 1) * (q[k, 3] - q[k, 1] + 1)
                o[n, k] = inter / (box_areas[n] + q_area - inter)
    return out
