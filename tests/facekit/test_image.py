"""Image files as every command reads them (``facekit.image``): EXIF orientation, truncated JPEGs,
empty and undecodable files named, the image files of a folder."""
import io

import cv2
import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from facekit.image import _scan_jpeg, image_files, image_size, read_image
from support import asymmetric_image, oriented_file, random_image, require_shared, write_image


@pytest.mark.parametrize('suffix', ['jpg', 'png'])
@pytest.mark.parametrize('orientation', range(1, 9))
def test_exif_orientation_is_applied_as_cv2_imread_does(tmp_path, suffix, orientation):
    path = oriented_file(tmp_path / ('o.' + suffix), asymmetric_image(), orientation, quality=95)
    im = read_image(path)
    np.testing.assert_array_equal(im, cv2.imread(path))  # the original's reader at test time, exactly
    assert image_size(path) == (im.shape[1], im.shape[0])
    stored = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    upright = {1: stored, 2: stored[:, ::-1], 3: stored[::-1, ::-1], 4: stored[::-1],
               5: stored.transpose(1, 0, 2), 6: np.rot90(stored, -1), 7: np.rot90(stored, -1)[::-1],
               8: np.rot90(stored)}[orientation]
    np.testing.assert_array_equal(im, upright)


def test_truncated_jpeg_is_named_and_decoded_like_cv2_imread(tmp_path, caplog):
    whole = tmp_path / 'whole.jpg'
    write_image(whole, random_image(np.random.default_rng(6), 96, 128))
    data = whole.read_bytes()
    cut = tmp_path / 'cut.jpg'
    cut.write_bytes(data[:len(data) * 2 // 3])
    with caplog.at_level('WARNING', logger='facekit.image'):
        im = read_image(cut)
        read_image(whole)
    assert [r.getMessage() for r in caplog.records] == [
        '%s: truncated JPEG (no end-of-image marker); decoded as cv2.imread does, the missing part grey' % cut]
    np.testing.assert_array_equal(im, cv2.imread(str(cut)))
    assert (im[-8:] == 128).all()  # libjpeg's grey where the data ran out
    caplog.clear()
    with caplog.at_level('WARNING', logger='facekit.image'):
        read_image(cut)
    assert not caplog.records  # once per file, not once per epoch


def test_jpeg_structure_check_follows_segments_and_scans():
    """End of image is found through the segments (an EXIF thumbnail's own end marker inside APP1
    does not count) and through the entropy-coded data; data after the end marker is allowed."""
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 3
    Image.fromarray(asymmetric_image()).save(buffer, 'JPEG', exif=exif.tobytes() + b'\xff\xd9' * 4)
    data = buffer.getvalue()
    assert _scan_jpeg(data) == (3, True, True)
    assert _scan_jpeg(data + b'\x00' * 100) == (3, True, True)
    assert _scan_jpeg(data[:-2]) == (3, True, False)
    scan = data.index(b'\xff\xda')
    scan_data = scan + 2 + int.from_bytes(data[scan + 2:scan + 4], 'big')
    assert _scan_jpeg(data[:scan_data + 10])[1:] == (True, False)
    assert _scan_jpeg(data[:40])[1:] == (False, False)  # stops inside the EXIF segment


def test_photos_without_orientation_decode_as_cv2_imread():
    for name in ('t4', 't6', 'test01'):
        path = str(require_shared('assets/images/%s.jpg' % name))
        np.testing.assert_array_equal(read_image(path), cv2.imread(path))
        assert image_size(path) == cv2.imread(path).shape[1::-1]


def test_unreadable_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='image .*nothere.jpg does not exist'):
        read_image(tmp_path / 'nothere.jpg')
    (tmp_path / 'text.jpg').write_text('hello')
    with pytest.raises(ValueError, match='cannot decode image .*text.jpg'):
        read_image(tmp_path / 'text.jpg')


def test_size_is_upright_when_metadata_precedes_the_exif_data(tmp_path):
    """image_size reads the file's start; metadata longer than that before the EXIF data still counts."""
    png = tmp_path / 'meta.png'
    info = PngImagePlugin.PngInfo()
    info.add_text('comment', 'x' * 300000)  # PIL writes text chunks before eXIf
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(asymmetric_image()).save(str(png), pnginfo=info, exif=exif.tobytes())
    jpeg = tmp_path / 'meta.jpg'
    plain = oriented_file(tmp_path / 'plain.jpg', asymmetric_image(), 6, quality=95)
    comment = b'\xff\xfe' + (65535).to_bytes(2, 'big') + b'c' * 65533  # COM segments ahead of APP1
    data = open(plain, 'rb').read()
    jpeg.write_bytes(data[:2] + comment * 3 + data[2:])
    for path in (png, jpeg):
        im = read_image(path)
        assert im.shape == (40, 24, 3) and image_size(path) == (24, 40), path
        np.testing.assert_array_equal(im, cv2.imread(str(path)))


def test_an_empty_file_is_named(tmp_path):
    (tmp_path / 'empty.jpg').write_bytes(b'')
    with pytest.raises(ValueError, match='image .*empty.jpg is empty \\(0 bytes\\)'):
        read_image(tmp_path / 'empty.jpg')


@pytest.mark.parametrize('suffix', ['.jpg', '.png', '.bmp', '.tiff'])
def test_size_from_the_header_of_every_format(tmp_path, suffix):
    path = write_image(tmp_path / ('wide' + suffix), random_image(np.random.default_rng(1), 37, 53))
    assert image_size(path) == (53, 37)
    (tmp_path / ('bad' + suffix)).write_bytes(b'not an image at all')
    with pytest.raises(ValueError, match='image .*bad%s' % suffix):
        image_size(tmp_path / ('bad' + suffix))


def test_image_files_of_a_folder_by_extension_any_case_sorted(tmp_path):
    for name in ('b.JPG', 'a.png', 'c.jpeg', 'd.bmp', 'notes.txt', 'e.tiff'):
        (tmp_path / name).write_bytes(b'x')
    (tmp_path / 'folder.jpg').mkdir()
    assert image_files(tmp_path) == [str(tmp_path / n) for n in ('a.png', 'b.JPG', 'c.jpeg', 'd.bmp')]
