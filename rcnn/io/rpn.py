"""Training labels for the RetinaFace heads: crop batches and anchor assignment.

``AA(feat_shape_list, cfg).assign_anchor_fpn`` turns the ground truth of one crop
into the per-stride label, box-target and landmark-target arrays the training
symbol consumes (names and layouts: ``rcnn.contract``). ``gt_label`` extracts that
ground truth from a cropped roidb entry. Boxes are x1, y1, x2, y2 in pixels (+1
convention).
"""
import numpy as np

from rcnn.contract import BBOX_PRED_LEN, LANDMARK_POINTS, LANDMARK_PRED_LEN, PREFIX, tensor_name
from rcnn.io.augment import get_crop_image1
from rcnn.processing.bbox_transform import bbox_overlaps
from facekit.boxes import widths_centres
from rcnn.processing.generate_anchor import anchors_plane, generate_anchors_fpn

__all__ = ['AA', 'get_crop_batch', 'gt_label']


def gt_label(rec, landmark):
    """Ground truth of a cropped roidb entry for ``assign_anchor_fpn``.

    Returns {'gt_boxes': (N, 5) float32 x1, y1, x2, y2, class} (faces with class != 0)
    and, with ``landmark``, 'gt_landmarks': (N, 5, 3) float32.
    """
    keep = np.flatnonzero(rec['gt_classes'] != 0)
    gt_boxes = np.empty((len(keep), 5), dtype=np.float32)
    gt_boxes[:, :4] = rec['boxes'][keep]
    gt_boxes[:, 4] = rec['gt_classes'][keep]
    label = {'gt_boxes': gt_boxes}
    if landmark:
        label['gt_landmarks'] = np.asarray(rec['landmarks'], dtype=np.float32)[keep]
    return label


def get_crop_batch(roidb, cfg, rng=None):
    """Crop every roidb entry (``get_crop_image1``) and collect its ground truth (``gt_label``).

    Compatibility: the original's batch entry point, for scripts written against it.
    ``CropLoader`` works sample by sample (``rcnn.core.crop_worker.fill_sample``).
    ``cfg``: the configuration (``rcnn.config.get_config``); ``rng``: ``np.random.Generator``.

    Returns:
        data_list: per image {'data': (1, 3, S, S) float32, 'im_info': (1, 3) float32}.
        label_list: per image ``gt_label`` with landmarks if ``cfg.FACE_LANDMARK``.
    """
    ims, recs = get_crop_image1(roidb, rng=rng, cfg=cfg)
    data_list = [{'data': im, 'im_info': rec['im_info'][np.newaxis]} for im, rec in zip(ims, recs)]
    label_list = [gt_label(rec, cfg.FACE_LANDMARK) for rec in recs]
    return data_list, label_list


class _Level:
    """One stride: an H x W map with A anchors per cell, stored at [offset, offset + A*H*W) of the flat list.

    The flat order inside a level is (a, h, w), the order of the label output, so
    the labels are a plain reshape and the targets one transpose of their rows.
    """

    def __init__(self, stride, height, width, num_base, offset):
        self.stride = stride
        self.height = height
        self.width = width
        self.num_base = num_base
        self.offset = offset
        self.count = num_base * height * width
        self.span = slice(offset, offset + self.count)


class _Tile:
    """A block of cells of one level (all A anchors): its anchors, their flat indices and joint extent."""

    def __init__(self, anchors, index):
        self.anchors = np.ascontiguousarray(anchors, dtype=np.float64)  # (n, 4)
        self.index = index  # (n,) positions in the flat anchor list
        self.rows = np.arange(len(index))
        self.extent = np.concatenate([self.anchors[:, :2].min(axis=0), self.anchors[:, 2:].max(axis=0)])


