"""WIDER FACE evaluation (rcnn/evaluation/widerface.py): golden APs and edge cases."""
import json
import logging
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from rcnn.evaluation import widerface
from support import REPO, require_shared, write_ground_truth, write_pred

GOLDEN_TOL = 1e-6  # AP tolerance against the original evaluation's output


EVENT = '0--Parade'
# Image 'faces': f0 counts everywhere, f1 is ignored in easy, f2 (never detected) counts only in hard.
FACES = [[10, 10, 20, 20], [100, 100, 20, 20], [200, 200, 5, 5]]
# 'letters' ends in the letters of '.jpg' before its extension (an rstrip('.jpg') would eat them).
IMAGES = [('0_Parade_faces_1', FACES), ('0_Parade_letters_gjp', [[50, 50, 30, 30]]),
          ('0_Parade_empty_3', [[5, 5, 10, 10]]), ('0_Parade_missing_4', [[5, 5, 10, 10]])]
KEEP = {
    'easy': {(EVENT, '0_Parade_faces_1'): [1]},
    'medium': {(EVENT, '0_Parade_faces_1'): [1, 2]},
    'hard': {(EVENT, '0_Parade_faces_1'): [1, 2, 3]},
}
for _setting in KEEP:
    for _name in ('0_Parade_letters_gjp', '0_Parade_empty_3', '0_Parade_missing_4'):
        KEEP[_setting][(EVENT, _name)] = [1]
# Scores 0.9, 0.8, 0.7, 0.6 normalise (min 0.6, max 0.9) to 1, 2/3, 1/3, 0.
FACES_PREDS = [[10, 10, 20, 20, 0.9], [100, 100, 20, 20, 0.8], [300, 300, 20, 20, 0.7]]
LETTERS_PREDS = [[50, 50, 30, 30, 0.6]]
# Hand-derived APs.  Going down the thresholds the predictions come in the order
# f0 (hit), f1 (hit, or ignored in easy), false positive, letters (hit, at threshold 0).
#   medium, 5 faces: (recall, precision) (1/5, 1) (2/5, 1) (2/5, 2/3) (3/5, 3/4) -> 2/5 + 1/5 * 3/4
#   easy, 4 faces, f1 not a proposal: (1/4, 1) (1/4, 1/2) (2/4, 2/3) -> 1/4 + 1/4 * 2/3
#   hard, 6 faces: as medium with recall over 6 -> 2/6 + 1/6 * 3/4
EXPECTED = {'easy': 1 / 4 + 2 / 3 / 4, 'medium': 2 / 5 + 3 / 4 / 5, 'hard': 2 / 6 + 3 / 4 / 6}


@pytest.fixture
def small_set(tmp_path):
    """Hand-made ground truth and predictions: one image missing, one with zero detections."""
    gt_dir, pred_dir = tmp_path / 'gt', tmp_path / 'pred'
    write_ground_truth(gt_dir, [(EVENT, IMAGES)], KEEP)
    write_pred(pred_dir, EVENT, '0_Parade_faces_1', FACES_PREDS)
    write_pred(pred_dir, EVENT, '0_Parade_letters_gjp', LETTERS_PREDS)
    write_pred(pred_dir, EVENT, '0_Parade_empty_3', [])
    return gt_dir, pred_dir


def test_small_set_aps_and_one_missing_warning(small_set, caplog):
    gt_dir, pred_dir = small_set
    with caplog.at_level(logging.WARNING, logger=widerface.__name__):
        result = widerface.evaluate(pred_dir, gt_dir)
    for setting in widerface.SETTINGS:
        assert result[setting] == pytest.approx(EXPECTED[setting], abs=1e-12), setting
    assert result['num_missing'] == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert '1 of 4 prediction files are missing' in warnings[0].getMessage()
    assert result['curves']['hard']['num_faces'] == 6


def test_unsorted_predictions_give_same_aps(small_set):
    gt_dir, pred_dir = small_set
    write_pred(pred_dir, EVENT, '0_Parade_faces_1', FACES_PREDS[::-1])
    result = widerface.evaluate(pred_dir, gt_dir)
    for setting in widerface.SETTINGS:
        assert result[setting] == pytest.approx(EXPECTED[setting], abs=1e-12), setting


def test_wrong_field_count_names_file_and_line(small_set):
    gt_dir, pred_dir = small_set
    path = write_pred(pred_dir, EVENT, '0_Parade_faces_1', FACES_PREDS)
    with open(path) as f:
        lines = f.read().splitlines()
    lines[3] = '100 100 20 20'  # second detection, line 4, score dropped
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    with pytest.raises(ValueError, match=r'0_Parade_faces_1\.txt:4: expected 5 fields'):
        widerface.evaluate(pred_dir, gt_dir)


