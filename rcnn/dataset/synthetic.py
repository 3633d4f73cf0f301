"""Synthetic WIDER FACE-style data: procedurally drawn faces with exact landmarks.

Writes the RetinaFace layout, so the loaders and the WIDER evaluation that read
the real data run unchanged on it::

    <root>/train/images/<event>/<name>.jpg   <root>/train/label.txt  boxes, 5 landmarks, blur
    <root>/val/images/<event>/<name>.jpg     <root>/val/label.txt    boxes, 5 landmarks, blur
    <root>/test/images/<event>/<name>.jpg    <root>/test/label.txt   paths only
    <root>/ground_truth/wider_face_val.mat, wider_{easy,medium,hard}_val.mat   (val split)

Events are scene types, ``K--Synthetic_<Theme>``; files ``K_Synthetic_<Theme>_<index>.jpg``.

Images are 640-1024 px on the long side (landscape or portrait) with a cluttered
background (gradient, low-frequency texture, random shapes, stripe/checker
patches), face-like distractors (skin-toned ellipses with random spots and no
face layout, backs of heads, round blobs) and people: a torso and neck under
each head. A head is a skin ellipse with hair, ears, brows, eyes, nose and
mouth, with varied skin tone, proportions, yaw (+-45 deg; the features move on
a 3-D ellipsoid, so the landmarks shift consistently), pitch (+-15 deg), roll
(+-30 deg), brightness, blur and occluders (masks, sunglasses, hands, objects,
other heads, foreground poles). Faces are 8 px high up to a third of the image
height; heads do not overlap much (face-box IoU < 0.3).

label.txt values (raw format, see ``rcnn.dataset.label_file``):
  * box ``x y w h`` in integer pixels (x2 = x + w): the axis-aligned extent of the
    skin ellipse (the face without the hair, as WIDER boxes are drawn);
  * landmarks left eye, right eye, nose tip, left and right mouth corner ("left"
    = smaller x on a frontal face), to 1/1000 px, v = 0 visible, 1 when the point
    is covered by an occluder, a foreground pole or another head;
  * blur = per-face Gaussian sigma / (0.07 * face height), clipped to [0, 1].

Ground-truth .mat files (same variables and layout as the official ones):
attribute labels per face are blur 0 (sigma < 1.2 % of the height), 1 (< 3.5 %),
2 (heavier); occlusion 0 (< 1 % of the skin ellipse hidden), 1 (< 35 %), 2;
pose 1 when |yaw| > 35 deg or |roll| > 25 deg; illumination 1 when the face is
drawn at brightness < 0.65 or > 1.3; expression 1 for a wide-open mouth; invalid 0.
The difficulty subsets follow face height h (box height, pixels) as in WIDER:
  * hard: every face;
  * medium: h >= 24 px;
  * easy: h >= 50 px, occlusion label 0 and blur label < 2.
With seed 0 the 200 val images hold 1726 faces (8.6 per image): 16 % are under
16 px, 34 % under 24 px (hard only), 29 % at least 50 px; easy counts 335 faces,
medium 1143.

Determinism: image ``index`` of ``split`` is drawn from
``np.random.default_rng([seed, split_id, index])`` alone, so any number of
worker processes gives byte-identical images and label files.

Nothing of the user's is replaced: ``<root>/synthetic_manifest.json`` lists every
file the generator wrote there, with its SHA-256. A folder that already holds a
``label.txt`` (any split) or ``ground_truth/`` is refused unless ``overwrite``;
even then, a file at a path to be written that the manifest does not list, or
whose content changed since, is an error naming it, before anything is written.
Paths about to be written are listed (without checksum) before the first write,
so a run that was stopped can be run again.
"""
import argparse
import dataclasses
import json
import logging
import math
import multiprocessing
import os
import time

import cv2
import numpy as np
import scipy.io
from tqdm import tqdm

from rcnn.cli import check_writable_dir, setup_logging
from rcnn.dataset.label_file import LabelRecord, split_paths, write_label_file
from rcnn.fileio import atomic_open, atomic_path, file_digest
from rcnn.processing.box_ops import pairwise_overlap

logger = logging.getLogger(__name__)

__all__ = ['THEMES', 'SPLITS', 'MIN_FACE', 'MEDIUM_MIN_HEIGHT', 'EASY_MIN_HEIGHT', 'ATTRIBUTES', 'MANIFEST',
           'OutputConflict', 'SyntheticImage', 'render_image', 'image_path', 'output_files', 'write_ground_truth',
           'generate_widerface', 'main']

SPLITS = {'train': 0, 'val': 1, 'test': 2}
MIN_FACE = 8            # smallest face height, pixels
MEDIUM_MIN_HEIGHT = 24  # WIDER-like difficulty thresholds on the box height, pixels
EASY_MIN_HEIGHT = 50
ATTRIBUTES = ('blur', 'expression', 'illumination', 'invalid', 'occlusion', 'pose')  # WIDER .mat label lists
MANIFEST = 'synthetic_manifest.json'  # what the generator wrote in its output folder
_GENERATOR = 'rcnn.dataset.synthetic'
# Paths whose presence means the folder already holds a data set.
_DATA_SET_MARKERS = tuple('%s/label.txt' % split for split in SPLITS) + ('ground_truth',)
_GROUND_TRUTH = tuple('ground_truth/%s' % name for name in
                      ('wider_face_val.mat', 'wider_easy_val.mat', 'wider_medium_val.mat', 'wider_hard_val.mat'))


@dataclasses.dataclass(frozen=True)
class Theme:
    """A scene type: face count range and face height range in pixels (capped at H/3)."""
    name: str
    probability: float
    faces: tuple
    heights: tuple


