"""The whole MTCNN training chain at CI size on synthetic WIDER-style data:
P-Net samples -> P-Net -> hard examples -> R-Net -> hard examples -> O-Net,
then the cascade's recall / precision on the synthetic val split."""
import cv2

from mtcnn.detector import MtcnnDetector
from mtcnn.evaluate import evaluate
from mtcnn.loader import read_sample_list
from mtcnn.prepare import prepare
from mtcnn.samples import load_annotations
from mtcnn.train import train_net
from rcnn.dataset.synthetic import generate_widerface

MIN_FACE_SIZE = 24
# Mining uses lower thresholds than detection so that the briefly trained
# earlier stages still pass enough candidates (the original mined at 0.6 / 0.7).
MINING_THRESHOLD = (0.5, 0.5, 0.5)
# (epochs, batch size): small batches give the few hundred samples enough updates.
SCHEDULE = {'pnet': (6, 64), 'rnet': (8, 32), 'onet': (5, 32)}
# A random box almost never overlaps a face by IoU 0.5; the trained cascade must
# find at least this share of the val faces >= MIN_FACE_SIZE at the default
# thresholds (0.6, 0.7, 0.7), with at least this precision. A run on 2 cores
# takes about 3 minutes and reaches recall 0.6, precision 1.0.
MIN_RECALL = 0.3
MIN_PRECISION = 0.5


def test_cascade_trains_end_to_end(tmp_path):
    data = tmp_path / 'data'
    generate_widerface(str(data), 30, 10, 0, seed=0)
    label = str(data / 'train' / 'label.txt')
    params = {}
    for net in ('pnet', 'rnet', 'onet'):
        merged, counts = prepare(net, label, str(tmp_path / 'samples'), params.get('pnet'), params.get('rnet'),
                                 min_face=20, min_face_size=MIN_FACE_SIZE, threshold=MINING_THRESHOLD)
        assert counts['positive'] > 50 and counts['landmark'] > 0, (net, counts)
        epochs, batch = SCHEDULE[net]
        params[net] = train_net(net, read_sample_list(merged), str(tmp_path / 'model' / net), end_epoch=epochs,
                                lr_epochs=(), batch_size=batch, with_landmark=True, frequent=1000)

    detector = MtcnnDetector(params['pnet'], params['rnet'], params['onet'], min_face_size=MIN_FACE_SIZE)
    annotations = load_annotations(str(data / 'val' / 'label.txt'))
    counts = evaluate(detector, annotations, min_gt=MIN_FACE_SIZE)
    assert counts.faces > 30
    assert counts.recall >= MIN_RECALL, counts
    assert counts.precision >= MIN_PRECISION, counts
    boxes, landmarks = detector.detect(cv2.imread(annotations[0].path))
    assert landmarks.shape == (len(boxes), 5, 2)  # the O-Net was trained with its landmark branch
