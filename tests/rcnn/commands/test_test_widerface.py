"""test_widerface.py (``rcnn.commands.test_widerface``): scales per mode, the result format, parts and
resume, the checks before any work, a run with the released model."""
import json
import pathlib
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from facekit.mx import runtime
from rcnn.commands import retinaface_test
from rcnn.commands import test_widerface
from rcnn.evaluation.modes import get_scales
from support import REPO, error_line, released_mnet, require_shared, write_ground_truth


def run_test(argv):
    return retinaface_test(argv, prog='test_widerface.py')


EVENT = '0--Parade'
NAMES = ['0_Parade_t4_1', '0_Parade_t6_2', '0_Parade_t4_jpg']


def test_result_line_format(tmp_path):
    path = tmp_path / 'out.txt'
    boxes = np.array([[10.7, 20.2, 30.9, 40.1, 0.987654321], [0.0, 1.0, 5.0, 9.0, 0.03]])
    test_widerface.write_result(str(path), 'some/root/0--Parade/0_Parade_x_1.jpg', boxes)
    # x1 y1 x2-x1 y2-y1 truncated by %d, %g score, trailing space: the original's bytes.
    assert path.read_text() == '0--Parade/0_Parade_x_1.jpg\n2\n10 20 20 19 0.987654 \n0 1 5 8 0.03 \n'


def test_result_path_strips_only_the_extension():
    assert test_widerface.result_path('out', '0--Parade/0_Parade_t4_jpg.jpg') == 'out/0--Parade/0_Parade_t4_jpg.txt'


def make_dataset(root, size=None):
    """``root/val/label.txt`` and three images from assets t4/t6 (optionally resized to (w, h))."""
    sources = [require_shared('assets/images/%s.jpg' % n) for n in ('t4', 't6', 't4')]
    lines = []
    for name, source in zip(NAMES, sources):
        im = cv2.imread(str(source))
        if size is not None:
            im = cv2.resize(im, size, interpolation=cv2.INTER_AREA)
        path = root / 'val' / 'images' / EVENT / (name + '.jpg')
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), im)
        lines += ['# %s/%s.jpg' % (EVENT, name), '10 10 20 20']
    (root / 'val' / 'label.txt').write_text('\n'.join(lines) + '\n')
    return root


class FakeRetinaFace:
    """Stands in for retinaface.RetinaFace: records its arguments and detect() calls."""
    instances = []

    def __init__(self, prefix, epoch, ctx_id=0, network=None, nms=0.4, nocrop=False, decay4=0.5, vote=False):
        self.kwargs = dict(prefix=prefix, epoch=epoch, ctx_id=ctx_id, network=network, nocrop=nocrop, vote=vote)
        self.calls = []
        FakeRetinaFace.instances.append(self)

    def detect(self, img, threshold=0.5, scales=(1.0,), do_flip=False):
        self.calls.append(dict(shape=img.shape, threshold=threshold, scales=list(scales), do_flip=do_flip))
        return np.array([[1.0, 2.0, 11.5, 22.5, 0.9]]), np.zeros((1, 5, 2))


@pytest.fixture
def fake_detector(monkeypatch):
    FakeRetinaFace.instances = []
    monkeypatch.setattr(test_widerface, 'RetinaFace', FakeRetinaFace)
    return FakeRetinaFace


