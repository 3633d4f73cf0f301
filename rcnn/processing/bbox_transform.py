"""Box and landmark regression targets and their inverses.

All boxes are x1, y1, x2, y2 in pixels with the +1 convention: width = x2 - x1 + 1,
centre = x1 + 0.5 * (width - 1). Computations run in float64.
"""
import numpy as np

from facekit.cython.bbox import bbox_overlaps_cython
from facekit.boxes import widths_centres


def bbox_overlaps(boxes, query_boxes):
    """(N, K) IoU of (N, >=4) boxes with (K, >=4) query boxes; see ``bbox_overlaps_cython``."""
    return bbox_overlaps_cython(boxes, query_boxes)


def clip_boxes(boxes, im_shape):
    """Clip (N, 4k) boxes in place to an image of shape (height, width[, ...]).

    x is clipped to [0, width - 1] and y to [0, height - 1]; returns ``boxes``.
    """
    height, width = im_shape[0], im_shape[1]
    boxes[:, 0::4] = np.maximum(np.minimum(boxes[:, 0::4], width - 1), 0)
    boxes[:, 1::4] = np.maximum(np.minimum(boxes[:, 1::4], height - 1), 0)
    boxes[:, 2::4] = np.maximum(np.minimum(boxes[:, 2::4], width - 1), 0)
    boxes[:, 3::4] = np.maximum(np.minimum(boxes[:, 3::4], height - 1), 0)
    return boxes


def nonlinear_transform(ex_rois, gt_rois):
    """Regression targets (dx, dy, dw, dh) from (N, 4) anchors to (N, >=4) ground-truth boxes.

    dx = (gt_cx - cx) / w, dw = log(gt_w / w); extra gt columns (the class) are ignored.
    Returns (N, 4) float64.
    """
    if ex_rois.shape[0] != gt_rois.shape[0]:
        raise ValueError('inconsistent rois number: %d anchors, %d gt boxes' % (ex_rois.shape[0], gt_rois.shape[0]))
    ex_w, ex_h, ex_cx, ex_cy = widths_centres(ex_rois)
    gt_w, gt_h, gt_cx, gt_cy = widths_centres(gt_rois)
    return np.stack(((gt_cx - ex_cx) / (ex_w + 1e-14),
                     (gt_cy - ex_cy) / (ex_h + 1e-14),
                     np.log(gt_w / ex_w),
                     np.log(gt_h / ex_h)), axis=1)


def nonlinear_pred(boxes, box_deltas):
    """Apply (N, 4k) deltas to (N, 4) anchors; the exact inverse of ``nonlinear_transform``.

    Returns (N, 4k) float64 boxes: x1 = cx' - 0.5 * (w' - 1), x2 = cx' + 0.5 * (w' - 1).
    """
    if boxes.shape[0] == 0:
        return np.zeros((0, box_deltas.shape[1]))
    widths, heights, ctr_x, ctr_y = widths_centres(boxes)
    widths, heights = widths[:, np.newaxis], heights[:, np.newaxis]
    pred_ctr_x = box_deltas[:, 0::4] * widths + ctr_x[:, np.newaxis]
    pred_ctr_y = box_deltas[:, 1::4] * heights + ctr_y[:, np.newaxis]
    pred_w = np.exp(box_deltas[:, 2::4]) * widths
    pred_h = np.exp(box_deltas[:, 3::4]) * heights
    pred = np.zeros(box_deltas.shape)
    pred[:, 0::4] = pred_ctr_x - 0.5 * (pred_w - 1.0)
    pred[:, 1::4] = pred_ctr_y - 0.5 * (pred_h - 1.0)
    pred[:, 2::4] = pred_ctr_x + 0.5 * (pred_w - 1.0)
    pred[:, 3::4] = pred_ctr_y + 0.5 * (pred_h - 1.0)
    return pred


def landmark_transform(ex_rois, gt_landmarks):
    """Landmark targets from (N, 4) anchors to (N, P, 3) landmarks (x, y, visibility).

    Each point becomes ((x - cx) / w, (y - cy) / h); visibility is not a target.
    Returns (N, 2P) float64 ordered x0, y0, x1, y1, ...
    """
    if ex_rois.shape[0] != gt_landmarks.shape[0]:
        raise ValueError('inconsistent rois number: %d anchors, %d landmark sets'
                         % (ex_rois.shape[0], gt_landmarks.shape[0]))
    widths, heights, ctr_x, ctr_y = widths_centres(ex_rois)
    points = np.asarray(gt_landmarks, dtype=np.float64)[:, :, :2]
    targets = np.empty_like(points)
    targets[:, :, 0] = (points[:, :, 0] - ctr_x[:, np.newaxis]) / (widths[:, np.newaxis] + 1e-14)
    targets[:, :, 1] = (points[:, :, 1] - ctr_y[:, np.newaxis]) / (heights[:, np.newaxis] + 1e-14)
    return targets.reshape(points.shape[0], -1)


def landmark_pred(boxes, landmark_deltas):
    """Decode landmark deltas against (N, 4) anchors: x = dx * w + cx, y = dy * h + cy.

    ``landmark_deltas`` is (N, 2P) (x0, y0, x1, ...) or (N, P, 2); the result has the
    same shape and dtype (the detector keeps float32 landmarks as the original).
    """
    if boxes.shape[0] == 0:
        return np.zeros((0,) + tuple(landmark_deltas.shape[1:]), dtype=landmark_deltas.dtype)
    widths, heights, ctr_x, ctr_y = widths_centres(boxes)
    deltas = landmark_deltas.reshape(landmark_deltas.shape[0], -1, 2)
    pred = np.empty_like(deltas)
    pred[:, :, 0] = deltas[:, :, 0] * widths[:, np.newaxis] + ctr_x[:, np.newaxis]
    pred[:, :, 1] = deltas[:, :, 1] * heights[:, np.newaxis] + ctr_y[:, np.newaxis]
    return pred.reshape(landmark_deltas.shape)
