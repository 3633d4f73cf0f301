"""Box operations shared by RetinaFace, MTCNN, the WIDER evaluation and the synthetic data, in NumPy.
No MXNet import here.

Boxes are (N, 4+) ``x1, y1, x2, y2`` in pixels; extra columns (a score) are ignored.
``plus_one`` selects the pixel convention where both are in use:

* True (the detectors' and the WIDER toolkit's): a box covers columns x1..x2, so its
  width is ``x2 - x1 + 1`` and its centre ``x1 + 0.5 * (width - 1)``;
* False: continuous coordinates, width ``x2 - x1``.

The Cython kernels are the fast paths: of the +1 IoU (``facekit.cython.bbox``), of
union NMS in float32 for RetinaFace (``facekit.cython.cpu_nms``), and of the greedy
loop of ``nms`` here (``facekit.cython.greedy_nms``: float64, 'Union' and
'Minimum', for the MTCNN cascade).
"""
import numpy as np

from facekit.cython.cpu_nms import cpu_nms
from facekit.cython.greedy_nms import greedy_nms

__all__ = ['widths_centres', 'areas', 'pairwise_overlap', 'matched_pairs', 'nms', 'cpu_nms_wrapper']


def widths_centres(boxes, plus_one=True):
    """Widths, heights and centres (x, y) of (N, 4+) boxes, each (N,) float64."""
    boxes = np.asarray(boxes, dtype=np.float64)
    one = 1.0 if plus_one else 0.0
    widths = boxes[:, 2] - boxes[:, 0] + one
    heights = boxes[:, 3] - boxes[:, 1] + one
    return widths, heights, boxes[:, 0] + 0.5 * (widths - one), boxes[:, 1] + 0.5 * (heights - one)


def areas(boxes, plus_one=True):
    """(N,) float64 areas of (N, 4+) boxes."""
    boxes = np.asarray(boxes, dtype=np.float64)
    one = 1.0 if plus_one else 0.0
    return (boxes[:, 2] - boxes[:, 0] + one) * (boxes[:, 3] - boxes[:, 1] + one)


def _check_mode(mode):
    if mode not in ('Union', 'Minimum'):
        raise ValueError("overlap mode must be 'Union' or 'Minimum', got %r" % (mode,))


def _overlap(x1, y1, x2, y2, box_areas, rows, cols, mode, plus_one):
    """(len(rows), len(cols)) overlap of boxes ``rows`` with boxes ``cols``, all given as (N,) columns.

    The arithmetic runs in place on two (rows, cols) buffers with the operations and
    order of the plain formula, so the values are those of the textbook expression.
    """
    w = np.minimum(x2[rows, None], x2[cols])
    w -= np.maximum(x1[rows, None], x1[cols])
    h = np.minimum(y2[rows, None], y2[cols])
    h -= np.maximum(y1[rows, None], y1[cols])
    if plus_one:
        w += 1
        h += 1
    np.maximum(w, 0.0, out=w)
    np.maximum(h, 0.0, out=h)
    inter = np.multiply(w, h, out=w)
    if mode == 'Union':
        denominator = np.add(box_areas[rows, None], box_areas[cols], out=h)
        denominator -= inter
    else:
        denominator = np.minimum(box_areas[rows, None], box_areas[cols], out=h)
    # Boxes that do not intersect overlap by 0, degenerate (zero-area) ones included.
    return np.divide(inter, denominator, out=inter, where=inter > 0)


def pairwise_overlap(boxes, query, mode='Union', plus_one=True):
    """(N, K) float64 overlap of (N, 4+) boxes with (K, 4+) query boxes.

    'Union' is the IoU; 'Minimum' the intersection over the smaller of the two areas.
    Pairs that do not intersect are 0.
    """
    _check_mode(mode)
    boxes = np.atleast_2d(np.asarray(boxes, np.float64))[:, :4]
    query = np.atleast_2d(np.asarray(query, np.float64))[:, :4]
    both = np.concatenate([boxes, query])
    x1, y1, x2, y2 = both.T
    n = len(boxes)
    return _overlap(x1, y1, x2, y2, areas(both, plus_one), np.arange(n), np.arange(n, len(both)), mode, plus_one)


def matched_pairs(boxes, reference, threshold=0.5):
    """Pairs (i, j) of a one-to-one matching of (N, 4+) ``boxes`` with (K, 4+) ``reference``
    boxes at IoU >= ``threshold``, taken greedily by descending IoU; how many of two
    detectors' faces agree (pixels, +1 areas)."""
    if len(boxes) == 0 or len(reference) == 0:
        return []
    overlap = pairwise_overlap(boxes, reference)
    pairs, used_rows, used_cols = [], set(), set()
    for flat in np.argsort(-overlap, axis=None, kind='stable'):
        i, j = divmod(int(flat), overlap.shape[1])
        if overlap[i, j] < threshold:
            break
        if i not in used_rows and j not in used_cols:
            pairs.append((i, j))
            used_rows.add(i)
            used_cols.add(j)
    return pairs


def nms(dets, thresh, mode='Union', plus_one=True):
    """Greedy non-maximum suppression in float64.

    Args:
        dets: (N, 5+) boxes with the score in column 4.
        thresh: a box is dropped when its overlap (``mode``, as ``pairwise_overlap``)
            with a kept, higher-scored box exceeds ``thresh``.

    Returns:
        (K,) int64 indices into ``dets`` of the kept boxes, highest score first.
        Boxes are visited in ``dets[:, 4].argsort()[::-1]`` order, so equal scores
        resolve as in the original implementations.
    """
    _check_mode(mode)
    dets = np.asarray(dets)
    order = dets[:, 4].argsort()[::-1]
    x1, y1, x2, y2 = (np.ascontiguousarray(dets[order, k], dtype=np.float64) for k in range(4))
    box_areas = areas(np.stack([x1, y1, x2, y2], axis=1), plus_one)
    keep = greedy_nms(x1, y1, x2, y2, box_areas, thresh, mode == 'Minimum', plus_one)
    return order[keep].astype(np.int64)


def cpu_nms_wrapper(thresh):
    """RetinaFace's NMS as a function of (N, 5) detections returning the kept indices: the
    Cython ``cpu_nms`` in float32, IoU (+1 areas) above ``thresh`` suppressed. It runs on the
    CPU on every device: the original's CUDA ``gpu_nms`` is not ported (same results)."""
    def _nms(dets):
        return cpu_nms(dets, thresh)
    return _nms
