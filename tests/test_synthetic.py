"""Synthetic WIDER-style generator: determinism, layout, label sanity, .mat ground truth."""
import hashlib
import itertools
import json
import os
import pathlib
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import scipy.io

from conftest import require_shared
from rcnn.dataset import synthetic
from rcnn.dataset.label_file import read_label_file
from rcnn.processing.box_ops import pairwise_overlap

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


def test_cli_writes_dataset_and_rejects_negative_counts(tmp_path):
    synthetic.main(['--output', str(tmp_path), '--num-train', '1', '--num-val', '0', '--num-test', '0',
                    '--workers', '1'])
    assert len(read_label_file(tmp_path / 'train/label.txt')) == 1
    assert not (tmp_path / 'val').exists()
    with pytest.raises(SystemExit):
        synthetic.main(['--output', str(tmp_path), '--num-train', '-1'])


def test_tools_wrapper_runs_as_a_script(tmp_path):
    script = pathlib.Path(__file__).resolve().parents[1] / 'tools' / 'make_synthetic_widerface.py'
    subprocess.run([sys.executable, str(script), '--output', str(tmp_path), '--num-train', '0', '--num-val', '2',
                    '--num-test', '1', '--workers', '2'], check=True, capture_output=True)
    assert len(read_label_file(tmp_path / 'test/label.txt')) == 1
    assert (tmp_path / 'ground_truth/wider_hard_val.mat').is_file()


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


# ---------------------------------------------------------------- nothing of the user's is replaced

SMALL = ['--num-train', '1', '--num-val', '1', '--num-test', '0', '--workers', '1']


def checksums(root):
    """{relative path: SHA-256 or 'link -> target'} of everything under ``root``."""
    out = {}
    for p in sorted(pathlib.Path(root).rglob('*')):
        if p.is_symlink():
            out[p.relative_to(root)] = 'link -> %s' % os.readlink(p)
        elif p.is_file():
            out[p.relative_to(root)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def users_data_set(root):
    """A WIDER-like folder the generator did not write: val/label.txt, an image, the ground truth."""
    (root / 'val' / 'images' / '0--Parade').mkdir(parents=True)
    (root / 'val' / 'images' / '0--Parade' / 'a.jpg').write_bytes(b'the user\'s photo')
    (root / 'val' / 'label.txt').write_text('# 0--Parade/a.jpg\n1 2 3 4\n')
    (root / 'ground_truth').mkdir()
    (root / 'ground_truth' / 'wider_face_val.mat').write_bytes(b'the official ground truth')
    return root


def refused(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        synthetic.main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_a_folder_holding_a_data_set_is_refused(tmp_path, capsys):
    root = users_data_set(tmp_path / 'data')
    before = checksums(tmp_path)
    err = refused(capsys, ['--output', str(root)] + SMALL)
    assert ('--output: %s already holds a data set (val/label.txt, ground_truth/); give --output a fresh folder, '
            'or pass --overwrite' % root) in err
    # --overwrite replaces only what the generator wrote: the user's ground truth is not that.
    err = refused(capsys, ['--output', str(root), '--overwrite'] + SMALL)
    assert ('refusing to replace %s: this generator did not write it (not listed in %s)'
            % (root / 'val' / 'label.txt', root / synthetic.MANIFEST)) in err
    assert checksums(tmp_path) == before


def test_ground_truth_alone_marks_a_data_set(tmp_path, capsys):
    (tmp_path / 'ground_truth').mkdir()
    assert 'already holds a data set (ground_truth/)' in refused(capsys, ['--output', str(tmp_path)] + SMALL)
    assert checksums(tmp_path) == {}


def test_overwrite_replaces_only_unchanged_files_it_wrote(tmp_path, capsys):
    root = tmp_path / 'data'
    synthetic.main(['--output', str(root)] + SMALL)
    assert 'already holds a data set (train/label.txt, val/label.txt, ground_truth/)' in \
        refused(capsys, ['--output', str(root)] + SMALL)
    first = checksums(root)
    synthetic.main(['--output', str(root), '--overwrite', '--seed', '5'] + SMALL)
    second = checksums(root)
    assert second[pathlib.Path('val/label.txt')] != first[pathlib.Path('val/label.txt')]
    assert set(first) <= set(second)  # seed 0's images stay, listed in the manifest
    listed = json.loads((root / synthetic.MANIFEST).read_text())['files']
    assert sorted(listed) == sorted(str(p) for p in second if str(p) != synthetic.MANIFEST)

    # A file the user edited since, and a link the user put at a path to be written, are refused.
    with open(root / 'val' / 'label.txt', 'a') as f:
        f.write('# 0--Parade/mine.jpg\n')
    before = checksums(tmp_path)
    err = refused(capsys, ['--output', str(root), '--overwrite', '--seed', '5'] + SMALL)
    assert 'refusing to replace %s: it changed since this generator wrote it' % (root / 'val' / 'label.txt') in err
    assert checksums(tmp_path) == before

    fresh = tmp_path / 'fresh'
    (tmp_path / 'precious.jpg').write_bytes(b'keep me')
    target = fresh / 'train' / 'images' / synthetic.image_path(0, 'train', 0)
    target.parent.mkdir(parents=True)
    target.symlink_to(tmp_path / 'precious.jpg')
    before = checksums(tmp_path)
    err = refused(capsys, ['--output', str(fresh)] + SMALL)
    assert 'refusing to replace %s: this generator did not write it' % target in err
    assert checksums(tmp_path) == before


def test_foreign_manifest_is_refused(tmp_path, capsys):
    (tmp_path / synthetic.MANIFEST).write_text('{"files": {}}')
    err = refused(capsys, ['--output', str(tmp_path)] + SMALL)
    assert '%s is not a manifest written by this generator' % (tmp_path / synthetic.MANIFEST) in err
    assert len(checksums(tmp_path)) == 1


def test_a_stopped_run_is_run_again_to_the_same_data(tmp_path, monkeypatch):
    """Stopped after the train images (before their label.txt): the same command completes it,
    without --overwrite, byte for byte as an uninterrupted run."""
    reference = tmp_path / 'reference'
    synthetic.main(['--output', str(reference)] + SMALL)
    stopped = tmp_path / 'stopped'

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(synthetic, 'write_label_file', interrupt)
        with pytest.raises(KeyboardInterrupt):
            synthetic.main(['--output', str(stopped)] + SMALL)
    assert (stopped / 'train' / 'images').is_dir() and not (stopped / 'train' / 'label.txt').exists()
    synthetic.main(['--output', str(stopped)] + SMALL)
    for rel, digest in checksums(reference).items():
        if rel.suffix in ('.jpg', '.txt'):
            assert checksums(stopped)[rel] == digest, rel
    assert sorted(checksums(stopped)) == sorted(checksums(reference))
