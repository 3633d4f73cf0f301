"""The whole MTCNN training chain at CI size on synthetic WIDER-style data:
P-Net samples -> P-Net -> hard examples -> R-Net -> hard examples -> O-Net,
then the cascade's recall / precision on the synthetic val split."""
import os

import cv2
import numpy as np
import pytest

from facekit.prefix import params_path
from mtcnn.commands import mtcnn_prepare
from mtcnn.commands.train import train_net
from mtcnn.defaults import INPUT_SIZE
from mtcnn.detector import MtcnnDetector
from mtcnn.evaluate import evaluate
from mtcnn.loader import read_sample_list
from mtcnn.samples import LABELS, load_annotations
from rcnn.dataset.synthetic import generate_widerface

MIN_FACE_SIZE = 24
# Mining uses lower thresholds than detection so that the briefly trained
# earlier stages still pass enough candidates (the original mined at 0.6 / 0.7).
MINING_THRESHOLD = (0.5, 0.5, 0.5)
# (epochs, batch size, learning rate): small batches give the few hundred samples enough
# updates; with them O-Net needs half the original rate, which can diverge at batch 32.
SCHEDULE = {'pnet': (6, 64, 0.01), 'rnet': (8, 32, 0.01), 'onet': (5, 32, 0.005)}
# A random box almost never overlaps a face by IoU 0.5; the trained cascade must
# find at least this share of the val faces >= MIN_FACE_SIZE at the default
# thresholds (0.6, 0.7, 0.7), with at least this precision. A run on 2 cores
# takes about 3 minutes and reaches recall 0.6, precision 1.0.
MIN_RECALL = 0.3
MIN_PRECISION = 0.5


@pytest.mark.slow
def test_cascade_trains_end_to_end(tmp_path):
    data = tmp_path / 'data'
    generate_widerface(str(data), 30, 10, 0, seed=0)
    label = str(data / 'train' / 'label.txt')
    samples = str(tmp_path / 'samples')
    params = {}
    for net in ('pnet', 'rnet', 'onet'):
        stages = [a for stage in ('pnet', 'rnet') if stage in params for a in ('--' + stage, params[stage])]
        assert mtcnn_prepare(['--net', net, '--label', label, '--output', samples, '--min_face', '20',
                              '--min_face_size', str(MIN_FACE_SIZE), '--threshold',
                              ','.join(map(str, MINING_THRESHOLD))] + stages) == 0
        merged = read_sample_list(os.path.join(samples, 'train_%d.txt' % INPUT_SIZE[net]))
        counts = {kind: int(np.sum(merged.labels == label)) for kind, label in LABELS.items()}
        assert counts['positive'] > 50 and counts['landmark'] > 0, (net, counts)
        epochs, batch, lr = SCHEDULE[net]
        prefix = str(tmp_path / 'model' / net)
        assert train_net(net, merged, prefix, end_epoch=epochs, base_lr=lr, lr_step=(), batch_size=batch,
                         with_landmark=True, frequent=1000) == 0
        params[net] = params_path(prefix, epochs)

    detector = MtcnnDetector(params['pnet'], params['rnet'], params['onet'], min_face_size=MIN_FACE_SIZE)
    annotations = load_annotations(str(data / 'val' / 'label.txt'))
    counts = evaluate(detector, annotations, min_gt=MIN_FACE_SIZE)
    assert counts.faces > 30
    assert counts.recall >= MIN_RECALL, counts
    assert counts.precision >= MIN_PRECISION, counts
    boxes, landmarks = detector.detect(cv2.imread(annotations[0].path))
    assert landmarks.shape == (len(boxes), 5, 2)  # the O-Net was trained with its landmark branch
