"""label.txt reader/writer: round trip, paths-only files and malformed lines."""
import numpy as np
import pytest

from facekit.labels import LabelRecord, read_label_file, write_label_file

SAMPLE = """\
# 0--Parade/0_Parade_marchingband_1_849.jpg
449 330 122 149 488.906 373.643 0.0 542.089 376.442 0.0 515.031 412.83 0.0 485.174 425.893 0.0 538.357 431.491 0.0 0.82

# 0--Parade/0_Parade_Parade_0_904.jpg
361 98 263 339 424.143 251.656 0.0 547.134 232.571 1.0 494.121 325.875 0.0 453.83 368.286 0.0 561.978 342.839 0.0 0.89
78 221 7 8 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 0.2
# 1--Handshaking/1_Handshaking_1.jpg
# 2--Demo/2_Demo_3.jpg
10 20 0 5
"""


def _write(tmp_path, text, name='label.txt'):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parses_fields_and_line_numbers(tmp_path):
    records = read_label_file(_write(tmp_path, SAMPLE))
    assert [r.path for r in records] == ['0--Parade/0_Parade_marchingband_1_849.jpg',
                                         '0--Parade/0_Parade_Parade_0_904.jpg',
                                         '1--Handshaking/1_Handshaking_1.jpg', '2--Demo/2_Demo_3.jpg']
    assert [r.line for r in records] == [1, 4, 7, 8]
    first, second, empty, boxonly = records
    assert first.boxes.dtype == np.float32 and first.boxes.shape == (1, 4)
    np.testing.assert_array_equal(first.boxes, [[449, 330, 122, 149]])
    assert first.landmarks.shape == (1, 5, 3)
    np.testing.assert_allclose(first.landmarks[0, 1], [542.089, 376.442, 0.0], rtol=1e-7)
    np.testing.assert_allclose(first.blur, [0.82], rtol=1e-7)
    np.testing.assert_array_equal(second.face_lines, [5, 6])
    assert second.landmarks[0, 1, 2] == 1.0  # raw visibility, not converted
    assert (second.landmarks[1] == -1).all()
    assert len(empty) == 0 and empty.boxes.shape == (0, 4) and empty.landmarks.shape == (0, 5, 3)
    # 4-number line: landmarks and blur missing (-1); zero width kept for the loader to drop.
    np.testing.assert_array_equal(boxonly.boxes, [[10, 20, 0, 5]])
    assert (boxonly.landmarks == -1).all() and (boxonly.blur == -1).all()


def test_paths_only_file(tmp_path):
    records = read_label_file(_write(tmp_path, '# a/a_1.jpg\n# a/a_2.jpg\n\n# b/b_1.jpg\n'))
    assert [(r.path, r.line, len(r)) for r in records] == [('a/a_1.jpg', 1, 0), ('a/a_2.jpg', 2, 0),
                                                           ('b/b_1.jpg', 4, 0)]


def test_empty_file(tmp_path):
    assert read_label_file(_write(tmp_path, '')) == []


def _assert_same(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.path == rb.path
        for field in ('boxes', 'landmarks', 'blur'):
            np.testing.assert_array_equal(getattr(ra, field), getattr(rb, field))


def test_round_trip_is_exact(tmp_path):
    records = read_label_file(_write(tmp_path, SAMPLE))
    out = tmp_path / 'out' / 'label.txt'
    write_label_file(out, records)
    again = read_label_file(out)
    _assert_same(records, again)
    text = out.read_text()
    # Faces without landmarks/blur keep the short form; numbers are written shortest.
    assert '\n10 20 0 5\n' in text
    assert '449 330 122 149 488.906 373.643 0 ' in text
    write_label_file(tmp_path / 'again.txt', again)
    assert (tmp_path / 'again.txt').read_text() == text


def test_round_trip_random_float32(tmp_path):
    rng = np.random.default_rng(0)
    records = []
    for i in range(20):
        n = int(rng.integers(0, 6))
        lm = rng.uniform(-5, 2000, (n, 5, 3)).astype(np.float32)
        lm[:, :, 2] = rng.integers(-1, 2, (n, 5))
        records.append(LabelRecord(path='e/img_%d.jpg' % i,
                                   boxes=rng.uniform(0, 1000, (n, 4)).astype(np.float32),
                                   landmarks=lm, blur=rng.uniform(0, 1, n).astype(np.float32)))
    write_label_file(tmp_path / 'label.txt', records)
    _assert_same(records, read_label_file(tmp_path / 'label.txt'))


@pytest.mark.parametrize('text, line, reason', [
    ('1 2 3 4\n# a.jpg\n', 1, 'before the first'),
    ('# a.jpg\n1 2 3\n', 2, 'expected 4 or 20 numbers, got 3'),
    ('# a.jpg\n1 2 3 4 5\n', 2, 'got 5'),
    ('# a.jpg\n1 2 3 4\n1 2 x 4\n', 3, "not a number: 'x'"),
    ('# a.jpg\n1 2 3 4\n\n1 2 -3 4\n', 4, 'negative box width or height'),
    ('# a.jpg\n1 2 3 nan\n', 2, 'non-finite'),
    ('# a.jpg\n1 2 3 4' + ' 5 5 0' * 4 + ' 5 5 2 0.5\n', 2, 'visibility'),
    ('# a.jpg\n#\n', 2, 'without an image path'),
])
def test_malformed_lines_name_file_and_line(tmp_path, text, line, reason):
    path = _write(tmp_path, text, 'bad_label.txt')
    with pytest.raises(ValueError) as info:
        read_label_file(path)
    message = str(info.value)
    assert message.startswith('%s:%d: ' % (path, line)), message
    assert reason in message


def test_boxes_outside_image_are_not_rejected(tmp_path):
    # Clipping and empty-box removal are the loader's job (rcnn.dataset.retinaface).
    records = read_label_file(_write(tmp_path, '# a.jpg\n-5 -7 3000 2 ' + '-1 ' * 15 + '-1\n'))
    np.testing.assert_array_equal(records[0].boxes, [[-5, -7, 3000, 2]])


def test_writer_rejects_bad_path_and_keeps_old_file(tmp_path):
    out = _write(tmp_path, '# old.jpg\n')
    with pytest.raises(ValueError, match='invalid image path'):
        write_label_file(out, [LabelRecord(path='')])
    assert out.read_text() == '# old.jpg\n'


def test_a_byte_order_mark_is_not_part_of_the_first_line(tmp_path):
    path = tmp_path / 'label.txt'
    path.write_bytes(b'\xef\xbb\xbf# 0--Parade/a.jpg\n1 2 3 4\n')
    (record,) = read_label_file(path)
    assert record.path == '0--Parade/a.jpg' and record.boxes.tolist() == [[1, 2, 3, 4]]


def test_text_that_is_not_utf8_names_the_file_and_line(tmp_path):
    path = tmp_path / 'label.txt'
    path.write_bytes('# 0--Parade/a.jpg\n1 2 3 4\n# 0--Parade/caf\xe9.jpg\n'.encode('latin-1'))
    with pytest.raises(ValueError, match=r'^%s:3: not UTF-8 text \(byte 0xe9\); save the file as UTF-8$' % path):
        read_label_file(path)
