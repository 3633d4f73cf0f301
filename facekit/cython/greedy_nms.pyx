# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Greedy NMS over boxes in visiting order, float64: the loop of ``facekit.boxes.nms``.

``box_ops.nms`` sorts the boxes and computes their areas; this loop then does,
box pair by box pair, the arithmetic of the MTCNN original's ``nms`` (sides
``(min(x2) - max(x1)) + 1`` clipped at 0, unions ``(a_i + a_j) - inter``), so
the kept boxes are the same. The build turns off floating-point contraction
(``-ffp-contract=off``) so that no compiler fuses those products and sums.
"""
import numpy as np


def greedy_nms(const double[::1] x1, const double[::1] y1, const double[::1] x2, const double[::1] y2,
               const double[::1] areas, double thresh, bint minimum, bint plus_one=True):
    """Positions of the boxes kept, ascending, as an (K,) intp array.

    Args:
        x1, y1, x2, y2, areas: (N,) boxes in the order they are visited (highest
            score first), areas (x2 - x1 + 1) * (y2 - y1 + 1) (without the 1s
            unless ``plus_one``).
        thresh: a box is dropped when its overlap with a kept, earlier box exceeds
            ``thresh``; boxes that do not intersect overlap by 0.
        minimum: overlap is intersection over the smaller area (else over the union).
        plus_one: the +1 pixel convention for the intersection's sides.
    """
    cdef Py_ssize_t n = x1.shape[0]
    if y1.shape[0] != n or x2.shape[0] != n or y2.shape[0] != n or areas.shape[0] != n:
        raise ValueError('x1, y1, x2, y2 and areas must have the same length')
    cdef unsigned char[::1] suppressed = np.zeros(n, dtype=np.uint8)
    keep_arr = np.empty(n, dtype=np.intp)
    cdef Py_ssize_t[::1] keep = keep_arr
    cdef Py_ssize_t num_keep = 0
    cdef Py_ssize_t i, j
    cdef double w, h, inter, overlap
    cdef double one = 1.0 if plus_one else 0.0
    with nogil:
        for i in range(n):
            if suppressed[i]:
                continue
            keep[num_keep] = i
            num_keep += 1
            for j in range(i + 1, n):
                if suppressed[j]:
                    continue
                w = (min(x2[i], x2[j]) - max(x1[i], x1[j])) + one
                w = max(w, 0.0)
                h = (min(y2[i], y2[j]) - max(y1[i], y1[j])) + one
                h = max(h, 0.0)
                inter = w * h
                if inter <= 0:
                    continue
                if minimum:
                    overlap = inter / min(areas[i], areas[j])
                else:
                    overlap = inter / ((areas[i] + areas[j]) - inter)
                if overlap > thresh:
                    suppressed[j] = 1
    return keep_arr[:num_keep]
