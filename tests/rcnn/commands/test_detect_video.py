"""detect.py --video (``rcnn.commands.detect``): every frame written at the input's size and rate, a JSON
line per frame with ``detect``'s faces on it, --every, --batch, --blur (videos and images), Ctrl-C,
and the checks before any work. The videos are made here from t4.jpg (``support.shifted_frames``)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from facekit.draw import face_region
from rcnn.commands import retinaface_detect
from rcnn.export import export_retinaface
from retinaface import RetinaFace
from detect_support import FakeRetinaFace, tree
from support import (REPO, VIDEO_FPS, VIDEO_SIZE, channel_variance, error_line, read_video, released_mnet,
                     require_shared, shifted_frames, write_video)

PX_TOL = 1e-4


def detect(argv):
    return retinaface_detect(argv, prog='detect.py')


@pytest.fixture(scope='module')
def prefix():
    return released_mnet()


@pytest.fixture(scope='module')
def detector(prefix):
    return RetinaFace(prefix, 0, ctx_id=-1)


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    """A 7-frame test video."""
    return write_video(tmp_path_factory.mktemp('video') / 'clip.mp4', shifted_frames(7))


def read_records(path):
    return [json.loads(line) for line in open(path, encoding='utf-8').read().splitlines()]


def assert_faces_equal(faces, det, landmarks):
    """JSON ``faces`` are (N, 5) ``det`` and (N, 5, 2) ``landmarks``: same count, within PX_TOL."""
    assert len(faces) == det.shape[0]
    if len(faces):
        np.testing.assert_allclose([face['box'] for face in faces], det[:, :4], rtol=0, atol=PX_TOL)
        np.testing.assert_allclose([face['score'] for face in faces], det[:, 4], rtol=0, atol=1e-6)
        np.testing.assert_allclose([face['landmarks'] for face in faces], landmarks, rtol=0, atol=PX_TOL)


def test_a_video_run_writes_every_frame_and_its_json_line(prefix, detector, clip, tmp_path, capsys):
    """--batch 3 on 7 frames: groups of 3, 3 and 1."""
    out, lines = tmp_path / 'out.mp4', tmp_path / 'faces.jsonl'
    assert detect(['--prefix', prefix, '--epoch', '0', '--video', clip, '--output', str(out), '--json', str(lines),
                   '--batch', '3']) == 0
    assert '%s: 7 frames -> %s holds frames 0..6, %s their 7 records' % (clip, out, lines) in capsys.readouterr().out
    written, fps = read_video(out)
    frames, _ = read_video(clip)
    assert len(written) == 7 and fps == VIDEO_FPS and written[0].shape == (VIDEO_SIZE[1], VIDEO_SIZE[0], 3)
    records = read_records(lines)
    assert [(r['frame'], r['time'], r['detected_on']) for r in records] == [(i, i / VIDEO_FPS, i) for i in range(7)]
    for frame, record in zip(frames, records):
        det, landmarks = detector.detect(frame, threshold=0.8)
        assert det.shape[0] > 10
        assert_faces_equal(record['faces'], det, landmarks)
    assert sorted(os.listdir(tmp_path)) == ['faces.jsonl', 'out.mp4']


def test_every_nth_frame_is_detected_and_its_faces_kept_until_the_next(prefix, detector, clip, tmp_path):
    """--every 3 --batch 2: frames 0 and 3 in one call, then 6; frames between keep the faces before them."""
    lines = tmp_path / 'faces.jsonl'
    assert detect(['--prefix', prefix, '--epoch', '0', '--video', clip, '--output', str(tmp_path / 'out.mp4'),
                   '--json', str(lines), '--every', '3', '--batch', '2']) == 0
    records = read_records(lines)
    assert [r['detected_on'] for r in records] == [0, 0, 0, 3, 3, 3, 6]
    frames, _ = read_video(clip)
    for record in records:
        assert record['faces'] == records[record['detected_on']]['faces']
        if record['frame'] == record['detected_on']:
            assert_faces_equal(record['faces'], *detector.detect(frames[record['frame']], threshold=0.8))
    assert len(read_video(tmp_path / 'out.mp4')[0]) == 7


def test_an_onnx_model_runs_a_video_and_a_static_export_its_frame_size(prefix, detector, clip, tmp_path):
    """A static 640 x 384 export takes --batch 4 as forwards of its one frame; the flip doubles them."""
    model = str(tmp_path / 'static.onnx')
    export_retinaface(prefix, 0, model, static_shape=(VIDEO_SIZE[1], VIDEO_SIZE[0]))
    lines = tmp_path / 'faces.jsonl'
    assert detect(['--onnx', model, '--video', clip, '--output', str(tmp_path / 'out.mp4'), '--json', str(lines),
                   '--batch', '4', '--flip', '--thresh', '0.5']) == 0
    frames, _ = read_video(clip)
    for frame, record in zip(frames, read_records(lines)):
        det, landmarks = detector.detect(frame, threshold=0.5, do_flip=True)
        assert len(record['faces']) == det.shape[0] > 10
        # onnxruntime's forward agrees with MXNet's to 1e-5 + 1e-3 of each output's scale.
        np.testing.assert_allclose([face['box'] for face in record['faces']], det[:, :4], rtol=0, atol=0.05)


def test_a_static_export_refuses_another_frame_size(prefix, clip, tmp_path, capsys):
    model = str(tmp_path / 'static.onnx')
    export_retinaface(prefix, 0, model, static_shape=(360, 640))
    assert detect(['--onnx', model, '--video', clip, '--output', str(tmp_path / 'out.mp4')]) == 2
    assert ('--scales: %s: scale 1 turns the 640x384 image into a 640x384 network input, but %s takes only 640x360'
            % (clip, model)) in error_line(capsys.readouterr().err)
    assert not (tmp_path / 'out.mp4').exists()


def box_mask(faces, height, width, margin=0):
    """(H, W) mask of the pixels inside some face's region grown by ``margin`` px."""
    mask = np.zeros((height, width), bool)
    for face in faces:
        x1, y1, x2, y2 = face['box']
        mask[face_region([x1 - margin, y1 - margin, x2 + margin, y2 + margin], height, width)] = True
    return mask


