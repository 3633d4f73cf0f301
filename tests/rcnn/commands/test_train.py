"""train.py (``rcnn.commands.train``): its arguments, devices, pretrained loading, LAYER_FIX,
checkpoint validation, several contexts and the parameter-server kvstore, on the tiny synthetic
dataset of conftest.py."""
import json
import os
import re
import subprocess
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest

from facekit.mx import runtime
from facekit.mx.checkpoint import load_params
from facekit.mx.trainer import bind_module
from facekit.prefix import Position, params_path, saved_positions, states_path
from rcnn.commands import retinaface_train
from rcnn.commands import train as train_module
from rcnn.commands.launch import SERVE, free_port
from rcnn.core.loader import CropLoader
from rcnn.dataset.retinaface import retinaface
from rcnn.symbol import get_symbol_test, get_symbol_train
from support import REPO, error_line, make_cfg, require_shared
from train_support import FAST, copy_checkpoints, run_train, train


def digests(text):
    return re.findall(r'parameter digest ([0-9a-f]{32})', text)


def parse(argv):
    """The checked arguments of ``argv``, as the command gets them."""
    args = train_module.build_parser().parse_args(argv)
    train_module.check_args(args)
    return args


def test_missing_dataset_says_how_to_get_data(tmp_path, capsys):
    nowhere = str(tmp_path / 'nowhere')
    assert train(['--dataset_path', nowhere, '--prefix', str(tmp_path / 'm')]) == 1
    assert 'rcnn.dataset.synthetic --output %s,' % nowhere in error_line(capsys.readouterr().err)
    # The generator writes only into a new folder: the suggestion does not point at one in use.
    (tmp_path / 'data' / 'val').mkdir(parents=True)
    data = str(tmp_path / 'data')
    assert train(['--dataset_path', data, '--prefix', str(tmp_path / 'm')]) == 1
    assert '--output %s-synthetic, then train.py ... --dataset_path %s-synthetic' % (data, data) in \
        error_line(capsys.readouterr().err)


def test_split_and_order_options_reach_the_loader(dataset, tmp_path, monkeypatch):
    class Built(Exception):
        pass

    def loader(sym, roidb, cfg, **kwargs):
        raise Built(roidb, kwargs)

    monkeypatch.setattr(train_module, 'CropLoader', loader)
    base = ['--dataset_path', dataset, '--prefix', str(tmp_path / 'm')]
    with pytest.raises(Built) as built:
        train(base)
    roidb, kwargs = built.value.args
    assert kwargs['shuffle'] is True and len(roidb) == 8   # the 4 train images and their mirrors
    # The original's --root_path is accepted (this port caches nothing).
    with pytest.raises(Built) as built:
        train(base + ['--image_set', 'val', '--no_shuffle', '--no_flip', '--root_path', str(tmp_path / 'cache')])
    roidb, kwargs = built.value.args
    assert kwargs['shuffle'] is False and len(roidb) == 2
    assert all(os.sep + os.path.join('val', 'images') + os.sep in entry['image'] for entry in roidb)


def test_unknown_network_lists_the_valid_ones(capsys):
    assert retinaface_train(['--network', 'vgg16']) == 2
    assert 'mnet, resnet' in capsys.readouterr().err


def test_devices_are_the_gpus_mxnet_sees_or_the_cpus(monkeypatch):
    # docs/training.md's --gpus commands need a GPU to run; this checks which contexts they ask for.
    monkeypatch.setattr(runtime, 'cuda_gpus', lambda: 4)
    get_context = train_module.get_context
    assert get_context(parse(['--gpus', '0,1,2,3'])) == [mx.gpu(i) for i in range(4)]
    assert get_context(parse(['--gpus', '1'])) == [mx.gpu(1)]
    assert get_context(parse([])) == [mx.gpu(i) for i in range(4)]
    monkeypatch.setattr(runtime, 'cuda_gpus', lambda: 0)
    assert get_context(parse([])) == [mx.cpu(0)]
    assert get_context(parse(['--cpus', '2'])) == [mx.cpu(0), mx.cpu(1)]


