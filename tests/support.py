"""What the tests share: where the repository and ../shared live, and how missing assets are reported.

Tests that need an asset from ../shared (or $RETINAFACE_SHARED) skip with a reason when it is
absent, and fail instead when REQUIRE_SHARED_ASSETS=1 (CI sets it).
"""
import os
import pathlib

import cv2
import numpy as np
import pytest
import scipy.io as sio
from PIL import Image

from facekit.files import file_digest

REPO = pathlib.Path(__file__).resolve().parents[1]


def make_cfg(network='mnet', **settings):
    """``get_config(network, 'retinaface')`` with settings overridden (names of TRAIN
    settings go to ``cfg.TRAIN``, the others to the top level)."""
    from rcnn.config import get_config
    cfg, _ = get_config(network, 'retinaface')
    for key, value in settings.items():
        (cfg.TRAIN if key in cfg.TRAIN else cfg)[key] = value
    return cfg


def shared_root():
    return pathlib.Path(os.environ.get('RETINAFACE_SHARED', REPO.parent / 'shared'))


def require_shared(relpath):
    """Return the path of a ../shared asset, or skip (fail under REQUIRE_SHARED_ASSETS=1)."""
    path = shared_root() / relpath
    if not path.exists():
        message = 'shared asset %s is absent (set RETINAFACE_SHARED to the shared/ folder)' % path
        if os.environ.get('REQUIRE_SHARED_ASSETS') == '1':
            pytest.fail(message)
        pytest.skip(message)
    return path


def released_mnet():
    """The prefix of the released mnet.25 model in ../shared (or skip)."""
    return str(require_shared('assets/models/retinaface-mnet025/mnet.25-symbol.json')).replace('-symbol.json', '')


def error_line(stderr):
    """The last line of a command's stderr: its one-line error."""
    lines = stderr.strip().splitlines()
    return lines[-1] if lines else ''


def folder_digests(folder):
    """{name: SHA-256} of the files in ``folder``, the training runs' lock files (.PREFIX.lock) aside:
    what a refused command must leave as it was."""
    return {name: file_digest(os.path.join(folder, name)) for name in sorted(os.listdir(folder))
            if not name.endswith('.lock')}


def write_image(path, im):
    assert cv2.imwrite(str(path), im)
    return str(path)


