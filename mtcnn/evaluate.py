"""Recall and precision of a detector at IoU 0.5 over a RetinaFace ``label.txt``.

    python -m mtcnn.evaluate --label data/retinaface/val/label.txt \\
        --pnet model/pnet-0016.params --rnet model/rnet-0016.params --onet model/onet-0016.params

(the command is ``mtcnn/commands/evaluate.py``; this module imports no MXNet.)

Each ground-truth face is matched to at most one detection and vice versa,
greedily by descending score (a detection matches the unmatched face it
overlaps most, if that IoU >= 0.5). Faces whose larger side is below
``--min-gt`` pixels are left out of the count, as are detections matched to
them (the detector is not asked to find faces below its min_face_size).
"""
import dataclasses
import sys

import numpy as np
from tqdm import tqdm

from facekit.image import read_image
from mtcnn.boxes import iou

__all__ = ['Counts', 'match', 'Agreement', 'pair_boxes', 'compare', 'evaluate']


@dataclasses.dataclass
class Counts:
    faces: int = 0
    detections: int = 0
    true_positives: int = 0

    @property
    def recall(self):
        return self.true_positives / max(self.faces, 1)

    @property
    def precision(self):
        return self.true_positives / max(self.detections, 1)

    def __iadd__(self, other):
        self.faces += other.faces
        self.detections += other.detections
        self.true_positives += other.true_positives
        return self


def match(dets, boxes, ignore=None, thresh=0.5):
    """Counts of one image. dets (N, 5) with scores, boxes (M, 4); ``ignore`` (M,) bool
    marks faces that neither count as missed nor make their match a false positive."""
    ignore = np.zeros(len(boxes), bool) if ignore is None else ignore
    matched = np.zeros(len(boxes), bool)
    true_positives = ignored_dets = 0
    for det in dets[np.argsort(-dets[:, 4], kind='stable')]:
        if not len(boxes):
            break
        overlaps = np.where(matched, -1.0, iou(det, boxes))
        best = int(np.argmax(overlaps))
        if overlaps[best] >= thresh:
            matched[best] = True
            if ignore[best]:
                ignored_dets += 1
            else:
                true_positives += 1
    return Counts(int((~ignore).sum()), len(dets) - ignored_dets, true_positives)


@dataclasses.dataclass
class Agreement:
    """How the faces of two detectors on one image agree (see :func:`compare`)."""
    reference: int          # faces found by the reference detector
    detections: int         # faces found by the other
    matched: int            # one-to-one pairs at IoU >= the threshold
    landmark_error: float   # mean over pairs of the mean point distance / reference width (nan: none)

    @property
    def reference_matched(self):
        return self.matched / max(self.reference, 1)

    @property
    def detections_matched(self):
        return self.matched / max(self.detections, 1)


def pair_boxes(boxes_a, boxes_b, thresh=0.5):
    """One-to-one pairs (i, j) of boxes_a (N, 4+) and boxes_b (M, 4+) at IoU >= thresh.

    Greedy by descending IoU (+1 areas): the most overlapping pair first, each
    box in at most one pair.
    """
    if not len(boxes_a) or not len(boxes_b):
        return []
    overlaps = np.array([iou(box, boxes_b) for box in boxes_a])
    used_a, used_b, pairs = set(), set(), []
    for flat in np.argsort(-overlaps, axis=None, kind='stable'):
        i, j = (int(k) for k in np.unravel_index(flat, overlaps.shape))
        if overlaps[i, j] < thresh:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs.append((i, j))
    return pairs


def compare(reference, reference_landmarks, dets, landmarks, thresh=0.5):
    """Agreement of ``dets`` (M, 5+) and ``landmarks`` (M, 5, 2) with a reference detector's
    ``reference`` (N, 4+) and ``reference_landmarks`` (N, 5, 2) on the same image, pixels.

    Faces pair one to one at IoU >= thresh (:func:`pair_boxes`); a pair's landmark error
    is the mean distance of its five points over the reference box's width x2 - x1.
    """
    pairs = pair_boxes(reference, dets, thresh)
    errors = [np.linalg.norm(np.asarray(landmarks[j]) - np.asarray(reference_landmarks[i]), axis=1).mean()
              / (reference[i][2] - reference[i][0]) for i, j in pairs]
    return Agreement(len(reference), len(dets), len(pairs), float(np.mean(errors)) if errors else float('nan'))


def evaluate(detector, annotations, min_gt=0, thresh=0.5):
    """Total Counts of ``detector.detect`` over the annotated images."""
    total = Counts()
    for ann in tqdm(annotations, desc='evaluate', unit='img'):
        dets, _ = detector.detect(read_image(ann.path))
        sides = np.maximum(ann.boxes[:, 2] - ann.boxes[:, 0], ann.boxes[:, 3] - ann.boxes[:, 1])
        total += match(dets, ann.boxes, sides < min_gt, thresh)
    return total


if __name__ == '__main__':
    from mtcnn.commands import mtcnn_evaluate as _command  # the launcher of python -m mtcnn.evaluate
    sys.exit(_command(prog='python -m mtcnn.evaluate'))
