"""WIDER FACE easy / medium / hard average precision by the official protocol.

Reproduces the WIDER FACE Matlab toolkit (``eval_tools``: ``read_pred``,
``norm_score``, ``image_evaluation``, ``image_pr_info``, ``dataset_pr_info``,
``VOCap``), which the common Python port mirrors, with NumPy vectorisation
instead of per-prediction and per-threshold loops:

* ground truth: ``wider_face_val.mat`` (``event_list``, ``file_list``,
  ``face_bbx_list`` as ``x y w h`` pixels) and ``wider_{easy,medium,hard}_val.mat``
  (``gt_list``: 1-based indices of the faces that count in that setting; the
  other faces are "ignore" faces: a prediction matched to one is discarded);
* predictions: ``<pred>/<event>/<file>.txt`` for every image of the ground
  truth: the image name, the count, then ``x y w h score`` lines;
* scores are normalised with ``(s - min) / (max - min)`` over all predictions,
  ``min`` and ``max`` starting from 1 and 0 as in the toolkit;
* per image, predictions are sorted by descending score (stable) and each
  takes the ground-truth box of highest IoU (first on ties); IoU >= threshold
  is a match.  Boxes become ``x2 = x + w``, ``y2 = y + h`` and the IoU uses the
  +1 pixel convention (width ``x2 - x1 + 1``), as ``boxoverlap.m``;
* at the 1000 thresholds ``t_k = 1 - (k + 1) / 1000`` the number of proposals
  and of recalled faces are summed over images, giving precision and recall,
  and AP is the VOC all-point area under the monotone precision envelope.

Only images with at least one prediction and one ground-truth box take part in
the PR sums; every face of the setting counts in the recall denominator.

Bad input is an error naming the file (and line), never a changed AP: a
non-numeric or non-finite value (a NaN score would move every AP), a binary
file, or a prediction folder that is missing or holds none of the files.
"""
import dataclasses
import json
import logging
import os
import sys

import numpy as np

from facekit.files import atomic_open, atomic_path
from facekit.boxes import pairwise_overlap

__all__ = ['SETTINGS', 'THRESH_NUM', 'GroundTruth', 'load_ground_truth', 'read_prediction_file',
           'load_predictions', 'normalize_scores', 'match_image', 'voc_ap', 'evaluate',
           'format_table', 'write_summary', 'plot_pr_curves', 'write_report', 'SUMMARY_FILE', 'PR_CURVES_FILE',
           'GROUND_TRUTH_FILES']

logger = logging.getLogger(__name__)

SETTINGS = ('easy', 'medium', 'hard')
THRESH_NUM = 1000
GROUND_TRUTH_FILES = ('wider_face_val.mat',) + tuple('wider_%s_val.mat' % setting for setting in SETTINGS)


@dataclasses.dataclass
class GroundTruth:
    """WIDER FACE ground truth, flattened over events in ``.mat`` order.

    Attributes:
        events: (M,) event folder of each image, e.g. ``'0--Parade'``.
        names: (M,) image name without extension, e.g. ``'0_Parade_marchingband_1_465'``.
        boxes: M arrays (G_i, 4) float64 ``x y w h`` in pixels.
        keep: setting -> M arrays (K_i,) int64 of 0-based indices into ``boxes[i]``
            of the faces that count in that setting.
    """
    events: list
    names: list
    boxes: list
    keep: dict

    def __len__(self):
        return len(self.names)


def _cell_string(cell):
    """Text of a Matlab char array as loaded by ``scipy.io.loadmat`` (``array(['name'])``)."""
    return str(np.asarray(cell).ravel()[0])