def random_image(rng, height, width):
    """Smooth random colours (so resizing is meaningful) as uint8 BGR."""
    small = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3)).astype(np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def oriented_file(path, pixels, orientation, **save):
    """Write BGR ``pixels`` with PIL, carrying EXIF Orientation ``orientation`` (JPEG or PNG by suffix)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels[:, :, ::-1]).save(str(path), exif=exif.tobytes(), **save)
    return str(path)


def asymmetric_image():
    """40 x 24 BGR with a white block in the top-left corner and a red right edge."""
    im = np.full((24, 40, 3), 60, np.uint8)
    im[:6, :10] = 255
    im[:, 32:] = (0, 0, 255)
    return im


def assert_same_faces(det, landmarks, ref_det, ref_landmarks, px=0.05, score=1e-3):
    """Same number of faces; each reference face has one within ``px`` (box, landmarks) and ``score``."""
    assert det.shape == ref_det.shape
    used = set()
    for i, ref in enumerate(ref_det):
        distance = np.abs(det[:, :4] - ref[:4]).max(axis=1)
        j = int(np.argmin(distance))
        assert distance[j] <= px and j not in used, (i, ref, det[j])
        used.add(j)
        assert abs(det[j, 4] - ref[4]) <= score
        if ref_landmarks is not None:
            assert np.abs(landmarks[j] - ref_landmarks[i]).max() <= px


def _cells(items):
    """(n, 1) object array: the layout loadmat gives for a Matlab cell column."""
    cells = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        cells[i, 0] = item
    return cells


def write_ground_truth(gt_dir, events, keep):
    """Write wider_face_val.mat and wider_<setting>_val.mat in the official layout.

    Args:
        events: list of (event, [(name, boxes (G, 4) x y w h)]).
        keep: setting -> {(event, name): 1-based indices of kept faces}; absent = none.
    """
    os.makedirs(gt_dir, exist_ok=True)
    common = {
        'event_list': _cells([event for event, _ in events]),
        'file_list': _cells([_cells([name for name, _ in images]) for _, images in events]),
        'face_bbx_list': _cells([_cells([np.asarray(b, np.int32).reshape(-1, 4) for _, b in images])
                                 for _, images in events]),
    }
    sio.savemat(os.path.join(gt_dir, 'wider_face_val.mat'), common)
    for setting in ('easy', 'medium', 'hard'):
        gt_list = _cells([_cells([np.asarray(keep[setting].get((event, name), []), np.uint8).reshape(-1, 1)
                                  for name, _ in images]) for event, images in events])
        sio.savemat(os.path.join(gt_dir, 'wider_%s_val.mat' % setting), dict(common, gt_list=gt_list))


def write_pred(pred_dir, event, name, rows):
    path = os.path.join(pred_dir, event, name + '.txt')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write('%s/%s.jpg\n%d\n' % (event, name, len(rows)))
        for row in rows:
            f.write(' '.join('%g' % v for v in row) + ' \n')
    return path


def tiny_sample_list(tmp_path, size, count=8):
    """An MTCNN sample list ``tmp_path/train.txt`` of ``count`` random ``size`` x ``size`` crops, the four
    labels in turn; returns it read (``mtcnn.loader.read_sample_list``)."""
    from mtcnn.loader import read_sample_list
    rng = np.random.default_rng(0)
    lines = []
    for i in range(count):
        img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / ('%d.png' % i)), img)
        label = [1, 0, -1, -2][i % 4]
        target = {1: [0.1, 0.2, -0.1, 0.05], 0: [], -1: [0.3, 0.1, 0.2, 0.0],
                  -2: list(np.linspace(0.2, 0.8, 10))}[label]
        lines.append(' '.join(['%d.png' % i, str(label)] + ['%.4f' % v for v in target]))
    path = tmp_path / 'train.txt'
    path.write_text('\n'.join(lines) + '\n')
    return read_sample_list(str(path))


def canonical_dir():
    """The shared folder of the canonical MTCNN weights (pnet.pt, rnet.pt, onet.pt), or skip."""
    for net in ('pnet', 'rnet', 'onet'):
        require_shared('assets/models/mtcnn-canonical/%s.pt' % net)
    return require_shared('assets/models/mtcnn-canonical')


def make_wheel(path, source):
    """A zip laid out like the facenet-pytorch wheel, holding the .pt files of folder ``source``."""
    import zipfile
    from mtcnn.facenet import WHEEL_DATA
    with zipfile.ZipFile(path, 'w') as wheel:
        wheel.writestr('facenet_pytorch/__init__.py', '')
        for net in ('pnet', 'rnet', 'onet'):
            wheel.write(source / ('%s.pt' % net), WHEEL_DATA % net)
    return path


def convert_canonical(folder):
    """The canonical weights converted by the command into ``folder``: {'pnet': path, ...}."""
    from mtcnn.commands import mtcnn_convert
    assert mtcnn_convert(['--facenet', str(canonical_dir()), '--output', str(folder)]) == 0
    return {net: str(folder / ('%s-0000.params' % net)) for net in ('pnet', 'rnet', 'onet')}


VIDEO_SIZE = (640, 384)  # width, height of the test videos
VIDEO_FPS = 25.0


def shifted_frames(count, step=3):
    """``count`` BGR frames of VIDEO_SIZE: t4.jpg (640 x 360) on a black band, shifted ``step`` px
    to the right per frame (wrapping round), a crowd panning slowly."""
    photo = cv2.imread(str(require_shared('assets/images/t4.jpg')))
    frames = []
    for index in range(count):
        frame = np.zeros((VIDEO_SIZE[1], VIDEO_SIZE[0], 3), np.uint8)
        frame[12:372] = np.roll(photo, step * index, axis=1)
        frames.append(frame)
    return frames


def write_video(path, frames, fps=VIDEO_FPS):
    """An MP4 (mp4v) of BGR ``frames`` at ``fps``; returns its path as a string."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return str(path)


def read_video(path):
    """(frames, fps) of a video file, every frame decoded."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            capture.release()
            return frames, fps
        frames.append(frame)


def channel_variance(pixels):
    """The summed per-channel variance of BGR pixels (..., 3)."""
    return float(pixels.reshape(-1, 3).astype(np.float64).var(axis=0).sum())
