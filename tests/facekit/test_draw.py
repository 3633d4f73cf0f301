"""facekit.draw: boxes drawn on a copy, and faces blurred beyond recognition with every other pixel kept."""
import cv2
import numpy as np
import pytest

from facekit.draw import blur_faces, draw_detections, face_region
from support import channel_variance, require_shared

GOLDEN = 'golden/retinaface_mnet25_single_scale.npz'


def photo():
    return cv2.imread(str(require_shared('assets/images/t4.jpg')))


def golden_faces(threshold=0.5):
    """The original detector's faces on t4.jpg (N, 5) at score >= ``threshold``."""
    det = np.load(require_shared(GOLDEN))['t4_single_det']
    return det[det[:, 4] >= threshold]


def outside(faces, height, width):
    """(H, W) mask of the pixels outside every face's region."""
    mask = np.ones((height, width), bool)
    for box in faces:
        mask[face_region(box, height, width)] = False
    return mask


def test_blur_flattens_every_face_and_leaves_the_rest_unchanged():
    img = photo()
    faces = golden_faces()
    assert len(faces) > 15
    blurred = blur_faces(img, faces)
    assert blurred.shape == img.shape and blurred.dtype == img.dtype
    regions = [face_region(box, *img.shape[:2]) for box in faces]
    ratios = [channel_variance(blurred[region]) / channel_variance(img[region]) for region in regions]
    assert max(ratios) < 0.1, ratios
    mask = outside(faces, *img.shape[:2])
    np.testing.assert_array_equal(blurred[mask], img[mask])
    assert not np.array_equal(blurred, img) and np.array_equal(img, photo())  # a copy; the input untouched


def test_face_region_covers_the_box_and_is_clipped():
    # The +1 convention: a box 10.2..20.5 covers columns 10..21 (floor, ceil inclusive).
    assert face_region([10.2, 5.0, 20.5, 8.9], 100, 100) == (slice(5, 10), slice(10, 22))
    assert face_region([-7.5, -3, 30, 200], 50, 40) == (slice(0, 50), slice(0, 31))
    for box in ([60, 10, 80, 20], [-20, -20, -5, -5]):  # outside the image: empty
        rows, columns = face_region(box, 50, 40)
        assert np.zeros((50, 40))[rows, columns].size == 0


def test_blur_of_boxes_partly_or_wholly_outside_the_image():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    faces = np.array([[-15.0, 40.0, 20.0, 75.0, 0.9],    # over the bottom-left corner
                      [100.0, 10.0, 130.0, 30.0, 0.9],   # right of the image
                      [30.0, 5.0, 50.0, 25.0, 0.8],      # inside, overlapped by the next
                      [45.0, 20.0, 60.0, 35.0, 0.7]])
    blurred = blur_faces(img, faces)
    mask = outside(faces, 60, 80)
    np.testing.assert_array_equal(blurred[mask], img[mask])
    for box in faces[[0, 2, 3]]:
        region = face_region(box, 60, 80)
        assert channel_variance(blurred[region]) < 0.1 * channel_variance(img[region])


def test_blur_of_no_face_is_a_copy_and_of_a_grey_image_keeps_its_shape():
    img = photo()
    for none in (np.zeros((0, 5)), []):
        copy = blur_faces(img, none)
        assert copy is not img and np.array_equal(copy, img)
    grey = img[:, :, 1].copy()
    out = blur_faces(grey, golden_faces()[:3])
    assert out.shape == grey.shape and not np.array_equal(out, grey)


@pytest.mark.parametrize('faces', [np.zeros((3, 3)), np.zeros(5), [[0, 0, float('nan'), 10]]])
def test_blur_refuses_what_is_not_boxes(faces):
    with pytest.raises(ValueError, match=r'blur_faces expects \(N, 4\+\) finite boxes'):
        blur_faces(np.zeros((10, 10, 3), np.uint8), faces)


def test_draw_detections_draws_on_a_copy():
    img = photo()
    faces = golden_faces()[:2]
    drawn = draw_detections(img, faces, np.full((2, 5, 2), 50.0))
    assert np.abs(drawn.astype(int) - img).max() > 100 and np.array_equal(img, photo())
