"""The ``retinaface`` imdb: label.txt -> roidb, flipping, and the crop of flipped entries."""
import copy

import cv2
import numpy as np
import pytest
from PIL import Image

from support import make_cfg
from rcnn.contract import LANDMARK_FLIP_ORDER
from rcnn.dataset.retinaface import retinaface
from rcnn.io.augment import get_crop_image1

MISSING = '-1 -1 -1 ' * 5


def make_split(root, split, images, label_text):
    """Write ``images`` {relative path: (height, width)} as black PNG/JPEGs and ``label_text``."""
    for rel, (height, width) in images.items():
        path = root / split / 'images' / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), np.zeros((height, width, 3), np.uint8))
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / split / 'label.txt').write_text(label_text)
    return str(root)


def test_boxes_landmarks_and_blur_are_converted(tmp_path):
    text = ('# ev/a.jpg\n'
            '10 20 30 40 15 25 0 35 26 1 -1 -1 -1 18 50 0 32 51 0 0.5\n'
            '90 5 30 20 ' + MISSING + '-1\n'  # crosses the right border: clipped to 100
            '-5 -6 10 10 ' + MISSING + '0.2\n'  # crosses the top-left corner: clipped to 0
            '# ev/b.png\n'
            '1 2 3 4 ' + MISSING + '0.1\n')
    root = make_split(tmp_path, 'train', {'ev/a.jpg': (60, 100), 'ev/b.png': (8, 9)}, text)
    roidb = retinaface('train', root, cfg=make_cfg()).gt_roidb()
    assert len(roidb) == 2
    a = roidb[0]
    assert a['image'].endswith('train/images/ev/a.jpg') and (a['height'], a['width']) == (60, 100)
    np.testing.assert_array_equal(a['boxes'], [[10, 20, 40, 60], [90, 5, 100, 25], [0, 0, 5, 4]])
    assert a['boxes'].dtype == np.float32 and a['landmarks'].dtype == np.float32
    # v = 0 (visible) -> 1.0, v = 1 (occluded) -> 0.0, missing stays -1.
    np.testing.assert_array_equal(a['landmarks'][0], [[15, 25, 1], [35, 26, 0], [-1, -1, -1], [18, 50, 1],
                                                      [32, 51, 1]])
    assert (a['landmarks'][1:] == -1).all()
    np.testing.assert_allclose(a['blur'], [0.5, 0.3, 0.2])
    assert a['gt_classes'].tolist() == [1, 1, 1] and a['flipped'] is False
    assert (roidb[1]['height'], roidb[1]['width']) == (8, 9)


def test_empty_and_small_boxes_and_faceless_images(tmp_path):
    text = ('# a.jpg\n'
            '10 10 0 5 ' + MISSING + '0\n'  # zero width
            '200 10 5 5 ' + MISSING + '0\n'  # entirely right of the image
            '10 10 4 30 ' + MISSING + '0\n'  # narrower than MIN_BOX_SIZE 5
            '20 20 6 6 ' + MISSING + '0\n'
            '# b.jpg\n'
            '10 10 0 0 ' + MISSING + '0\n'
            '# c.jpg\n')
    images = {'a.jpg': (50, 100), 'b.jpg': (50, 100), 'c.jpg': (50, 100)}
    root = make_split(tmp_path, 'train', images, text)
    imdb = retinaface('train', root, cfg=make_cfg(MIN_BOX_SIZE=5))
    roidb = imdb.gt_roidb()
    assert [r['image'][-5:] for r in roidb] == ['a.jpg']  # train drops images left without faces
    np.testing.assert_array_equal(roidb[0]['boxes'], [[20, 20, 26, 26]])
    assert imdb.num_images == 1
    with_small = retinaface('train', root, cfg=make_cfg(MIN_BOX_SIZE=0)).gt_roidb()
    assert len(with_small[0]['boxes']) == 2
    # val / test keep every image, and may list paths only.
    make_split(tmp_path, 'val', images, text)
    make_split(tmp_path, 'test', images, '# a.jpg\n# b.jpg\n# c.jpg\n')
    assert len(retinaface('val', root, cfg=make_cfg()).gt_roidb()) == 3
    test = retinaface('test', root, cfg=make_cfg()).gt_roidb()
    assert [len(r['boxes']) for r in test] == [0, 0, 0] and test[0]['landmarks'].shape == (0, 5, 3)


def test_flip_doubles_the_roidb(tmp_path):
    text = ('# a.jpg\n'
            '10 20 30 40 15 25 0 35 26 1 25 35 0 18 50 1 32 51 0 0.5\n'
            '60 5 30 20 ' + MISSING + '0.1\n')
    root = make_split(tmp_path, 'train', {'a.jpg': (60, 100)}, text)
    imdb = retinaface('train', root, cfg=make_cfg())
    roidb = imdb.gt_roidb()
    original = copy.deepcopy(roidb[0])
    roidb[0]['boxes_mask'] = np.array([[0, 0, 10, 10]], np.float32)
    out = imdb.append_flipped_images(roidb)
    assert out is roidb and len(roidb) == 2 and imdb.num_images == 2
    np.testing.assert_array_equal(roidb[0]['boxes'], original['boxes'])  # the original entry is untouched
    flipped = roidb[1]
    assert flipped['flipped'] is True and flipped['image'] == original['image']
    # x1' = W - x2 - 1, x2' = W - x1 - 1 with W = 100.
    np.testing.assert_array_equal(flipped['boxes'], [[59, 20, 89, 60], [9, 5, 39, 25]])
    np.testing.assert_array_equal(flipped['boxes_mask'], [[89, 0, 99, 10]])
    # Present points: x' = 99 - x, then order [1, 0, 2, 4, 3]; missing points stay (-1, -1, -1).
    expected = original['landmarks'][0].copy()
    expected[:, 0] = 99 - expected[:, 0]
    np.testing.assert_array_equal(flipped['landmarks'][0], expected[LANDMARK_FLIP_ORDER])
    np.testing.assert_array_equal(flipped['landmarks'][0, 0], [99 - 35, 26, 0])
    assert (flipped['landmarks'][1] == -1).all()
    np.testing.assert_array_equal(flipped['blur'], original['blur'])