def test_a_gpu_the_machine_lacks_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setattr(runtime, 'cuda_gpus', lambda: 2)
    assert retinaface_train(['--gpus', '0,2']) == 2
    assert "error: --gpus 2: MXNet sees 2 GPU(s) here (ids 0..1); to run on the CPU, pass --gpus ''" \
        in capsys.readouterr().err


@pytest.mark.skipif(runtime.cuda_gpus() > 0, reason='this MXNet build has CUDA and a GPU')
def test_gpus_on_this_cpu_build_are_a_one_line_error(capsys):
    assert retinaface_train(['--gpus', '0']) == 2
    error = error_line(capsys.readouterr().err)
    assert error.endswith(': error: --gpus 0: this MXNet build has no CUDA support (GPUs need mxnet-cu112, see '
                          "the README); to run on the CPU, pass --gpus ''"), error


@pytest.mark.parametrize('argv, facts', [
    (['--kvstore', 'bogus'], ['--kvstore', "'bogus'", 'invalid choice']),
    (['--kvstore', 'nccl'], ['--kvstore nccl', 'GPU']),
    (['--kvstore', 'dist_sync'], ['--kvstore dist_sync', 'parameter-server']),
    (['--lr_step', '5,x'], ['--lr_step', 'integers']),
    (['--lr_step', '8,5'], ['--lr_step', 'increasing']),
    (['--lr', '0'], ['--lr', '> 0']),
    (['--lr', '-0.1'], ['--lr', '> 0']),
    (['--lr', 'nan'], ['--lr', "'nan'", 'finite']),
    (['--lr', 'inf'], ['--lr', 'finite']),
    (['--wd', 'nan'], ['--wd', 'finite']),
    (['--end_epoch', '3', '--begin_epoch', '3'], ['--end_epoch (3)', '--begin_epoch (3)']),
    (['--end_epoch', '0'], ['--end_epoch', '>= 1']),
    (['--gpus', '0,a'], ['--gpus', 'integers']),
    (['--batch_images', '0'], ['--batch_images', '>= 1']),
    (['--cpus', '0'], ['--cpus', '>= 1']),
    (['--workers', '-1'], ['--workers', '>= 0']),
    (['--max_iters', '-1'], ['--max_iters', '>= 0']),
    (['--frequent', '0'], ['--frequent', '>= 1']),
    (['--begin_epoch', '2'], ['--begin_epoch 2', '{tmp}/m-0002.params']),
    (['--begin_epoch', '1', '--begin_batch', '3'], ['--begin_batch 3', '{tmp}/m-0001-batch000003.params']),
    (['--anchors', 'net4'], ['--anchors', "'net4'", "'net3', 'net3a'"]),
    (['--pretrained', '{tmp}/none'], ['--pretrained {tmp}/none', '{tmp}/none-0000.params']),
    (['--prefix', '{tmp}/file/m'], ['--prefix', '{tmp}/file', 'not a folder']),
    (['--prefix', '{tmp}/'], ['--prefix', "'{tmp}/'", 'folder']),
])
def test_arguments_are_checked_before_any_work(argv, facts, tmp_path, monkeypatch, capsys):
    """Each is an argparse error (status 2) naming the argument, and the value or file at fault;
    the dataset folder does not even exist, so any work would fail differently. (As on a CPU
    build: no GPU.)"""
    monkeypatch.setattr(runtime, 'cuda_gpus', lambda: 0)
    for name in train_module.DIST_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / 'file').write_text('')
    argv = [a.replace('{tmp}', str(tmp_path)) for a in argv]
    prefix = [] if '--prefix' in argv else ['--prefix', str(tmp_path / 'm')]
    assert train(['--dataset_path', str(tmp_path / 'nowhere')] + prefix + argv) == 2
    error = error_line(capsys.readouterr().err)
    assert error.startswith('train.py: error: ')
    for fact in facts:
        assert fact.replace('{tmp}', str(tmp_path)) in error, (fact, error)
    assert sorted(os.listdir(tmp_path)) == ['file']  # checked before the prefix is even locked


