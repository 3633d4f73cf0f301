"""train.py: checkpoints, resume, interrupt, pretrained loading, LAYER_FIX, several
contexts and the parameter-server kvstore, on a tiny synthetic dataset."""
import os
import re
import signal
import subprocess
import sys
import time

import cv2
import mxnet as mx
import numpy as np
import pytest

import train
from conftest import REPO, make_cfg, require_shared
from rcnn.core.checkpoint import load_params
from rcnn.core.loader import CropLoader
from rcnn.dataset.retinaface import retinaface
from rcnn.dataset.synthetic import generate_widerface
from rcnn.symbol import get_symbol_test, get_symbol_train
from tools.launch import SERVE, free_port

FAST = ['--network', 'mnet', '--dataset', 'retinaface', '--batch_images', '1', '--workers', '0', '--frequent', '1']


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic') / 'retinaface'
    generate_widerface(str(root), num_train=4, num_val=2, num_test=1, seed=3, workers=1)
    return str(root)


def run_train(*args, env=None):
    return subprocess.run([sys.executable, 'train.py'] + FAST + list(args), cwd=REPO, capture_output=True,
                          text=True, timeout=600, env=env)


def digests(text):
    return re.findall(r'parameter digest ([0-9a-f]{32})', text)


def test_missing_dataset_says_how_to_get_data(tmp_path):
    with pytest.raises(SystemExit, match='rcnn.dataset.synthetic'):
        train.main(FAST + ['--dataset_path', str(tmp_path / 'nowhere'), '--prefix', str(tmp_path / 'm')])


def test_unknown_network_lists_the_valid_ones(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(['--network', 'vgg16'])
    assert 'mnet, resnet' in capsys.readouterr().err


def test_devices_from_gpus_cuda_visible_devices_or_cpus(monkeypatch):
    # The README's --gpus commands need a GPU to run; this checks which contexts they ask for.
    monkeypatch.delenv('CUDA_VISIBLE_DEVICES', raising=False)
    assert train.get_context(train.parse_args(['--gpus', '0,1,2,3'])) == [mx.gpu(i) for i in range(4)]
    assert train.get_context(train.parse_args([])) == [mx.cpu(0)]
    assert train.get_context(train.parse_args(['--cpus', '2'])) == [mx.cpu(0), mx.cpu(1)]
    with pytest.raises(SystemExit, match='--cpus must be >= 1'):
        train.get_context(train.parse_args(['--cpus', '0']))
    # CUDA numbers the visible devices from 0, whatever their physical ids.
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '2,3')
    assert train.get_context(train.parse_args([])) == [mx.gpu(0), mx.gpu(1)]
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')
    assert train.get_context(train.parse_args([])) == [mx.cpu(0)]


def test_pretrained_with_a_wrong_shape_names_the_parameter(dataset, tmp_path):
    bad = {'arg:face_rpn_cls_score_stride8_weight': mx.nd.zeros((3, 64, 1, 1))}
    mx.nd.save(str(tmp_path / 'bad-0000.params'), bad)
    with pytest.raises(SystemExit, match='face_rpn_cls_score_stride8_weight'):
        train.main(FAST + ['--dataset_path', dataset, '--prefix', str(tmp_path / 'm'),
                           '--pretrained', str(tmp_path / 'bad'), '--max_iters', '0'])


def test_released_model_round_trips_through_a_checkpoint(dataset, tmp_path):
    """--max_iters 0 saves the pretrained weights unchanged: the detections equal the golden file."""
    model = require_shared('assets/models/retinaface-mnet025/mnet.25-symbol.json')
    golden = np.load(require_shared('golden/retinaface_mnet25_single_scale.npz'))
    image = cv2.imread(str(require_shared('assets/images/t4.jpg')))
    prefix = str(tmp_path / 'roundtrip')
    result = run_train('--dataset_path', dataset, '--prefix', prefix, '--max_iters', '0',
                       '--pretrained', str(model).replace('-symbol.json', ''), '--pretrained_epoch', '0')
    assert result.returncode == 0, result.stderr
    assert 'initialised fresh: none' in result.stderr

    from retinaface import RetinaFace
    dets, landmarks = RetinaFace(prefix, 1, ctx_id=-1).detect(image, threshold=0.02, scales=[1.0])
    assert dets.shape == golden['t4_single_det'].shape
    np.testing.assert_allclose(dets[:, :4], golden['t4_single_det'][:, :4], atol=0.01)
    np.testing.assert_allclose(dets[:, 4], golden['t4_single_det'][:, 4], atol=1e-4)
    np.testing.assert_allclose(landmarks, golden['t4_single_landmarks'], atol=0.01)


