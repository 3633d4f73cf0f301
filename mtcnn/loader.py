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
    ``mtcnn.samples.mirror_sample``).
    """

    def __init__(self, samples, size, batch_size, shuffle=True, mirror=True, with_landmark=False, seed=0):
        super().__init__(batch_size)
        if len(samples) < batch_size:
            raise ValueError('%d samples are fewer than one batch of %d' % (len(samples), batch_size))
        self.samples = samples
        self.size = size
        self.shuffle = shuffle
        self.mirror = mirror
        self.with_landmark = with_landmark
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(samples))
        self.cursor = 0
        self.reset()

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
        self.cursor = 0
        if self.shuffle:
            self.rng.shuffle(self.order)

    def _load(self, index):
        img = cv2.imread(self.samples.paths[index])
        if img is None:
            raise FileNotFoundError('cannot read sample image %s' % self.samples.paths[index])
        if img.shape != (self.size, self.size, 3):
            raise ValueError('%s is %s, expected %dx%d BGR' % (self.samples.paths[index], img.shape,
                                                               self.size, self.size))
        label = int(self.samples.labels[index])
        box = self.samples.bbox_targets[index]
        points = self.samples.landmark_targets[index]
        if self.mirror and self.rng.random() < 0.5:
            if label == -2:
                img, points = mirror_sample(img, label, points)
            else:
                img, box = mirror_sample(img, label, box)
        return img, label, box, points

    def next(self):
        if self.cursor + self.batch_size > len(self.samples):
            raise StopIteration
        batch = [self._load(i) for i in self.order[self.cursor:self.cursor + self.batch_size]]
        self.cursor += self.batch_size
        images, labels, boxes, points = zip(*batch)
        label = [mx.nd.array(labels), mx.nd.array(np.stack(boxes))]
        if self.with_landmark:
            label.append(mx.nd.array(np.stack(points)))
        return mx.io.DataBatch(data=[mx.nd.array(transform(np.stack(images)))], label=label, pad=0,
                               provide_data=self.provide_data, provide_label=self.provide_label)