THEMES = (
    Theme('Portrait', 0.22, (1, 3), (60, 1000)),
    Theme('Group', 0.26, (3, 9), (28, 130)),
    Theme('Meeting', 0.24, (6, 16), (18, 70)),
    Theme('Crowd', 0.12, (12, 35), (9, 40)),
    Theme('Street', 0.16, (2, 8), (12, 180)),
)

# RGB palettes, converted to BGR when drawn.
_SKIN = np.array([(255, 224, 196), (241, 194, 160), (224, 172, 130), (198, 134, 96),
                  (161, 102, 70), (120, 75, 50), (90, 56, 37)], np.float64)
_HAIR = np.array([(25, 20, 18), (60, 40, 30), (110, 75, 45), (210, 180, 120),
                  (150, 150, 150), (150, 60, 30), (220, 220, 215)], np.float64)
_IRIS = np.array([(70, 45, 25), (40, 25, 15), (70, 110, 160), (80, 120, 70)], np.float64)

_SHIFT = 4              # cv2 fixed-point bits: features are drawn with 1/16 px precision
_ONE = 1 << _SHIFT
_HEAD_RADIUS = 1.32     # hair/ears reach, in units of the larger face half-axis


def _bgr(rgb, scale=1.0):
    """RGB triple times ``scale`` -> BGR colour tuple for cv2, clipped to 0..255."""
    return tuple(min(max(float(c) * scale, 0.0), 255.0) for c in rgb[::-1])


def _fx(points):
    """Float pixel coordinates (..., 2) -> int32 fixed-point for cv2 with shift."""
    return np.round(np.asarray(points, np.float64) * _ONE).astype(np.int32)


def _ellipse(img, centre, axes, angle, colour, thickness=-1, line=cv2.LINE_AA):
    cx, cy = _fx(centre)
    ax, ay = _fx(np.maximum(axes, 0))
    cv2.ellipse(img, (int(cx), int(cy)), (int(ax), int(ay)), angle, 0, 360, colour, thickness, line, _SHIFT)


def _poly(img, points, colour, line=cv2.LINE_AA):
    cv2.fillPoly(img, [_fx(points)], colour, line, _SHIFT)


def _polyline(img, points, colour, thickness, closed=False):
    cv2.polylines(img, [_fx(points)], closed, colour, max(1, int(round(thickness))), cv2.LINE_AA, _SHIFT)


def _both(img, idmap, owner, draw, *args, colour, **kwargs):
    """Draw a shape into the image and, as ``owner``, into the pixel-owner map."""
    draw(img, *args, colour=colour, **kwargs)
    draw(idmap, *args, colour=owner, line=cv2.LINE_8, **kwargs)


@dataclasses.dataclass
class _Face:
    """One head. Canonical face coordinates: u right, v down, both in [-1, 1] over the
    skin ellipse, z towards the camera on a unit ellipsoid; a, b are the half-axes in px."""
    cx: float
    cy: float
    a: float
    b: float
    roll: float
    yaw: float
    pitch: float
    layout: dict
    style: dict
    brightness: float
    blur_sigma: float
    occluder: str

    @property
    def radius(self):
        return _HEAD_RADIUS * max(self.a, self.b)

    def box(self):
        """Integer (x1, y1, x2, y2) of the rotated skin ellipse."""
        c, s = math.cos(self.roll), math.sin(self.roll)
        ex = math.hypot(self.a * c, self.b * s)
        ey = math.hypot(self.a * s, self.b * c)
        return np.array([round(self.cx - ex), round(self.cy - ey), round(self.cx + ex), round(self.cy + ey)],
                        np.float64)

    def flat(self, u, v):
        """Canonical points on the image plane (no 3-D rotation) -> pixels (N, 2)."""
        x, y = self.a * np.asarray(u, np.float64), self.b * np.asarray(v, np.float64)
        c, s = math.cos(self.roll), math.sin(self.roll)
        return np.stack([self.cx + c * x - s * y, self.cy + s * x + c * y], axis=-1)

    def surface(self, u, v, lift=0.0):
        """Project points of the face surface (u, v) raised by ``lift`` -> pixels (N, 2)."""
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        z = np.sqrt(np.maximum(1.0 - u * u - v * v, 0.05)) + lift
        cy_, sy = math.cos(self.yaw), math.sin(self.yaw)
        u1, z1 = u * cy_ + z * sy, -u * sy + z * cy_
        v1 = v * math.cos(self.pitch) - z1 * math.sin(self.pitch)
        return self.flat(u1, v1)

    def foreshortening(self, u, v, half_width):
        """Projected/frontal ratio of a horizontal feature of ``half_width`` at (u, v)."""
        ends = self.surface([u - half_width, u + half_width], [v, v])
        return float(np.linalg.norm(ends[1] - ends[0])) / (2 * half_width * self.a)

    def landmarks(self):
        """(5, 2) pixels: left eye, right eye, nose tip, left, right mouth corner."""
        L = self.layout
        u = [-L['eye_u'], L['eye_u'], 0.0, -L['mouth_u'], L['mouth_u']]
        v = [L['eye_v'], L['eye_v'], L['nose_v'], L['mouth_v'], L['mouth_v']]
        points = self.surface(u, v)
        points[2] = self.surface([0.0], [L['nose_v']], lift=L['nose_lift'])[0]
        return points


def _log_uniform(rng, lo, hi, size=None):
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size))