def load_ground_truth(gt_dir):
    """Read ``wider_face_val.mat`` and the three ``wider_<setting>_val.mat`` from ``gt_dir``."""
    from scipy.io import loadmat

    def load(name, variables):
        path = os.path.join(gt_dir, name)
        if not os.path.isfile(path):
            raise FileNotFoundError('WIDER FACE ground truth file not found: %s' % path)
        try:
            mat = loadmat(path, variable_names=variables)
        except Exception as err:  # scipy raises IndexError, OSError, ValueError... on a damaged file
            raise ValueError('%s: not a readable MATLAB file: %s: %s' % (path, type(err).__name__, err)) from None
        missing = [v for v in variables if v not in mat]
        if missing:
            raise ValueError('%s: missing variable(s) %s' % (path, ', '.join(missing)))
        return mat

    face = load('wider_face_val.mat', ['event_list', 'file_list', 'face_bbx_list'])
    events, names, boxes = [], [], []
    for event_cell, files, bbxs in zip(face['event_list'].ravel(), face['file_list'].ravel(),
                                       face['face_bbx_list'].ravel()):
        event = _cell_string(event_cell)
        for file_cell, bbx in zip(files.ravel(), bbxs.ravel()):
            events.append(event)
            names.append(_cell_string(file_cell))
            boxes.append(np.asarray(bbx, dtype=np.float64).reshape(-1, 4))

    keep = {}
    for setting in SETTINGS:
        filename = 'wider_%s_val.mat' % setting
        gt_list = load(filename, ['gt_list'])['gt_list']
        indices = [np.asarray(cell, dtype=np.int64).ravel() - 1
                   for per_event in gt_list.ravel() for cell in per_event.ravel()]
        if len(indices) != len(names):
            raise ValueError('%s: gt_list has %d images, wider_face_val.mat has %d'
                             % (os.path.join(gt_dir, filename), len(indices), len(names)))
        for i, idx in enumerate(indices):
            if len(idx) and (idx.min() < 0 or idx.max() >= len(boxes[i])):
                raise ValueError('%s: gt_list index out of range for %s/%s (%d faces)'
                                 % (os.path.join(gt_dir, filename), events[i], names[i], len(boxes[i])))
        keep[setting] = indices
    return GroundTruth(events, names, boxes, keep)


def read_prediction_file(path):
    """Read one prediction file: image name, count, then ``count`` lines ``x y w h score``.

    Returns:
        (N, 5) float64 ``x y w h score``, in file order.

    Raises:
        ValueError: ``"<file>:<line>: <reason>"`` for a missing or non-integer count,
            a line without exactly 5 numbers, a non-finite number, or a count that
            disagrees with the lines; ``"<file>: ..."`` for a binary (not UTF-8 text) file.
    """
    with open(path, 'rb') as f:
        data = f.read()
    try:
        if b'\x00' in data:
            raise UnicodeError('NUL byte')
        text = data.decode('utf-8')
    except UnicodeError:
        raise ValueError('%s: a binary file, not a prediction file (text: name, count, "x y w h score" lines)'
                         % path) from None
    lines = text.splitlines()
    if len(lines) < 2:
        raise ValueError('%s:%d: expected the image name and the detection count' % (path, len(lines) + 1))
    try:
        count = int(lines[1].strip())
    except ValueError:
        raise ValueError('%s:2: detection count is not an integer: %r' % (path, lines[1])) from None
    if count < 0:
        raise ValueError('%s:2: negative detection count %d' % (path, count))
    rows = [line.split() for line in lines[2:]]
    while rows and not rows[-1]:
        rows.pop()
    if len(rows) != count:
        raise ValueError('%s:2: count says %d detections, the file has %d lines after it'
                         % (path, count, len(rows)))
    for lineno, row in enumerate(rows, 3):
        if len(row) != 5:
            raise ValueError('%s:%d: expected 5 fields "x y w h score", got %d' % (path, lineno, len(row)))
    try:
        values = np.array(rows, dtype=np.float64).reshape(-1, 5)
    except ValueError:
        for lineno, row in enumerate(rows, 3):
            try:
                [float(v) for v in row]
            except ValueError:
                raise ValueError('%s:%d: not a number in %r' % (path, lineno, ' '.join(row))) from None
        raise
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(bad):
        raise ValueError('%s:%d: non-finite number in %r' % (path, bad[0] + 3, ' '.join(rows[bad[0]])))
    return values


def load_predictions(pred_dir, gt):
    """Predictions for every image of ``gt``, read from ``<pred_dir>/<event>/<name>.txt``.

    A missing file counts as an image with no detections; one warning reports
    how many are missing, and one how many detections have a negative width or
    height (the toolkit keeps them; a detector that writes them has a bug).

    Returns:
        preds: list of (N_i, 5) float64 ``x y w h score``, aligned with ``gt``.
        missing: list of the missing files, relative to ``pred_dir``.

    Raises:
        FileNotFoundError: ``pred_dir`` is not a folder, or holds none of the files.
    """
    if not os.path.isdir(pred_dir):
        raise FileNotFoundError('prediction folder %s does not exist' % pred_dir)
    preds, missing, negative = [], [], []
    for event, name in zip(gt.events, gt.names):
        path = os.path.join(pred_dir, event, name + '.txt')
        if os.path.isfile(path):
            preds.append(read_prediction_file(path))
            negative += ['%s:%d' % (path, row + 3) for row in np.flatnonzero((preds[-1][:, 2:4] < 0).any(axis=1))]
        else:
            missing.append(os.path.join(event, name + '.txt'))
            preds.append(np.zeros((0, 5)))
    if negative:
        logger.warning('%d detections have a negative width or height, e.g. %s; they are evaluated as the WIDER '
                       'toolkit evaluates them', len(negative), negative[0])
    if len(gt) and len(missing) == len(gt):
        raise FileNotFoundError('no prediction files in %s: expected <event>/<name>.txt for the %d ground-truth '
                                'images, e.g. %s' % (pred_dir, len(gt), missing[0]))
    if missing:
        logger.warning('%d of %d prediction files are missing under %s (counted as no detections), '
                       'e.g. %s', len(missing), len(gt), pred_dir, ', '.join(missing[:3]))
    return preds, missing


