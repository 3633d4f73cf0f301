"""Reader and writer for the RetinaFace ``label.txt`` annotation format.

The format (``retinaface_gt_v1.1``)::

    # 0--Parade/0_Parade_marchingband_1_849.jpg
    449 330 122 149 488.906 373.643 0.0 542.089 376.442 0.0 515.031 412.83 0.0 485.174 425.893 0.0 \
        538.357 431.491 0.0 0.82
    # 0--Parade/0_Parade_Parade_0_904.jpg
    78 221 7 8

A ``#`` line starts an image; its path is relative to ``<split>/images/``. Each
following non-empty line is one face: ``x y w h`` in pixels (``x2 = x + w``),
optionally followed by five ``lx ly v`` landmarks (left eye, right eye, nose,
left and right mouth corner; ``v`` 0 = visible, 1 = occluded, ``-1 -1 -1`` =
missing) and a ``blur`` value, 20 numbers in all. val/test files may list paths
only, or faces with only the 4 box numbers.

Values are kept raw here: the visibility / blur conversions, clipping to the
image and dropping empty boxes belong to the dataset loader (``rcnn.dataset.retinaface``).
The reader rejects only lines that cannot be meant as annotations.
"""
import dataclasses
import os

import numpy as np

from facekit.files import atomic_open

__all__ = ['LabelRecord', 'split_paths', 'read_label_file', 'write_label_file']

NUM_LANDMARKS = 5
_BOX_ONLY = 4
_FULL = 4 + 3 * NUM_LANDMARKS + 1
_MISSING_TAIL = [-1.0] * (_FULL - _BOX_ONLY)


def split_paths(data_path, split):
    """``(label.txt, images folder)`` of the data set ``split`` ('train', 'val', 'test') under
    ``data_path``: ``<data_path>/<split>/label.txt`` and ``<data_path>/<split>/images``."""
    folder = os.path.join(data_path, split)
    return os.path.join(folder, 'label.txt'), os.path.join(folder, 'images')


@dataclasses.dataclass(eq=False)
class LabelRecord:
    """One image of a ``label.txt``.

    Attributes:
        path: image path relative to ``<split>/images/``.
        line: 1-based line number of the ``#`` line (0 for records built in memory).
        boxes: (N, 4) float32 raw ``x y w h`` in pixels.
        landmarks: (N, 5, 3) float32 raw ``x y v``; all -1 where the line had 4 numbers.
        blur: (N,) float32 raw blur; -1 where absent.
        face_lines: (N,) int64 1-based line numbers of the face lines.
    """
    path: str
    line: int = 0
    boxes: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 4), np.float32))
    landmarks: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros((0, NUM_LANDMARKS, 3), np.float32))
    blur: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0,), np.float32))
    face_lines: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0,), np.int64))

    def __len__(self):
        return len(self.boxes)


def _record(filename, path, line, rows, face_lines):
    """Build a LabelRecord from the parsed face rows, validating values per line."""
    values = np.array(rows, dtype=np.float64).reshape(-1, _FULL)
    face_lines = np.array(face_lines, dtype=np.int64)

    def fail(mask, what):
        bad = np.flatnonzero(mask)
        if len(bad):
            raise ValueError('%s:%d: %s' % (filename, face_lines[bad[0]], what))

    fail(~np.isfinite(values).all(axis=1), 'non-finite number in face line')
    fail((values[:, 2:4] < 0).any(axis=1), 'negative box width or height')
    visibility = values[:, 4:4 + 3 * NUM_LANDMARKS].reshape(-1, NUM_LANDMARKS, 3)[:, :, 2]
    fail(~np.isin(visibility, (-1.0, 0.0, 1.0)).all(axis=1),
         'landmark visibility must be -1 (missing), 0 (visible) or 1 (occluded)')
    values = values.astype(np.float32)
    return LabelRecord(path=path, line=line, boxes=values[:, :4].copy(),
                       landmarks=values[:, 4:_FULL - 1].reshape(-1, NUM_LANDMARKS, 3).copy(),
                       blur=values[:, _FULL - 1].copy(), face_lines=face_lines)


