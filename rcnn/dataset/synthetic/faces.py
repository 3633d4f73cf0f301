"""The heads of the synthetic images: a face on a 3-D ellipsoid, its features, occluders and blur,
and the WIDER attributes and landmarks they give."""
import dataclasses
import math

import cv2
import numpy as np

from rcnn.dataset.synthetic.paint import HAIR, HEAD_RADIUS, IRIS, SKIN, bgr, both, ellipse, poly, polyline

__all__ = ['MIN_FACE', 'ATTRIBUTES', 'Face', 'log_uniform', 'sample_face', 'draw_head', 'draw_occluder', 'blur_face',
           'face_attributes', 'occlusion_fraction']

MIN_FACE = 8            # smallest face height, pixels
ATTRIBUTES = ('blur', 'expression', 'illumination', 'invalid', 'occlusion', 'pose')  # WIDER .mat label lists


@dataclasses.dataclass
class Face:
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
        return HEAD_RADIUS * max(self.a, self.b)

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


def log_uniform(rng, lo, hi, size=None):
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size))


def sample_face(rng, height):
    """Face parameters for a box about ``height`` px high, centre unset."""
    aspect = rng.uniform(0.72, 0.88)
    roll = math.radians(float(np.clip(rng.normal(0, 10), -30, 30)))
    # Box height of a rotated ellipse: 2 * b * sqrt((a/b)^2 sin^2 + cos^2).
    b = height / 2 / math.hypot(aspect * math.sin(roll), math.cos(roll))
    layout = dict(eye_u=rng.uniform(0.32, 0.40), eye_v=rng.uniform(-0.22, -0.10),
                  nose_v=rng.uniform(0.12, 0.20), nose_lift=rng.uniform(0.15, 0.3),
                  mouth_u=rng.uniform(0.24, 0.33), mouth_v=rng.uniform(0.46, 0.56))
    skin = SKIN[rng.integers(len(SKIN))] + rng.uniform(-12, 12, 3)
    mouth = rng.choice(['closed', 'smile', 'open', 'wide'], p=[0.45, 0.3, 0.2, 0.05])
    style = dict(skin=skin, hair=HAIR[rng.integers(len(HAIR))] * rng.uniform(0.85, 1.15),
                 hair_style=rng.choice(['short', 'long', 'bald', 'fringe'], p=[0.35, 0.25, 0.1, 0.3]),
                 iris=IRIS[rng.integers(len(IRIS))], eyes_closed=rng.random() < 0.05, mouth=str(mouth),
                 beard=rng.random() < 0.1, hat=rng.random() < 0.08,
                 clothes=rng.uniform(20, 235, 3), shade=rng.uniform(0.78, 0.92),
                 light=rng.uniform(-0.35, 0.35))
    brightness = float(rng.choice([rng.uniform(0.8, 1.15), rng.uniform(0.5, 0.62), rng.uniform(1.35, 1.5)],
                                  p=[0.9, 0.06, 0.04]))
    blur = rng.choice([0.0, rng.uniform(0.012, 0.035), rng.uniform(0.035, 0.06)], p=[0.65, 0.25, 0.10])
    occluder = str(rng.choice(['none', 'mask', 'sunglasses', 'glasses', 'hand', 'object'],
                              p=[0.8, 0.04, 0.03, 0.04, 0.03, 0.06]))
    return Face(cx=0.0, cy=0.0, a=aspect * b, b=b, roll=roll,
                yaw=math.radians(float(np.clip(rng.normal(0, 16), -45, 45))),
                pitch=math.radians(float(np.clip(rng.normal(0, 6), -15, 15))),
                layout=layout, style=style, brightness=brightness, blur_sigma=float(blur * height),
                occluder=occluder)