def _sample_face(rng, height):
    """Face parameters for a box about ``height`` px high, centre unset."""
    aspect = rng.uniform(0.72, 0.88)
    roll = math.radians(float(np.clip(rng.normal(0, 10), -30, 30)))
    # Box height of a rotated ellipse: 2 * b * sqrt((a/b)^2 sin^2 + cos^2).
    b = height / 2 / math.hypot(aspect * math.sin(roll), math.cos(roll))
    layout = dict(eye_u=rng.uniform(0.32, 0.40), eye_v=rng.uniform(-0.22, -0.10),
                  nose_v=rng.uniform(0.12, 0.20), nose_lift=rng.uniform(0.15, 0.3),
                  mouth_u=rng.uniform(0.24, 0.33), mouth_v=rng.uniform(0.46, 0.56))
    skin = _SKIN[rng.integers(len(_SKIN))] + rng.uniform(-12, 12, 3)
    mouth = rng.choice(['closed', 'smile', 'open', 'wide'], p=[0.45, 0.3, 0.2, 0.05])
    style = dict(skin=skin, hair=_HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.85, 1.15),
                 hair_style=rng.choice(['short', 'long', 'bald', 'fringe'], p=[0.35, 0.25, 0.1, 0.3]),
                 iris=_IRIS[rng.integers(len(_IRIS))], eyes_closed=rng.random() < 0.05, mouth=str(mouth),
                 beard=rng.random() < 0.1, hat=rng.random() < 0.08,
                 clothes=rng.uniform(20, 235, 3), shade=rng.uniform(0.78, 0.92),
                 light=rng.uniform(-0.35, 0.35))
    brightness = float(rng.choice([rng.uniform(0.8, 1.15), rng.uniform(0.5, 0.62), rng.uniform(1.35, 1.5)],
                                  p=[0.9, 0.06, 0.04]))
    blur = rng.choice([0.0, rng.uniform(0.012, 0.035), rng.uniform(0.035, 0.06)], p=[0.65, 0.25, 0.10])
    occluder = str(rng.choice(['none', 'mask', 'sunglasses', 'glasses', 'hand', 'object'],
                              p=[0.8, 0.04, 0.03, 0.04, 0.03, 0.06]))
    return _Face(cx=0.0, cy=0.0, a=aspect * b, b=b, roll=roll,
                 yaw=math.radians(float(np.clip(rng.normal(0, 16), -45, 45))),
                 pitch=math.radians(float(np.clip(rng.normal(0, 6), -15, 15))),
                 layout=layout, style=style, brightness=brightness, blur_sigma=float(blur * height),
                 occluder=occluder)


def _place_faces(rng, theme, height, width):
    """Sample faces for a scene and place them without heavy overlap, largest first."""
    lo, hi = theme.heights
    hi = min(hi, height / 3)
    lo = min(lo, hi)
    count = int(rng.integers(theme.faces[0], theme.faces[1] + 1))
    placed = []
    for h in np.sort(_log_uniform(rng, lo, hi, count))[::-1]:
        face = _sample_face(rng, float(h))
        r = face.radius
        for _ in range(40):
            face.cx = rng.uniform(r + 1, width - r - 1)
            face.cy = rng.uniform(r + 1, height - r - 1)
            if _fits(face, placed):
                placed.append(face)
                break
    return placed[::-1]  # drawn smallest (farthest) first


def _fits(face, placed):
    if not placed:
        return True
    centres = np.array([(f.cx, f.cy) for f in placed])
    radii = np.array([f.radius for f in placed])
    dist = np.hypot(centres[:, 0] - face.cx, centres[:, 1] - face.cy)
    # Heads may overlap by at most 35 % of the smaller head's diameter.
    if np.any(face.radius + radii - dist > 0.7 * np.minimum(face.radius, radii)):
        return False
    return bool(np.all(pairwise_overlap(face.box(), np.array([f.box() for f in placed]), plus_one=False) < 0.3))


def _background(rng, height, width):
    """Cluttered background (H, W, 3) uint8: gradient, texture, shapes, pattern patches."""
    # Gradient plus texture on a coarse grid; bicubic upsampling keeps the gradient
    # linear and turns the grid noise into smooth blotches.
    cell = int(rng.integers(8, 64))
    gh, gw = height // cell + 2, width // cell + 2
    c0, c1 = rng.uniform(0, 255, (2, 3))
    angle = rng.uniform(0, 2 * math.pi)
    ramp = np.arange(gw)[None, :] * math.cos(angle) + np.arange(gh)[:, None] * math.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
    grid = c0 + ramp[:, :, None] * (c1 - c0) + rng.uniform(10, 45) * rng.normal(0, 1, (gh, gw, 3))
    img = cv2.resize(np.clip(grid, 0, 255).astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)

    side = max(height, width)
    for _ in range(int(rng.integers(15, 60))):
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        size = _log_uniform(rng, 0.01, 0.5) * side
        x, y = rng.uniform(-0.1, 1.1) * width, rng.uniform(-0.1, 1.1) * height
        thickness = -1 if rng.random() < 0.7 else int(rng.integers(1, 6))
        kind = rng.integers(5)
        if kind == 0:
            _poly(img, [(x, y), (x + size * rng.uniform(0.3, 2), y), (x + size * rng.uniform(0.3, 2), y + size),
                        (x, y + size)], colour)
        elif kind == 1:
            _ellipse(img, (x, y), (size / 2, size / 2), 0, colour, thickness)
        elif kind == 2:
            _ellipse(img, (x, y), (size / 2, size * rng.uniform(0.1, 0.6)), rng.uniform(0, 180), colour, thickness)
        elif kind == 3:
            _poly(img, np.array([x, y]) + rng.uniform(-size, size, (int(rng.integers(3, 7)), 2)), colour)
        else:
            _polyline(img, [(x, y), (x + rng.uniform(-side, side) / 3, y + rng.uniform(-side, side) / 3)],
                      colour, rng.integers(1, 8))
    for _ in range(int(rng.integers(0, 4))):
        _pattern_patch(rng, img)
    return img