def normalize_scores(preds):
    """Map scores to [0, 1] with the global min / max, as the toolkit's ``norm_score``.

    The toolkit starts from ``max = 0`` and ``min = 1``, so scores already inside
    [0, 1] are normalised against at least that range; if every score is the same
    (an untrained network) they all become 1 instead of the toolkit's 0/0.
    Returns new arrays.
    """
    scores = [p[:, 4] for p in preds if len(p)]
    if not scores:
        return [p.copy() for p in preds]
    max_score = max(0.0, max(s.max() for s in scores))
    min_score = min(1.0, min(s.min() for s in scores))
    diff = max_score - min_score
    out = []
    for p in preds:
        p = p.copy()
        p[:, 4] = (p[:, 4] - min_score) / diff if diff > 0 else 1.0
        out.append(p)
    return out


def _xywh_to_xyxy(boxes):
    """(N, 4) ``x y w h`` -> ``x1 y1 x2 y2`` with ``x2 = x + w`` (toolkit convention)."""
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:4]], axis=1)


def match_image(pred, gt_boxes, iou_thresh):
    """Best ground-truth face of each prediction of one image.

    Args:
        pred: (N, 5) ``x y w h score``, scores normalised.
        gt_boxes: (G, 4) ``x y w h``, G >= 1.

    Returns:
        scores: (N,) scores sorted descending (stable, ties keep file order).
        best: (N,) int64 index of the ground-truth box with the highest IoU per
            prediction in that order, -1 where that IoU is below ``iou_thresh``.
    """
    order = np.argsort(-pred[:, 4], kind='stable')
    pred = pred[order]
    overlaps = pairwise_overlap(_xywh_to_xyxy(pred[:, :4]), _xywh_to_xyxy(gt_boxes))
    best = overlaps.argmax(axis=1)
    best[overlaps[np.arange(len(best)), best] < iou_thresh] = -1
    return pred[:, 4], best


def _thresholds():
    """(THRESH_NUM,) decreasing score thresholds ``1 - (k + 1) / THRESH_NUM``."""
    return 1 - (np.arange(THRESH_NUM) + 1) / THRESH_NUM


def voc_ap(rec, prec):
    """VOC all-point AP: area under the monotone envelope of precision over recall.

    Args:
        rec, prec: (T,) recall (non-decreasing) and precision at T thresholds.
    """
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    changes = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[changes + 1] - mrec[changes]) * mpre[changes + 1]))


def _pr_curve(scores, face, kept, count_face):
    """Precision and recall at the THRESH_NUM thresholds for one setting.

    Args:
        scores: (P,) normalised scores of all evaluated predictions, sorted
            descending within each image, images one after another.
        face: (P,) index of each prediction's matched face in the list of all
            ground-truth faces of all images, -1 for no match.
        kept: (F,) bool over all faces, True where the face counts in the setting.
        count_face: number of faces that count (the recall denominator).
    """
    matched = face >= 0
    on_kept = np.zeros(len(face), dtype=bool)
    on_kept[matched] = kept[face[matched]]
    # A prediction matched to an ignore face is no proposal; an ignore face is never recalled.
    proposal = ~matched | on_kept
    # The recall of an image steps up at the first prediction of each kept face it finds.
    hits = np.flatnonzero(on_kept)
    _, first = np.unique(face[hits], return_index=True)
    new_face = np.zeros(len(face), dtype=bool)
    new_face[hits[first]] = True

    # Within an image the predictions above a threshold are a prefix of the sorted
    # list, so the per-image counts at threshold t are sums over predictions with
    # score >= t: a histogram over the first threshold each prediction passes.
    first_pass = THRESH_NUM - np.searchsorted(_thresholds()[::-1], scores, side='right')
    valid = first_pass < THRESH_NUM
    proposals = np.cumsum(np.bincount(first_pass[valid], weights=proposal[valid], minlength=THRESH_NUM))
    recalled = np.cumsum(np.bincount(first_pass[valid], weights=new_face[valid], minlength=THRESH_NUM))
    # Where nothing is proposed nothing is recalled either; precision 0 there leaves AP unchanged.
    precision = np.divide(recalled, proposals, out=np.zeros(THRESH_NUM), where=proposals > 0)
    return precision, recalled / count_face