def test_layer_fix_keeps_the_first_backbone_layers_of_pretrained_weights(dataset, tmp_path):
    model = str(require_shared('assets/models/retinaface-mnet025/mnet.25-symbol.json')).replace('-symbol.json', '')
    prefix = str(tmp_path / 'fixed')
    result = run_train('--dataset_path', dataset, '--prefix', prefix, '--max_iters', '2',
                       '--pretrained', model, '--pretrained_epoch', '0')
    assert result.returncode == 0, result.stderr
    before, _ = load_params(model, 0)
    after, _ = load_params(prefix, 1)
    fixed = ['mobilenet0_conv%d_weight' % i for i in (0, 1)] + \
        ['mobilenet0_batchnorm%d_%s' % (i, p) for i in (0, 1) for p in ('gamma', 'beta')]
    logged = re.search(r'fixed parameters \(LAYER_FIX\): (.*)', result.stderr).group(1)
    assert set(logged.split(', ')) == set(fixed)
    for name in fixed:
        np.testing.assert_array_equal(after[name].asnumpy(), before[name].asnumpy(), err_msg=name)
    changed = [n for n in ('mobilenet0_conv2_weight', 'face_rpn_cls_score_stride8_weight')
               if not np.array_equal(after[n].asnumpy(), before[n].asnumpy())]
    assert changed == ['mobilenet0_conv2_weight', 'face_rpn_cls_score_stride8_weight']

    # Resuming the fine-tune (the same command with --begin_epoch) keeps them fixed.
    resumed = run_train('--dataset_path', dataset, '--prefix', prefix, '--max_iters', '2', '--begin_epoch', '1',
                        '--pretrained', model, '--pretrained_epoch', '0')
    assert resumed.returncode == 0, resumed.stderr
    assert 'fixed parameters (LAYER_FIX)' in resumed.stderr
    again, _ = load_params(prefix, 2)
    for name in fixed:
        np.testing.assert_array_equal(again[name].asnumpy(), before[name].asnumpy(), err_msg=name)
    assert not np.array_equal(again['mobilenet0_conv2_weight'].asnumpy(), after['mobilenet0_conv2_weight'].asnumpy())


def test_from_scratch_fixes_nothing_and_resume_continues(dataset, tmp_path):
    prefix = str(tmp_path / 'scratch')
    first = run_train('--dataset_path', dataset, '--prefix', prefix, '--max_iters', '2')
    assert first.returncode == 0, first.stderr
    assert 'fixed parameters' not in first.stderr
    for suffix in ('-symbol.json', '-0001.params', '-0001.states'):
        assert os.path.isfile(prefix + suffix)
    resumed = run_train('--dataset_path', dataset, '--prefix', prefix, '--begin_epoch', '1', '--max_iters', '1')
    assert resumed.returncode == 0, resumed.stderr
    assert 'resuming from %s-0001' % prefix in resumed.stderr
    assert os.path.isfile(prefix + '-0002.params')
    p1, _ = load_params(prefix, 1)
    p2, _ = load_params(prefix, 2)
    assert not np.array_equal(p1['face_rpn_bbox_pred_stride8_weight'].asnumpy(),
                              p2['face_rpn_bbox_pred_stride8_weight'].asnumpy())


def test_checkpoint_equals_a_sequential_run(dataset, tmp_path):
    """The checkpoint after 3 batches, BatchNorm running statistics included, equals that of
    MXNet's naive engine, which runs every operation in program order (without a wait
    before reading the parameters, 80 running statistics missed their last update)."""
    params = {}
    for engine in ('ThreadedEnginePerDevice', 'NaiveEngine'):
        prefix = str(tmp_path / engine)
        result = run_train('--dataset_path', dataset, '--prefix', prefix, '--max_iters', '3',
                           env=dict(os.environ, MXNET_ENGINE_TYPE=engine))
        assert result.returncode == 0, result.stderr
        params[engine] = mx.nd.load(prefix + '-0001.params')
    threaded, sequential = params['ThreadedEnginePerDevice'], params['NaiveEngine']
    assert sorted(threaded) == sorted(sequential)
    assert any(k.startswith('aux:') and k.endswith('_running_var') for k in threaded)
    for key in threaded:
        np.testing.assert_array_equal(threaded[key].asnumpy(), sequential[key].asnumpy(), err_msg=key)


