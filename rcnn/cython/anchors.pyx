# cython: language_level=3, boundscheck=False, wraparound=False
"""Anchors of one feature map: every base anchor shifted to every grid cell."""
import numpy as np

from facekit.cython._checks import as_int, as_real_matrix


def anchors_cython(height, width, stride, base_anchors):
    """Spread ``base_anchors`` over a ``height`` x ``width`` feature map.

    Args:
        height, width: feature-map size in cells (ints >= 0).
        stride: pixels between neighbouring cells (int >= 1).
        base_anchors: (A, 4) x1, y1, x2, y2 anchors of the cell at the origin, pixels.

    Returns:
        (height, width, A, 4) float32: anchor k of cell (ih, iw) is
        ``base_anchors[k] + (iw * stride, ih * stride, iw * stride, ih * stride)``.
    """
    cdef int h = as_int(height, 'height', 0)
    cdef int w = as_int(width, 'width', 0)
    cdef int s = as_int(stride, 'stride', 1)
    base = as_real_matrix(base_anchors, 'base_anchors', np.float32, 4)
    cdef const float[:, ::1] b = base
    cdef Py_ssize_t num_anchors = b.shape[0]
    out = np.empty((h, w, num_anchors, 4), dtype=np.float32)
    cdef float[:, :, :, ::1] o = out
    cdef int ih, iw
    cdef Py_ssize_t k
    cdef float sx, sy
    with nogil:
        for ih in range(h):
            sy = ih * s
            for iw in range(w):
                sx = iw * s
                for k in range(num_anchors):
                    o[ih, iw, k, 0] = b[k, 0] + sx
                    o[ih, iw, k, 1] = b[k, 1] + sy
                    o[ih, iw, k, 2] = b[k, 2] + sx
                    o[ih, iw, k, 3] = b[k, 3] + sy
    return out
