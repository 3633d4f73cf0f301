"""Sample lists and batches (``mtcnn.loader``): errors name the file and line; mirroring; a run resumed
inside an epoch gets the batches of the uninterrupted one."""
import cv2
import numpy as np
import pytest

from mtcnn.detector import transform
from mtcnn.loader import ImageListIter, read_sample_list
from mtcnn.samples import mirror_sample
from support import tiny_sample_list


@pytest.mark.parametrize('line, message', [('a.jpg 1 0.1 0.2', 'label 1 needs 4'),
                                           ('a.jpg -2 0.1', 'label -2 needs 10'),
                                           ('a.jpg 3', 'label must be 1, 0, -1 or -2, got 3'), ('a.jpg', 'expected')])
def test_sample_list_errors_name_file_and_line(tmp_path, line, message):
    path = tmp_path / 'list.txt'
    path.write_text('ok.jpg 0\n' + line + '\n')
    with pytest.raises(ValueError, match=r'list\.txt:2: .*%s' % message):
        read_sample_list(str(path))


def test_iterator_batches_and_mirror(tmp_path):
    samples = tiny_sample_list(tmp_path, 12)
    plain = ImageListIter(samples, 12, 8, shuffle=False, mirror=False, with_landmark=True)
    batch = plain.next()
    assert [d.shape for d in batch.data + batch.label] == [(8, 3, 12, 12), (8,), (8, 4), (8, 10)]
    img0 = cv2.imread(samples.paths[0])
    np.testing.assert_array_equal(batch.data[0].asnumpy()[0], transform(img0))
    mirrored = ImageListIter(samples, 12, 8, shuffle=False, mirror=True, with_landmark=True, seed=1).next()
    flips = 0
    for i in range(8):
        label = int(samples.labels[i])
        image = cv2.imread(samples.paths[i])
        got = mirrored.data[0].asnumpy()[i]
        if np.array_equal(got, transform(image)):
            continue
        flips += 1
        target = samples.landmark_targets[i] if label == -2 else samples.bbox_targets[i]
        flipped_image, flipped_target = mirror_sample(image, label, target)
        np.testing.assert_array_equal(got, transform(flipped_image))
        head = 2 if label == -2 else 1
        np.testing.assert_allclose(mirrored.label[head].asnumpy()[i], flipped_target, rtol=1e-6)
    assert 0 < flips < 8


def test_an_iterator_started_inside_an_epoch_gives_the_uninterrupted_batches(tmp_path):
    """Orders and mirror draws come from (seed, epoch[, batch]) alone: starting at epoch 1, batch 1
    (after a reset into epoch 2 too) gives the batches an iterator from the start gives there."""
    samples = tiny_sample_list(tmp_path, 12, count=24)

    def batches(iterator, count):
        out = []
        for _ in range(count):
            try:
                batch = iterator.next()
            except StopIteration:
                iterator.reset()
                batch = iterator.next()
            out.append([a.asnumpy() for a in batch.data + batch.label])
        return out

    whole = batches(ImageListIter(samples, 12, 8, with_landmark=True, seed=5), 3 + 4)
    resumed = batches(ImageListIter(samples, 12, 8, with_landmark=True, seed=5, begin_epoch=1, begin_batch=1), 4)
    for got, want in zip(resumed, whole[4:]):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match='begin_batch 3: an epoch has 3 batches'):
        ImageListIter(samples, 12, 8, begin_batch=3)