def test_fix_from_scratch_keeps_the_random_stem(dataset, tmp_path):
    prefix = str(tmp_path / 'stem')
    first = run_train('--dataset_path', dataset, '--prefix', prefix, '--max_iters', '1', '--fix_from_scratch')
    assert first.returncode == 0, first.stderr
    resumed = run_train('--dataset_path', dataset, '--prefix', prefix, '--max_iters', '2', '--fix_from_scratch',
                        '--begin_epoch', '1')
    assert resumed.returncode == 0, resumed.stderr
    logged = re.search(r'fixed parameters \(LAYER_FIX\): (.*)', resumed.stderr).group(1)
    assert logged.split(', ') == ['mobilenet0_conv0_weight', 'mobilenet0_conv1_weight']
    p1, a1 = load_params(prefix, 1)
    p2, a2 = load_params(prefix, 2)
    for name in ('mobilenet0_conv0_weight', 'mobilenet0_conv1_weight'):
        np.testing.assert_array_equal(p1[name].asnumpy(), p2[name].asnumpy(), err_msg=name)
    for name in ('mobilenet0_conv2_weight', 'mobilenet0_batchnorm0_gamma'):
        assert not np.array_equal(p1[name].asnumpy(), p2[name].asnumpy()), name
    # The stem's BatchNorm statistics are estimated (a deployable model), not left at 0 / 1.
    for p in ('mobilenet0_batchnorm0_running_mean', 'mobilenet0_batchnorm1_running_var'):
        assert not np.array_equal(a1[p].asnumpy(), a2[p].asnumpy()), p
    assert np.abs(a2['mobilenet0_batchnorm0_running_mean'].asnumpy()).max() > 1.0


def test_interrupt_saves_a_checkpoint(dataset, tmp_path):
    prefix = str(tmp_path / 'interrupted')
    proc = subprocess.Popen([sys.executable, 'train.py'] + FAST + ['--dataset_path', dataset, '--prefix', prefix],
                            cwd=REPO, stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.time() + 300
    for line in proc.stderr:
        lines.append(line)
        if 'Batch [' in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=300)
    log = ''.join(lines) + rest
    assert proc.returncode == 0, log
    assert 'resume with --begin_epoch 1' in log
    assert os.path.isfile(prefix + '-0001.params') and os.path.isfile(prefix + '-0001.states')


def _duplicated_batch(dataset):
    """A batch of two identical crops: BatchNorm statistics are then the same whether the
    batch runs on one context or is split over two, so the updates must agree."""
    cfg = make_cfg()
    roidb = retinaface('train', '', dataset, cfg).gt_roidb()[:1]
    with CropLoader(get_symbol_train('mnet', cfg), roidb, cfg, batch_size=1, seed=5) as loader:
        batch = loader.next()
        data_shapes = [(d.name, (2,) + d.shape[1:]) for d in loader.provide_data]
        label_shapes = [(d.name, (2,) + d.shape[1:]) for d in loader.provide_label]
    double = mx.io.DataBatch([mx.nd.concat(d, d, dim=0) for d in batch.data],
                             [mx.nd.concat(d, d, dim=0) for d in batch.label])
    return double, data_shapes, label_shapes


def test_two_cpu_contexts_update_like_one(dataset):
    """The same batch on one context or split over two gives the same update.

    Starts from the released weights: with well-conditioned BatchNorm statistics
    the batch of two identical crops behaves as two batches of one, so what is
    compared is the gradient aggregation (1 / num_devices rescaling, summed
    regression losses), not BatchNorm noise.
    """
    model = str(require_shared('assets/models/retinaface-mnet025/mnet.25-symbol.json')).replace('-symbol.json', '')
    batch, data_shapes, label_shapes = _duplicated_batch(dataset)
    steps = []
    for ctx in ([mx.cpu(0)], [mx.cpu(0), mx.cpu(1)]):
        arg_params, aux_params = load_params(model, 0)
        initial = {k: v.asnumpy() for k, v in arg_params.items()}
        sym = get_symbol_train('mnet', make_cfg(), num_devices=len(ctx))
        mod = train.create_module(sym, ctx, data_shapes, label_shapes, arg_params, aux_params, [],
                                  train.make_optimizer(0.01, 0.0, len(ctx)), 'device')
        for _ in range(2):
            mod.forward_backward(batch)
            mod.update()
        after = mod.get_params()[0]
        steps.append({k: after[k].asnumpy() - initial[k] for k in initial})
    one, two = steps
    groups = {'classification': 'face_rpn_cls_score_stride', 'box': 'face_rpn_bbox_pred_stride',
              'landmark': 'face_rpn_landmark_pred_stride', 'backbone': 'mobilenet0_conv5_'}
    for group, stem in groups.items():
        names = sorted(n for n in one if n.startswith(stem))
        step_one = np.concatenate([one[n].ravel() for n in names])
        step_two = np.concatenate([two[n].ravel() for n in names])
        assert np.linalg.norm(step_one) > 0, group
        relative = np.linalg.norm(step_two - step_one) / np.linalg.norm(step_one)
        assert relative < 0.05, (group, relative)