def test_pretrained_with_a_wrong_shape_names_the_parameter(dataset, tmp_path, capsys):
    bad = {'arg:face_rpn_cls_score_stride8_weight': mx.nd.zeros((3, 64, 1, 1))}
    mx.nd.save(str(tmp_path / 'bad-0000.params'), bad)
    assert train(['--dataset_path', dataset, '--prefix', str(tmp_path / 'm'), '--pretrained', str(tmp_path / 'bad'),
                  '--max_iters', '0']) == 1
    assert 'parameter face_rpn_cls_score_stride8_weight in %s has shape (3, 64, 1, 1)' % (
        tmp_path / 'bad-0000.params') in error_line(capsys.readouterr().err)


@pytest.fixture(scope='module')
def initial_checkpoint(dataset, tmp_path_factory):
    """PREFIX-0000 of --max_iters 0: every parameter of mnet at its initialisation."""
    prefix = str(tmp_path_factory.mktemp('initial') / 'init')
    result = run_train('--dataset_path', dataset, '--prefix', prefix, '--max_iters', '0')
    assert result.returncode == 0, result.stderr
    return prefix


def _copy_without(prefix, target, dropped, epoch=1):
    params = {k: v for k, v in mx.nd.load(prefix + '-0000.params').items() if k not in dropped}
    mx.nd.save(params_path(target, epoch), params)


def test_pretrained_that_matches_nothing_is_an_error(dataset, tmp_path, capsys):
    mx.nd.save(str(tmp_path / 'other-0000.params'), {'arg:fc1_weight': mx.nd.zeros((2, 3))})
    assert train(['--dataset_path', dataset, '--prefix', str(tmp_path / 'm'), '--pretrained', str(tmp_path / 'other'),
                  '--max_iters', '0']) == 1
    assert re.search(r"--pretrained .*other-0000\.params matches none of the network's \d+ parameters .* the file "
                     r"has fc1_weight\)", error_line(capsys.readouterr().err))
    assert [n for n in sorted(os.listdir(tmp_path)) if not n.startswith('.')] == ['other-0000.params']  # lock aside


@pytest.mark.slow
def test_layer_fix_parameters_missing_from_the_pretrained_model_are_an_error(dataset, initial_checkpoint, tmp_path,
                                                                             capsys):
    """A pretrained model that lacks some parameters is fine (they start fresh), unless LAYER_FIX
    would keep them fixed at their random initialisation."""
    partial = str(tmp_path / 'partial')
    _copy_without(initial_checkpoint, partial, {'arg:mobilenet0_conv1_weight', 'arg:face_rpn_bbox_pred_stride8_bias'})
    assert train(['--dataset_path', dataset, '--prefix', str(tmp_path / 'm'), '--pretrained', partial,
                  '--pretrained_epoch', '1', '--max_iters', '0']) == 1
    assert error_line(capsys.readouterr().err).endswith(
        'lacks LAYER_FIX parameters, which would stay fixed at their random initialisation: mobilenet0_conv1_weight')
    _copy_without(initial_checkpoint, partial, {'arg:face_rpn_bbox_pred_stride8_bias'})
    result = run_train('--dataset_path', dataset, '--prefix', str(tmp_path / 'm'), '--pretrained', partial,
                       '--pretrained_epoch', '1', '--max_iters', '0')
    assert result.returncode == 0, result.stderr
    assert 'initialised fresh: face_rpn_bbox_pred_stride8_bias' in result.stderr


@pytest.mark.slow
def test_resuming_from_a_checkpoint_that_lacks_parameters_lists_them(dataset, initial_checkpoint, tmp_path, capsys):
    prefix = str(tmp_path / 'm')
    _copy_without(initial_checkpoint, prefix, {'arg:mobilenet0_conv3_weight', 'aux:mobilenet0_batchnorm2_running_var'})
    assert train(['--dataset_path', dataset, '--prefix', prefix, '--begin_epoch', '1', '--max_iters', '0']) == 1
    assert re.search(r"cannot resume from .*m-0001\.params: it lacks 2 of the network's parameters and auxiliary "
                     r"states: mobilenet0_conv3_weight, mobilenet0_batchnorm2_running_var",
                     error_line(capsys.readouterr().err))