def test_landmarks_follow_the_pixels_through_flip_and_crop(tmp_path):
    """Paint a distinct colour at each landmark; after flip + crop every landmark of the result
    sits on its colour, the flipped entry's eyes and mouth corners swapped."""
    colours = np.array([[0, 0, 255], [0, 255, 0], [255, 0, 0], [0, 255, 255], [255, 0, 255]], np.uint8)
    im = np.full((700, 900, 3), 40, np.uint8)
    points = np.array([[400, 300], [480, 300], [440, 340], [410, 380], [470, 380]], float)
    for (x, y), colour in zip(points, colours):
        cv2.circle(im, (int(x), int(y)), 9, colour.tolist(), -1)
    (tmp_path / 'train' / 'images').mkdir(parents=True)
    cv2.imwrite(str(tmp_path / 'train' / 'images' / 'a.png'), im)
    marks = ' '.join('%g %g 0' % (x, y) for x, y in points)
    (tmp_path / 'train' / 'label.txt').write_text('# a.png\n370 260 140 160 %s 0.1\n' % marks)
    cfg = make_cfg()
    cfg.COLOR_MODE = 0
    imdb = retinaface('train', str(tmp_path), cfg=cfg)
    roidb = imdb.append_flipped_images(imdb.gt_roidb())
    for entry in roidb:
        # Point k of a flipped entry is the mirror image of point LANDMARK_FLIP_ORDER[k].
        expected = colours[LANDMARK_FLIP_ORDER] if entry['flipped'] else colours
        for seed in range(3):
            ims, recs = get_crop_image1([entry], rng=np.random.default_rng(seed), cfg=cfg)
            crop = ims[0][0].transpose(1, 2, 0)[:, :, ::-1]  # back to BGR
            assert len(recs[0]['landmarks']) == 1
            for k, (x, y, v) in enumerate(recs[0]['landmarks'][0]):
                assert v == 1
                np.testing.assert_allclose(crop[int(round(y)), int(round(x))], expected[k], atol=2)


def test_exif_oriented_image_is_annotated_and_sized_upright(tmp_path):
    """A JPEG stored 60 x 20 (w x h) with EXIF Orientation 8 (rotate 90 degrees counter-clockwise)
    is 20 x 60 upright: the roidb size is the upright one, a box drawn in that frame is not
    clipped, and the crop sees the face's pixels where label.txt puts them."""
    stored = np.full((20, 60, 3), 30, np.uint8)
    stored[4:14, 44:56] = 250  # after the rotation: x 4..14, y 4..16
    (tmp_path / 'train' / 'images').mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(stored).save(str(tmp_path / 'train' / 'images' / 'r.jpg'), exif=exif.tobytes(), quality=95)
    (tmp_path / 'train' / 'label.txt').write_text('# r.jpg\n4 4 10 12 ' + MISSING + '0\n')
    cfg = make_cfg(PRE_SCALES=[1.0], COLOR_MODE=0, SCALES=[(20, 20)])
    (entry,) = retinaface('train', str(tmp_path), cfg=cfg).gt_roidb()
    assert (entry['width'], entry['height']) == (20, 60)
    np.testing.assert_array_equal(entry['boxes'], [[4, 4, 14, 16]])
    rng = np.random.default_rng(0)
    ims, recs = get_crop_image1([entry], rng=rng, cfg=cfg)
    x1, y1, x2, y2 = np.round(recs[0]['boxes'][0]).astype(int)
    face = ims[0][0, :, y1:y2, x1:x2]
    assert face.min() > 200


@pytest.mark.parametrize('text, message', [
    ('# a.jpg\n1 2 3\n', r'label\.txt:2: expected 4 or 20 numbers, got 3'),
    ('# a.jpg\n1 2 3 x\n', r"label\.txt:2: not a number: 'x'"),
    ('1 2 3 4\n', r'label\.txt:1: face line before'),
    ('# a.jpg\n1 2 3 4 -1 -1 0 ' + '1 1 0 ' * 4 + '0\n', r'label\.txt:2: a landmark is missing'),
    ('# a.jpg\n1 2 3 4 5 5 -1 ' + '1 1 0 ' * 4 + '0\n', r'label\.txt:2: a landmark is missing'),
    ('# a.jpg\n1 2 3 4\n# nope.jpg\n1 2 3 4\n', r'label\.txt:3: image .*nope\.jpg does not exist'),
    ('# a.jpg\n1 2 3 4\n# bad.jpg\n1 2 3 4\n', r'label\.txt:3: .*image .*bad\.jpg'),
])
def test_bad_input_names_file_and_line(tmp_path, text, message):
    root = make_split(tmp_path, 'train', {'a.jpg': (10, 10)}, text)
    (tmp_path / 'train' / 'images' / 'bad.jpg').write_bytes(b'this is not an image')
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        retinaface('train', root, cfg=make_cfg()).gt_roidb()


def test_missing_label_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match='label.txt'):
        retinaface('train', str(tmp_path), make_cfg())
