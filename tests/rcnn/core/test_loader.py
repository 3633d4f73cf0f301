"""``CropLoader``: batches, reproducibility across worker counts, sharding, errors and shutdown."""
import gc

import cv2
import mxnet as mx
import numpy as np
import pytest

from support import make_cfg
from rcnn.core.crop_worker import sample_rng
from rcnn.core.loader import CropLoader, feature_shapes
from facekit.labels import LabelRecord, write_label_file
from rcnn.dataset.retinaface import retinaface
from rcnn.io.rpn import AA, get_crop_batch

FEATS = [(20, 20), (40, 40), (80, 80)]


@pytest.fixture(scope='module')
def roidb(tmp_path_factory):
    """Six small JPEGs with 1-4 faces each, loaded and flipped: 12 entries."""
    root = tmp_path_factory.mktemp('widerface')
    rng = np.random.default_rng(0)
    records = []
    for i in range(6):
        height, width = rng.integers(200, 400, 2)
        small = rng.integers(0, 256, (height // 16, width // 16, 3)).astype(np.uint8)
        path = root / 'train' / 'images' / ('%d.jpg' % i)
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.resize(small, (int(width), int(height))))
        n = int(rng.integers(1, 5))
        xy = rng.uniform(0, [width - 40, height - 40], (n, 2))
        wh = rng.uniform(10, 40, (n, 2))
        marks = np.concatenate([xy[:, None] + rng.uniform(0, 10, (n, 5, 2)), np.zeros((n, 5, 1))], axis=2)
        records.append(LabelRecord(path='%d.jpg' % i, boxes=np.hstack([xy, wh]).astype(np.float32),
                                   landmarks=marks.astype(np.float32), blur=np.zeros(n, np.float32)))
    write_label_file(root / 'train' / 'label.txt', records)
    imdb = retinaface('train', str(root), cfg=make_cfg())
    return imdb.append_flipped_images(imdb.gt_roidb())


def epochs(loader, count):
    """NumPy copies of every batch of ``count`` epochs."""
    out = []
    for epoch in range(count):
        if epoch:
            loader.reset()
        out.append([[array.asnumpy() for array in batch.data + batch.label] for batch in loader])
    return out


@pytest.mark.slow
def test_batches_are_the_same_for_any_number_of_workers(roidb):
    cfg = make_cfg()
    with CropLoader(FEATS, roidb, cfg, batch_size=4, shuffle=True, seed=5, num_workers=0) as loader:
        serial = epochs(loader, 2)
    for workers in (1, 2):
        loader = CropLoader(FEATS, roidb, cfg, batch_size=4, shuffle=True, seed=5, num_workers=workers)
        with loader:
            parallel = epochs(loader, 2)
        processes = loader._workers
        assert len(processes) == workers
        assert all(not p.is_alive() and p.exitcode == 0 for p in processes)  # reaped, clean exit
        assert len(parallel) == 2 and all(len(e) == 3 for e in parallel)
        for epoch_a, epoch_b in zip(serial, parallel):
            for batch_a, batch_b in zip(epoch_a, epoch_b):
                for a, b in zip(batch_a, batch_b):
                    np.testing.assert_array_equal(a, b)
    # A new epoch is a new order and new crops.
    assert not np.array_equal(serial[0][0][0], serial[1][0][0])


def test_batch_content_is_the_seeded_crop_and_assignment(roidb):
    cfg = make_cfg()
    with CropLoader(FEATS, roidb, cfg, batch_size=2, shuffle=False, seed=9) as loader:
        batch = loader.next()
        names = [d.name for d in loader.provide_data + loader.provide_label]
    arrays = dict(zip(names, batch.data + batch.label))
    aa = AA(FEATS, cfg)
    for pos in range(2):  # no shuffle: entries 0 and 1, epoch 0
        data, labels = get_crop_batch([roidb[pos]], rng=sample_rng(9, 0, pos), cfg=cfg)
        np.testing.assert_array_equal(arrays['data'].asnumpy()[pos], data[0]['data'][0])
        expected = aa.assign_anchor_fpn(labels[0], data[0]['im_info'], landmark=True)
        for name, value in expected.items():
            np.testing.assert_array_equal(arrays[name].asnumpy()[pos], value[0])


@pytest.mark.parametrize('workers', [0, 1])
def test_batches_held_by_the_trainer_are_never_overwritten(roidb, workers):
    """Batches share memory with the loader; a buffer is refilled only after MXNet released it."""
    with CropLoader(FEATS, roidb, make_cfg(), batch_size=2, shuffle=True, seed=3, num_workers=workers) as loader:
        held = [(batch, [a.asnumpy() for a in batch.data + batch.label]) for batch in loader]
        assert len(held) == 6
        loader.reset()
        for _ in loader:  # a whole epoch more while the first one's batches are kept
            pass
        for batch, content in held:
            for array, expected in zip(batch.data + batch.label, content):
                np.testing.assert_array_equal(array.asnumpy(), expected)
        if workers:
            lent_slots = [i for i in range(len(loader._shared.buffers)) if loader._shared.is_lent(i)]
            assert len(lent_slots) <= 2
        del held, batch, array
        mx.nd.waitall()
        gc.collect()
        private = len(loader._private.buffers)
        loader.reset()
        for _ in loader:  # released buffers are reused: no new ones
            pass
        assert len(loader._private.buffers) == private


def test_provide_data_and_label_follow_the_symbol_order(roidb):
    with CropLoader(FEATS, roidb, make_cfg(), batch_size=3) as loader:
        assert loader.provide_data == [('data', (3, 3, 640, 640))]
        labels = dict(loader.provide_label)
        assert [d.name for d in loader.provide_label][:5] == [
            'face_label_stride32', 'face_bbox_target_stride32', 'face_bbox_weight_stride32',
            'face_landmark_target_stride32', 'face_landmark_weight_stride32']
        assert labels['face_label_stride8'] == (3, 12800)
        assert labels['face_bbox_target_stride16'] == (3, 8, 1600)
        assert labels['face_landmark_weight_stride32'] == (3, 20, 400)
        assert loader.batches_per_epoch == 4
        batch = next(iter(loader))
        assert batch.pad == 0 and isinstance(batch.data[0], mx.nd.NDArray)
        for array, desc in zip(batch.data + batch.label, loader.provide_data + loader.provide_label):
            assert array.shape == desc.shape and array.dtype == np.float32
    without = make_cfg(FACE_LANDMARK=False)
    with CropLoader(FEATS, roidb, without, batch_size=2) as loader:
        assert len(loader.provide_label) == 9 and all('landmark' not in d.name for d in loader.provide_label)
        assert len(loader.next().label) == 9


def test_parts_are_disjoint_equal_and_share_the_epoch_order(roidb):
    cfg = make_cfg()
    orders = {}
    for part in range(3):
        orders[part] = [CropLoader(FEATS, roidb, cfg, batch_size=2, shuffle=True, seed=1, num_parts=3,
                                   part_index=part, begin_epoch=epoch).order for epoch in (0, 1)]
    for epoch in range(2):
        parts = [orders[p][epoch] for p in range(3)]
        assert all(len(p) == 4 for p in parts)  # 12 images / 3 parts, 2 batches of 2 each
        merged = np.concatenate(parts)
        assert len(set(merged.tolist())) == 12
        # All parts slice one permutation: part p holds positions p, p + 3, ... of it.
        permutation = np.empty(12, int)
        for p in range(3):
            permutation[p::3] = parts[p]
        assert sorted(permutation.tolist()) == list(range(12))
    assert not np.array_equal(orders[0][0], orders[0][1])
    with pytest.raises(ValueError, match='part_index'):
        CropLoader(FEATS, roidb, cfg, batch_size=2, num_parts=2, part_index=2)
    with pytest.raises(ValueError, match='make no batch'):
        CropLoader(FEATS, roidb, cfg, batch_size=5, num_parts=3)


def test_epochs_follow_from_seed_and_begin_epoch(roidb):
    """reset() before each epoch (train.py) or after it (Module.fit) gives the same epochs, and
    begin_epoch resumes the sequence."""
    cfg = make_cfg()

    def first_batches(loader, epochs, reset_before):
        out = []
        for epoch in range(epochs):
            if reset_before or epoch:
                loader.reset()
            out.append((loader.epoch, loader.next().data[0].asnumpy()))
            for _ in loader:
                pass
        return out

    after = first_batches(CropLoader(FEATS, roidb, cfg, batch_size=4, shuffle=True, seed=2), 2, False)
    before = first_batches(CropLoader(FEATS, roidb, cfg, batch_size=4, shuffle=True, seed=2), 2, True)
    resumed = first_batches(CropLoader(FEATS, roidb, cfg, batch_size=4, shuffle=True, seed=2, begin_epoch=1),
                            1, True)
    assert [e for e, _ in after] == [e for e, _ in before] == [0, 1] and resumed[0][0] == 1
    for (_, a), (_, b) in zip(after, before):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(resumed[0][1], after[1][1])
    assert not np.array_equal(after[0][1], after[1][1])


def test_feature_shapes_from_symbols():
    cfg = make_cfg()
    data = mx.sym.Variable('data')
    outputs = [mx.sym.Pooling(data, kernel=(s, s), stride=(s, s), pool_type='max',
                              name='face_rpn_cls_score_stride%d' % s) for s in (32, 16, 8)]
    assert feature_shapes(outputs, cfg) == FEATS
    assert feature_shapes(mx.sym.Group(outputs), cfg) == FEATS
    assert feature_shapes([(1, 4, 20, 20), (1, 4, 40, 40), (1, 4, 80, 80)], cfg) == FEATS
    with pytest.raises(ValueError, match='strides'):
        feature_shapes(outputs[:2], cfg)


def test_bad_image_names_the_file(roidb, tmp_path):
    corrupt = tmp_path / 'corrupt.jpg'
    corrupt.write_bytes(b'\xff\xd8\xff garbage')
    broken = [dict(entry) for entry in roidb[:4]]
    broken[1]['image'] = str(corrupt)
    with CropLoader(FEATS, broken, make_cfg(), batch_size=2) as loader:
        with pytest.raises(ValueError, match='corrupt.jpg'):
            loader.next()
    with CropLoader(FEATS, broken, make_cfg(), batch_size=2, num_workers=1) as loader:
        with pytest.raises(RuntimeError, match=r'roidb entry 1 \(image .*corrupt.jpg\).*cannot decode'):
            loader.next()
        loader.reset()  # the failed epoch is drained; the loader keeps working
        assert loader.epoch == 1
    assert not loader._workers[0].is_alive()
    with pytest.raises(RuntimeError, match='closed'):
        loader.next()