def test_blur_on_an_image_flattens_every_face_keeps_the_rest_and_the_json(prefix, tmp_path):
    """A PNG, so the comparison is exact: pixels outside every box unchanged, and the JSON is the
    run's without --blur."""
    photo = tmp_path / 'photos' / 't4.png'
    photo.parent.mkdir()
    original = cv2.imread(str(require_shared('assets/images/t4.jpg')))
    cv2.imwrite(str(photo), original)
    for name, extra in (('plain', []), ('blurred', ['--blur'])):
        assert detect(['--prefix', prefix, '--epoch', '0', '--image', str(photo), '--output', str(tmp_path / name),
                       '--json', str(tmp_path / (name + '.json'))] + extra) == 0
    plain = json.loads((tmp_path / 'plain.json').read_text())['images'][0]
    blurred = json.loads((tmp_path / 'blurred.json').read_text())['images'][0]
    assert blurred['faces'] == plain['faces'] and len(plain['faces']) > 10
    out = cv2.imread(str(tmp_path / 'blurred' / 't4.png'))
    for face in blurred['faces']:
        region = face_region(face['box'], *original.shape[:2])
        assert channel_variance(out[region]) < 0.1 * channel_variance(original[region])
    outside = ~box_mask(blurred['faces'], *original.shape[:2])
    np.testing.assert_array_equal(out[outside], original[outside])  # nothing drawn: no box, score or landmark


def test_blur_on_a_video_flattens_every_face(prefix, clip, tmp_path):
    """MP4 is lossy: inside the boxes the variance falls below a tenth of the input frame's, and away
    from them the output is the input frame up to the codec's error."""
    lines = tmp_path / 'faces.jsonl'
    assert detect(['--prefix', prefix, '--epoch', '0', '--video', clip, '--output', str(tmp_path / 'out.mp4'),
                   '--json', str(lines), '--blur']) == 0
    frames, _ = read_video(clip)
    written, _ = read_video(tmp_path / 'out.mp4')
    for frame, out, record in zip(frames, written, read_records(lines)):
        assert len(record['faces']) > 10
        for face in record['faces']:
            region = face_region(face['box'], *frame.shape[:2])
            assert channel_variance(out[region]) < 0.1 * channel_variance(frame[region])
        away = ~box_mask(record['faces'], *frame.shape[:2], margin=8)
        assert np.abs(out[away].astype(int) - frame[away]).mean() < 3


