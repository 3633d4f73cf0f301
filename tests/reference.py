"""Plain NumPy reference implementations the compiled kernels are checked against."""
import numpy as np


def overlaps_reference(boxes, query):
    """(N, K) IoU with +1 areas, by broadcasting."""
    boxes = np.asarray(boxes, dtype=np.float64)[:, None, :4]
    query = np.asarray(query, dtype=np.float64)[None, :, :4]
    iw = np.minimum(boxes[..., 2], query[..., 2]) - np.maximum(boxes[..., 0], query[..., 0]) + 1
    ih = np.minimum(boxes[..., 3], query[..., 3]) - np.maximum(boxes[..., 1], query[..., 1]) + 1
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_b = (boxes[..., 2] - boxes[..., 0] + 1) * (boxes[..., 3] - boxes[..., 1] + 1)
    area_q = (query[..., 2] - query[..., 0] + 1) * (query[..., 3] - query[..., 1] + 1)
    union = np.where(inter > 0, area_b + area_q - inter, 1.0)
    return inter / union


def nms_reference(dets, thresh):
    """Brute-force greedy NMS: walk boxes by descending score, keep a box unless a kept
    box overlaps it by IoU > thresh."""
    dets = np.asarray(dets, dtype=np.float32)
    order = dets[:, 4].argsort()[::-1]
    keep = []
    for i in order:
        if all(overlaps_reference(dets[[i]], dets[[k]])[0, 0] <= thresh for k in keep):
            keep.append(int(i))
    return keep


def random_boxes(rng, n, extent=640.0, max_size=200.0):
    """(n, 4) boxes inside [0, extent), some degenerate (zero or negative size)."""
    x1 = rng.uniform(0, extent, n)
    y1 = rng.uniform(0, extent, n)
    w = rng.uniform(-5, max_size, n)
    h = rng.uniform(-5, max_size, n)
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1)
