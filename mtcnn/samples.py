"""Training samples of the cascade (seeds 000 and 001), stored as images + text lists.

Every sample is a square crop resized to the net's input size (12, 24 or 48)
and one line of a list file::

    <size>/positive/17.jpg 1 0.05 -0.02 0.01 0.10     positive: IoU >= 0.65, box offsets
    <size>/negative/3.jpg 0                           negative: IoU < 0.3 with every face
    <size>/part/5.jpg -1 0.21 0.12 -0.05 0.30         part face: 0.4 <= IoU < 0.65
    <size>/landmark/9.jpg -2 x1 y1 ... x5 y5          landmark face: 10 normalised points

Box offsets of a crop ``[nx1, ny1, nx2, ny2]`` of side ``size`` against its face
``[x1, y1, x2, y2]`` are ``(x1 - nx1) / size, (y1 - ny1) / size, (x2 - nx2) / size,
(y2 - ny2) / size``. Random P-Net crops span pixels nx1 .. nx1 + size - 1
and use nx2 = nx1 + size; crops from detections (hard examples) are
inclusive boxes and use their own x2 with size = x2 - x1 + 1. Landmark targets
are ``((x - nx1) / size, (y - ny1) / size)`` per point, in the order left eye,
right eye, nose, left mouth corner, right mouth corner, flattened x1, y1, ..., y5.

Faces come from a RetinaFace ``label.txt`` (boxes ``x y w h`` with x2 = x + w,
landmarks with -1 for missing). A list file is written (atomically) after all
its images, so a list never names a missing image.
"""
import dataclasses
import logging
import os

import cv2
import numpy as np
from tqdm import tqdm

from facekit.faces import LANDMARK_FLIP_ORDER as FLIP_ORDER
from facekit.files import atomic_open
from facekit.image import read_image
from facekit.labels import read_label_file
from mtcnn.boxes import iou, square

__all__ = ['Annotation', 'load_annotations', 'SampleWriter', 'box_offsets', 'classify_iou',
           'normalise_landmarks', 'mirror_sample', 'rotate_crop', 'pnet_samples',
           'landmark_samples', 'hard_samples', 'merge_lists', 'LABELS', 'FLIP_ORDER']

LABELS = {'positive': 1, 'negative': 0, 'part': -1, 'landmark': -2}
NEG_IOU, PART_IOU, POS_IOU = 0.3, 0.4, 0.65
ROTATION_DEG = 5.0

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Annotation:
    """One image: absolute path, boxes (N, 4) float64 x1 y1 x2 y2 (x2 = x + w),
    landmarks (N, 5, 2) float64 with NaN rows where a face has no landmarks."""
    path: str
    boxes: np.ndarray
    landmarks: np.ndarray


def load_annotations(label_path, image_root=None):
    """Read a RetinaFace ``label.txt``; images live under ``image_root``
    (default: ``images/`` beside the label file). Faces with w or h <= 0 are dropped."""
    image_root = image_root or os.path.join(os.path.dirname(os.path.abspath(label_path)), 'images')
    annotations = []
    for record in read_label_file(label_path):
        raw = record.boxes.astype(np.float64)
        keep = (raw[:, 2] > 0) & (raw[:, 3] > 0)
        boxes = np.concatenate([raw[:, :2], raw[:, :2] + raw[:, 2:4]], axis=1)[keep]
        points = record.landmarks[keep].astype(np.float64)
        landmarks = points[:, :, :2].copy()
        landmarks[(points[:, :, 2] == -1).any(axis=1)] = np.nan
        annotations.append(Annotation(os.path.join(image_root, record.path), boxes, landmarks))
    return annotations


def box_offsets(face, crop, size):
    """Regression target (4,) of ``face`` x1 y1 x2 y2 relative to ``crop`` of side ``size``."""
    return (np.asarray(face[:4], np.float64) - np.asarray(crop[:4], np.float64)) / float(size)


def classify_iou(overlap):
    """'positive' (>= 0.65), 'part' ([0.4, 0.65)), 'negative' (< 0.3) or None (in between)."""
    if overlap >= POS_IOU:
        return 'positive'
    if overlap >= PART_IOU:
        return 'part'
    if overlap < NEG_IOU:
        return 'negative'
    return None


