"""Benchmark of the Cython core against vectorised NumPy versions.

    python -m bench.core [--repeat 15]

Prints median times and the NumPy / Cython ratio (higher is better for Cython).
"""
import argparse
import timeit

import numpy as np

from facekit.cython.bbox import bbox_overlaps_cython
from facekit.cython.cpu_nms import cpu_nms


def overlaps_numpy(boxes, query):
    """Vectorised IoU with +1 areas (the natural NumPy version)."""
    b = boxes[:, None, :]
    q = query[None, :, :]
    iw = np.clip(np.minimum(b[..., 2], q[..., 2]) - np.maximum(b[..., 0], q[..., 0]) + 1, 0, None)
    ih = np.clip(np.minimum(b[..., 3], q[..., 3]) - np.maximum(b[..., 1], q[..., 1]) + 1, 0, None)
    inter = iw * ih
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    area_q = (q[..., 2] - q[..., 0] + 1) * (q[..., 3] - q[..., 1] + 1)
    return inter / (area_b + area_q - inter)


def nms_numpy(dets, thresh):
    """The usual vectorised greedy NMS (py_cpu_nms)."""
    x1, y1, x2, y2, scores = dets.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        order = rest[inter / (areas[i] + areas[rest] - inter) <= thresh]
    return keep


def boxes(rng, n, extent, size):
    xy = rng.uniform(0, extent, (n, 2))
    wh = rng.uniform(4, size, (n, 2))
    return np.hstack([xy, xy + wh])


def median_ms(fn, repeat):
    fn()
    return 1000 * float(np.median(timeit.repeat(fn, number=1, repeat=repeat)))


def main():
    parser = argparse.ArgumentParser(prog='python -m bench.core', description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=15)
    args = parser.parse_args()
    rng = np.random.RandomState(0)
    rows = []
    for n, k in [(16800, 50), (16800, 500)]:
        a, q = boxes(rng, n, 640, 300), boxes(rng, k, 640, 300)
        assert np.allclose(bbox_overlaps_cython(a, q), overlaps_numpy(a, q))
        rows.append(('bbox_overlaps %dx%d' % (n, k),
                     median_ms(lambda: overlaps_numpy(a, q), args.repeat),
                     median_ms(lambda: bbox_overlaps_cython(a, q), args.repeat)))
    for n in [1000, 10000]:
        # Detector-like input: many overlapping candidates around fewer objects.
        centres = boxes(rng, n // 20, 1000, 100)
        jitter = rng.normal(0, 4, (n, 4))
        dets = np.hstack([centres[rng.randint(0, len(centres), n)] + jitter,
                          rng.uniform(0, 1, (n, 1))]).astype(np.float32)
        assert cpu_nms(dets, 0.4) == [int(i) for i in nms_numpy(dets, 0.4)]
        rows.append(('nms %d boxes' % n,
                     median_ms(lambda: nms_numpy(dets, 0.4), args.repeat),
                     median_ms(lambda: cpu_nms(dets, 0.4), args.repeat)))
    print('%-28s %12s %12s %10s' % ('operation', 'numpy ms', 'cython ms', 'speed-up'))
    for name, numpy_ms, cython_ms in rows:
        print('%-28s %12.3f %12.3f %9.1fx' % (name, numpy_ms, cython_ms, numpy_ms / cython_ms))


if __name__ == '__main__':
    main()
