"""The scenes of the synthetic images: themes, backgrounds, distractors, bodies, the camera, and
``render_image``, which draws image ``index`` of a split from ``(seed, split, index)`` alone."""
import dataclasses
import math

import cv2
import numpy as np

from facekit.boxes import pairwise_overlap
from rcnn.dataset.synthetic.faces import (MIN_FACE, blur_face, draw_head, draw_occluder, face_attributes,
                                          log_uniform, occlusion_fraction, sample_face)
from rcnn.dataset.synthetic.paint import HAIR, SHIFT, SKIN, bgr, ellipse, fx, poly, polyline

__all__ = ['SPLITS', 'Theme', 'THEMES', 'SyntheticImage', 'image_path', 'render_image']

SPLITS = {'train': 0, 'val': 1, 'test': 2}


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


def _place_faces(rng, theme, height, width):
    """Sample faces for a scene and place them without heavy overlap, largest first."""
    lo, hi = theme.heights
    hi = min(hi, height / 3)
    lo = min(lo, hi)
    count = int(rng.integers(theme.faces[0], theme.faces[1] + 1))
    placed = []
    for h in np.sort(log_uniform(rng, lo, hi, count))[::-1]:
        face = sample_face(rng, float(h))
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
        size = log_uniform(rng, 0.01, 0.5) * side
        x, y = rng.uniform(-0.1, 1.1) * width, rng.uniform(-0.1, 1.1) * height
        thickness = -1 if rng.random() < 0.7 else int(rng.integers(1, 6))
        kind = rng.integers(5)
        if kind == 0:
            poly(img, [(x, y), (x + size * rng.uniform(0.3, 2), y), (x + size * rng.uniform(0.3, 2), y + size),
                       (x, y + size)], colour)
        elif kind == 1:
            ellipse(img, (x, y), (size / 2, size / 2), 0, colour, thickness)
        elif kind == 2:
            ellipse(img, (x, y), (size / 2, size * rng.uniform(0.1, 0.6)), rng.uniform(0, 180), colour, thickness)
        elif kind == 3:
            poly(img, np.array([x, y]) + rng.uniform(-size, size, (int(rng.integers(3, 7)), 2)), colour)
        else:
            polyline(img, [(x, y), (x + rng.uniform(-side, side) / 3, y + rng.uniform(-side, side) / 3)],
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
        h = log_uniform(rng, MIN_FACE, height / 3)
        a, b = h / 2 * rng.uniform(0.6, 1.0), h / 2
        centre = (rng.uniform(0, w_img), rng.uniform(0, h_img))
        angle = rng.uniform(-40, 40)
        kind = rng.integers(4)
        if kind <= 1:
            skin = SKIN[rng.integers(len(SKIN))] * rng.uniform(0.6, 1.2)
            ellipse(img, centre, (a, b), angle, bgr(skin))
            if kind == 1:  # spots scattered at random, never in an eyes-nose-mouth layout
                for _ in range(int(rng.integers(1, 5))):
                    offset = rng.uniform(-0.7, 0.7, 2) * (a, b)
                    ellipse(img, np.add(centre, offset), (a * rng.uniform(0.05, 0.2),) * 2, 0,
                            bgr(skin, rng.uniform(0.2, 0.6)))
        elif kind == 2:
            hair = HAIR[rng.integers(len(HAIR))]
            ellipse(img, centre, (a * 1.1, b * 1.05), angle, bgr(hair))
        else:
            colour = rng.uniform(0, 255, 3)
            ellipse(img, centre, (b, b), 0, bgr(colour))
            ellipse(img, centre, (b * 0.6, b * 0.6), 0, bgr(colour, rng.uniform(0.4, 1.4)), 2)


def _draw_body(img, face):
    """Neck and torso under the head (drawn before any head)."""
    s = face.style
    neck = face.flat([-0.32, 0.32, 0.36, -0.36], [0.6, 0.6, 1.45, 1.45])
    poly(img, neck, bgr(s['skin'], face.brightness * s['shade']))
    torso = face.flat([-0.7, 0.7, 1.9, 2.1, -2.1, -1.9], [1.25, 1.25, 1.7, 5.0, 5.0, 1.7])
    poly(img, torso, bgr(s['clothes']))


def _foreground(rng, img, idmap):
    """Poles and cables in front of everything."""
    height, width = img.shape[:2]
    for _ in range(int(rng.integers(1, 4))):
        p0 = (rng.uniform(0, width), 0.0) if rng.random() < 0.5 else (0.0, rng.uniform(0, height))
        p1 = (rng.uniform(0, width), float(height)) if p0[1] == 0 else (float(width), rng.uniform(0, height))
        thickness = int(rng.integers(1, 7))
        polyline(img, [p0, p1], tuple(float(c) for c in rng.uniform(0, 255, 3)), thickness)
        cv2.line(idmap, tuple(int(c) for c in fx(p0)), tuple(int(c) for c in fx(p1)), 0, thickness,
                 cv2.LINE_8, SHIFT)


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
        draw_head(img, idmap, face, fid)
        if face.occluder != 'none':
            draw_occluder(rng, img, idmap, face)
        if face.blur_sigma > 0:
            blur_face(img, idmap, face, fid)
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
        attributes.append(face_attributes(face, occlusion_fraction(idmap, face, fid), y2 - y1))
    event, name = _event_and_name(k, index)
    return SyntheticImage(event=event, name=name, image=img, jpeg_quality=quality,
                          boxes=np.array(boxes, np.int64).reshape(-1, 4),
                          landmarks=np.array(landmarks, np.float32).reshape(-1, 5, 3),
                          blur=np.array(blur, np.float32), attributes=np.array(attributes, np.uint8).reshape(-1, 6),
                          yaw=np.degrees([f.yaw for f in faces]), roll=np.degrees([f.roll for f in faces]))


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