def test_count_disagreeing_with_lines_is_an_error(small_set):
    gt_dir, pred_dir = small_set
    path = write_pred(pred_dir, EVENT, '0_Parade_empty_3', [])
    with open(path, 'a') as f:
        f.write('1 2 3 4 0.5\n')
    with pytest.raises(ValueError, match=r'0_Parade_empty_3\.txt:2: count says 0'):
        widerface.evaluate(pred_dir, gt_dir)


def test_iou_uses_x_plus_w_and_plus_one_areas():
    # gt x 0..10 (x2 = x + w), 11 px wide with +1; prediction x2 = 4.5 -> 5.5 px: IoU exactly 0.5.
    gt = np.array([[0.0, 0.0, 10.0, 10.0]])
    match = np.array([[0.0, 0.0, 4.5, 10.0, 1.0]])
    miss = np.array([[0.0, 0.0, 4.4, 10.0, 1.0]])
    assert widerface.match_image(match, gt, 0.5)[1].tolist() == [0]
    assert widerface.match_image(miss, gt, 0.5)[1].tolist() == [-1]


def test_voc_ap_uses_the_precision_envelope():
    # Envelope raises precision at recall 0.5 from 0.5 to 1 (the later point): AP = 0.5 * 1 + 0.5 * 1.
    assert widerface.voc_ap(np.array([0.5, 0.5, 1.0]), np.array([0.5, 1.0, 1.0])) == pytest.approx(1.0)
    assert widerface.voc_ap(np.array([0.25, 0.5]), np.array([1.0, 0.5])) == pytest.approx(0.25 + 0.25 * 0.5)


def test_cli_writes_json_png_and_table(small_set, tmp_path):
    gt_dir, pred_dir = small_set
    out = tmp_path / 'report'
    proc = subprocess.run([sys.executable, '-m', 'rcnn.evaluation.widerface', '--pred', str(pred_dir),
                           '--gt', str(gt_dir), '--out-dir', str(out)],
                          cwd=REPO, capture_output=True, text=True, check=True)
    summary = json.loads((out / 'widerface_eval.json').read_text())
    for setting in widerface.SETTINGS:
        assert summary[setting] == pytest.approx(EXPECTED[setting], abs=1e-12)
        assert setting in proc.stdout
    assert summary['num_missing'] == 1
    assert (out / 'widerface_pr.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert sorted(p.name for p in out.iterdir()) == ['widerface_eval.json', 'widerface_pr.png']


@pytest.fixture(scope='module')
def dev_predictions(tmp_path_factory):
    archive = require_shared('golden/widerface_val_predictions_dev.tar.gz')
    root = tmp_path_factory.mktemp('dev')
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter='data')
    return root / 'wider_preds_dev'


def test_dev_predictions_match_golden_aps(dev_predictions):
    gt_dir = require_shared('assets/widerface/ground_truth')
    expected = json.loads(require_shared('golden/widerface_val_predictions_dev.expected.json').read_text())
    result = widerface.evaluate(dev_predictions, gt_dir, iou_thresh=expected['iou_thresh'])
    assert result['num_images'] == 3226 and result['num_missing'] == 0
    for setting in widerface.SETTINGS:
        assert abs(result[setting] - expected[setting]) < GOLDEN_TOL, setting


def test_dev_predictions_shuffled_give_golden_aps(dev_predictions, tmp_path):
    gt_dir = require_shared('assets/widerface/ground_truth')
    expected = json.loads(require_shared('golden/widerface_val_predictions_dev.expected.json').read_text())
    rng = np.random.default_rng(0)
    shuffled = tmp_path / 'shuffled'
    for event in os.listdir(dev_predictions):
        os.makedirs(shuffled / event)
        for name in os.listdir(dev_predictions / event):
            lines = (dev_predictions / event / name).read_text().splitlines()
            body = [lines[i] for i in rng.permutation(len(lines) - 2) + 2]
            (shuffled / event / name).write_text('\n'.join(lines[:2] + body) + '\n')
    result = widerface.evaluate(shuffled, gt_dir)
    for setting in widerface.SETTINGS:
        assert abs(result[setting] - expected[setting]) < GOLDEN_TOL, setting


@pytest.mark.parametrize('score', ['nan', 'inf', '-inf', 'NaN'])
def test_non_finite_score_names_file_and_line(small_set, score):
    gt_dir, pred_dir = small_set
    path = write_pred(pred_dir, EVENT, '0_Parade_faces_1', FACES_PREDS)
    lines = open(path).read().splitlines()
    lines[3] = '100 100 20 20 %s ' % score
    open(path, 'w').write('\n'.join(lines) + '\n')
    with pytest.raises(ValueError, match=r'0_Parade_faces_1\.txt:4: non-finite number in .*%s' % score):
        widerface.evaluate(pred_dir, gt_dir)


