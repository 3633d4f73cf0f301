# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Pairwise IoU of two box sets, +1 pixel convention (a box [0, 0, 9, 9] is 10 x 10)."""
import numpy as np

from facekit.cython._checks import as_real_matrix


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
    cdef double[::1] query_areas = np.empty(n_query, dtype=np.float64)
    cdef Py_ssize_t n, k
    cdef double iw, ih, inter, bx1, by1, bx2, by2, box_area
    with nogil:
        for k in range(n_query):
            query_areas[k] = (q[k, 2] - q[k, 0] + 1) * (q[k, 3] - q[k, 1] + 1)
        for n in range(n_boxes):
            bx1 = b[n, 0]
            by1 = b[n, 1]
            bx2 = b[n, 2]
            by2 = b[n, 3]
            box_area = (bx2 - bx1 + 1) * (by2 - by1 + 1)
            # Branch-free body so the compiler can vectorise over the query boxes;
            # iw, ih > 0 implies both boxes have positive area, so the union is > 0.
            for k in range(n_query):
                iw = max(min(bx2, q[k, 2]) - max(bx1, q[k, 0]) + 1, 0.0)
                ih = max(min(by2, q[k, 3]) - max(by1, q[k, 1]) + 1, 0.0)
                inter = iw * ih
                o[n, k] = inter / (box_area + query_areas[k] - inter) if inter > 0 else 0.0
    return out