def assert_two_workers_agree(worker_logs, prefix):
    """Ranks 0 and 1 each logged one parameter digest, the same, and rank 0 saved the checkpoint."""
    found = [digests(text) for text in worker_logs]
    assert all(len(d) == 1 for d in found), worker_logs
    assert found[0] == found[1]
    ranks = sorted(re.search(r'worker (\d) of 2', text).group(1) for text in worker_logs)
    assert ranks == ['0', '1']
    assert os.path.isfile(prefix + '-0001.params')


def test_dist_sync_workers_end_with_equal_parameters(dataset, tmp_path):
    prefix = str(tmp_path / 'dist')
    logs = tmp_path / 'logs'
    command = [sys.executable, 'tools/launch.py', '-n', '2', '-s', '1', '--log-dir', str(logs), '--',
               sys.executable, 'train.py'] + FAST + ['--dataset_path', dataset, '--prefix', prefix,
                                                     '--kvstore', 'dist_sync', '--max_iters', '3']
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    worker_logs = [(logs / ('worker%d.log' % i)).read_text() for i in range(2)]
    assert result.returncode == 0, '\n'.join(worker_logs)
    assert_two_workers_agree(worker_logs, prefix)


def test_resnet_starts_from_model_zoo_backbone_weights(dataset, tmp_path):
    """The README's ResNet-50 command: ``--network resnet --pretrained model/resnet-50 --pretrained_epoch 0``.

    The model-zoo file cannot be downloaded here, so a stand-in with its parameter
    names and shapes (the backbone only: ``bn_data``, ``conv0``, ``stage*``, ``bn1``)
    is written; every one of them must be loaded and only the SSH/head layers start fresh.
    """
    backbone = ('bn_data', 'conv0', 'bn0', 'stage', 'bn1_')
    sym = get_symbol_test('resnet', make_cfg('resnet'))
    arg_shapes, _, aux_shapes = sym.infer_shape(data=(1, 3, 640, 640))
    rng = np.random.RandomState(0)
    zoo = {'arg:' + n: mx.nd.array(rng.normal(0, 0.01, s)) for n, s in zip(sym.list_arguments(), arg_shapes)
           if n.startswith(backbone)}
    zoo.update({'aux:' + n: mx.nd.ones(s) for n, s in zip(sym.list_auxiliary_states(), aux_shapes)
                if n.startswith(backbone)})
    model = str(tmp_path / 'resnet-50')
    mx.nd.save(model + '-0000.params', zoo)
    prefix = str(tmp_path / 'retinaface-r50')
    result = subprocess.run([sys.executable, 'train.py', '--network', 'resnet', '--dataset', 'retinaface',
                             '--pretrained', model, '--pretrained_epoch', '0', '--dataset_path', dataset,
                             '--prefix', prefix, '--batch_images', '1', '--workers', '0', '--max_iters', '1'],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    loaded = re.search(r'loaded (\d+) parameters from .*; initialised fresh: (.*)', result.stderr)
    assert int(loaded.group(1)) == len(zoo)
    assert not [n for n in loaded.group(2).split(', ') if n.startswith(backbone)]
    trained, _ = load_params(prefix, 1)
    assert not np.array_equal(trained['stage4_unit3_conv3_weight'].asnumpy(),
                              zoo['arg:stage4_unit3_conv3_weight'].asnumpy())


def test_dist_sync_roles_started_by_hand_as_in_the_readme(dataset, tmp_path):
    """The README's several-host recipe on one host: each role is a process with only the
    DMLC_* variables the README lists (no launcher), the scheduler at 127.0.0.1."""
    common = dict(os.environ, DMLC_PS_ROOT_URI='127.0.0.1', DMLC_PS_ROOT_PORT=str(free_port()),
                  DMLC_NUM_SERVER='1', DMLC_NUM_WORKER='2')
    prefix = str(tmp_path / 'byhand')
    work = [sys.executable, 'train.py'] + FAST + ['--dataset_path', dataset, '--prefix', prefix,
                                                  '--kvstore', 'dist_sync', '--max_iters', '2']
    processes = [subprocess.Popen(SERVE, cwd=REPO, env=dict(common, DMLC_ROLE=role), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for role in ('scheduler', 'server')]
    workers = [subprocess.Popen(work, cwd=REPO, env=dict(common, DMLC_ROLE='worker'), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    try:
        logs = [w.communicate(timeout=300)[0] for w in workers]
        assert [w.returncode for w in workers] == [0, 0], logs
        for p in processes:
            p.wait(timeout=60)
    finally:
        for p in processes + workers:
            if p.poll() is None:
                p.kill()
    assert_two_workers_agree(logs, prefix)