def test_non_numeric_score_and_binary_file_are_named(small_set):
    gt_dir, pred_dir = small_set
    path = write_pred(pred_dir, EVENT, '0_Parade_faces_1', FACES_PREDS)
    text = open(path).read().replace(' 0.8 ', ' high ')
    open(path, 'w').write(text)
    with pytest.raises(ValueError, match=r"0_Parade_faces_1\.txt:4: not a number in '100 100 20 20 high'"):
        widerface.evaluate(pred_dir, gt_dir)
    for data in (b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR', b'0--Parade/x.jpg\n1\n\xff\xfe 1 2 3 0.5\n'):
        open(path, 'wb').write(data)
        with pytest.raises(ValueError, match=r'0_Parade_faces_1\.txt: a binary file, not a prediction file'):
            widerface.evaluate(pred_dir, gt_dir)


def test_missing_or_empty_prediction_folder_is_an_error(small_set, tmp_path):
    gt_dir, _ = small_set
    with pytest.raises(FileNotFoundError, match='prediction folder .*nothere does not exist'):
        widerface.evaluate(tmp_path / 'nothere', gt_dir)
    (tmp_path / 'empty' / EVENT).mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r'no prediction files in .*empty: expected <event>/<name>\.txt for '
                                                r'the 4 ground-truth images, e\.g\. 0--Parade/0_Parade_faces_1\.txt'):
        widerface.evaluate(tmp_path / 'empty', gt_dir)


def test_damaged_ground_truth_is_named(small_set):
    gt_dir, pred_dir = small_set
    data = (gt_dir / 'wider_medium_val.mat').read_bytes()
    (gt_dir / 'wider_medium_val.mat').write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=r'wider_medium_val\.mat: not a readable MATLAB file'):
        widerface.evaluate(pred_dir, gt_dir)


@pytest.mark.parametrize('args, message, code', [
    (['--pred', '{tmp}/nothere', '--gt', '{gt}'], '--pred: no such folder: {tmp}/nothere', 2),
    (['--pred', '{pred}', '--gt', '{tmp}/nothere'], '--gt: no such folder: {tmp}/nothere', 2),
    (['--pred', '{pred}', '--gt', '{gt}', '--iou-thresh', '2'], 'argument --iou_thresh: must be a number in [0, 1]', 2),
    (['--pred', '{pred}', '--gt', '{gt}', '--out-dir', '{gt}/wider_face_val.mat/x'],
     '--output: {gt}/wider_face_val.mat is not a folder', 2),
    (['--pred', '{pred}', '--gt', '{pred}'], '--gt: {pred} lacks the WIDER FACE ground truth wider_face_val.mat', 2),
    (['--pred', '{tmp}/empty', '--gt', '{gt}'], 'error: no prediction files in {tmp}/empty', 1),
    (['--pred', '{pred}', '--gt', '{gt}', '--out-dir', '{tmp}/out'],
     'error: {pred}/0--Parade/0_Parade_faces_1.txt:3: non-finite number', 1),
])
def test_cli_errors_are_one_line_and_write_nothing(small_set, tmp_path, args, message, code):
    gt_dir, pred_dir = small_set
    (tmp_path / 'empty').mkdir()
    write_pred(pred_dir, EVENT, '0_Parade_faces_1', [[10, 10, 20, 20, float('nan')]])
    names = dict(tmp=tmp_path, gt=gt_dir, pred=pred_dir)
    proc = subprocess.run([sys.executable, '-m', 'rcnn.evaluation.widerface'] + [a.format(**names) for a in args],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == code and message.format(**names) in proc.stderr, proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not (tmp_path / 'out').exists() and not (pred_dir / 'widerface_eval.json').exists()


def test_a_negative_width_is_evaluated_as_the_toolkit_does_and_named(small_set, caplog):
    """The original's own predictions hold a few (golden dev set): a warning names the first file and line."""
    gt_dir, pred_dir = small_set
    path = write_pred(pred_dir, EVENT, '0_Parade_faces_1', FACES_PREDS[:2] + [[300, 300, -20, 20, 0.7]])
    with caplog.at_level(logging.WARNING, logger=widerface.__name__):
        result = widerface.evaluate(pred_dir, gt_dir)
    assert '1 detections have a negative width or height, e.g. %s:5' % path in caplog.text
    for setting in widerface.SETTINGS:
        assert result[setting] == pytest.approx(EXPECTED[setting], abs=1e-12), setting