@pytest.mark.slow
@pytest.mark.parametrize('suffix', ['.params', '.states', '.states.json'])
def test_a_truncated_checkpoint_file_is_an_error_naming_it(suffix, dataset, first_epoch, tmp_path, capsys):
    prefix = copy_checkpoints(first_epoch, tmp_path)
    path = prefix + '-0001' + suffix
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:len(data) // 2])
    assert train(['--dataset_path', dataset, '--prefix', prefix, '--begin_epoch', '1', '--max_iters', '0']) == 1
    assert error_line(capsys.readouterr().err).startswith('train.py: error: %s' % path)
    assert saved_positions(prefix) == [Position(1)]


@pytest.mark.slow
def test_a_bit_flipped_params_file_is_named_not_trained_on(dataset, first_epoch, tmp_path, capsys):
    """Its .states.json records the parameters' digest."""
    prefix = copy_checkpoints(first_epoch, tmp_path)
    path = params_path(prefix, 1)
    data = bytearray(open(path, 'rb').read())
    data[-5] ^= 0x04
    open(path, 'wb').write(bytes(data))
    assert train(['--dataset_path', dataset, '--prefix', prefix, '--begin_epoch', '1', '--max_iters', '1']) == 1
    assert error_line(capsys.readouterr().err) == (
        'train.py: error: %s does not hold the parameters %s.json records (parameter digest %s): the file is '
        'corrupt or was replaced' % (path, states_path(prefix, 1), json.load(open(states_path(prefix, 1) + '.json'))[
            'params_digest']))
    assert saved_positions(prefix) == [Position(1)]


@pytest.mark.slow
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
    assert 'before the first batch: %s holds the initial parameters' % params_path(prefix, 0) in result.stderr

    from retinaface import RetinaFace
    dets, landmarks = RetinaFace(prefix, 0, ctx_id=-1).detect(image, threshold=0.02, scales=[1.0])
    assert dets.shape == golden['t4_single_det'].shape
    np.testing.assert_allclose(dets[:, :4], golden['t4_single_det'][:, :4], atol=0.01)
    np.testing.assert_allclose(dets[:, 4], golden['t4_single_det'][:, 4], atol=1e-4)
    np.testing.assert_allclose(landmarks, golden['t4_single_landmarks'], atol=0.01)


@pytest.mark.slow
def test_layer_fix_keeps_the_first_backbone_layers_of_pretrained_weights(dataset, tmp_path):
    model = str(require_shared('assets/models/retinaface-mnet025/mnet.25-symbol.json')).replace('-symbol.json', '')
    prefix = str(tmp_path / 'fixed')
    result = run_train('--dataset_path', dataset, '--prefix', prefix, '--max_iters', '2',
                       '--pretrained', model, '--pretrained_epoch', '0')
    assert result.returncode == 0, result.stderr
    before, _ = load_params(model, 0)
    after, _ = load_params(prefix, 0, 2)
    fixed = ['mobilenet0_conv%d_weight' % i for i in (0, 1)] + \
        ['mobilenet0_batchnorm%d_%s' % (i, p) for i in (0, 1) for p in ('gamma', 'beta')]
    logged = re.search(r'fixed parameters \(LAYER_FIX\): (.*)', result.stderr).group(1)
    assert set(logged.split(', ')) == set(fixed)
    for name in fixed:
        np.testing.assert_array_equal(after[name].asnumpy(), before[name].asnumpy(), err_msg=name)
    changed = [n for n in ('mobilenet0_conv2_weight', 'face_rpn_cls_score_stride8_weight')
               if not np.array_equal(after[n].asnumpy(), before[n].asnumpy())]
    assert changed == ['mobilenet0_conv2_weight', 'face_rpn_cls_score_stride8_weight']

    # Resuming the fine-tune (the same command with the flags the run logged) keeps them fixed.
    assert 'stopped by --max_iters in epoch 0; resume with --begin_epoch 0 --begin_batch 2' in result.stderr
    resumed = run_train('--dataset_path', dataset, '--prefix', prefix, '--max_iters', '2', '--begin_epoch', '0',
                        '--begin_batch', '2', '--pretrained', model, '--pretrained_epoch', '0')
    assert resumed.returncode == 0, resumed.stderr
    assert 'fixed parameters (LAYER_FIX)' in resumed.stderr
    again, _ = load_params(prefix, 0, 4)
    for name in fixed:
        np.testing.assert_array_equal(again[name].asnumpy(), before[name].asnumpy(), err_msg=name)
    assert not np.array_equal(again['mobilenet0_conv2_weight'].asnumpy(), after['mobilenet0_conv2_weight'].asnumpy())


