"""The ``retinaface`` image database: WIDER FACE with the RetinaFace ``label.txt`` annotations.

Layout (``data_path`` is e.g. ``data/retinaface``)::

    <data_path>/<image_set>/label.txt
    <data_path>/<image_set>/images/<relative path from the '#' line>

Coordinates are pixels of the upright image (EXIF orientation applied, see ``facekit.image``).

``gt_roidb()`` returns one dict per image:

    'image'      <data_path>/<image_set>/images/<path from the '#' line>
    'height', 'width'   image size in pixels, upright (``facekit.image.image_size``: from the
                        file header, EXIF orientation applied, as ``read_image`` decodes it)
    'boxes'      (N, 4) float32 x1, y1, x2, y2 (x2 = x + w), clipped to [0, width] x [0, height]
    'landmarks'  (N, 5, 3) float32 x, y, visibility: 1.0 visible, 0.0 occluded, -1 missing
    'blur'       (N,) float32 (0.3 where the file has a negative value)
    'gt_classes' (N,) int32, 1 (face)
    'flipped'    False; ``append_flipped_images`` adds the mirrored entries
"""
import logging
import os

import numpy as np
from tqdm import tqdm

from rcnn.contract import LANDMARK_FLIP_ORDER
from facekit.labels import read_label_file, split_paths
from facekit.image import image_size

__all__ = ['retinaface']

logger = logging.getLogger(__name__)


class retinaface:
    """WIDER FACE split ``image_set`` ('train', 'val' or 'test') under ``data_path``.

    Args:
        image_set: split folder name.
        data_path: folder holding ``<image_set>/label.txt`` and ``<image_set>/images``.
        cfg: the configuration (``rcnn.config.get_config``), for ``TRAIN.MIN_BOX_SIZE``.
    """

    def __init__(self, image_set, data_path, cfg):
        self.cfg = cfg
        self.name = 'retinaface'
        self.image_set = image_set
        self.data_path = data_path
        self.label_file, self.images_path = split_paths(data_path, image_set)
        if not os.path.isfile(self.label_file):
            raise FileNotFoundError('label file %s does not exist' % self.label_file)
        self.num_images = 0

    def gt_roidb(self):
        """Read ``label.txt`` and the image sizes; see the module docstring for the entries.

        Faces whose clipped box is empty or narrower / lower than ``TRAIN.MIN_BOX_SIZE``
        are dropped; in the 'train' split, so are images left without faces, and a split
        left without any image is a ValueError naming the label file.

        Raises:
            ValueError / FileNotFoundError: ``"<label.txt>:<line>: ..."`` for a malformed
                line, inconsistent landmark, or a missing or unreadable image.
        """
        records = read_label_file(self.label_file)
        roidb = []
        dropped_faces = dropped_images = 0
        for record in tqdm(records, desc='%s %s' % (self.name, self.image_set), unit='img',
                           disable=len(records) < 1000):
            entry = self._entry(record)
            dropped_faces += len(record) - len(entry['boxes'])
            if self.image_set == 'train' and not len(entry['boxes']):
                dropped_images += 1
                continue
            roidb.append(entry)
        logger.info('%s: %d images (%d without faces dropped), %d faces dropped (empty or < %s px)',
                    self.label_file, len(roidb), dropped_images, dropped_faces, self.cfg.TRAIN.MIN_BOX_SIZE)
        if records and not roidb:
            raise ValueError('%s: no usable image: each of its %d images is left without a face (faces whose box '
                             'is empty inside the image, or below TRAIN.MIN_BOX_SIZE %s px, are dropped)'
                             % (self.label_file, len(records), self.cfg.TRAIN.MIN_BOX_SIZE))
        self.num_images = len(roidb)
        return roidb

    def _entry(self, record):
        where = '%s:%d' % (self.label_file, record.line)
        path = os.path.join(self.images_path, record.path)
        try:
            width, height = image_size(path)
        except FileNotFoundError:
            raise FileNotFoundError('%s: image %s does not exist' % (where, path)) from None
        except (OSError, ValueError) as exc:
            raise ValueError('%s: %s' % (where, exc)) from None

        x, y, w, h = record.boxes.astype(np.float64).T
        boxes = np.stack([np.clip(x, 0, width), np.clip(y, 0, height),
                          np.clip(x + w, 0, width), np.clip(y + h, 0, height)], axis=1)
        box_w, box_h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        min_size = self.cfg.TRAIN.MIN_BOX_SIZE
        keep = (box_w > 0) & (box_h > 0) & (box_w >= min_size) & (box_h >= min_size)

        landmarks = record.landmarks.copy()
        visibility = landmarks[:, :, 2]
        missing = visibility == -1
        at_minus_one = (landmarks[:, :, 0] == -1) & (landmarks[:, :, 1] == -1)
        bad = np.flatnonzero((missing != at_minus_one).any(axis=1))
        if len(bad):
            raise ValueError('%s:%d: a landmark is missing (-1 -1 -1) only as a whole, got %s'
                             % (self.label_file, record.face_lines[bad[0]], landmarks[bad[0]].tolist()))
        # File: 0 visible, 1 occluded. Stored: 1.0 visible, 0.0 occluded, -1 missing.
        landmarks[:, :, 2] = np.where(missing, -1.0, np.where(visibility == 0, 1.0, 0.0))
        blur = np.where(record.blur < 0, 0.3, record.blur).astype(np.float32)
        return {
            'image': path,
            'height': height,
            'width': width,
            'boxes': boxes[keep].astype(np.float32),
            'landmarks': landmarks[keep],
            'blur': blur[keep],
            'gt_classes': np.ones(int(keep.sum()), dtype=np.int32),
            'flipped': False,
        }

    def append_flipped_images(self, roidb):
        """Append a horizontally mirrored copy of every entry to ``roidb`` (in place) and return it.

        Every 'boxes*' array maps x1' = W - x2 - 1, x2' = W - x1 - 1; present landmarks
        map x' = W - 1 - x and the points are reordered by ``rcnn.contract.LANDMARK_FLIP_ORDER``.
        """
        flipped = []
        for entry in roidb:
            new = dict(entry, flipped=True)
            width = entry['width']
            for key in entry:
                if key.startswith('boxes'):
                    boxes = entry[key].copy()
                    boxes[:, 0] = width - entry[key][:, 2] - 1
                    boxes[:, 2] = width - entry[key][:, 0] - 1
                    new[key] = boxes
            if 'landmarks' in entry:
                landmarks = entry['landmarks'].copy()
                present = landmarks[:, :, 2] >= 0
                landmarks[:, :, 0] = np.where(present, width - 1 - landmarks[:, :, 0], landmarks[:, :, 0])
                new['landmarks'] = landmarks[:, LANDMARK_FLIP_ORDER, :]
            flipped.append(new)
        roidb.extend(flipped)
        self.num_images = len(roidb)
        return roidb