def normalise_landmarks(points, crop, size):
    """Points (5, 2) in pixels -> (5, 2) relative to the crop's top-left, in units of ``size``."""
    return (np.asarray(points, np.float64) - np.asarray(crop[:2], np.float64)) / float(size)


def mirror_sample(image, label, target):
    """Left-right mirror of a sample and its target.

    Box offsets (dx1, dy1, dx2, dy2) become (-dx2, dy1, -dx1, dy2); landmarks
    (10,) become x -> 1 - x with the left/right points swapped (FLIP_ORDER).
    Negatives keep their (empty) target.
    """
    image = image[:, ::-1]
    target = np.asarray(target, np.float64)
    if label in (1, -1):
        target = np.array([-target[2], target[1], -target[0], target[3]])
    elif label == -2:
        points = target.reshape(5, 2)[FLIP_ORDER]
        target = np.stack([1 - points[:, 0], points[:, 1]], axis=1).reshape(10)
    return np.ascontiguousarray(image), target


def rotate_crop(img, crop, size, points, angle):
    """Crop ``[nx1, ny1, nx1 + size)`` of the image rotated by ``angle`` degrees
    (counter-clockwise) about the crop centre; the points (5, 2) are moved with it.

    Returns the (size, size, 3) crop and the moved points in image pixels.
    """
    nx1, ny1 = crop[0], crop[1]
    centre = (nx1 + (size - 1) / 2.0, ny1 + (size - 1) / 2.0)
    rot = cv2.getRotationMatrix2D(centre, angle, 1.0)
    moved = np.asarray(points, np.float64) @ rot[:, :2].T + rot[:, 2]
    # Render only the crop: shift the rotated image so the crop starts at (0, 0).
    shifted = rot.copy()
    shifted[:, 2] -= (nx1, ny1)
    patch = cv2.warpAffine(img, shifted, (int(size), int(size)), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT)
    return patch, moved


