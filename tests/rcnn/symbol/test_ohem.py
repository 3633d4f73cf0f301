"""The ``rpn_fpn_ohem3`` custom operator: selection rule, bounds, layouts, no gradient."""
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from support import REPO

from rcnn.symbol import rpn_fpn_ohem3

A = 2


def reference_ohem(cls_score, labels, num_anchors, batch_size=256, fg_fraction=0.25):
    """Per-image sort-based statement of the rule, for distinct scores."""
    labels = labels.copy()
    weights = np.zeros(labels.shape + (1,), dtype=np.float32)
    counts = np.zeros((labels.shape[0], 1), dtype=np.float32)
    num_fg = int(fg_fraction * batch_size)
    for b in range(labels.shape[0]):
        fg_score = cls_score[b, 1] - cls_score[b, 0]
        fg = np.flatnonzero(labels[b] > 0)
        if len(fg) > num_fg:
            labels[b, fg] = -1
            labels[b, fg[np.argsort(fg_score[fg])[:num_fg]]] = 1
        n_fg = int((labels[b] > 0).sum())
        num_bg = batch_size - n_fg
        bg = np.flatnonzero(labels[b] == 0)
        if len(bg) > num_bg:
            labels[b, bg] = -1
            labels[b, bg[np.argsort(-fg_score[bg])[:num_bg]]] = 0
        order = labels[b].reshape(num_anchors, -1).T.ravel()  # (h, w, a)
        weights[b, order > 0, 0] = 1
        counts[b, 0] = n_fg
    return labels, weights, counts


def random_case(batch, n, num_pos, num_ignored, seed):
    rng = np.random.RandomState(seed)
    cls_score = rng.normal(0, 2, (batch, 2, n)).astype(np.float32)
    labels = np.zeros((batch, n), dtype=np.float32)
    for b in range(batch):
        idx = rng.permutation(n)
        labels[b, idx[:num_pos[b]]] = 1
        labels[b, idx[num_pos[b]:num_pos[b] + num_ignored]] = -1
    return cls_score, labels


def run_op(cls_score, labels, **kwargs):
    rpn_fpn_ohem3.register()
    outs = mx.nd.Custom(mx.nd.array(cls_score), mx.nd.array(labels), op_type=rpn_fpn_ohem3.OP_TYPE,
                        num_anchors=A, **kwargs)
    return [o.asnumpy() for o in outs]


@pytest.mark.parametrize('num_pos', [[0, 5], [64, 65], [300, 1000]])
def test_op_matches_the_sorting_rule(num_pos):
    cls_score, labels = random_case(2, 2 * 40 * 40, num_pos, num_ignored=200, seed=sum(num_pos))
    got = run_op(cls_score, labels)
    expected = reference_ohem(cls_score, labels, A)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
    assert [g.shape for g in got] == [labels.shape, labels.shape + (1,), (2, 1)]
    assert all(g.dtype == np.float32 for g in got)


def test_bounds_and_selection():
    cls_score, labels = random_case(3, 2 * 20 * 20, [10, 64, 500], num_ignored=50, seed=3)
    labels_ohem, anchor_weight, valid_count = run_op(cls_score, labels)
    fg_score = cls_score[:, 1] - cls_score[:, 0]
    for b in range(3):
        kept_pos = labels_ohem[b] == 1
        kept_neg = labels_ohem[b] == 0
        assert kept_pos.sum() == min((labels[b] == 1).sum(), 64) == valid_count[b, 0]
        assert kept_pos.sum() + kept_neg.sum() == 256
        assert np.all(labels[b][kept_pos] == 1) and np.all(labels[b][kept_neg] == 0)
        dropped_pos = (labels[b] == 1) & ~kept_pos
        if dropped_pos.any():  # hardest positives: lowest face score
            assert fg_score[b][kept_pos].max() < fg_score[b][dropped_pos].min()
        dropped_neg = (labels[b] == 0) & ~kept_neg
        assert fg_score[b][kept_neg].min() > fg_score[b][dropped_neg].max()  # hardest negatives
        assert anchor_weight[b].sum() == kept_pos.sum()