def fake_checkpoint(folder):
    """Empty model files: the arguments are checked for them; FakeRetinaFace does not read them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ('m-symbol.json', 'm-0000.params'):
        (folder / name).touch()
    return str(folder / 'm')


def run_args(root, out, *extra):
    return ['--dataset_path', str(root), '--image_set', 'val', '--output', str(out),
            '--prefix', fake_checkpoint(root.parent / 'model'), *extra]


def test_mode_wiring_parts_resume_and_overwrite(tmp_path, fake_detector, cpu_runtime_requests, monkeypatch, capsys):
    root = make_dataset(tmp_path / 'data', size=(64, 36))
    out = tmp_path / 'out'
    prefix = fake_checkpoint(tmp_path / 'model')

    assert run_test(run_args(root, out, '--mode', '1', '--gpu', '-1', '--parts', '2', '--part', '1')) == 0
    (detector,) = fake_detector.instances
    assert detector.kwargs == dict(prefix=prefix, epoch=0, ctx_id=-1, network=None, nocrop=False, vote=True)
    assert [c['shape'] for c in detector.calls] == [(36, 64, 3)]  # only image 1 of 0..2 is in part 1
    call = detector.calls[0]
    assert call['threshold'] == 0.02 and call['do_flip'] is True
    assert call['scales'] == get_scales((36, 64), 1)[0]
    assert sorted(p.name for p in (out / EVENT).iterdir()) == [NAMES[1] + '.txt']
    assert cpu_runtime_requests == ['cpu/2']  # --gpu -1 asks for the CPU runtime, sharing the CPUs by 2

    monkeypatch.setattr(runtime, 'cuda_gpus', lambda: 1)  # a machine with a GPU: the default device
    assert run_test(run_args(root, out, '--mode', '1')) == 0  # resumes: the two remaining images only
    detector = fake_detector.instances[-1]
    assert detector.kwargs['vote'] is True and detector.kwargs['ctx_id'] == 0
    assert cpu_runtime_requests == ['cpu/2']  # not on a GPU: no new request
    assert len(detector.calls) == 2
    assert sorted(p.name for p in (out / EVENT).iterdir()) == sorted(n + '.txt' for n in NAMES)

    before = len(fake_detector.instances)
    assert run_test(run_args(root, out, '--mode', '1')) == 0  # all done: no model is even loaded
    assert len(fake_detector.instances) == before

    # Other settings would report results of mixed settings: refused without --overwrite.
    assert run_test(run_args(root, out, '--mode', '2')) == 2
    assert '--output %s holds results of another run (mode differ from' % out in error_line(capsys.readouterr().err)

    # The original's --dataset and --root-path are accepted (this port caches nothing).
    assert run_test(run_args(root, out, '--mode', '0', '--overwrite', '--nocrop', '--dataset', 'retinaface',
                             '--root-path', str(tmp_path / 'cache'))) == 0
    detector = fake_detector.instances[-1]
    assert detector.kwargs['nocrop'] is True
    assert len(detector.calls) == 3 and all(c['do_flip'] is False for c in detector.calls)
    assert (out / EVENT / (NAMES[0] + '.txt')).read_text() == '%s/%s.jpg\n1\n1 2 10 20 0.9 \n' % (EVENT, NAMES[0])
    record = json.loads((out / test_widerface.RUN_RECORD).read_text())
    assert record['mode'] == 0 and record['nocrop'] is True


def test_a_folder_of_another_models_results_is_refused(tmp_path, fake_detector, capsys):
    root = make_dataset(tmp_path / 'data', size=(64, 36))
    out = tmp_path / 'out'
    assert run_test(run_args(root, out, '--mode', '0')) == 0
    results = {p: p.read_bytes() for p in (out / EVENT).iterdir()}
    other = fake_checkpoint(tmp_path / 'other')
    (tmp_path / 'other' / 'm-0000.params').write_text('other weights')
    argv = run_args(root, out, '--mode', '0')
    argv[argv.index('--prefix') + 1] = other
    assert run_test(argv) == 2
    assert 'holds results of another run (params_sha256 differ from %s)' % (out / test_widerface.RUN_RECORD) in \
        error_line(capsys.readouterr().err)
    (out / test_widerface.RUN_RECORD).unlink()
    assert run_test(argv) == 2
    assert '--output %s holds result files without %s' % (out, test_widerface.RUN_RECORD) in \
        error_line(capsys.readouterr().err)
    assert {p: p.read_bytes() for p in (out / EVENT).iterdir()} == results


def test_bad_part_is_rejected(tmp_path, fake_detector, capsys):
    root = make_dataset(tmp_path / 'data', size=(64, 36))
    assert run_test(run_args(root, tmp_path / 'out', '--parts', '2', '--part', '2')) == 2
    assert '--part must be in [0, --parts), got --part 2 --parts 2' in error_line(capsys.readouterr().err)


@pytest.mark.slow
def test_released_model_cpu_mode0_writes_results_and_evaluates(tmp_path):
    prefix = require_shared('assets/models/retinaface-mnet025/mnet.25-symbol.json').parent / 'mnet.25'
    # Wide images: mode 0 caps the long side at 2150, so each is about 2150 x 1200 pixels.
    root = make_dataset(tmp_path / 'data')
    out, gt_dir = tmp_path / 'out', tmp_path / 'gt'
    images = [(name, [[100, 100, 50, 60]]) for name in NAMES]
    keep = {s: {(EVENT, n): [1] for n in NAMES} for s in ('easy', 'medium', 'hard')}
    write_ground_truth(gt_dir, [(EVENT, images)], keep)
    cmd = [sys.executable, str(REPO / 'test_widerface.py'), '--prefix', str(prefix), '--epoch', '0',
           '--network', 'net3', '--gpu', '-1', '--mode', '0', '--dataset-path', str(root),
           '--image-set', 'val', '--output', str(out), '--gt', str(gt_dir)]  # the original's spellings
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]

    for name in NAMES:
        lines = (out / EVENT / (name + '.txt')).read_text().split('\n')
        assert lines[0] == '%s/%s.jpg' % (EVENT, name)
        count = int(lines[1])
        assert count > 0 and lines[2 + count:] == ['']
        for line in lines[2:2 + count]:
            assert line.endswith(' ')
            x, y, w, h, score = line.split()
            assert all(v.lstrip('-').isdigit() for v in (x, y, w, h)) and 0.02 <= float(score) <= 1
    summary = json.loads((out / 'widerface_eval.json').read_text())
    assert summary['num_missing'] == 0 and all(0 <= summary[s] <= 1 for s in ('easy', 'medium', 'hard'))
    assert 'easy' in proc.stdout and (out / 'widerface_pr.png').exists()

    mtimes = {p: p.stat().st_mtime_ns for p in (out / EVENT).iterdir()}
    proc = subprocess.run(cmd[:-2], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '0 to do' in proc.stderr
    assert {p: p.stat().st_mtime_ns for p in (out / EVENT).iterdir()} == mtimes


def tree(root):
    """{relative path: bytes} of every file under ``root``."""
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


def tiny_split(root, paths):
    """``root/val``: one 8 x 8 image per ``paths`` entry naming a file inside images/, and their label.txt."""
    (root / 'val').mkdir(parents=True)
    for rel in paths:
        path = root / 'val' / 'images' / rel
        if '..' not in rel.split('/') and not rel.startswith('/') and not rel.endswith('/'):
            path.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))
    (root / 'val' / 'label.txt').write_text(''.join('# %s\n1 1 4 4\n' % rel for rel in paths))
    return root


@pytest.mark.parametrize('paths, message', [
    (['0--Parade/a.jpg', '../x.jpg'], r"label\.txt:3: image path '\.\./x\.jpg' has a \"\.\.\" component"),
    (['0--Parade/a.jpg', '0--Parade/../../up/b.jpg'], r'label\.txt:3: .*"\.\." component'),
    (['/abs/0--Parade/a.jpg'], r"label\.txt:1: image path '/abs/0--Parade/a\.jpg' is absolute"),
    (['one/0--Parade/a.jpg', '0--Parade/b.jpg', 'two/0--Parade/a.jpg'],
     r"label\.txt:5: image 'two/0--Parade/a\.jpg' maps to the result file <output>/0--Parade/a\.txt, "
     r"as 'one/0--Parade/a\.jpg' on line 1 does"),
    (['0--Parade/a.jpg', '0--Parade/a.png'], r'label\.txt:3: .*0--Parade/a\.txt.* on line 1'),
    (['0--Parade/'], r"label\.txt:1: image path '0--Parade/' has no file name"),
])
def test_result_paths_leaving_output_or_colliding_are_refused_before_any_image(
        tmp_path, fake_detector, capsys, paths, message):
    root = tiny_split(tmp_path / 'data', paths)
    args = run_args(root, tmp_path / 'data' / 'out')
    (tmp_path / 'x.txt').write_text('a file of the user')
    before = tree(tmp_path)
    assert run_test(args) == 1
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert err.startswith('test_widerface.py: error: %s:' % (root / 'val' / 'label.txt')), err
    assert not fake_detector.instances  # checked before the model, before the first image
    assert tree(tmp_path) == before


def test_missing_listed_image_is_named_before_any_detection(tmp_path, fake_detector, capsys):
    root = tiny_split(tmp_path / 'data', ['0--Parade/a.jpg', '0--Parade/b.jpg'])
    (root / 'val' / 'images' / '0--Parade' / 'b.jpg').unlink()
    assert run_test(run_args(root, tmp_path / 'out')) == 1
    assert 'label.txt:3: image %s does not exist' % (root / 'val' / 'images' / '0--Parade' / 'b.jpg') \
        in error_line(capsys.readouterr().err)
    assert not fake_detector.instances and not (tmp_path / 'out').exists()


@pytest.mark.parametrize('extra, message', [
    (['--gt', '{tmp}/missing'], '--gt: no such folder: {tmp}/missing'),
    (['--output', '{tmp}/file/out'], '--output: {tmp}/file is not a folder'),
    (['--thresh', '1.5'], 'argument --thresh: must be a number in [0, 1]'),
    (['--thresh', 'nan'], 'argument --thresh: must be a number in [0, 1]'),
    (['--gpu', '-2'], 'argument --gpu: expected a GPU id'),
    (['--gpu', 'first'], 'argument --gpu: expected a GPU id'),
    (['--epoch', '-1'], 'argument --epoch: must be >= 0'),
    (['--epoch', '3'], '--prefix: model file {tmp}/model/m-0003.params does not exist'),
    (['--image-set', 'train'], 'label file {tmp}/data/train/label.txt does not exist'),
    (['--gt', '{tmp}/data'], '--gt: {tmp}/data lacks the WIDER FACE ground truth wider_face_val.mat'),
])
def test_arguments_are_checked_before_any_work(tmp_path, fake_detector, capsys, extra, message):
    root = tiny_split(tmp_path / 'data', ['0--Parade/a.jpg'])
    (tmp_path / 'file').write_text('x')
    assert run_test(run_args(root, tmp_path / 'out') + [a.format(tmp=tmp_path) for a in extra]) == 2
    assert message.format(tmp=tmp_path) in error_line(capsys.readouterr().err)
    assert not fake_detector.instances and not (tmp_path / 'out').exists()


def test_default_device_and_missing_gpus(tmp_path, fake_detector, capsys, caplog, cpu_runtime_requests,
                                         monkeypatch):
    root = tiny_split(tmp_path / 'data', ['0--Parade/a.jpg'])
    monkeypatch.setattr(runtime, 'cuda_gpus', lambda: 0)  # a CPU build of MXNet
    with caplog.at_level('INFO', logger='facekit.mx.runtime'):
        assert run_test(run_args(root, tmp_path / 'out')) == 0
    assert fake_detector.instances[-1].kwargs['ctx_id'] == -1 and cpu_runtime_requests == ['cpu']
    assert [r.getMessage() for r in caplog.records] == ['no GPU available to MXNet: running on the CPU']
    for gpus, gpu, message in ((0, '0', '--gpu 0: this MXNet build has no CUDA support'),
                               (1, '1', r'--gpu 1: MXNet sees 1 GPU(s) here (ids 0..0)')):
        monkeypatch.setattr(runtime, 'cuda_gpus', lambda: gpus)
        assert run_test(run_args(root, tmp_path / 'out2', '--gpu', gpu)) == 2
        err = error_line(capsys.readouterr().err)
        assert message in err and 'to run on the CPU, pass --gpu -1' in err
    assert len(fake_detector.instances) == 1 and not (tmp_path / 'out2').exists()


def test_bad_model_files_are_one_line_errors(tmp_path, capsys):
    """The real detector on a truncated symbol and on a corrupt parameter file: one line naming
    the file, exit status 1, no traceback; a CPU build asked for a GPU: exit status 2, no abort."""
    source = require_shared('assets/models/retinaface-mnet025/mnet.25-symbol.json').parent / 'mnet.25'
    root = tiny_split(tmp_path / 'data', ['0--Parade/a.jpg'])
    model = tmp_path / 'model'
    model.mkdir()
    symbol = pathlib.Path(str(source) + '-symbol.json').read_bytes()
    params = pathlib.Path(str(source) + '-0000.params').read_bytes()
    (model / 'cut-symbol.json').write_bytes(symbol[:len(symbol) // 2])
    (model / 'cut-0000.params').write_bytes(params)
    (model / 'bad-symbol.json').write_bytes(symbol)
    (model / 'bad-0000.params').write_bytes(params[:len(params) // 2])
    base = ['--dataset_path', str(root), '--gpu', '-1', '--mode', '0']
    for name, file in (('cut', 'cut-symbol.json'), ('bad', 'bad-0000.params')):
        assert run_test(base + ['--prefix', str(model / name), '--output', str(tmp_path / name)]) == 1
        err = capsys.readouterr().err
        assert 'test_widerface.py: error: ' in err and 'Traceback' not in err, err
        assert str(model / file) in error_line(err)
    proc = subprocess.run([sys.executable, str(REPO / 'test_widerface.py'), '--prefix', str(source),
                           '--dataset-path', str(root), '--output', str(tmp_path / 'out'), '--gpu', '99'],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and '--gpu 99: ' in proc.stderr and 'to run on the CPU, pass --gpu -1' in proc.stderr
    assert 'Traceback' not in proc.stderr and 'terminate called' not in proc.stderr
    assert not (tmp_path / 'out').exists()


def test_an_anchor_layout_the_model_was_not_built_for_is_refused(tmp_path, capsys):
    """--network net3a on mnet.25 (2 anchors per position where net3a has 4) found nothing and reported
    AP 0: now the mismatch is one line naming both, before any image."""
    root = tiny_split(tmp_path / 'data', ['0--Parade/a.jpg'])
    assert run_test(['--prefix', released_mnet(), '--epoch', '0', '--network', 'net3a', '--dataset_path', str(root),
                     '--output', str(tmp_path / 'out'), '--gpu', '-1', '--mode', '0']) == 1
    err = error_line(capsys.readouterr().err)
    assert 'output face_rpn_cls_prob_reshape_stride32 is (C, H, W) = (4, 2, 2)' in err and 'layout net3a' in err
    assert not list((tmp_path / 'out').glob('*/*.txt'))


def test_an_empty_image_stops_the_run_naming_it(tmp_path, fake_detector, capsys):
    root = tiny_split(tmp_path / 'data', ['0--Parade/a.jpg', '0--Parade/b.jpg'])
    (root / 'val' / 'images' / '0--Parade' / 'b.jpg').write_bytes(b'')
    assert run_test(run_args(root, tmp_path / 'out')) == 1
    assert error_line(capsys.readouterr().err) == 'test_widerface.py: error: %s:3: image %s is empty (0 bytes)' % (
        root / 'val' / 'label.txt', root / 'val' / 'images' / '0--Parade' / 'b.jpg')