class SampleWriter:
    """Writes crops under ``<root>/<size>/<kind>/`` and their list lines.

    ``close()`` writes ``<root>/<size>/<kind>_<size>.txt`` for each kind seen; paths
    in the lists are relative to ``root``.
    """

    def __init__(self, root, size):
        self.root = root
        self.size = size
        self.lines = {kind: [] for kind in LABELS}

    def add(self, kind, patch, target=()):
        """Resize ``patch`` (h, w, 3) to size x size and record it with ``target``."""
        if patch.shape[:2] != (self.size, self.size):
            patch = cv2.resize(patch, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        lines = self.lines[kind]
        rel = '%d/%s/%d.jpg' % (self.size, kind, len(lines))
        path = os.path.join(self.root, rel)
        if not lines:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        if not cv2.imwrite(path, patch):
            raise OSError('cannot write %s' % path)
        precision = '%.4f' if kind == 'landmark' else '%.2f'
        lines.append(' '.join([rel, str(LABELS[kind])] + [precision % v for v in target]))

    def counts(self):
        return {kind: len(lines) for kind, lines in self.lines.items()}

    def list_path(self, kind):
        return os.path.join(self.root, str(self.size), '%s_%d.txt' % (kind, self.size))

    def close(self):
        """Write the list files; returns {kind: list path}."""
        paths = {}
        for kind, lines in self.lines.items():
            if lines:
                paths[kind] = self.list_path(kind)
                with atomic_open(paths[kind], 'w') as f:
                    f.write('\n'.join(lines) + '\n')
        return paths


def _uniform_int(rng, low, high):
    """Integer in [low, high) after truncating the bounds, as numpy's legacy randint; low if empty."""
    low, high = int(low), int(high)
    return low if high <= low else int(rng.integers(low, high))


def _jittered_square(rng, box):
    """A square crop near the face: side in [0.8 min(w, h), 1.25 max(w, h)),
    centre moved by up to 0.2 w / 0.2 h. Returns (nx1, ny1, size)."""
    x1, y1, x2, y2 = box[:4]
    w, h = x2 - x1 + 1, y2 - y1 + 1
    size = _uniform_int(rng, min(w, h) * 0.8, np.ceil(1.25 * max(w, h)))
    delta_x = _uniform_int(rng, -w * 0.2, w * 0.2)
    delta_y = _uniform_int(rng, -h * 0.2, h * 0.2)
    nx1 = int(max(x1 + w / 2 + delta_x - size / 2, 0))
    ny1 = int(max(y1 + h / 2 + delta_y - size / 2, 0))
    return nx1, ny1, size


def pnet_samples(img, boxes, writer, rng, num_negatives=50, min_face=40, num_jitter=20,
                 num_near_negatives=5, max_attempts=1000):
    """P-Net positives, negatives and part faces of one image.

    Args:
        img: BGR uint8 image.
        boxes: (N, 4) faces x1 y1 x2 y2.
        writer: a SampleWriter (size 12).
        num_negatives: random crops with IoU < 0.3 against every face, side in
            [12, min(W, H) / 2); at most ``max_attempts`` tries.
        min_face: faces with max(w, h) below this are not used for positives and
            part faces (their boxes are unreliable), nor those starting outside the image.
        num_jitter: crops per face around it, positive (IoU >= 0.65 with that face)
            or part (IoU in [0.4, 0.65)).
        num_near_negatives: crops per face overlapping it, kept if IoU < 0.3 with all.
    """
    height, width = img.shape[:2]
    max_side = min(width, height) // 2
    if max_side <= 12:
        return
    found = attempts = 0
    while found < num_negatives and attempts < max_attempts:
        attempts += 1
        size = int(rng.integers(12, max_side))
        nx, ny = int(rng.integers(0, width - size)), int(rng.integers(0, height - size))
        crop = np.array([nx, ny, nx + size, ny + size], np.float64)
        if not len(boxes) or iou(crop, boxes).max() < NEG_IOU:
            writer.add('negative', img[ny:ny + size, nx:nx + size])
            found += 1

    for box in boxes:
        x1, y1, x2, y2 = box
        w, h = x2 - x1 + 1, y2 - y1 + 1
        if max(w, h) < min_face or x1 < 0 or y1 < 0:
            continue
        for _ in range(num_near_negatives):
            size = int(rng.integers(12, max_side))
            nx1 = int(max(0, x1 + _uniform_int(rng, max(-size, -x1), w)))
            ny1 = int(max(0, y1 + _uniform_int(rng, max(-size, -y1), h)))
            if nx1 + size > width or ny1 + size > height:
                continue
            crop = np.array([nx1, ny1, nx1 + size, ny1 + size], np.float64)
            if iou(crop, boxes).max() < NEG_IOU:
                writer.add('negative', img[ny1:ny1 + size, nx1:nx1 + size])
        for _ in range(num_jitter):
            nx1, ny1, size = _jittered_square(rng, box)
            nx2, ny2 = nx1 + size, ny1 + size
            if nx2 > width or ny2 > height:
                continue
            crop = np.array([nx1, ny1, nx2, ny2], np.float64)
            kind = classify_iou(iou(crop, box[None])[0])
            if kind in ('positive', 'part'):
                writer.add(kind, img[ny1:ny2, nx1:nx2], box_offsets(box, crop, size))


def landmark_samples(img, boxes, landmarks, writer, rng, min_face=40, num_jitter=10,
                     augment=True):
    """Landmark faces of one image, at the writer's size.

    For each face with all 5 points and max(w, h) >= min_face, ``num_jitter``
    square crops as for positives (IoU > 0.65 with the face, inside the image);
    each kept crop is written, and with ``augment`` each of a mirrored copy, a
    +5 degree and a -5 degree rotation with probability 0.5. Samples whose
    normalised points leave the open interval (0, 1) are dropped.
    """
    height, width = img.shape[:2]
    for box, points in zip(boxes, landmarks):
        w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
        if np.isnan(points).any() or max(w, h) < min_face:
            continue
        for _ in range(num_jitter):
            nx1, ny1, size = _jittered_square(rng, box)
            if nx1 + size > width or ny1 + size > height:
                continue
            crop = np.array([nx1, ny1, nx1 + size, ny1 + size], np.float64)
            if iou(crop, box[None])[0] <= POS_IOU:
                continue
            patch = img[ny1:ny1 + size, nx1:nx1 + size]
            target = normalise_landmarks(points, crop, size).reshape(10)
            variants = [(patch, target)]
            if augment:
                if rng.random() < 0.5:
                    variants.append(mirror_sample(patch, -2, target))
                for angle in (ROTATION_DEG, -ROTATION_DEG):
                    if rng.random() < 0.5:
                        rotated, moved = rotate_crop(img, crop, size, points, angle)
                        variants.append((rotated, normalise_landmarks(moved, crop, size).reshape(10)))
            for sample, sample_target in variants:
                if ((sample_target > 0) & (sample_target < 1)).all():
                    writer.add('landmark', sample, sample_target)


def hard_samples(img, dets, boxes, writer, min_size=20, max_negatives=60):
    """Samples for the next net from detections of the previous stages.

    Each detection (N, 5) is squared and rounded; boxes smaller than ``min_size``
    or reaching outside the image are skipped. Against the best-overlapping face
    it becomes a negative (IoU < 0.3, at most ``max_negatives`` per image), a
    positive (>= 0.65) or a part face (>= 0.4), with offsets relative to the
    inclusive box (size = x2 - x1 + 1).
    """
    if not len(dets):
        return
    height, width = img.shape[:2]
    dets = square(dets)
    dets[:, 0:4] = np.round(dets[:, 0:4])
    negatives = 0
    for det in dets:
        x_left, y_top, x_right, y_bottom = det[:4].astype(int)
        side = x_right - x_left + 1
        if side < min_size or x_left < 0 or y_top < 0 or x_right > width - 1 or y_bottom > height - 1:
            continue
        patch = img[y_top:y_bottom + 1, x_left:x_right + 1]
        overlaps = iou(det, boxes) if len(boxes) else np.zeros(1)
        kind = classify_iou(overlaps.max())
        if kind == 'negative':
            if negatives < max_negatives:
                writer.add('negative', patch)
                negatives += 1
        elif kind is not None:
            face = boxes[int(np.argmax(overlaps))]
            writer.add(kind, patch, box_offsets(face, det, side))


def merge_lists(list_paths, output, rng, neg_per_pos=3.0, part_per_pos=1.0, landmark_per_pos=1.0):
    """Write the training list of a net: every positive, and random subsets of
    the negatives, part faces and landmark faces of at most neg_per_pos,
    part_per_pos and landmark_per_pos times the number of positives (the
    original mixes pos:part:landmark:neg as 1:1:1:3).

    Args:
        list_paths: {kind: list file}, e.g. from SampleWriter.close().
    Returns:
        {kind: number of lines written}.
    """
    lines = {}
    for kind, path in list_paths.items():
        with open(path, encoding='utf-8') as f:
            lines[kind] = [line for line in f.read().splitlines() if line.strip()]
    num_pos = len(lines.get('positive', []))
    limits = {'negative': int(round(neg_per_pos * num_pos)), 'part': int(round(part_per_pos * num_pos)),
              'landmark': int(round(landmark_per_pos * num_pos))}
    counts = {}
    with atomic_open(output, 'w') as f:
        for kind in ('positive', 'negative', 'part', 'landmark'):
            chosen = lines.get(kind, [])
            if kind in limits and len(chosen) > limits[kind]:
                pick = np.sort(rng.choice(len(chosen), size=limits[kind], replace=False))
                chosen = [chosen[i] for i in pick]
            counts[kind] = len(chosen)
            for line in chosen:
                f.write(line + '\n')
    return counts


def generate(annotations, output, size, rng, detector=None, min_face=40, with_landmark=True):
    """All samples of one net over a data set, then its merged list.

    Args:
        annotations: list of Annotation.
        output: sample root; writes ``<output>/<size>/...`` and ``<output>/train_<size>.txt``.
        size: 12 (random crops) or 24 / 48 (hard examples of ``detector``).
        detector: an MtcnnDetector whose ``detect`` gives the candidates for 24 / 48.
        min_face: smallest face (max side, pixels) used for positives / landmark faces.
        with_landmark: also write landmark faces.

    Returns:
        (path of the merged list, {kind: count in it}).
    """
    if size != 12 and detector is None:
        raise ValueError('samples of size %d are mined with a detector of the previous stages' % size)
    writer = SampleWriter(output, size)
    for ann in tqdm(annotations, desc='samples %d' % size, unit='img'):
        img = read_image(ann.path)
        if size == 12:
            pnet_samples(img, ann.boxes, writer, rng, min_face=min_face)
        else:
            dets, _ = detector.detect(img)
            hard_samples(img, dets, ann.boxes, writer)
        if with_landmark:
            landmark_samples(img, ann.boxes, ann.landmarks, writer, rng, min_face=min_face)
    logger.info('samples %d: %s', size, writer.counts())
    merged = os.path.join(output, 'train_%d.txt' % size)
    return merged, merge_lists(writer.close(), merged, rng)