def read_label_file(path):
    """Parse a RetinaFace ``label.txt`` into a list of LabelRecord, in file order.

    The file is UTF-8 text; a leading byte-order mark is skipped.

    Raises:
        ValueError: ``"<file>:<line>: <reason>"`` for text that is not UTF-8, a face
            line before any ``#`` line, an empty image path, a non-numeric or non-finite
            value, a count of numbers other than 4 or 20, a negative width/height, or a
            landmark visibility other than -1/0/1.
    """
    filename = str(path)
    with open(path, 'rb') as f:
        data = f.read()
    try:
        text = data.decode('utf-8-sig')  # a byte-order mark some editors add is not part of the first line
    except UnicodeDecodeError as error:
        offset = error.start + (3 if data.startswith(b'\xef\xbb\xbf') else 0)
        raise ValueError('%s:%d: not UTF-8 text (byte 0x%02x); save the file as UTF-8'
                         % (filename, data[:offset].count(b'\n') + 1, data[offset])) from None
    lines = text.splitlines()

    records = []
    current = None  # (path, line number) of the open image
    rows, face_lines = [], []
    for lineno, text in enumerate(lines, 1):
        text = text.strip()
        if not text:
            continue
        if text.startswith('#'):
            if current is not None:
                records.append(_record(filename, *current, rows, face_lines))
            image = text[1:].strip()
            if not image:
                raise ValueError('%s:%d: "#" line without an image path' % (filename, lineno))
            current = (image, lineno)
            rows, face_lines = [], []
            continue
        if current is None:
            raise ValueError('%s:%d: face line before the first "# image" line' % (filename, lineno))
        parts = text.split()
        if len(parts) not in (_BOX_ONLY, _FULL):
            raise ValueError('%s:%d: expected %d or %d numbers, got %d'
                             % (filename, lineno, _BOX_ONLY, _FULL, len(parts)))
        try:
            values = list(map(float, parts))
        except ValueError:
            bad = next(p for p in parts if not _is_float(p))
            raise ValueError('%s:%d: not a number: %r' % (filename, lineno, bad)) from None
        if len(values) == _BOX_ONLY:
            values.extend(_MISSING_TAIL)
        rows.append(values)
        face_lines.append(lineno)
    if current is not None:
        records.append(_record(filename, *current, rows, face_lines))
    return records


def _is_float(token):
    try:
        float(token)
    except ValueError:
        return False
    return True


def _fmt(value):
    """Shortest text that reads back to the same float32 ('449', '0.82', '-1')."""
    return np.format_float_positional(np.float32(value), trim='-')


def write_label_file(path, records):
    """Write ``records`` (LabelRecord or objects with the same fields) atomically.

    A face whose landmarks and blur are all -1 is written with its 4 box numbers
    only (as in the val files); every other face with all 20 numbers. Reading the
    file back gives the same paths, boxes, landmarks and blur.
    """
    with atomic_open(path, 'w') as f:
        for record in records:
            if not record.path or record.path != record.path.strip() or '\n' in record.path:
                raise ValueError('%s: invalid image path %r' % (path, record.path))
            f.write('# %s\n' % record.path)
            boxes = np.asarray(record.boxes, np.float32).reshape(-1, 4)
            tail = np.concatenate([np.asarray(record.landmarks, np.float32).reshape(len(boxes), 3 * NUM_LANDMARKS),
                                   np.asarray(record.blur, np.float32).reshape(len(boxes), 1)], axis=1)
            for box, extra in zip(boxes, tail):
                values = box if (extra == -1).all() else np.concatenate([box, extra])
                f.write(' '.join(map(_fmt, values)) + '\n')