@pytest.mark.slow
def test_from_scratch_fixes_nothing_and_resume_continues(dataset, tmp_path):
    prefix = str(tmp_path / 'scratch')
    first = run_train('--dataset_path', dataset, '--prefix', prefix, '--max_iters', '2')
    assert first.returncode == 0, first.stderr
    assert 'fixed parameters' not in first.stderr
    for path in (prefix + '-symbol.json', params_path(prefix, 0, 2), states_path(prefix, 0, 2)):
        assert os.path.isfile(path)
    resumed = run_train('--dataset_path', dataset, '--prefix', prefix, '--begin_epoch', '0', '--begin_batch', '2',
                        '--max_iters', '1')
    assert resumed.returncode == 0, resumed.stderr
    assert 'resuming from %s (epoch 0, batch 2)' % params_path(prefix, 0, 2) in resumed.stderr
    p1, _ = load_params(prefix, 0, 2)
    p2, _ = load_params(prefix, 0, 3)
    assert not np.array_equal(p1['face_rpn_bbox_pred_stride8_weight'].asnumpy(),
                              p2['face_rpn_bbox_pred_stride8_weight'].asnumpy())


@pytest.mark.slow
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
        params[engine] = mx.nd.load(params_path(prefix, 0, 3))
    threaded, sequential = params['ThreadedEnginePerDevice'], params['NaiveEngine']
    assert sorted(threaded) == sorted(sequential)
    assert any(k.startswith('aux:') and k.endswith('_running_var') for k in threaded)
    for key in threaded:
        np.testing.assert_array_equal(threaded[key].asnumpy(), sequential[key].asnumpy(), err_msg=key)


@pytest.mark.slow
def test_fix_from_scratch_keeps_the_random_stem(dataset, tmp_path):
    prefix = str(tmp_path / 'stem')
    first = run_train('--dataset_path', dataset, '--prefix', prefix, '--max_iters', '1', '--fix_from_scratch')
    assert first.returncode == 0, first.stderr
    resumed = run_train('--dataset_path', dataset, '--prefix', prefix, '--max_iters', '2', '--fix_from_scratch',
                        '--begin_epoch', '0', '--begin_batch', '1')
    assert resumed.returncode == 0, resumed.stderr
    logged = re.search(r'fixed parameters \(LAYER_FIX\): (.*)', resumed.stderr).group(1)
    assert logged.split(', ') == ['mobilenet0_conv0_weight', 'mobilenet0_conv1_weight']
    p1, a1 = load_params(prefix, 0, 1)
    p2, a2 = load_params(prefix, 0, 3)
    for name in ('mobilenet0_conv0_weight', 'mobilenet0_conv1_weight'):
        np.testing.assert_array_equal(p1[name].asnumpy(), p2[name].asnumpy(), err_msg=name)
    for name in ('mobilenet0_conv2_weight', 'mobilenet0_batchnorm0_gamma'):
        assert not np.array_equal(p1[name].asnumpy(), p2[name].asnumpy()), name
    # The stem's BatchNorm statistics are estimated (a deployable model), not left at 0 / 1.
    for p in ('mobilenet0_batchnorm0_running_mean', 'mobilenet0_batchnorm1_running_var'):
        assert not np.array_equal(a1[p].asnumpy(), a2[p].asnumpy()), p
    assert np.abs(a2['mobilenet0_batchnorm0_running_mean'].asnumpy()).max() > 1.0