def evaluate(pred_dir, gt, iou_thresh=0.5):
    """Easy / medium / hard AP of the predictions in ``pred_dir``; ``gt`` is a GroundTruth or the
    folder to load it from (:func:`load_ground_truth`).

    Returns:
        dict with ``easy``, ``medium``, ``hard`` (AP floats), ``iou_thresh``,
        ``num_images``, ``num_missing`` and ``curves``: setting -> dict of
        ``precision``, ``recall`` ((THRESH_NUM,) float64 at the decreasing
        thresholds ``1 - (k + 1) / THRESH_NUM``) and ``num_faces``.
    """
    if not isinstance(gt, GroundTruth):
        gt = load_ground_truth(gt)
    raw, missing = load_predictions(pred_dir, gt)
    preds = normalize_scores(raw)

    # Faces of all images are numbered one after another; image i starts at starts[i].
    num_boxes = np.array([len(b) for b in gt.boxes], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(num_boxes)[:-1])).astype(np.int64)
    scores, faces = [np.zeros(0)], [np.zeros(0, np.int64)]
    for pred, boxes, start in zip(preds, gt.boxes, starts):
        if len(pred) == 0 or len(boxes) == 0:
            continue
        s, best = match_image(pred, boxes, iou_thresh)
        scores.append(s)
        faces.append(np.where(best >= 0, best + start, -1))
    scores, faces = np.concatenate(scores), np.concatenate(faces)

    result = {'iou_thresh': iou_thresh, 'num_images': len(gt), 'num_missing': len(missing), 'curves': {}}
    for setting in SETTINGS:
        keep = gt.keep[setting]
        kept = np.zeros(int(num_boxes.sum()), dtype=bool)
        kept[np.concatenate([start + k for start, k in zip(starts, keep)] + [np.zeros(0, np.int64)])] = True
        count_face = sum(len(k) for k in keep)
        precision, recall = _pr_curve(scores, faces, kept, count_face)
        result[setting] = voc_ap(recall, precision)
        result['curves'][setting] = {'precision': precision, 'recall': recall, 'num_faces': count_face}
    return result


def format_table(result):
    """Text table of the three APs."""
    lines = ['%-8s %8s %8s' % ('setting', 'AP', 'faces')]
    for setting in SETTINGS:
        lines.append('%-8s %8.4f %8d' % (setting, result[setting], result['curves'][setting]['num_faces']))
    return '\n'.join(lines)


SUMMARY_FILE = 'widerface_eval.json'
PR_CURVES_FILE = 'widerface_pr.png'


def write_report(result, folder):
    """``folder/SUMMARY_FILE`` (:func:`write_summary`) and ``folder/PR_CURVES_FILE``
    (:func:`plot_pr_curves`) of an :func:`evaluate` result."""
    write_summary(result, os.path.join(folder, SUMMARY_FILE))
    plot_pr_curves(result, os.path.join(folder, PR_CURVES_FILE))


def write_summary(result, path):
    """Write the APs and counts (no curves) as JSON, atomically."""
    summary = {setting: result[setting] for setting in SETTINGS}
    summary.update(iou_thresh=result['iou_thresh'], num_images=result['num_images'],
                   num_missing=result['num_missing'],
                   num_faces={s: result['curves'][s]['num_faces'] for s in SETTINGS})
    with atomic_open(path, 'w') as f:
        json.dump(summary, f, indent=2)
        f.write('\n')


def plot_pr_curves(result, path):
    """Save the three precision-recall curves to a PNG, atomically (Agg backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for setting in SETTINGS:
        curve = result['curves'][setting]
        ax.plot(curve['recall'], curve['precision'], label='%s  AP %.4f' % (setting, result[setting]))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel('recall')
    ax.set_ylabel('precision')
    ax.set_title('WIDER FACE val, IoU %.2f' % result['iou_thresh'])
    ax.grid(True, alpha=0.3)
    ax.legend(loc='lower left')
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png')


if __name__ == '__main__':
    from rcnn.commands import retinaface_evaluate as _command  # the launcher of python -m rcnn.evaluation.widerface
    sys.exit(_command())