def test_anchor_weight_uses_the_regression_order():
    # One positive at anchor a=1, position p=3 of a 2 x 5 map: label index a*HW + p, weight index p*A + a.
    hw = 10
    labels = np.zeros((1, A * hw), dtype=np.float32)
    labels[0, 1 * hw + 3] = 1
    _, anchor_weight, valid_count = run_op(np.zeros((1, 2, A * hw), np.float32), labels)
    assert np.flatnonzero(anchor_weight[0, :, 0]).tolist() == [3 * A + 1]
    assert valid_count.tolist() == [[1.0]]


def test_kwargs_set_the_batch_size_and_fraction():
    cls_score, labels = random_case(1, 200, [20], num_ignored=0, seed=5)
    labels_ohem, _, valid_count = run_op(cls_score, labels, rpn_batch_size=8, fg_fraction=1.0)
    # All 8 slots go to positives: no negative is left.
    assert (labels_ohem == 1).sum() == 8 == valid_count[0, 0]
    assert (labels_ohem == 0).sum() == 0
    labels_ohem, _, _ = run_op(cls_score, labels, rpn_batch_size=40, fg_fraction=0.5)
    assert (labels_ohem == 1).sum() == 20 and (labels_ohem == 0).sum() == 20


def test_no_gradient_flows_back():
    rpn_fpn_ohem3.register()
    score, label = mx.sym.Variable('cls_score'), mx.sym.Variable('labels')
    out = mx.sym.Custom(cls_score=score, labels=label, op_type=rpn_fpn_ohem3.OP_TYPE, num_anchors=A)
    loss = mx.sym.MakeLoss(mx.sym.sum(out[1]) + mx.sym.sum(out[0]) + mx.sym.sum(out[2]))
    cls_score, labels = random_case(1, 80, [30], num_ignored=0, seed=7)
    grad = mx.nd.ones(cls_score.shape)
    exe = loss.bind(mx.cpu(), args={'cls_score': mx.nd.array(cls_score), 'labels': mx.nd.array(labels)},
                    args_grad={'cls_score': grad}, grad_req={'cls_score': 'write', 'labels': 'null'})
    exe.forward(is_train=True)
    exe.backward()
    assert np.all(grad.asnumpy() == 0)


def test_register_is_idempotent():
    rpn_fpn_ohem3.register()
    rpn_fpn_ohem3.register()
    cls_score, labels = random_case(1, 40, [3], num_ignored=0, seed=9)
    np.testing.assert_array_equal(run_op(cls_score, labels)[0], reference_ohem(cls_score, labels, A)[0])


def test_training_process_with_the_op_exits(tmp_path):
    """A process that ends with OHEM work possibly still queued exits (without the wait that
    ``register`` adds, MXNet's exit handler was seen to deadlock intermittently)."""
    script = tmp_path / 'step.py'
    script.write_text('\n'.join([
        'import mxnet as mx, numpy as np',
        'from rcnn.symbol import rpn_fpn_ohem3',
        'rpn_fpn_ohem3.register()',
        "score = mx.sym.Variable('cls_score')",
        "out = mx.sym.Custom(cls_score=score, labels=mx.sym.Variable('labels'), op_type='rpn_fpn_ohem3',",
        "                    num_anchors=2)",
        "loss = mx.sym.SoftmaxOutput(score, out[0], multi_output=True, use_ignore=True, ignore_label=-1)",
        "mod = mx.mod.Module(loss, data_names=['cls_score'], label_names=['labels'])",
        "mod.bind([('cls_score', (4, 2, 4000))], [('labels', (4, 4000))], inputs_need_grad=True)",
        'mod.init_params()',
        "batch = mx.io.DataBatch([mx.nd.random.normal(shape=(4, 2, 4000))], [mx.nd.ones((4, 4000))])",
        'for _ in range(5):',
        '    mod.forward_backward(batch)',
    ]))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, str(script)], env=env, timeout=120, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
