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

label.txt values (raw format, see ``facekit.labels``):
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
(How many faces each subset holds for seed 0: docs/benchmarks.md.)

Determinism: image ``index`` of ``split`` is drawn from
``np.random.default_rng([seed, split_id, index])`` alone, so any number of
worker processes gives byte-identical images and label files.

Modules: ``paint`` (fixed-point shapes, palettes), ``faces`` (heads, features, occluders),
``scene`` (themes, backgrounds, ``render_image``), ``writer`` (processes, label files, ``.mat``
files, the manifest, ``generate_widerface``); the command is ``rcnn/commands/synthetic.py``.

Nothing of the user's is replaced: ``<root>/synthetic_manifest.json`` lists every
file the generator wrote there, with its SHA-256. A folder that already holds a
``label.txt`` (any split) or ``ground_truth/`` is refused unless ``overwrite``;
even then, a file at a path to be written that the manifest does not list, or
whose content changed since, is an error naming it, before anything is written.
Paths about to be written are listed (without checksum) before the first write,
so a run that was stopped can be run again.
"""
from rcnn.dataset.synthetic.faces import ATTRIBUTES, MIN_FACE
from rcnn.dataset.synthetic.scene import SPLITS, THEMES, SyntheticImage, image_path, render_image
from rcnn.dataset.synthetic.writer import (EASY_MIN_HEIGHT, MANIFEST, MEDIUM_MIN_HEIGHT, OutputConflict,
                                           generate_widerface, output_files, write_ground_truth)

__all__ = ['THEMES', 'SPLITS', 'MIN_FACE', 'MEDIUM_MIN_HEIGHT', 'EASY_MIN_HEIGHT', 'ATTRIBUTES', 'MANIFEST',
           'OutputConflict', 'SyntheticImage', 'render_image', 'image_path', 'output_files', 'write_ground_truth',
           'generate_widerface']
