"""Training data: parse a sample list and iterate over it in shuffled minibatches."""
import dataclasses
import os

import cv2
import mxnet as mx
import numpy as np

from mtcnn.detector import transform
from mtcnn.samples import mirror_sample

__all__ = ['SampleList', 'read_sample_list', 'ImageListIter']

_TARGET_LENGTH = {1: 4, -1: 4, 0: 0, -2: 10}


@dataclasses.dataclass
class SampleList:
    """paths (N,) absolute; labels (N,) int 1/0/-1/-2; bbox_targets (N, 4);
    landmark_targets (N, 10); zeros where a sample has no such target."""
    paths: list
    labels: np.ndarray
    bbox_targets: np.ndarray
    landmark_targets: np.ndarray

    def __len__(self):
        return len(self.paths)


def read_sample_list(path, root=None):
    """Read ``<image> <label> [targets]`` lines (see ``mtcnn.samples``); image paths
    are relative to ``root`` (default: the list's directory)."""
    root = root or os.path.dirname(os.path.abspath(path))
    paths, labels, boxes, points = [], [], [], []
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                label = int(parts[1])
                values = [float(v) for v in parts[2:]]
            except (IndexError, ValueError):
                raise ValueError('%s:%d: expected "<image> <label> [targets]"' % (path, lineno)) from None
            if label not in _TARGET_LENGTH:
                raise ValueError('%s:%d: label must be 1, 0, -1 or -2, got %s' % (path, lineno, parts[1]))
            if len(values) != _TARGET_LENGTH[label]:
                raise ValueError('%s:%d: label %d needs %d target values, got %d'
                                 % (path, lineno, label, _TARGET_LENGTH[label], len(values)))
            paths.append(os.path.join(root, parts[0]))
            labels.append(label)
            boxes.append(values if len(values) == 4 else [0.0] * 4)
            points.append(values if len(values) == 10 else [0.0] * 10)
    return SampleList(paths, np.array(labels, np.int64), np.array(boxes, np.float64).reshape(-1, 4),
                      np.array(points, np.float64).reshape(-1, 10))


class ImageListIter(mx.io.DataIter):
    """Minibatches ``data`` (B, 3, S, S) float32 with labels ``label`` (B,),
    ``bbox_target`` (B, 4) and, with ``with_landmark``, ``landmark_target`` (B, 10).

    Each epoch visits every sample once in a new random order (``shuffle``);
    the last incomplete batch is dropped. With ``mirror`` every sample is
    mirrored left-right with probability 0.5 (targets adjusted, see
    ``mtcnn.samples.mirror_sample``). The order of epoch e and the mirroring of its
    batch b are drawn from generators seeded by (seed, e) and (seed, e, b) alone, so a
    run resumed at ``begin_epoch``, ``begin_batch`` gets the batches the uninterrupted
    run got. ``reset()`` starts the next epoch (a no-op before a batch of one is taken).
    """

    def __init__(self, samples, size, batch_size, shuffle=True, mirror=True, with_landmark=False, seed=0,
                 begin_epoch=0, begin_batch=0):
        super().__init__(batch_size)
        if len(samples) < batch_size:
            raise ValueError('%d samples are fewer than one batch of %d' % (len(samples), batch_size))
        self.samples = samples
        self.size = size
        self.shuffle = shuffle
        self.mirror = mirror
        self.with_landmark = with_landmark
        self.seed = seed
        self.batches_per_epoch = len(samples) // batch_size
        if not 0 <= begin_batch < self.batches_per_epoch:
            raise ValueError('begin_batch %d: an epoch has %d batches' % (begin_batch, self.batches_per_epoch))
        self.epoch = begin_epoch - 1
        self._start_epoch(begin_batch)

    @property
    def provide_data(self):
        return [mx.io.DataDesc('data', (self.batch_size, 3, self.size, self.size))]

    @property
    def provide_label(self):
        labels = [mx.io.DataDesc('label', (self.batch_size,)),
                  mx.io.DataDesc('bbox_target', (self.batch_size, 4))]
        if self.with_landmark:
            labels.append(mx.io.DataDesc('landmark_target', (self.batch_size, 10)))
        return labels

    def reset(self):
        if self.batch != self._first:
            self._start_epoch(0)

    def _start_epoch(self, first):
        self.epoch += 1
        count = len(self.samples)
        self.order = np.random.default_rng([self.seed, 0, self.epoch]).permutation(count) if self.shuffle \
            else np.arange(count)
        self.batch = self._first = first

    def _load(self, index, mirror):
        img = cv2.imread(self.samples.paths[index])
        if img is None:
            raise FileNotFoundError('cannot read sample image %s' % self.samples.paths[index])
        if img.shape != (self.size, self.size, 3):
            raise ValueError('%s is %s, expected %dx%d BGR' % (self.samples.paths[index], img.shape,
                                                               self.size, self.size))
        label = int(self.samples.labels[index])
        box = self.samples.bbox_targets[index]
        points = self.samples.landmark_targets[index]
        if mirror:
            if label == -2:
                img, points = mirror_sample(img, label, points)
            else:
                img, box = mirror_sample(img, label, box)
        return img, label, box, points

    def next(self):
        if self.batch >= self.batches_per_epoch:
            raise StopIteration
        rows = self.order[self.batch * self.batch_size:(self.batch + 1) * self.batch_size]
        flips = np.random.default_rng([self.seed, 1, self.epoch, self.batch]).random(len(rows)) < 0.5
        batch = [self._load(i, self.mirror and flip) for i, flip in zip(rows, flips)]
        self.batch += 1
        images, labels, boxes, points = zip(*batch)
        label = [mx.nd.array(labels), mx.nd.array(np.stack(boxes))]
        if self.with_landmark:
            label.append(mx.nd.array(np.stack(points)))
        return mx.io.DataBatch(data=[mx.nd.array(transform(np.stack(images)))], label=label, pad=0,
                               provide_data=self.provide_data, provide_label=self.provide_label)