@pytest.fixture(scope='module')
def no_mxnet(tmp_path_factory):
    """The environment of a child process in which ``import mxnet`` fails."""
    blocker = tmp_path_factory.mktemp('blocker') / 'mxnet'
    blocker.mkdir()
    (blocker / '__init__.py').write_text('raise ImportError("mxnet is blocked")\n')
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker.parent), os.environ.get('PYTHONPATH', '')]))


def sigint_default():
    """In the child before exec: SIGINT as a terminal delivers it, even where pytest runs with it
    ignored (nohup, a background job), which Python would otherwise keep."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize('signum, status, last', [(signal.SIGINT, 130, 'detect.py: interrupted (SIGINT)'),
                                                  (signal.SIGTERM, 143, 'detect.py: terminated (SIGTERM)')])
def test_ctrl_c_keeps_a_playable_video_and_the_json_lines_of_its_frames(prefix, tmp_path, no_mxnet, signum, status,
                                                                        last):
    """SIGINT (Ctrl-C) or SIGTERM to ``detect.py --onnx --video`` (MXNet blocked) once a few records are
    on disk: exit 130 (143), the video of the frames done under --output, a JSON line for each, the
    warning saying how far it got; no temporary file left."""
    model = str(tmp_path / 'mnet.25.onnx')
    export_retinaface(prefix, 0, model)
    video = write_video(tmp_path / 'long.mp4', shifted_frames(300, step=1))
    out, lines = tmp_path / 'out' / 'out.mp4', tmp_path / 'out' / 'faces.jsonl'
    child = subprocess.Popen([sys.executable, 'detect.py', '--onnx', model, '--video', video, '--output', str(out),
                              '--json', str(lines)], cwd=REPO, env=no_mxnet, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            partial = [p for p in (tmp_path / 'out').glob('.faces.*.tmp.jsonl')] if out.parent.exists() else []
            if partial and partial[0].read_text().count('\n') >= 3:
                break
            time.sleep(0.05)
        assert child.poll() is None, child.communicate()
        child.send_signal(signum)
        _, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == status, stderr
    records = read_records(lines)
    frames, fps = read_video(out)
    assert 3 <= len(frames) == len(records) < 300 and fps == VIDEO_FPS
    assert [r['frame'] for r in records] == list(range(len(frames)))
    assert ('interrupted at frame %d of 300: %s holds frames 0..%d, %s their %d records'
            % (len(frames), out, len(frames) - 1, lines, len(frames))) in stderr
    assert error_line(stderr) == last
    assert sorted(os.listdir(out.parent)) == ['faces.jsonl', 'out.mp4']


# ---------------------------------------------------------------- checks before any work (a stand-in detector)

@pytest.mark.parametrize('content', [b'', b'\x00not a video' * 100])
def test_an_unreadable_video_is_one_line_naming_it_before_any_work(content, fake, tmp_path, capsys):
    bad = tmp_path / 'bad.mp4'
    bad.write_bytes(content)
    assert detect(['--prefix', fake, '--epoch', '0', '--video', str(bad), '--output', str(tmp_path / 'out.mp4')]) == 1
    assert error_line(capsys.readouterr().err) == ('detect.py: error: cannot read video %s (empty, truncated or not '
                                                   'a video OpenCV can decode)' % bad)
    assert not FakeRetinaFace.instances and not (tmp_path / 'out.mp4').exists()


def test_the_launcher_says_it_in_one_line(tmp_path):
    """FFmpeg's own message is silenced: stderr holds the command's line only."""
    bad = tmp_path / 'bad.mp4'
    bad.write_bytes(b'\x00not a video' * 100)
    result = subprocess.run([sys.executable, 'detect.py', '--prefix', released_mnet(), '--epoch', '0', '--video',
                             str(bad), '--output', str(tmp_path / 'out.mp4')], cwd=REPO, capture_output=True,
                            text=True, env={k: v for k, v in os.environ.items() if k != 'OPENCV_FFMPEG_LOGLEVEL'})
    assert result.returncode == 1
    assert result.stderr.splitlines() == ['detect.py: error: cannot read video %s (empty, truncated or not a video '
                                          'OpenCV can decode)' % bad]


def test_an_output_over_an_input_is_refused_whatever_the_flags(fake, clip, tmp_path, capsys):
    """--output or --json on the video (its path, a link to it, a hard link), --json on the model's
    weights or on --output: refused before the model is loaded, with --overwrite too; nothing changes."""
    video = tmp_path / 'in.mp4'
    shutil.copy(clip, video)
    (tmp_path / 'link.mp4').symlink_to(video)
    os.link(video, tmp_path / 'hard.mp4')
    cases = [
        (['--output', str(video)], '--output %s would replace the input %s' % (video, video)),
        (['--output', str(tmp_path / 'link.mp4')], '--output %s would replace the input %s'
         % (tmp_path / 'link.mp4', video)),
        (['--output', str(tmp_path / 'hard.mp4')], '--output %s would replace the input %s'
         % (tmp_path / 'hard.mp4', video)),
        (['--output', str(tmp_path / 'out.mp4'), '--json', str(video)], '--json %s would replace the input' % video),
        (['--output', str(tmp_path / 'out.mp4'), '--json', fake + '-0000.params'],
         '--json %s-0000.params would replace the input' % fake),
        (['--output', str(tmp_path / 'out.mp4'), '--json', str(tmp_path / 'out.mp4')],
         '--json %s is the --output video' % (tmp_path / 'out.mp4')),
    ]
    before = tree(tmp_path)
    for args, message in cases:
        for overwrite in ([], ['--overwrite']):
            assert detect(['--prefix', fake, '--epoch', '0', '--video', str(video)] + args + overwrite) == 2
            assert message in error_line(capsys.readouterr().err)
    assert tree(tmp_path) == before and not FakeRetinaFace.instances


def test_existing_outputs_are_replaced_only_with_overwrite(prefix, clip, tmp_path, capsys):
    out, lines = tmp_path / 'out.mp4', tmp_path / 'faces.jsonl'
    out.write_bytes(b'my video')
    lines.write_text('my notes')
    args = ['--prefix', prefix, '--epoch', '0', '--video', clip, '--output', str(out), '--json', str(lines)]
    assert detect(args) == 2
    assert '--output: %s exists (pass --overwrite to replace it)' % out in error_line(capsys.readouterr().err)
    out.unlink()
    assert detect(args) == 2
    assert '--json: %s exists (pass --overwrite to replace it)' % lines in error_line(capsys.readouterr().err)
    assert lines.read_text() == 'my notes' and not out.exists()
    assert detect(args + ['--overwrite', '--every', '7']) == 0
    assert len(read_records(lines)) == 7 and len(read_video(out)[0]) == 7


@pytest.mark.parametrize('extra, message', [
    (['--every', '2'], '--every goes with --video'),
    (['--batch', '4'], '--batch goes with --video'),
    (['--video', '{tmp}/clip.mp4'], 'argument --video: not allowed with argument --image'),
])
def test_video_options_go_with_video(fake, clip, tmp_path, capsys, extra, message):
    shutil.copy(clip, tmp_path / 'clip.mp4')
    args = ['--prefix', fake, '--epoch', '0', '--image', str(require_shared('assets/images/t4.jpg')),
            '--output', str(tmp_path / 'out')]
    assert detect(args + [a.format(tmp=tmp_path) for a in extra]) == 2
    assert message.format(tmp=tmp_path) in error_line(capsys.readouterr().err)
    assert not FakeRetinaFace.instances and not (tmp_path / 'out').exists()


@pytest.mark.parametrize('extra, message', [
    (['--every', '0'], 'argument --every: must be >= 1'),
    (['--batch', '0'], 'argument --batch: must be >= 1'),
    (['--batch', 'all'], 'argument --batch: expected an integer'),
    (['--output', '{tmp}/out.avi'], '--output {tmp}/out.avi: with --video the output is an MP4 video'),
    (['--video', '{tmp}/none.mp4'], '--video: no such file: {tmp}/none.mp4'),
    (['--output', '{tmp}'], '--output {tmp}: with --video the output is an MP4 video'),
])
def test_video_arguments_are_checked_before_any_work(fake, clip, tmp_path, capsys, extra, message):
    args = ['--prefix', fake, '--epoch', '0', '--video', clip, '--output', str(tmp_path / 'out.mp4')]
    assert detect(args + [a.format(tmp=tmp_path) for a in extra]) == 2
    assert message.format(tmp=tmp_path) in error_line(capsys.readouterr().err)
    assert not FakeRetinaFace.instances and not (tmp_path / 'out.mp4').exists()