class AA:
    """Anchor assignment for fixed feature-map shapes (anchors, tiles and anchor sizes are built once).

    IoUs are computed tile by tile (TILE_CELLS x TILE_CELLS cells of a level) against
    the gt boxes that reach the tile's extent only; every other anchor-gt pair does
    not intersect, so the result equals the dense ``bbox_overlaps`` of the original.

    Args:
        feat_shape: per stride of ``cfg.RPN_FEAT_STRIDE`` (descending), a shape whose
            last two entries are the feature map's height and width, e.g. (1, C, 20, 20).
        cfg: the configuration (``rcnn.config.get_config``): strides, anchors, SCALES and
            the TRAIN assignment settings.
    """

    TILE_CELLS = 20

    def __init__(self, feat_shape, cfg):
        self.cfg = cfg
        self.feat_shape = [tuple(int(v) for v in shape) for shape in feat_shape]
        if len(self.feat_shape) != len(cfg.RPN_FEAT_STRIDE):
            raise ValueError('feat_shape has %d entries for %d strides %s'
                             % (len(self.feat_shape), len(cfg.RPN_FEAT_STRIDE), cfg.RPN_FEAT_STRIDE))
        self.levels, self.tiles = [], []
        anchors, inside = [], []
        offset = 0
        image_size = cfg.SCALES[0][1]
        base_anchors = generate_anchors_fpn(cfg=cfg.RPN_ANCHOR_CFG)  # strides descending, as RPN_FEAT_STRIDE
        for stride, shape, base in zip(cfg.RPN_FEAT_STRIDE, self.feat_shape, base_anchors):
            level = _Level(stride, shape[-2], shape[-1], len(base), offset)
            # (H, W, A, 4) -> (A, H, W, 4): label order.
            plane = anchors_plane(level.height, level.width, stride, base).transpose(2, 0, 1, 3)
            border = cfg.RPN_ANCHOR_CFG[str(stride)]['ALLOWED_BORDER']
            # The original keeps anchors within ALLOWED_BORDER of the training crop (SCALES), not of im_info.
            level_inside = ((plane[..., 0] >= -border) & (plane[..., 1] >= -border)
                            & (plane[..., 2] < image_size + border) & (plane[..., 3] < image_size + border))
            index = np.arange(offset, offset + level.count).reshape(plane.shape[:3])
            for h0 in range(0, level.height, self.TILE_CELLS):
                for w0 in range(0, level.width, self.TILE_CELLS):
                    cells = (slice(None), slice(h0, h0 + self.TILE_CELLS), slice(w0, w0 + self.TILE_CELLS))
                    keep = level_inside[cells]
                    if keep.any():
                        self.tiles.append(_Tile(plane[cells][keep], index[cells][keep]))
            anchors.append(plane.reshape(-1, 4))
            inside.append(level_inside.reshape(-1))
            self.levels.append(level)
            offset += level.count
        self._tile_extents = np.array([tile.extent for tile in self.tiles])  # (T, 4) x1, y1, x2, y2
        self.anchors = np.concatenate(anchors)  # (K, 4) float32, flat order (stride, a, h, w)
        self.inside = np.concatenate(inside)  # (K,) bool
        self.all_inside = bool(self.inside.all())
        self.num_anchors = offset
        self._widths, self._heights, self._ctr_x, self._ctr_y = widths_centres(self.anchors)
        # The offset denominators of nonlinear_transform / landmark_transform.
        self._x_denom = self._widths + 1e-14
        self._y_denom = self._heights + 1e-14

    def _overlap_stats(self, gt_boxes):
        """Per anchor: max IoU and the first gt reaching it; plus the FORCE_POSITIVE mask (or None).

        Anchors that intersect no gt have IoU 0 with all, so max 0 at gt 0 (argmax of a zero row).
        """
        gt = gt_boxes.astype(np.float64)
        force_positive = self.cfg.TRAIN.RPN_FORCE_POSITIVE
        max_overlaps = np.zeros(self.num_anchors, dtype=np.float64)
        argmax_overlaps = np.zeros(self.num_anchors, dtype=np.intp)
        gt_max_overlaps = np.zeros(len(gt), dtype=np.float64)
        blocks = []
        # (T, G): gt g can meet an anchor of tile t only if x2 > gx1 - 1 and x1 < gx2 + 1 (+1
        # convention) for the tile's extent, and the same in y.
        extents = self._tile_extents
        reach = ((gt[:, 0] - 1 < extents[:, 2:3]) & (gt[:, 2] + 1 > extents[:, 0:1])
                 & (gt[:, 1] - 1 < extents[:, 3:4]) & (gt[:, 3] + 1 > extents[:, 1:2]))
        for tile, tile_reach in zip(self.tiles, reach):
            near = np.flatnonzero(tile_reach)
            if not len(near):
                continue
            overlaps = bbox_overlaps(tile.anchors, gt[near])
            best = overlaps.argmax(axis=1)
            best_overlaps = overlaps[tile.rows, best]
            max_overlaps[tile.index] = best_overlaps
            argmax_overlaps[tile.index] = np.where(best_overlaps > 0, near[best], 0)
            if force_positive:
                gt_max_overlaps[near] = np.maximum(gt_max_overlaps[near], overlaps.max(axis=0))
                blocks.append((tile, near, overlaps))
        force = None
        if force_positive:
            # Anchors equal to some gt's best IoU. A gt touching no anchor has best IoU 0,
            # which every anchor matches (as in the original's dense comparison).
            if (gt_max_overlaps == 0).any():
                force = self.inside.copy()
            else:
                force = np.zeros(self.num_anchors, dtype=bool)
                for tile, near, overlaps in blocks:
                    force[tile.index] |= (overlaps == gt_max_overlaps[near]).any(axis=1)
        return max_overlaps, argmax_overlaps, force

    def _labels(self, gt_boxes, rng):
        """(K,) float32 labels 1 / 0 / -1 and (K,) gt index per anchor (None without gt)."""
        train = self.cfg.TRAIN
        labels = np.full(self.num_anchors, -1, dtype=np.float32)
        argmax_overlaps = None
        if len(gt_boxes):
            max_overlaps, argmax_overlaps, force = self._overlap_stats(gt_boxes)
            negative = max_overlaps < train.RPN_NEGATIVE_OVERLAP
            positive = max_overlaps >= train.RPN_POSITIVE_OVERLAP
            if not self.all_inside:
                negative &= self.inside
            if not train.RPN_CLOBBER_POSITIVES:
                labels[negative] = 0
            if force is not None:
                labels[force] = 1
            labels[positive] = 1
            if train.RPN_CLOBBER_POSITIVES:
                labels[negative] = 0
        else:
            labels[self.inside] = 0
        if train.RPN_ENABLE_OHEM == 0:
            self._subsample(labels, rng)
        return labels, argmax_overlaps

    def _subsample(self, labels, rng):
        """Without OHEM: keep at most FG_FRACTION * BATCH_SIZE positives, fill to BATCH_SIZE with negatives."""
        train = self.cfg.TRAIN
        if rng is None:
            rng = np.random.default_rng()
        fg_inds = np.flatnonzero(labels == 1)
        num_fg = int(train.RPN_FG_FRACTION * train.RPN_BATCH_SIZE)
        if len(fg_inds) > num_fg:
            labels[rng.choice(fg_inds, size=len(fg_inds) - num_fg, replace=False)] = -1
        num_bg = train.RPN_BATCH_SIZE - np.sum(labels == 1)
        bg_inds = np.flatnonzero(labels == 0)
        if len(bg_inds) > num_bg:
            labels[rng.choice(bg_inds, size=len(bg_inds) - num_bg, replace=False)] = -1

    def assign_anchor_fpn(self, gt_label, im_info, landmark=False, prefix=PREFIX, select_stride=0, rng=None):
        """Assign ground truth to every anchor of every stride.

        Args:
            gt_label: {'gt_boxes': (N, 5) x1, y1, x2, y2, class (rows with class -1 are
                ignored), 'gt_landmarks': (N, 5, 3) x, y, visibility (needed with ``landmark``)}.
            im_info: [[height, width, scale]]; unused, as in the original (the anchors are
                bounded by ``SCALES``).
            landmark: also produce landmark targets and weights.
            prefix: name prefix of the outputs.
            select_stride: if > 0, every other stride's labels are -1 (ignored).
            rng: ``np.random.Generator`` for the subsampling without OHEM
                (``TRAIN.RPN_ENABLE_OHEM == 0``); unused otherwise.

        Returns:
            dict, per stride s with an H x W map and A anchors per cell, all float32:
            ``{prefix}_label_stride{s}`` (1, A*H*W) ordered (a, h, w): 1 positive
            (IoU >= RPN_POSITIVE_OVERLAP), 0 negative (< RPN_NEGATIVE_OVERLAP), -1 ignored;
            ``_bbox_target_stride{s}`` (1, 4A, H*W), channel 4a + j: ``nonlinear_transform``
            against each anchor's best gt (for every anchor, positive or not) / BBOX_STDS;
            ``_bbox_weight_stride{s}`` (1, 4A, H*W): 1 on positives;
            ``_landmark_target_stride{s}`` (1, 10A, H*W), channel 10a + 2p (+1 for y):
            ``landmark_transform`` / LANDMARK_STD;
            ``_landmark_weight_stride{s}`` (1, 10A, H*W): 1 on positives whose gt has
            visibility >= 0 at point 0.
        """
        del im_info  # the original reads it but bounds anchors by SCALES
        cfg = self.cfg
        gt_boxes = np.asarray(gt_label['gt_boxes'], dtype=np.float32).reshape(-1, 5)
        keep = gt_boxes[:, 4] != -1
        gt_boxes = gt_boxes[keep]
        if not np.isfinite(gt_boxes).all():
            raise ValueError('gt_boxes must be finite, got %s' % gt_boxes[~np.isfinite(gt_boxes).all(axis=1)][:3])
        if landmark:
            gt_landmarks = np.asarray(gt_label['gt_landmarks'], dtype=np.float32).reshape(-1, 5, 3)
            if len(gt_landmarks) != len(keep):
                raise ValueError('gt_landmarks has %d rows for %d gt_boxes' % (len(gt_landmarks), len(keep)))
            gt_landmarks = gt_landmarks[keep]

        labels, assigned = self._labels(gt_boxes, rng)
        positive = labels == 1

        # Targets row by row, (component, anchor), with the arithmetic of nonlinear_transform
        # and landmark_transform on the anchor sizes cached in __init__.
        bbox_targets = np.zeros((BBOX_PRED_LEN, self.num_anchors), dtype=np.float32)
        if assigned is not None:
            gt_w, gt_h, gt_x, gt_y = widths_centres(gt_boxes)
            stds = cfg.TRAIN.BBOX_STDS
            bbox_targets[0] = (gt_x[assigned] - self._ctr_x) / self._x_denom / stds[0]
            bbox_targets[1] = (gt_y[assigned] - self._ctr_y) / self._y_denom / stds[1]
            bbox_targets[2] = np.log(gt_w[assigned] / self._widths) / stds[2]
            bbox_targets[3] = np.log(gt_h[assigned] / self._heights) / stds[3]
        if landmark:
            landmark_targets = np.zeros((LANDMARK_PRED_LEN, self.num_anchors), dtype=np.float32)
            landmark_valid = positive
            if assigned is not None:
                points = gt_landmarks.astype(np.float64)
                for p in range(LANDMARK_POINTS):
                    landmark_targets[2 * p] = (points[assigned, p, 0] - self._ctr_x) / self._x_denom
                    landmark_targets[2 * p + 1] = (points[assigned, p, 1] - self._ctr_y) / self._y_denom
                landmark_targets /= np.float32(cfg.TRAIN.LANDMARK_STD)
                landmark_valid = positive & (gt_landmarks[assigned, 0, 2] >= 0)
        if not self.all_inside:
            bbox_targets[:, ~self.inside] = 0
            if landmark:
                landmark_targets[:, ~self.inside] = 0

        outputs = {}
        for level in self.levels:
            a, hw = level.num_base, level.height * level.width
            label = labels[level.span].reshape(1, a * hw)
            if select_stride > 0 and level.stride != select_stride:
                label = np.full_like(label, -1)
            arrays = {'label': label,
                      'bbox_target': self._per_anchor(bbox_targets, level),
                      'bbox_weight': self._weights(positive, BBOX_PRED_LEN, level)}
            if landmark:
                arrays['landmark_target'] = self._per_anchor(landmark_targets, level)
                arrays['landmark_weight'] = self._weights(landmark_valid, LANDMARK_PRED_LEN, level)
            for kind, value in arrays.items():
                outputs[tensor_name(kind, level.stride, prefix)] = value
        return outputs

    @staticmethod
    def _per_anchor(rows, level):
        """(L, K) component rows -> (1, A*L, H*W), channel a*L + l (the original's reshape/transpose)."""
        a, hw = level.num_base, level.height * level.width
        block = rows[:, level.span].reshape(len(rows), a, hw).transpose(1, 0, 2)
        return np.ascontiguousarray(block).reshape(1, a * len(rows), hw)

    @staticmethod
    def _weights(mask, length, level):
        """(K,) bool -> (1, A*length, H*W) float32, 1 in all ``length`` channels of a selected anchor."""
        a, hw = level.num_base, level.height * level.width
        weights = np.empty((a, length, hw), dtype=np.float32)
        weights[:] = mask[level.span].reshape(a, 1, hw)
        return weights.reshape(1, a * length, hw)
