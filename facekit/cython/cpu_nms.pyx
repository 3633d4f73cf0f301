# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Greedy non-maximum suppression on the CPU, +1 pixel area convention."""
import numpy as np

from facekit.cython._checks import as_real_matrix


def cpu_nms(dets, thresh):
    """Indices of the boxes kept by greedy NMS.

    Args:
        dets: (N, >=5) x1, y1, x2, y2, score (pixels); computed in float32 as the original.
        thresh: a box is suppressed when its IoU with a kept, higher-scored box exceeds it.

    Returns:
        list of int indices into ``dets``, by descending score.
    """
    if isinstance(thresh, (bool, np.bool_)) or not isinstance(thresh, (int, float, np.integer, np.floating)):
        raise TypeError('thresh must be a number, got %r' % (thresh,))
    d = as_real_matrix(dets, 'dets', np.float32, 5)
    # Same sort call as the original, so ties are broken identically.
    order_arr = d[:, 4].argsort()[::-1].astype(np.intp)
    # Gather in score order so the inner loop walks contiguous memory.
    sorted_boxes = np.ascontiguousarray(d[order_arr, :4])
    cdef const float[:, ::1] s = sorted_boxes
    cdef Py_ssize_t n = s.shape[0]
    cdef float[::1] areas = np.empty(n, dtype=np.float32)
    cdef unsigned char[::1] suppressed = np.zeros(n, dtype=np.uint8)
    cdef Py_ssize_t[::1] keep_pos = np.empty(n, dtype=np.intp)
    cdef Py_ssize_t num_keep = 0
    cdef Py_ssize_t i, j
    cdef float t = thresh
    cdef float ix1, iy1, ix2, iy2, iarea, w, h, inter, ovr
    with nogil:
        for i in range(n):
            areas[i] = (s[i, 2] - s[i, 0] + 1) * (s[i, 3] - s[i, 1] + 1)
        for i in range(n):
            if suppressed[i]:
                continue
            keep_pos[num_keep] = i
            num_keep += 1
            ix1 = s[i, 0]
            iy1 = s[i, 1]
            ix2 = s[i, 2]
            iy2 = s[i, 3]
            iarea = areas[i]
            for j in range(i + 1, n):
                if suppressed[j]:
                    continue
                w = min(ix2, s[j, 2]) - max(ix1, s[j, 0]) + 1
                if w <= 0:
                    continue
                h = min(iy2, s[j, 3]) - max(iy1, s[j, 1]) + 1
                if h <= 0:
                    continue
                inter = w * h
                ovr = inter / (iarea + areas[j] - inter)
                if ovr > t:
                    suppressed[j] = 1
    return order_arr[np.asarray(keep_pos[:num_keep])].tolist()