def _duplicated_batch(dataset):
    """A batch of two identical crops: BatchNorm statistics are then the same whether the
    batch runs on one context or is split over two, so the updates must agree."""
    cfg = make_cfg()
    roidb = retinaface('train', dataset, cfg).gt_roidb()[:1]
    with CropLoader(get_symbol_train('mnet', cfg), roidb, cfg, batch_size=1, seed=5) as loader:
        batch = loader.next()
        data_shapes = [(d.name, (2,) + d.shape[1:]) for d in loader.provide_data]
        label_shapes = [(d.name, (2,) + d.shape[1:]) for d in loader.provide_label]
    double = mx.io.DataBatch([mx.nd.concat(d, d, dim=0) for d in batch.data],
                             [mx.nd.concat(d, d, dim=0) for d in batch.label])
    return double, data_shapes, label_shapes


@pytest.mark.slow
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
        mod = bind_module(sym, ctx, data_shapes, label_shapes, arg_params, aux_params,
                          train_module.make_optimizer(0.01, 0.0, len(ctx)), kvstore='device')
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


def assert_two_workers_agree(worker_logs, prefix, batches):
    """Ranks 0 and 1 each logged one parameter digest, the same, and rank 0 saved the checkpoint after
    ``batches`` batches of epoch 0."""
    found = [digests(text) for text in worker_logs]
    assert all(len(d) == 1 for d in found), worker_logs
    assert found[0] == found[1]
    ranks = sorted(re.search(r'worker (\d) of 2', text).group(1) for text in worker_logs)
    assert ranks == ['0', '1']
    assert saved_positions(prefix) == [Position(0, batches)]


@pytest.mark.slow
def test_dist_sync_workers_end_with_equal_parameters(dataset, tmp_path):
    prefix = str(tmp_path / 'dist')
    logs = tmp_path / 'logs'
    command = [sys.executable, 'tools/launch.py', '-n', '2', '-s', '1', '--log_dir', str(logs), '--',
               sys.executable, 'train.py'] + FAST + ['--dataset_path', dataset, '--prefix', prefix,
                                                     '--kvstore', 'dist_sync', '--max_iters', '3']
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    worker_logs = [(logs / ('worker%d.log' % i)).read_text() for i in range(2)]
    assert result.returncode == 0, '\n'.join(worker_logs)
    assert_two_workers_agree(worker_logs, prefix, 3)


@pytest.mark.slow
def test_resnet_starts_from_model_zoo_backbone_weights(dataset, tmp_path):
    """docs/training.md's ResNet-50 command: ``--network resnet --pretrained model/resnet-50 --pretrained_epoch 0``.

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
    trained, _ = load_params(prefix, 0, 1)
    assert not np.array_equal(trained['stage4_unit3_conv3_weight'].asnumpy(),
                              zoo['arg:stage4_unit3_conv3_weight'].asnumpy())


@pytest.mark.slow
def test_dist_sync_roles_started_by_hand_as_in_the_readme(dataset, tmp_path):
    """docs/training.md's several-host recipe on one host: each role is a process with only the
    DMLC_* variables it lists (no launcher), the scheduler at 127.0.0.1."""
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
    assert_two_workers_agree(logs, prefix, 2)


@pytest.mark.parametrize('faces, message', [
    ('10 10 20 x\n', r'label\.txt:2: .*'),
    ('10 10 0 0\n', r'label\.txt: no usable image: each of its 1 images is left without a face'),
])
def test_a_label_file_without_training_data_is_one_line_naming_it(tmp_path, capsys, faces, message):
    images = tmp_path / 'data' / 'train' / 'images'
    images.mkdir(parents=True)
    assert cv2.imwrite(str(images / 'a.jpg'), np.zeros((64, 64, 3), np.uint8))
    (tmp_path / 'data' / 'train' / 'label.txt').write_text('# a.jpg\n' + faces)
    assert train(['--dataset_path', str(tmp_path / 'data'), '--prefix', str(tmp_path / 'model' / 'm')]) == 1
    line = error_line(capsys.readouterr().err)
    assert line.startswith('train.py: error: %s' % (tmp_path / 'data' / 'train' / 'label.txt'))
    assert re.search(message, line)
    assert saved_positions(str(tmp_path / 'model' / 'm')) == []
