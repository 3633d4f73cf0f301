"""Synthetic WIDER-style generator: determinism, layout, label sanity, .mat ground truth."""
import hashlib
import itertools
import json
import pathlib
import re

import cv2
import numpy as np
import pytest
import scipy.io

from support import require_shared
from rcnn.dataset import synthetic
from facekit.labels import read_label_file
from facekit.boxes import pairwise_overlap

NUM = dict(num_train=6, num_val=6, num_test=2)
MAT_VARIABLES = {'event_list', 'file_list', 'face_bbx_list', 'blur_label_list', 'expression_label_list',
                 'illumination_label_list', 'invalid_label_list', 'occlusion_label_list', 'pose_label_list'}


@pytest.fixture(scope='module')
def datasets(tmp_path_factory):
    """The same seed generated in-process, then (cv2 now warm in this process) by a pool of 2."""
    roots = []
    for workers in (1, 2):
        root = tmp_path_factory.mktemp('synthetic_w%d' % workers)
        synthetic.generate_widerface(root, seed=3, workers=workers, **NUM)
        roots.append(root)
    return roots


def _files(root):
    return sorted(p.relative_to(root) for p in pathlib.Path(root).rglob('*') if p.is_file())


def test_same_seed_gives_identical_labels_and_images(datasets):
    a, b = datasets
    assert _files(a) == _files(b)
    for rel in _files(a):
        if rel.suffix in ('.txt', '.jpg'):
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
        elif rel.suffix == '.mat':  # .mat headers carry a timestamp: compare the contents
            ma, mb = scipy.io.loadmat(a / rel), scipy.io.loadmat(b / rel)
            assert repr({k: ma[k] for k in MAT_VARIABLES}) == repr({k: mb[k] for k in MAT_VARIABLES})
        else:
            assert str(rel) == synthetic.MANIFEST


def test_manifest_lists_every_file_written_with_its_checksum(datasets):
    root = datasets[0]
    files = json.loads((root / synthetic.MANIFEST).read_text())['files']
    written = [str(rel) for rel in _files(root) if str(rel) != synthetic.MANIFEST]
    assert sorted(files) == sorted(written) == sorted(synthetic.output_files(seed=3, **NUM))
    for rel, digest in files.items():
        assert digest == hashlib.sha256((root / rel).read_bytes()).hexdigest(), rel


def test_other_seed_differs(tmp_path, datasets):
    synthetic.generate_widerface(tmp_path, 2, 0, 0, seed=4, workers=1)
    assert (tmp_path / 'train/label.txt').read_bytes() != (datasets[0] / 'train/label.txt').read_bytes()


def test_layout_names_and_paths_only_test_split(datasets):
    root = datasets[0]
    for split, count in (('train', NUM['num_train']), ('val', NUM['num_val']), ('test', NUM['num_test'])):
        records = read_label_file(root / split / 'label.txt')
        assert len(records) == count
        for r in records:
            assert re.fullmatch(r'(\d+)--Synthetic_([A-Za-z]+)/\1_Synthetic_\2_\d+\.jpg', r.path), r.path
            assert (root / split / 'images' / r.path).is_file()
            assert (len(r) == 0) == (split == 'test')


def test_labels_are_inside_images_and_well_formed(datasets):
    root = datasets[0]
    for split in ('train', 'val'):
        for r in read_label_file(root / split / 'label.txt'):
            height, width = cv2.imread(str(root / split / 'images' / r.path)).shape[:2]
            x, y, w, h = r.boxes.T
            assert (x >= 0).all() and (y >= 0).all() and (x + w <= width).all() and (y + h <= height).all()
            assert (w > 0).all() and (h >= synthetic.MIN_FACE).all() and (h <= height / 3 + 1).all()
            np.testing.assert_array_equal(r.boxes, np.round(r.boxes))  # integer boxes, as in WIDER
            assert np.isin(r.landmarks[:, :, 2], (0, 1)).all()  # always annotated: visible or occluded
            assert ((r.blur >= 0) & (r.blur <= 1)).all()


def _corners(boxes):
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1).astype(np.float64)


def test_faces_do_not_overlap_heavily_and_sizes_span_the_range():
    heights = []
    for index in range(8):
        sample = synthetic.render_image(0, 'train', index)
        boxes = _corners(sample.boxes)
        for i, j in itertools.combinations(range(len(boxes)), 2):
            assert pairwise_overlap(boxes[i], boxes[j:j + 1], plus_one=False)[0, 0] < 0.3
        heights.extend(sample.boxes[:, 3] / sample.image.shape[0])
        assert (sample.boxes[:, 3] >= synthetic.MIN_FACE).all()
    assert min(heights) < 0.05 and max(heights) > 0.15  # tiny and large faces both occur


def test_frontal_unoccluded_landmarks_lie_inside_boxes_in_order():
    checked = 0
    for index in range(10):
        sample = synthetic.render_image(1, 'val', index)
        frontal = (np.abs(sample.yaw) < 15) & (np.abs(sample.roll) < 15) & (sample.landmarks[:, :, 2] == 0).all(1)
        for box, points in zip(_corners(sample.boxes[frontal]), sample.landmarks[frontal, :, :2]):
            assert ((points >= box[:2]) & (points <= box[2:])).all()
            left_eye, right_eye, nose, left_mouth, right_mouth = points
            assert left_eye[0] < nose[0] < right_eye[0] and left_mouth[0] < right_mouth[0]
            assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])
            checked += 1
    assert checked > 10