def draw_head(img, idmap, face, fid):
    """Draw one head into ``img`` and mark its pixels ``fid`` in ``idmap``."""
    s, L, k = face.style, face.layout, face.brightness
    angle = math.degrees(face.roll)
    skin = bgr(s['skin'], k)
    hair = bgr(s['hair'], k)
    centre = (face.cx, face.cy)
    yaw_shift = -0.2 * math.sin(face.yaw)  # the back of the head shows on the far side

    if s['hair_style'] in ('short', 'fringe'):
        both(img, idmap, fid, ellipse, face.flat(yaw_shift, -0.14), (1.1 * face.a, 1.1 * face.b), angle,
             colour=hair)
    elif s['hair_style'] == 'long':
        both(img, idmap, fid, ellipse, face.flat(yaw_shift, 0.05), (1.2 * face.a, 1.26 * face.b), angle,
             colour=hair)
    if abs(face.yaw) < math.radians(25):
        for side in (-1, 1):
            both(img, idmap, fid, ellipse, face.flat(side * 0.97, -0.02), (0.14 * face.a, 0.24 * face.b),
                 angle, colour=bgr(s['skin'], k * s['shade']))
    # Two-tone skin: a darker rim and a lighter, off-centre core give the head some volume.
    both(img, idmap, fid, ellipse, centre, (face.a, face.b), angle, colour=bgr(s['skin'], k * s['shade']))
    ellipse(img, face.flat(s['light'] * 0.2, -0.05), (0.86 * face.a, 0.9 * face.b), angle, skin)
    if s['hair_style'] == 'fringe':
        t = np.linspace(math.pi + 0.45, 2 * math.pi - 0.45, 12)
        u = np.concatenate([np.cos(t), np.linspace(0.8, -0.8, 9)])
        v = np.concatenate([np.sin(t), -0.58 - 0.12 * (1 - np.linspace(0.8, -0.8, 9) ** 2)])
        poly(img, face.flat(u, v), hair)
    if s['hat']:
        ellipse(img, face.flat(0, -0.95), (1.15 * face.a, 0.55 * face.b), angle, bgr(s['clothes'], 0.7))
        ellipse(img, face.flat(0, -0.68), (1.35 * face.a, 0.1 * face.b), angle, bgr(s['clothes'], 0.5))

    _draw_eyes(img, face, angle)
    _draw_nose(img, face, angle)
    _draw_mouth(img, face)
    if s['beard']:
        u = np.linspace(-0.85, 0.85, 13)
        chin = np.sqrt(np.maximum(1 - u ** 2, 0)) * 0.98
        lower = L['mouth_v'] + 0.12 + 0.05 * np.cos(u * 2)
        poly(img, face.surface(np.concatenate([u, u[::-1]]), np.concatenate([lower, chin[::-1]])), hair)


def _draw_eyes(img, face, angle):
    s, L, k = face.style, face.layout, face.brightness
    dark = bgr(s['hair'], 0.6 * k)
    for side in (-1, 1):
        u, v = side * L['eye_u'], L['eye_v']
        # Brow: an arched stroke above the eye.
        bu = u + np.linspace(-0.19, 0.19, 7)
        bv = v - 0.2 - 0.05 * (1 - np.linspace(-1, 1, 7) ** 2)
        polyline(img, face.surface(bu, bv), dark, 0.06 * face.b)
        centre = face.surface([u], [v])[0]
        fore = face.foreshortening(u, v, 0.17)
        half = (0.17 * face.a * fore, 0.075 * face.b)
        if s['eyes_closed']:
            polyline(img, face.surface(u + np.linspace(-0.17, 0.17, 5), v + 0.02 * np.array([0, 1, 1.3, 1, 0])),
                     (20, 20, 20), 0.03 * face.b)
            continue
        ellipse(img, centre, half, angle, bgr((235, 235, 230), k))
        ellipse(img, centre, (0.07 * face.b * max(fore, 0.5), 0.07 * face.b), angle, bgr(s['iris'], k))
        ellipse(img, centre, (0.035 * face.b, 0.035 * face.b), angle, (10, 10, 10))
        ellipse(img, centre, half, angle, (25, 25, 30), max(1, int(round(0.02 * face.b))))


def _draw_nose(img, face, angle):
    s, L, k = face.style, face.layout, face.brightness
    tip_v, lift = L['nose_v'], L['nose_lift']
    ridge = face.surface(np.zeros(5), np.linspace(L['eye_v'], tip_v, 5), lift=np.linspace(0, lift, 5))
    polyline(img, ridge, bgr(s['skin'], k * s['shade'] * 0.9), 0.035 * face.a)
    tip = face.surface([0.0], [tip_v], lift=lift)[0]
    ellipse(img, tip, (0.12 * face.a, 0.055 * face.b), angle, bgr(s['skin'], k * s['shade'] * 0.92))
    for side in (-1, 1):
        nostril = face.surface([side * 0.075], [tip_v + 0.035], lift=lift * 0.7)[0]
        ellipse(img, nostril, (0.04 * face.a, 0.022 * face.b), angle, bgr(s['skin'], k * 0.35))


