"""python -m rcnn.dataset.synthetic (``rcnn.commands.synthetic``): arguments checked before any work,
and nothing of the user's replaced."""
import hashlib
import json
import os
import pathlib
import subprocess
import sys

import pytest

from facekit.labels import read_label_file
from rcnn.commands import retinaface_synthetic as synthetic_command
from rcnn.dataset import synthetic
from rcnn.dataset.synthetic import writer
from support import REPO, error_line


def generate(argv):
    assert synthetic_command(argv) == 0


def test_the_command_writes_a_data_set(tmp_path):
    generate(['--output', str(tmp_path), '--num_train', '1', '--num_val', '0', '--num_test', '0', '--workers', '1'])
    assert len(read_label_file(tmp_path / 'train/label.txt')) == 1
    assert not (tmp_path / 'val').exists()


@pytest.mark.parametrize('argv, message', [
    (['--num_train', '-1'], 'argument --num_train: must be >= 0'),
    (['--seed', '-1'], 'argument --seed: must be >= 0'),
    (['--workers', '-3'], 'argument --workers: must be >= 1'),
    (['--num-train', '1e8'], "argument --num_train: expected an integer, got '1e8'"),
    (['--num_train', '100000000'], '--output: 100000250 images need about 20000.0 GB'),
])
def test_bad_arguments_are_refused_before_anything_is_written(argv, message, tmp_path, capsys):
    assert synthetic_command(['--output', str(tmp_path / 'data')] + argv) == 2
    assert message in error_line(capsys.readouterr().err)
    assert os.listdir(tmp_path) == []


def test_the_launchers_run_as_scripts(tmp_path):
    subprocess.run([sys.executable, str(REPO / 'tools' / 'make_synthetic_widerface.py'), '--output', str(tmp_path),
                    '--num-train', '0', '--num-val', '2', '--num-test', '1', '--workers', '2'], check=True,
                   capture_output=True)
    assert len(read_label_file(tmp_path / 'test/label.txt')) == 1
    assert (tmp_path / 'ground_truth/wider_hard_val.mat').is_file()
    subprocess.run([sys.executable, '-m', 'rcnn.dataset.synthetic', '--output', str(tmp_path / 'm'), '--num_train',
                    '1', '--num_val', '0', '--num_test', '0'], check=True, capture_output=True, cwd=REPO)
    assert len(read_label_file(tmp_path / 'm' / 'train/label.txt')) == 1


# ---------------------------------------------------------------- nothing of the user's is replaced

SMALL = ['--num_train', '1', '--num_val', '1', '--num_test', '0', '--workers', '1']


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
    assert synthetic_command(argv) == 2
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
    generate(['--output', str(root)] + SMALL)
    assert 'already holds a data set (train/label.txt, val/label.txt, ground_truth/)' in \
        refused(capsys, ['--output', str(root)] + SMALL)
    first = checksums(root)
    generate(['--output', str(root), '--overwrite', '--seed', '5'] + SMALL)
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
    generate(['--output', str(reference)] + SMALL)
    stopped = tmp_path / 'stopped'

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(writer, 'write_label_file', interrupt)
        assert synthetic_command(['--output', str(stopped)] + SMALL) == 130
    assert (stopped / 'train' / 'images').is_dir() and not (stopped / 'train' / 'label.txt').exists()
    generate(['--output', str(stopped)] + SMALL)
    for rel, digest in checksums(reference).items():
        if rel.suffix in ('.jpg', '.txt'):
            assert checksums(stopped)[rel] == digest, rel
    assert sorted(checksums(stopped)) == sorted(checksums(reference))
