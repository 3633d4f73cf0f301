"""facekit.video: frames read with their index and time; the MP4 and JSON Lines writers keep a temporary
name until closed, whatever ends the run; signals held while a frame and its record are written."""
import json
import os
import signal

import numpy as np
import pytest

from facekit import video as video_module
from facekit.video import JsonLinesWriter, VideoReader, VideoWriter, quiet_ffmpeg, signals_deferred
from support import VIDEO_FPS, VIDEO_SIZE, read_video, shifted_frames, write_video


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    """A 6-frame test video."""
    return write_video(tmp_path_factory.mktemp('video') / 'clip.mp4', shifted_frames(6))


def temporaries(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith('.'))


def test_reader_gives_every_frame_with_its_index_and_time(clip):
    with VideoReader(clip) as video:
        assert (video.width, video.height) == VIDEO_SIZE
        assert video.fps == VIDEO_FPS and video.frame_count == 6
        frames = list(video)
    decoded, _ = read_video(clip)
    assert [frame.index for frame in frames] == list(range(6))
    assert [frame.time for frame in frames] == [index / VIDEO_FPS for index in range(6)]
    for frame, expected in zip(frames, decoded):
        np.testing.assert_array_equal(frame.image, expected)


def test_reader_reads_once(clip):
    video = VideoReader(clip)
    list(video)
    with pytest.raises(ValueError, match='its frames were read already'):
        list(video)
    video.close()


def test_a_video_that_ends_early_is_read_to_its_end_with_a_warning(clip, caplog):
    video = VideoReader(clip)
    video.frame_count = 9  # as a container announcing more frames than it holds
    with caplog.at_level('WARNING'):
        assert len(list(video)) == 6
    assert 'video %s ended after 6 of the 9 frames it announces' % clip in caplog.text


@pytest.mark.parametrize('content, message', [
    (b'', 'cannot read video {path}'),
    (b'not a video at all' * 50, 'cannot read video {path}'),
    ('truncated', 'cannot read video {path}'),
    ('frames zeroed', 'video {path} has no frame OpenCV can decode'),
])
def test_an_unreadable_video_is_named_on_opening(content, message, clip, tmp_path):
    path = tmp_path / 'bad.mp4'
    path.write_bytes(damaged(open(clip, 'rb').read(), content) if isinstance(content, str) else content)
    with pytest.raises(ValueError, match=message.format(path=path)):
        VideoReader(path)
    with pytest.raises(FileNotFoundError, match='video %s does not exist' % (tmp_path / 'none.mp4')):
        VideoReader(tmp_path / 'none.mp4')


def damaged(data, how):
    """The bytes of an MP4 written by OpenCV (its index, moov, last) cut short, or with the
    frames' data (mdat) zeroed and the index kept."""
    if how == 'truncated':
        return data[:2000]
    start, end = data.find(b'mdat') + 4, data.find(b'moov') - 4
    return data[:start] + bytes(end - start) + data[end:]


def test_writer_renames_on_close(tmp_path):
    path = tmp_path / 'out.mp4'
    frames = shifted_frames(4)
    with VideoWriter(path, 12.5, VIDEO_SIZE) as writer:
        for frame in frames:
            writer.write(frame)
        # Until closed, the frames go to a hidden temporary file beside the output.
        assert not path.exists() and len(temporaries(tmp_path)) == 1
        assert temporaries(tmp_path)[0].endswith('.tmp.mp4')
    assert writer.count == 4 and not temporaries(tmp_path)
    decoded, fps = read_video(path)
    assert len(decoded) == 4 and fps == 12.5 and decoded[0].shape == (VIDEO_SIZE[1], VIDEO_SIZE[0], 3)


def test_an_interrupted_writer_keeps_a_playable_video_and_its_lines(tmp_path):
    """KeyboardInterrupt in the block: both files are closed and get their names."""
    frames = shifted_frames(3)
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(tmp_path / 'out.mp4', VIDEO_FPS, VIDEO_SIZE) as video, \
                JsonLinesWriter(tmp_path / 'faces.jsonl') as lines:
            for index, frame in enumerate(frames):
                video.write(frame)
                lines.write({'frame': index})
            raise KeyboardInterrupt
    assert len(read_video(tmp_path / 'out.mp4')[0]) == 3
    assert [json.loads(line) for line in (tmp_path / 'faces.jsonl').read_text().splitlines()] == \
        [{'frame': 0}, {'frame': 1}, {'frame': 2}]
    assert not temporaries(tmp_path)


def test_writers_of_nothing_leave_no_file(tmp_path):
    with VideoWriter(tmp_path / 'out.mp4', VIDEO_FPS, VIDEO_SIZE), JsonLinesWriter(tmp_path / 'faces.jsonl'):
        pass
    assert os.listdir(tmp_path) == []


def test_writer_refuses_a_frame_of_another_size(tmp_path):
    with VideoWriter(tmp_path / 'out.mp4', VIDEO_FPS, VIDEO_SIZE) as writer:
        with pytest.raises(ValueError, match=r'takes 640x384 frames, got an image of shape \(360, 640, 3\)'):
            writer.write(np.zeros((360, 640, 3), np.uint8))
        assert writer.count == 0


def test_writer_that_cannot_write_is_an_error(tmp_path):
    with pytest.raises(OSError, match='cannot write video .*out.mp4'):
        VideoWriter(tmp_path / 'out.mp4', VIDEO_FPS, (0, 0))
    assert os.listdir(tmp_path) == []


def test_json_lines_are_on_disk_as_written(tmp_path):
    with JsonLinesWriter(tmp_path / 'faces.jsonl') as lines:
        lines.write({'frame': 0, 'faces': []})
        lines.write({'frame': 1, 'faces': [{'box': [1.5, 2, 3, 4]}]})
        # A reader of the temporary file (or a killed run) sees every record written, each a full line.
        [name] = temporaries(tmp_path)
        assert (tmp_path / name).read_text() == '{"frame": 0, "faces": []}\n' \
                                                '{"frame": 1, "faces": [{"box": [1.5, 2, 3, 4]}]}\n'
    assert (tmp_path / 'faces.jsonl').read_text().count('\n') == 2 and lines.count == 2


@pytest.fixture
def sigint(request):
    """SIGINT handled by ``request.param`` for the test (pytest may run with it ignored, as under nohup)."""
    previous = signal.signal(signal.SIGINT, request.param)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize('sigint', [signal.default_int_handler], indirect=True)
def test_signals_wait_for_the_end_of_the_block(sigint):
    done = []
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            done.append('the rest of the block ran')
    assert done == ['the rest of the block ran']
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with signals_deferred():  # nothing caught, nothing raised
        done.append('again')
    assert done[-1] == 'again'


@pytest.mark.parametrize('sigint', [signal.SIG_IGN], indirect=True)
def test_an_ignored_signal_stays_ignored(sigint):
    with signals_deferred():
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_quiet_ffmpeg_keeps_the_users_setting(monkeypatch):
    monkeypatch.delenv('OPENCV_FFMPEG_LOGLEVEL', raising=False)
    quiet_ffmpeg()
    assert os.environ['OPENCV_FFMPEG_LOGLEVEL'] == str(video_module._AV_LOG_FATAL)
    monkeypatch.setenv('OPENCV_FFMPEG_LOGLEVEL', '32')
    quiet_ffmpeg()
    assert os.environ['OPENCV_FFMPEG_LOGLEVEL'] == '32'
