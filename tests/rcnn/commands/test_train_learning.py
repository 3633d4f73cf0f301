"""mnet learns on synthetic WIDER data in a CI-sized run: the loss falls and the WIDER AP
on the synthetic val split ends clearly above the untrained network's.

The run starts from the released mnet.25 features with the prediction layers
(``face_rpn_{cls_score,bbox_pred,landmark_pred}_stride*``) initialised fresh, so the
untrained network detects nothing and everything it learns comes from our labels,
losses, OHEM and optimizer. (From random weights the whole network needs far more
than a CI budget: see the README's demo figures.)
"""
import os
import re
import subprocess
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest

from support import REPO, require_shared
from facekit.mx.checkpoint import load_params
from facekit.labels import read_label_file
from rcnn.dataset.synthetic import generate_widerface
from rcnn.evaluation.widerface import evaluate

EPOCHS = 4  # of 20 batches of 4 crops
EPOCH_METRIC = re.compile(r'Epoch\[(\d+)\] Train-(RPNAcc|RPNL1Loss|RPNLandMarkL1Loss)_s(\d+)=([-\w./]+)')


def epoch_metrics(log):
    """{epoch: (mean RPNAcc over strides, summed box + landmark L1 loss over strides with positives)};
    a stride without positives logs its losses as n/a."""
    values = {}
    for epoch, name, _, value in EPOCH_METRIC.findall(log):
        if value != 'n/a':
            values.setdefault(int(epoch), {}).setdefault(name, []).append(float(value))
    return {epoch: (np.mean(v['RPNAcc']), np.sum(v.get('RPNL1Loss', [])) + np.sum(v.get('RPNLandMarkL1Loss', [])))
            for epoch, v in values.items()}


def val_ap(prefix, epoch, data, output):
    """Easy/medium/hard AP of ``prefix-epoch`` on the val split at scale 1.0."""
    from retinaface import RetinaFace
    from rcnn.commands.test_widerface import result_path, write_result
    detector = RetinaFace(prefix, epoch, ctx_id=-1)
    for record in read_label_file(os.path.join(data, 'val', 'label.txt')):
        image = cv2.imread(os.path.join(data, 'val', 'images', record.path))
        boxes, _ = detector.detect(image, threshold=0.02, scales=[1.0])
        write_result(result_path(output, record.path), record.path, boxes)
    return evaluate(output, os.path.join(data, 'ground_truth'))


@pytest.mark.slow
def test_mnet_learns_on_synthetic_data(tmp_path):
    released = str(require_shared('assets/models/retinaface-mnet025/mnet.25-symbol.json')).replace('-symbol.json', '')
    arg_params, aux_params = load_params(released, 0)
    features = str(tmp_path / 'features')
    kept = {'arg:' + k: v for k, v in arg_params.items() if not k.startswith('face_rpn_')}
    kept.update({'aux:' + k: v for k, v in aux_params.items()})
    mx.nd.save(features + '-0000.params', kept)

    data = str(tmp_path / 'retinaface')
    generate_widerface(data, num_train=40, num_val=12, num_test=0, seed=11, workers=1)
    prefix = str(tmp_path / 'mnet')
    command = [sys.executable, 'train.py', '--network', 'mnet', '--dataset', 'retinaface', '--dataset_path', data,
               '--prefix', prefix, '--batch_images', '4', '--frequent', '10', '--lr', '0.01', '--workers', '1',
               '--seed', '1', '--pretrained', features, '--pretrained_epoch', '0']
    untrained = subprocess.run(command + ['--max_iters', '0'], cwd=REPO, capture_output=True, text=True)
    assert untrained.returncode == 0, untrained.stderr
    assert 'initialised fresh: face_rpn_bbox_pred_stride16_bias' in untrained.stderr
    before = val_ap(prefix, 0, data, str(tmp_path / 'before'))

    trained = subprocess.run(command + ['--end_epoch', str(EPOCHS), '--overwrite'], cwd=REPO, capture_output=True,
                             text=True)
    assert trained.returncode == 0, trained.stderr
    logged = epoch_metrics(trained.stderr)
    assert sorted(logged) == list(range(EPOCHS)), trained.stderr
    (first_acc, first_loss), (last_acc, last_loss) = logged[0], logged[EPOCHS - 1]
    assert last_loss < first_loss, logged
    assert last_acc > first_acc, logged
    after = val_ap(prefix, EPOCHS, data, str(tmp_path / 'after'))

    message = 'AP before %s, after %s' % ({k: round(before[k], 3) for k in ('easy', 'medium', 'hard')},
                                          {k: round(after[k], 3) for k in ('easy', 'medium', 'hard')})
    print(message)
    assert after['easy'] >= before['easy'] + 0.2, message
    assert after['hard'] >= before['hard'] + 0.1, message
