"""The MTCNN training loss with online hard example mining (custom op ``mtcnn_ohem``).

Labels: 1 positive, 0 negative, -1 part face, -2 landmark face.
For a batch of B samples the op minimises

    L = w_det * mean_{kept}  -log p_label            (classification)
      + w_box * mean_{|label| = 1}  ||bbox_pred - bbox_target||^2
      + w_lmk * mean_{label = -2}   ||landmark_pred - landmark_target||^2

where ``kept`` are the top ``int(0.7 * n)`` classification losses among the n
positives and negatives of the batch (paper section 2.2; part and landmark
faces take no part in classification). Loss weights (w_det, w_box, w_lmk) are
1/0.5/0.5 for P-Net and R-Net and 1/0.5/1 for O-Net.

Stock MXNet cannot weight the gradient of ``SoftmaxOutput`` /
``LinearRegressionOutput`` per sample (the original implementation patched
MXNet for that), so this op takes the raw heads and writes their gradients
itself: d L / d cls_score = w_det * (p - onehot(label)) / n_kept on kept rows,
d L / d pred = 2 * w * (pred - target) / n_rows on the rows of each regression
task, zero elsewhere. No gradient flows to the labels and targets.

Inputs: cls_score (B, 2) logits, bbox_pred (B, 4), [landmark_pred (B, 10)],
label (B,), bbox_target (B, 4), [landmark_target (B, 10)].
Outputs: cls_prob (B, 2) softmax, bbox_pred (B, 4), [landmark_pred (B, 10)],
cls_keep (B,), bbox_keep (B,), [landmark_keep (B,)] — 0/1 masks for metrics.
"""
import mxnet as mx
import numpy as np

__all__ = ['LOSS_WEIGHTS', 'OHEM_RATIO', 'register_ohem', 'ohem_masks', 'softmax']

LOSS_WEIGHTS = {'pnet': (1.0, 0.5, 0.5), 'rnet': (1.0, 0.5, 0.5), 'onet': (1.0, 0.5, 1.0)}
OHEM_RATIO = 0.7
EPS = 1e-14  # keeps log(p) finite when the softmax saturates


def softmax(scores):
    """Row softmax of (B, 2) float logits."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def ohem_masks(cls_prob, label, ratio=OHEM_RATIO):
    """0/1 masks (B,) float32 of the rows each loss uses.

    cls_keep: the ``int(ratio * n)`` largest ``-log p_label`` among the n rows with
    label 0 or 1 (ties broken by row order); bbox_keep: label 1 or -1;
    landmark_keep: label -2.
    """
    label = np.asarray(label).reshape(-1).astype(np.int64)
    valid = np.flatnonzero((label == 0) | (label == 1))
    cls_keep = np.zeros(len(label), np.float32)
    num_keep = int(len(valid) * ratio)
    if num_keep > 0:
        loss = -np.log(cls_prob[valid, label[valid]] + EPS)
        hardest = np.argsort(-loss, kind='stable')[:num_keep]
        cls_keep[valid[hardest]] = 1
    bbox_keep = (np.abs(label) == 1).astype(np.float32)
    landmark_keep = (label == -2).astype(np.float32)
    return cls_keep, bbox_keep, landmark_keep


class OhemLoss(mx.operator.CustomOp):
    def __init__(self, with_landmark, det_weight, box_weight, landmark_weight):
        super().__init__()
        self.with_landmark = with_landmark
        self.weights = (det_weight, box_weight, landmark_weight)

    def _split(self, in_data):
        """Returns (cls_score, regressions, label, targets), regressions/targets as lists."""
        arrays = [x.asnumpy() for x in in_data]
        if self.with_landmark:
            cls_score, bbox_pred, landmark_pred, label, bbox_target, landmark_target = arrays
            return cls_score, [bbox_pred, landmark_pred], label, [bbox_target, landmark_target]
        cls_score, bbox_pred, label, bbox_target = arrays
        return cls_score, [bbox_pred], label, [bbox_target]

    def forward(self, is_train, req, in_data, out_data, aux):
        cls_score, preds, label, _ = self._split(in_data)
        cls_prob = softmax(cls_score)
        masks = ohem_masks(cls_prob, label)
        outputs = [cls_prob] + preds + list(masks[:len(preds) + 1])
        for i, value in enumerate(outputs):
            self.assign(out_data[i], req[i], mx.nd.array(value, dtype=out_data[i].dtype))

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        cls_score, preds, label, targets = self._split(in_data)
        num_heads = 1 + len(preds)
        cls_prob = out_data[0].asnumpy()
        keeps = [out_data[num_heads + k].asnumpy() for k in range(num_heads)]

        onehot = np.zeros_like(cls_prob)
        rows = np.flatnonzero(keeps[0])
        onehot[rows, label[rows].astype(np.int64)] = 1
        grads = [self.weights[0] * (cls_prob - onehot) * keeps[0][:, None] / max(len(rows), 1)]
        for k, (pred, target) in enumerate(zip(preds, targets)):
            keep = keeps[k + 1]
            grads.append(2 * self.weights[k + 1] * (pred - target) * keep[:, None] / max(keep.sum(), 1))
        for i, grad in enumerate(grads):
            self.assign(in_grad[i], req[i], mx.nd.array(grad, dtype=in_grad[i].dtype))
        for i in range(len(grads), len(in_grad)):  # labels and targets
            self.assign(in_grad[i], req[i], mx.nd.zeros(in_grad[i].shape, dtype=in_grad[i].dtype))


class OhemLossProp(mx.operator.CustomOpProp):
    def __init__(self, with_landmark='False', det_weight='1', box_weight='0.5', landmark_weight='0.5'):
        super().__init__(need_top_grad=False)
        self.with_landmark = str(with_landmark) == 'True'
        self.weights = (float(det_weight), float(box_weight), float(landmark_weight))

    def list_arguments(self):
        if self.with_landmark:
            return ['cls_score', 'bbox_pred', 'landmark_pred', 'label', 'bbox_target', 'landmark_target']
        return ['cls_score', 'bbox_pred', 'label', 'bbox_target']

    def list_outputs(self):
        if self.with_landmark:
            return ['cls_prob', 'bbox_pred', 'landmark_pred', 'cls_keep', 'bbox_keep', 'landmark_keep']
        return ['cls_prob', 'bbox_pred', 'cls_keep', 'bbox_keep']

    def infer_shape(self, in_shape):
        batch = in_shape[0][0]
        num_heads = 3 if self.with_landmark else 2
        label_shape = (batch,)
        in_shapes = list(in_shape[:num_heads]) + [label_shape] + list(in_shape[num_heads + 1:])
        out_shapes = list(in_shape[:num_heads]) + [label_shape] * num_heads
        return in_shapes, out_shapes, []

    def create_operator(self, ctx, shapes, dtypes):
        return OhemLoss(self.with_landmark, *self.weights)


_REGISTERED = []


def register_ohem():
    """Register ``mtcnn_ohem`` with MXNet once per process (called by the train symbols)."""
    if not _REGISTERED:
        mx.operator.register('mtcnn_ohem')(OhemLossProp)
        _REGISTERED.append(True)