def _pattern_patch(rng, img):
    """Stripes or a checkerboard in a random rectangle (man-made texture)."""
    height, width = img.shape[:2]
    ph, pw = int(rng.integers(height // 10, height // 2)), int(rng.integers(width // 10, width // 2))
    y0, x0 = int(rng.integers(0, height - ph)), int(rng.integers(0, width - pw))
    period = rng.uniform(3, 30)
    yy, xx = np.arange(ph, dtype=np.float32)[:, None], np.arange(pw, dtype=np.float32)[None, :]
    if rng.random() < 0.5:
        theta = rng.uniform(0, math.pi)
        phase = (xx * math.cos(theta) + yy * math.sin(theta)) * (2 / period)
        wave = (np.floor(phase) % 2).astype(bool)  # square wave: stripes of width period / 2
    else:
        wave = ((xx // period) % 2 > 0) ^ ((yy // period) % 2 > 0)
    c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.uint8)
    patch = img[y0:y0 + ph, x0:x0 + pw]
    patch[:] = c1
    patch[wave] = c0


def _distractors(rng, img, height):
    """Face-sized things that are not faces: plain or spotted skin ellipses, backs of heads, blobs."""
    h_img, w_img = img.shape[:2]
    for _ in range(int(rng.integers(2, 11))):
        h = _log_uniform(rng, MIN_FACE, height / 3)
        a, b = h / 2 * rng.uniform(0.6, 1.0), h / 2
        centre = (rng.uniform(0, w_img), rng.uniform(0, h_img))
        angle = rng.uniform(-40, 40)
        kind = rng.integers(4)
        if kind <= 1:
            skin = _SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.6, 1.2)
            _ellipse(img, centre, (a, b), angle, _bgr(skin))
            if kind == 1:  # spots scattered at random, never in an eyes-nose-mouth layout
                for _ in range(int(rng.integers(1, 5))):
                    offset = rng.uniform(-0.7, 0.7, 2) * (a, b)
                    _ellipse(img, np.add(centre, offset), (a * rng.uniform(0.05, 0.2),) * 2, 0,
                             _bgr(skin, rng.uniform(0.2, 0.6)))
        elif kind == 2:
            hair = _HAIR[rng.integers(len(_HAIR))]
            _ellipse(img, centre, (a * 1.1, b * 1.05), angle, _bgr(hair))
        else:
            colour = rng.uniform(0, 255, 3)
            _ellipse(img, centre, (b, b), 0, _bgr(colour))
            _ellipse(img, centre, (b * 0.6, b * 0.6), 0, _bgr(colour, rng.uniform(0.4, 1.4)), 2)


def _draw_body(img, face):
    """Neck and torso under the head (drawn before any head)."""
    s = face.style
    neck = face.flat([-0.32, 0.32, 0.36, -0.36], [0.6, 0.6, 1.45, 1.45])
    _poly(img, neck, _bgr(s['skin'], face.brightness * s['shade']))
    torso = face.flat([-0.7, 0.7, 1.9, 2.1, -2.1, -1.9], [1.25, 1.25, 1.7, 5.0, 5.0, 1.7])
    _poly(img, torso, _bgr(s['clothes']))


def _draw_head(img, idmap, face, fid):
    """Draw one head into ``img`` and mark its pixels ``fid`` in ``idmap``."""
    s, L, k = face.style, face.layout, face.brightness
    angle = math.degrees(face.roll)
    skin = _bgr(s['skin'], k)
    hair = _bgr(s['hair'], k)
    centre = (face.cx, face.cy)
    yaw_shift = -0.2 * math.sin(face.yaw)  # the back of the head shows on the far side

    if s['hair_style'] in ('short', 'fringe'):
        _both(img, idmap, fid, _ellipse, face.flat(yaw_shift, -0.14), (1.1 * face.a, 1.1 * face.b), angle,
              colour=hair)
    elif s['hair_style'] == 'long':
        _both(img, idmap, fid, _ellipse, face.flat(yaw_shift, 0.05), (1.2 * face.a, 1.26 * face.b), angle,
              colour=hair)
    if abs(face.yaw) < math.radians(25):
        for side in (-1, 1):
            _both(img, idmap, fid, _ellipse, face.flat(side * 0.97, -0.02), (0.14 * face.a, 0.24 * face.b),
                  angle, colour=_bgr(s['skin'], k * s['shade']))
    # Two-tone skin: a darker rim and a lighter, off-centre core give the head some volume.
    _both(img, idmap, fid, _ellipse, centre, (face.a, face.b), angle, colour=_bgr(s['skin'], k * s['shade']))
    _ellipse(img, face.flat(s['light'] * 0.2, -0.05), (0.86 * face.a, 0.9 * face.b), angle, skin)
    if s['hair_style'] == 'fringe':
        t = np.linspace(math.pi + 0.45, 2 * math.pi - 0.45, 12)
        u = np.concatenate([np.cos(t), np.linspace(0.8, -0.8, 9)])
        v = np.concatenate([np.sin(t), -0.58 - 0.12 * (1 - np.linspace(0.8, -0.8, 9) ** 2)])
        _poly(img, face.flat(u, v), hair)
    if s['hat']:
        _ellipse(img, face.flat(0, -0.95), (1.15 * face.a, 0.55 * face.b), angle, _bgr(s['clothes'], 0.7))
        _ellipse(img, face.flat(0, -0.68), (1.35 * face.a, 0.1 * face.b), angle, _bgr(s['clothes'], 0.5))

    _draw_eyes(img, face, angle)
    _draw_nose(img, face, angle)
    _draw_mouth(img, face)
    if s['beard']:
        u = np.linspace(-0.85, 0.85, 13)
        chin = np.sqrt(np.maximum(1 - u ** 2, 0)) * 0.98
        lower = L['mouth_v'] + 0.12 + 0.05 * np.cos(u * 2)
        _poly(img, face.surface(np.concatenate([u, u[::-1]]), np.concatenate([lower, chin[::-1]])), hair)


def _draw_eyes(img, face, angle):
    s, L, k = face.style, face.layout, face.brightness
    dark = _bgr(s['hair'], 0.6 * k)
    for side in (-1, 1):
        u, v = side * L['eye_u'], L['eye_v']
        # Brow: an arched stroke above the eye.
        bu = u + np.linspace(-0.19, 0.19, 7)
        bv = v - 0.2 - 0.05 * (1 - np.linspace(-1, 1, 7) ** 2)
        _polyline(img, face.surface(bu, bv), dark, 0.06 * face.b)
        centre = face.surface([u], [v])[0]
        fore = face.foreshortening(u, v, 0.17)
        half = (0.17 * face.a * fore, 0.075 * face.b)
        if s['eyes_closed']:
            _polyline(img, face.surface(u + np.linspace(-0.17, 0.17, 5), v + 0.02 * np.array([0, 1, 1.3, 1, 0])),
                      (20, 20, 20), 0.03 * face.b)
            continue
        _ellipse(img, centre, half, angle, _bgr((235, 235, 230), k))
        _ellipse(img, centre, (0.07 * face.b * max(fore, 0.5), 0.07 * face.b), angle, _bgr(s['iris'], k))
        _ellipse(img, centre, (0.035 * face.b, 0.035 * face.b), angle, (10, 10, 10))
        _ellipse(img, centre, half, angle, (25, 25, 30), max(1, int(round(0.02 * face.b))))


def _draw_nose(img, face, angle):
    s, L, k = face.style, face.layout, face.brightness
    tip_v, lift = L['nose_v'], L['nose_lift']
    ridge = face.surface(np.zeros(5), np.linspace(L['eye_v'], tip_v, 5), lift=np.linspace(0, lift, 5))
    _polyline(img, ridge, _bgr(s['skin'], k * s['shade'] * 0.9), 0.035 * face.a)
    tip = face.surface([0.0], [tip_v], lift=lift)[0]
    _ellipse(img, tip, (0.12 * face.a, 0.055 * face.b), angle, _bgr(s['skin'], k * s['shade'] * 0.92))
    for side in (-1, 1):
        nostril = face.surface([side * 0.075], [tip_v + 0.035], lift=lift * 0.7)[0]
        _ellipse(img, nostril, (0.04 * face.a, 0.022 * face.b), angle, _bgr(s['skin'], k * 0.35))


def _draw_mouth(img, face):
    s, L, k = face.style, face.layout, face.brightness
    mu, mv = L['mouth_u'], L['mouth_v']
    t = np.linspace(-1, 1, 11)
    bulge = 1 - t ** 2
    smile = {'closed': 0.0, 'smile': 0.06, 'open': 0.03, 'wide': 0.02}[s['mouth']]
    gap = {'closed': 0.0, 'smile': 0.015, 'open': 0.06, 'wide': 0.16}[s['mouth']]
    upper = mv - 0.05 * bulge + smile * bulge
    lower = mv + (0.07 + gap) * bulge + smile * bulge
    lips = _bgr(s['skin'] * np.array([1.0, 0.55, 0.55]), k * 0.85)
    u = mu * t
    _poly(img, face.surface(np.concatenate([u, u[::-1]]), np.concatenate([upper, lower[::-1]])), lips)
    if gap > 0:
        inner_u = 0.8 * u
        top = mv + smile * bulge + 0.005
        bottom = top + gap * bulge
        _poly(img, face.surface(np.concatenate([inner_u, inner_u[::-1]]), np.concatenate([top, bottom[::-1]])),
              (30, 20, 40))
    _polyline(img, face.surface(u, mv + smile * bulge), _bgr(s['skin'], k * 0.35), 0.015 * face.b)


def _draw_occluder(rng, img, idmap, face):
    """Something in front of the face; its pixels belong to nobody (0) in ``idmap``."""
    angle = math.degrees(face.roll)
    L = face.layout
    colour = tuple(float(c) for c in rng.uniform(0, 255, 3))

    if face.occluder == 'mask':
        top = rng.uniform(0.25, 0.42)
        _both(img, idmap, 0, _poly, face.flat([-1.02, 1.02, 0.85, -0.85], [top, top, 1.0, 1.0]), colour=colour)
    elif face.occluder in ('sunglasses', 'glasses'):
        for side in (-1, 1):
            centre = face.surface([side * L['eye_u']], [L['eye_v']])[0]
            axes = (0.22 * face.a, 0.14 * face.b)
            if face.occluder == 'sunglasses':
                _both(img, idmap, 0, _ellipse, centre, axes, angle, colour=(15, 15, 15))
            else:  # clear lenses: only the frame hides anything
                _both(img, idmap, 0, _ellipse, centre, axes, angle, colour=colour,
                      thickness=max(1, int(round(0.025 * face.b))))
    elif face.occluder == 'hand':
        skin = _SKIN[rng.integers(len(_SKIN))] * face.brightness
        centre = face.flat(rng.uniform(-0.8, 0.8), rng.uniform(0.3, 1.0))
        _both(img, idmap, 0, _ellipse, centre, (0.45 * face.a, 0.6 * face.b), rng.uniform(0, 180), colour=_bgr(skin))
    else:
        centre = face.flat(*rng.uniform(-0.9, 0.9, 2))
        size = rng.uniform(0.25, 0.55)
        _both(img, idmap, 0, _ellipse, centre, (size * face.a, size * face.b * rng.uniform(0.5, 1.5)),
              rng.uniform(0, 180), colour=colour)


def _blur_face(img, idmap, face, fid):
    """Blur the head's own pixels (feathered) by its sigma."""
    r = face.radius
    x0, y0 = max(int(face.cx - r), 0), max(int(face.cy - r), 0)
    x1, y1 = min(int(face.cx + r) + 1, img.shape[1]), min(int(face.cy + r) + 1, img.shape[0])
    roi = img[y0:y1, x0:x1]
    mask = cv2.GaussianBlur((idmap[y0:y1, x0:x1] == fid).astype(np.float32), (0, 0), face.blur_sigma)[:, :, None]
    blurred = cv2.GaussianBlur(roi, (0, 0), face.blur_sigma)
    roi[:] = np.round(roi * (1 - mask) + blurred * mask).astype(np.uint8)


def _foreground(rng, img, idmap):
    """Poles and cables in front of everything."""
    height, width = img.shape[:2]
    for _ in range(int(rng.integers(1, 4))):
        p0 = (rng.uniform(0, width), 0.0) if rng.random() < 0.5 else (0.0, rng.uniform(0, height))
        p1 = (rng.uniform(0, width), float(height)) if p0[1] == 0 else (float(width), rng.uniform(0, height))
        thickness = int(rng.integers(1, 7))
        _polyline(img, [p0, p1], tuple(float(c) for c in rng.uniform(0, 255, 3)), thickness)
        cv2.line(idmap, tuple(int(c) for c in _fx(p0)), tuple(int(c) for c in _fx(p1)), 0, thickness,
                 cv2.LINE_8, _SHIFT)


def _attributes(face, occlusion, height):
    """WIDER attribute labels (blur, expression, illumination, invalid, occlusion, pose)."""
    rel = face.blur_sigma / height
    return (0 if rel < 0.012 else 1 if rel < 0.035 else 2,
            int(face.style['mouth'] == 'wide'),
            int(face.brightness < 0.65 or face.brightness > 1.3),
            0,
            0 if occlusion < 0.01 else 1 if occlusion < 0.35 else 2,
            int(abs(face.yaw) > math.radians(35) or abs(face.roll) > math.radians(25)))


@dataclasses.dataclass
class SyntheticImage:
    """One rendered image and its faces.

    boxes (N, 4) int x y w h; landmarks (N, 5, 3) float32 x y v; blur (N,) float32;
    attributes (N, 6) uint8 in ATTRIBUTES order; yaw, roll (N,) degrees.
    """
    event: str
    name: str
    image: np.ndarray
    jpeg_quality: int
    boxes: np.ndarray
    landmarks: np.ndarray
    blur: np.ndarray
    attributes: np.ndarray
    yaw: np.ndarray
    roll: np.ndarray

    @property
    def path(self):
        return '%s/%s.jpg' % (self.event, self.name)


def _theme(rng):
    """The first draw of an image: the index of its theme in THEMES."""
    return int(rng.choice(len(THEMES), p=[t.probability for t in THEMES]))


def _event_and_name(k, index):
    return '%d--Synthetic_%s' % (k, THEMES[k].name), '%d_Synthetic_%s_%d' % (k, THEMES[k].name, index)


def image_path(seed, split, index):
    """``<event>/<name>.jpg`` of image ``index`` of ``split``, without rendering it."""
    return '%s/%s.jpg' % _event_and_name(_theme(np.random.default_rng([seed, SPLITS[split], index])), index)


def render_image(seed, split, index):
    """Render image ``index`` of ``split`` deterministically from ``seed``."""
    rng = np.random.default_rng([seed, SPLITS[split], index])
    k = _theme(rng)
    theme = THEMES[k]
    long_side = int(rng.integers(640, 1025))
    short_side = int(round(long_side / rng.choice([1.0, 1.25, 4 / 3, 1.5, 16 / 9])))
    height, width = (short_side, long_side) if rng.random() < 0.7 else (long_side, short_side)

    img = _background(rng, height, width)
    faces = _place_faces(rng, theme, height, width)
    _distractors(rng, img, height)
    for face in faces:
        _draw_body(img, face)
    idmap = np.zeros((height, width), np.uint16)
    for fid, face in enumerate(faces, 1):
        _draw_head(img, idmap, face, fid)
        if face.occluder != 'none':
            _draw_occluder(rng, img, idmap, face)
        if face.blur_sigma > 0:
            _blur_face(img, idmap, face, fid)
    if rng.random() < 0.3:
        _foreground(rng, img, idmap)
    img = _camera(rng, img)
    quality = int(rng.integers(75, 96))

    boxes, landmarks, blur, attributes = [], [], [], []
    for fid, face in enumerate(faces, 1):
        x1, y1, x2, y2 = face.box()
        points = face.landmarks()
        ix = np.clip(np.round(points).astype(int), 0, [width - 1, height - 1])
        hidden = idmap[ix[:, 1], ix[:, 0]] != fid
        boxes.append((x1, y1, x2 - x1, y2 - y1))
        landmarks.append(np.concatenate([np.round(points, 3), hidden[:, None]], axis=1))
        blur.append(round(min(face.blur_sigma / (0.07 * (y2 - y1)), 1.0), 3))
        attributes.append(_attributes(face, _occlusion(idmap, face, fid), y2 - y1))
    event, name = _event_and_name(k, index)
    return SyntheticImage(event=event, name=name, image=img, jpeg_quality=quality,
                          boxes=np.array(boxes, np.int64).reshape(-1, 4),
                          landmarks=np.array(landmarks, np.float32).reshape(-1, 5, 3),
                          blur=np.array(blur, np.float32), attributes=np.array(attributes, np.uint8).reshape(-1, 6),
                          yaw=np.degrees([f.yaw for f in faces]), roll=np.degrees([f.roll for f in faces]))


def _occlusion(idmap, face, fid):
    """Fraction of the skin ellipse not showing this face at the end."""
    x1, y1, x2, y2 = face.box().astype(int)
    x1, y1 = max(x1 - 1, 0), max(y1 - 1, 0)
    region = idmap[y1:y2 + 2, x1:x2 + 2]
    mask = np.zeros(region.shape, np.uint8)
    _ellipse(mask, (face.cx - x1, face.cy - y1), (face.a, face.b), math.degrees(face.roll), 1, line=cv2.LINE_8)
    inside = mask.astype(bool)
    return float(np.mean(region[inside] != fid)) if inside.any() else 0.0


def _camera(rng, img):
    """Global exposure, optional grey scale and softness, uniform sensor noise."""
    # Luminance noise of std sigma in 0..6 grey levels, uniform in [-k, k] (std k / sqrt(3)).
    # The tone curve maps into [k, 255 - k], so the noise is added in place in uint8 without
    # overflow; random bytes binned by a table are several times cheaper than rng.integers.
    sigma = rng.uniform(0, 6)
    k = int(round(sigma * math.sqrt(3))) if sigma > 1 else 0
    curve = np.arange(256) * rng.uniform(0.75, 1.25) + rng.uniform(-25, 25)
    img = cv2.LUT(img, np.clip(curve, k, 255 - k).astype(np.uint8))
    if rng.random() < 0.1:
        img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if rng.random() < 0.15:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.0))
    if k:
        noise = np.frombuffer(rng.bytes(img.shape[0] * img.shape[1]), np.uint8).reshape(img.shape[:2])
        bins = (np.arange(256) * (2 * k + 1) // 256).astype(np.uint8)
        img -= np.uint8(k)
        img += cv2.merge([cv2.LUT(noise, bins)] * 3)  # same-shape add: numpy broadcasting is slower
    return img


def _generate_one(task):
    """Worker: render, write the JPEG atomically; returns the annotations (no pixels) and the file's SHA-256."""
    root, seed, split, index = task
    sample = render_image(seed, split, index)
    with atomic_path(os.path.join(split_paths(root, split)[1], sample.path)) as tmp:
        if not cv2.imwrite(tmp, sample.image, [cv2.IMWRITE_JPEG_QUALITY, sample.jpeg_quality]):
            raise IOError('could not write %s' % tmp)
        digest = file_digest(tmp)
    sample.image = None  # do not ship pixels back to the parent
    return sample, digest


def _worker_init():
    cv2.setNumThreads(1)  # one process per core; cv2's own threads would oversubscribe


def _render_split(root, split, count, seed, workers):
    tasks = [(root, seed, split, i) for i in range(count)]
    progress = dict(total=count, desc='synthetic %s' % split, unit='img')
    workers = min(workers, count)
    if workers <= 1:
        return [_generate_one(t) for t in tqdm(tasks, **progress)]
    # spawn, not fork: a parent whose cv2 thread pool is already running deadlocks forked children.
    with multiprocessing.get_context('spawn').Pool(workers, initializer=_worker_init) as pool:
        return list(tqdm(pool.imap(_generate_one, tasks, chunksize=4), **progress))


class OutputConflict(FileExistsError):
    """The output folder holds a data set (without ``overwrite``) or a file this generator did not write."""


def output_files(num_train, num_val, num_test, seed=0):
    """Paths (relative to the output folder) that ``generate_widerface`` writes, manifest aside."""
    files = []
    for split, count in (('train', num_train), ('val', num_val), ('test', num_test)):
        if count > 0:
            files += ['%s/images/%s' % (split, image_path(seed, split, i)) for i in range(count)]
            files.append('%s/label.txt' % split)
    if num_val > 0:
        files += list(_GROUND_TRUTH)
    return files


class _Manifest:
    """``<root>/synthetic_manifest.json``: {relative path: SHA-256, or None while being written}."""

    def __init__(self, root):
        self.path = os.path.join(root, MANIFEST)
        self.root = root
        self.files = {}
        if not os.path.lexists(self.path):
            return
        try:
            if os.path.islink(self.path):
                raise ValueError('a link')
            with open(self.path, encoding='utf-8') as f:
                data = json.load(f)
            if data.get('generator') != _GENERATOR or not isinstance(data.get('files'), dict):
                raise ValueError('another program\'s JSON')
        except (OSError, ValueError, AttributeError) as err:
            raise OutputConflict('%s is not a manifest written by this generator (%s); give --output a fresh folder'
                                 % (self.path, err)) from None
        self.files = data['files']

    def claim(self, targets, overwrite):
        """Check that every existing target is this generator's, then list all as being written.

        Raises:
            OutputConflict naming the first data set file (without ``overwrite``) or foreign file.
        """
        present = [m + ('/' if m == 'ground_truth' else '') for m in _DATA_SET_MARKERS
                   if os.path.lexists(os.path.join(self.root, m))]
        if present and not overwrite:
            raise OutputConflict('%s already holds a data set (%s); give --output a fresh folder, or pass '
                                 '--overwrite to replace only what this generator wrote there (listed in %s)'
                                 % (self.root, ', '.join(present), MANIFEST))
        for rel in targets:
            path = os.path.join(self.root, rel)
            if not os.path.lexists(path):
                continue
            if rel not in self.files:
                raise OutputConflict('refusing to replace %s: this generator did not write it (not listed in %s); '
                                     'give --output a fresh folder' % (path, self.path))
            if os.path.islink(path) or not os.path.isfile(path) or \
                    self.files[rel] is not None and file_digest(path) != self.files[rel]:
                raise OutputConflict('refusing to replace %s: it changed since this generator wrote it '
                                     '(its checksum differs from %s); move it away or give --output a fresh folder'
                                     % (path, self.path))
        self.record({rel: None for rel in targets})

    def record(self, digests):
        """Add or update ``digests`` {relative path: SHA-256 or None} and rewrite the manifest atomically."""
        self.files.update(digests)
        with atomic_open(self.path, 'w') as f:
            json.dump({'generator': _GENERATOR, 'files': dict(sorted(self.files.items()))}, f, indent=0)
            f.write('\n')

    def record_files(self, relpaths):
        self.record({rel: file_digest(os.path.join(self.root, rel)) for rel in relpaths})


def _label_records(samples, with_faces):
    """LabelRecords for label.txt; paths only when ``with_faces`` is False (test split)."""
    if not with_faces:
        return [LabelRecord(path=s.path) for s in samples]
    return [LabelRecord(path=s.path, boxes=s.boxes.astype(np.float32), landmarks=s.landmarks, blur=s.blur)
            for s in samples]


def _cell(items):
    """(n, 1) object array, the layout scipy.io gives for a MATLAB column cell."""
    out = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        out[i, 0] = item
    return out


def _index_dtype(values):
    # MATLAB stores small integer-valued doubles compactly; the official files load as uint8/uint16.
    return np.uint8 if len(values) == 0 or max(values) < 256 else np.uint16


def write_ground_truth(directory, samples):
    """Write wider_face_val.mat and wider_{easy,medium,hard}_val.mat for ``samples`` (val split)."""
    events = sorted({s.event for s in samples})  # string order, as in the official files
    by_event = {e: [s for s in samples if s.event == e] for e in events}
    base = {
        'event_list': _cell([np.array([e]) for e in events]),
        'file_list': _cell([_cell([np.array([s.name]) for s in by_event[e]]) for e in events]),
        'face_bbx_list': _cell([_cell([s.boxes.astype(np.int32) for s in by_event[e]]) for e in events]),
    }
    for j, attr in enumerate(ATTRIBUTES):
        base['%s_label_list' % attr] = _cell([_cell([s.attributes[:, j:j + 1].copy() for s in by_event[e]])
                                              for e in events])
    _savemat(os.path.join(directory, 'wider_face_val.mat'), base)
    for setting in ('easy', 'medium', 'hard'):
        gt = _cell([_cell([_gt_list(s, setting) for s in by_event[e]]) for e in events])
        _savemat(os.path.join(directory, 'wider_%s_val.mat' % setting), dict(base, gt_list=gt))


def _gt_list(sample, setting):
    """1-based indices (k, 1) of the faces that count in ``setting``."""
    h = sample.boxes[:, 3]
    attr = dict(zip(ATTRIBUTES, sample.attributes.T))
    keep = {'hard': np.ones(len(h), bool),
            'medium': h >= MEDIUM_MIN_HEIGHT,
            'easy': (h >= EASY_MIN_HEIGHT) & (attr['occlusion'] == 0) & (attr['blur'] < 2)}[setting]
    index = np.flatnonzero(keep) + 1
    return index.astype(_index_dtype(index)).reshape(-1, 1)


def _savemat(path, variables):
    with atomic_open(path, 'wb') as f:
        scipy.io.savemat(f, variables, do_compression=True)


def generate_widerface(root, num_train, num_val, num_test, seed=0, workers=None, overwrite=False):
    """Generate the three splits and the val ground truth under ``root``; returns seconds taken.

    Raises:
        OutputConflict: ``root`` already holds a data set and ``overwrite`` is False, or a
            file to be written is not one this generator wrote (see the module docstring).
    """
    root = os.fspath(root)
    manifest = _Manifest(root)
    manifest.claim(output_files(num_train, num_val, num_test, seed), overwrite)
    workers = workers or os.cpu_count() or 1
    start = time.perf_counter()
    for split, count in (('train', num_train), ('val', num_val), ('test', num_test)):
        if count <= 0:
            continue
        results = _render_split(root, split, count, seed, workers)
        samples = [sample for sample, _ in results]
        manifest.record({'%s/images/%s' % (split, sample.path): digest for sample, digest in results})
        write_label_file(split_paths(root, split)[0], _label_records(samples, split != 'test'))
        manifest.record_files(['%s/label.txt' % split])
        logger.info('%s: %d images, %d faces', split, count, sum(len(s.boxes) for s in samples))
        if split == 'val':
            write_ground_truth(os.path.join(root, 'ground_truth'), samples)
            manifest.record_files(_GROUND_TRUTH)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description='Generate a synthetic WIDER FACE-style data set '
                                                 '(RetinaFace label.txt layout + WIDER val .mat files).')
    parser.add_argument('--output', default='data/retinaface', help='output root (a fresh folder)')
    parser.add_argument('--overwrite', action='store_true',
                        help='regenerate in a folder this generator wrote before (only its own files are replaced)')
    parser.add_argument('--num-train', type=int, default=1000)
    parser.add_argument('--num-val', type=int, default=200)
    parser.add_argument('--num-test', type=int, default=50)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--workers', type=int, default=None, help='processes (default: CPU count)')
    args = parser.parse_args(argv)
    for name in ('num_train', 'num_val', 'num_test'):
        if getattr(args, name) < 0:
            parser.error('--%s must be >= 0' % name.replace('_', '-'))
    check_writable_dir(parser, args.output, '--output')
    setup_logging()
    try:
        seconds = generate_widerface(args.output, args.num_train, args.num_val, args.num_test, args.seed,
                                     args.workers, args.overwrite)
    except OutputConflict as err:
        parser.error('--output: %s' % err)
    print('wrote %s in %.1f s' % (args.output, seconds))


if __name__ == '__main__':
    main()