def _draw_mouth(img, face):
    s, L, k = face.style, face.layout, face.brightness
    mu, mv = L['mouth_u'], L['mouth_v']
    t = np.linspace(-1, 1, 11)
    bulge = 1 - t ** 2
    smile = {'closed': 0.0, 'smile': 0.06, 'open': 0.03, 'wide': 0.02}[s['mouth']]
    gap = {'closed': 0.0, 'smile': 0.015, 'open': 0.06, 'wide': 0.16}[s['mouth']]
    upper = mv - 0.05 * bulge + smile * bulge
    lower = mv + (0.07 + gap) * bulge + smile * bulge
    lips = bgr(s['skin'] * np.array([1.0, 0.55, 0.55]), k * 0.85)
    u = mu * t
    poly(img, face.surface(np.concatenate([u, u[::-1]]), np.concatenate([upper, lower[::-1]])), lips)
    if gap > 0:
        inner_u = 0.8 * u
        top = mv + smile * bulge + 0.005
        bottom = top + gap * bulge
        poly(img, face.surface(np.concatenate([inner_u, inner_u[::-1]]), np.concatenate([top, bottom[::-1]])),
             (30, 20, 40))
    polyline(img, face.surface(u, mv + smile * bulge), bgr(s['skin'], k * 0.35), 0.015 * face.b)


def draw_occluder(rng, img, idmap, face):
    """Something in front of the face; its pixels belong to nobody (0) in ``idmap``."""
    angle = math.degrees(face.roll)
    L = face.layout
    colour = tuple(float(c) for c in rng.uniform(0, 255, 3))

    if face.occluder == 'mask':
        top = rng.uniform(0.25, 0.42)
        both(img, idmap, 0, poly, face.flat([-1.02, 1.02, 0.85, -0.85], [top, top, 1.0, 1.0]), colour=colour)
    elif face.occluder in ('sunglasses', 'glasses'):
        for side in (-1, 1):
            centre = face.surface([side * L['eye_u']], [L['eye_v']])[0]
            axes = (0.22 * face.a, 0.14 * face.b)
            if face.occluder == 'sunglasses':
                both(img, idmap, 0, ellipse, centre, axes, angle, colour=(15, 15, 15))
            else:  # clear lenses: only the frame hides anything
                both(img, idmap, 0, ellipse, centre, axes, angle, colour=colour,
                     thickness=max(1, int(round(0.025 * face.b))))
    elif face.occluder == 'hand':
        skin = SKIN[rng.integers(len(SKIN))] * face.brightness
        centre = face.flat(rng.uniform(-0.8, 0.8), rng.uniform(0.3, 1.0))
        both(img, idmap, 0, ellipse, centre, (0.45 * face.a, 0.6 * face.b), rng.uniform(0, 180), colour=bgr(skin))
    else:
        centre = face.flat(*rng.uniform(-0.9, 0.9, 2))
        size = rng.uniform(0.25, 0.55)
        both(img, idmap, 0, ellipse, centre, (size * face.a, size * face.b * rng.uniform(0.5, 1.5)),
             rng.uniform(0, 180), colour=colour)


def blur_face(img, idmap, face, fid):
    """Blur the head's own pixels (feathered) by its sigma."""
    r = face.radius
    x0, y0 = max(int(face.cx - r), 0), max(int(face.cy - r), 0)
    x1, y1 = min(int(face.cx + r) + 1, img.shape[1]), min(int(face.cy + r) + 1, img.shape[0])
    roi = img[y0:y1, x0:x1]
    mask = cv2.GaussianBlur((idmap[y0:y1, x0:x1] == fid).astype(np.float32), (0, 0), face.blur_sigma)[:, :, None]
    blurred = cv2.GaussianBlur(roi, (0, 0), face.blur_sigma)
    roi[:] = np.round(roi * (1 - mask) + blurred * mask).astype(np.uint8)


def face_attributes(face, occlusion, height):
    """WIDER attribute labels (blur, expression, illumination, invalid, occlusion, pose)."""
    rel = face.blur_sigma / height
    return (0 if rel < 0.012 else 1 if rel < 0.035 else 2,
            int(face.style['mouth'] == 'wide'),
            int(face.brightness < 0.65 or face.brightness > 1.3),
            0,
            0 if occlusion < 0.01 else 1 if occlusion < 0.35 else 2,
            int(abs(face.yaw) > math.radians(35) or abs(face.roll) > math.radians(25)))


def occlusion_fraction(idmap, face, fid):
    """Fraction of the skin ellipse not showing this face at the end."""
    x1, y1, x2, y2 = face.box().astype(int)
    x1, y1 = max(x1 - 1, 0), max(y1 - 1, 0)
    region = idmap[y1:y2 + 2, x1:x2 + 2]
    mask = np.zeros(region.shape, np.uint8)
    ellipse(mask, (face.cx - x1, face.cy - y1), (face.a, face.b), math.degrees(face.roll), 1, line=cv2.LINE_8)
    inside = mask.astype(bool)
    return float(np.mean(region[inside] != fid)) if inside.any() else 0.0