def test_ground_truth_mat_layout_and_nested_subsets(datasets):
    root = datasets[0]
    val = {r.path: r for r in read_label_file(root / 'val/label.txt')}
    base = scipy.io.loadmat(root / 'ground_truth/wider_face_val.mat')
    assert set(k for k in base if not k.startswith('__')) == MAT_VARIABLES
    subsets = {s: scipy.io.loadmat(root / ('ground_truth/wider_%s_val.mat' % s)) for s in ('easy', 'medium', 'hard')}
    for mat in subsets.values():
        assert set(k for k in mat if not k.startswith('__')) == MAT_VARIABLES | {'gt_list'}
    events = base['event_list']
    assert events.dtype == object and events.shape == (len(events), 1)
    seen = 0
    for e in range(len(events)):
        event = str(events[e, 0][0])
        files = base['file_list'][e, 0]
        assert files.shape == (len(files), 1)
        for f in range(len(files)):
            record = val['%s/%s.jpg' % (event, files[f, 0][0])]
            boxes = base['face_bbx_list'][e, 0][f, 0]
            assert boxes.dtype == np.int32 and boxes.shape == (len(record), 4)
            np.testing.assert_array_equal(boxes, record.boxes)
            for name in MAT_VARIABLES - {'event_list', 'file_list', 'face_bbx_list'}:
                labels = base[name][e, 0][f, 0]
                assert labels.dtype == np.uint8 and labels.shape == (len(record), 1)
            gt = {s: subsets[s]['gt_list'][e, 0][f, 0] for s in subsets}
            for g in gt.values():
                assert g.ndim == 2 and g.shape[1] == 1 and np.issubdtype(g.dtype, np.unsignedinteger)
                assert ((g >= 1) & (g <= len(record))).all()
            easy, medium, hard = (set(gt[s].ravel().tolist()) for s in ('easy', 'medium', 'hard'))
            assert easy <= medium <= hard == set(range(1, len(record) + 1))
            heights = boxes[:, 3]
            assert (heights[np.array(sorted(medium), int) - 1] >= synthetic.MEDIUM_MIN_HEIGHT).all()
            assert (heights[np.array(sorted(easy), int) - 1] >= synthetic.EASY_MIN_HEIGHT).all()
            seen += 1
    assert seen == NUM['num_val']


def test_ground_truth_matches_official_variable_layout(datasets):
    official = scipy.io.loadmat(require_shared('assets/widerface/ground_truth/wider_hard_val.mat'))
    ours = scipy.io.loadmat(datasets[0] / 'ground_truth/wider_hard_val.mat')

    def layout(value):
        """Type, dimensionality and dtype kind down the first element of nested cells."""
        out = []
        while isinstance(value, np.ndarray):
            out.append((value.ndim, value.dtype.kind, value.shape[1:] if value.ndim == 2 else ()))
            if value.dtype != object or value.size == 0:
                break
            value = value.flat[0]
        return out

    assert set(official) - {'__header__', '__version__', '__globals__'} == \
        set(ours) - {'__header__', '__version__', '__globals__'}
    for name in official:
        if not name.startswith('__'):
            assert layout(ours[name]) == layout(official[name]), name


def _write_predictions(directory, records, keep):
    """One WIDER result file per image with the kept ground-truth boxes as detections."""
    rng = np.random.default_rng(0)
    for r in records:
        boxes = r.boxes[keep(r.boxes)]
        path = directory / (r.path[:-len('.jpg')] + '.txt')
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ['%s' % pathlib.PurePosixPath(r.path).stem, str(len(boxes))]
        lines += ['%d %d %d %d %.3f' % (*b, s) for b, s in zip(boxes, rng.uniform(0.5, 1.0, len(boxes)))]
        path.write_text('\n'.join(lines) + '\n')


def test_wider_evaluation_runs_on_the_synthetic_ground_truth(datasets, tmp_path):
    from rcnn.evaluation.widerface import evaluate
    root = datasets[0]
    records = read_label_file(root / 'val/label.txt')
    _write_predictions(tmp_path / 'all', records, lambda boxes: np.ones(len(boxes), bool))
    perfect = evaluate(tmp_path / 'all', root / 'ground_truth')
    assert perfect['easy'] == perfect['medium'] == perfect['hard'] == pytest.approx(1.0, abs=1e-3)
    # A detector that misses every face under the medium threshold loses only on hard.
    _write_predictions(tmp_path / 'large', records, lambda boxes: boxes[:, 3] >= synthetic.MEDIUM_MIN_HEIGHT)
    large = evaluate(tmp_path / 'large', root / 'ground_truth')
    assert large['easy'] == pytest.approx(1.0, abs=1e-3) and large['medium'] == pytest.approx(1.0, abs=1e-3)
    small = sum(int((r.boxes[:, 3] < synthetic.MEDIUM_MIN_HEIGHT).sum()) for r in records)
    assert small > 0 and large['hard'] < 1.0
