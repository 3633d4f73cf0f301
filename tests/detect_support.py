"""What the tests of detect.py (``rcnn.commands.detect``) share: a stand-in detector for the
checks that must come before any work (test_detect.py, test_detect_video.py; the ``fake``
fixture of tests/rcnn/commands/conftest.py puts it in place), and a snapshot of a folder to show
that a refused run left it as it was."""
import numpy as np

from facekit.image import check_scales


class FakeRetinaFace:
    """Stands in for the RetinaFace of the command: one face per image, records its arguments."""
    instances = []

    def __init__(self, prefix, epoch, ctx_id=0, max_megapixels=None):
        self.kwargs = dict(prefix=prefix, epoch=epoch, ctx_id=ctx_id, max_megapixels=max_megapixels)
        self.images = []
        FakeRetinaFace.instances.append(self)

    def check_input(self, height, width, scales):
        return check_scales(height, width, scales, self.kwargs['max_megapixels'])

    def detect(self, img, threshold=0.5, scales=(1.0,), do_flip=False):
        self.images.append(img.shape)
        return np.array([[1.0, 1.0, 5.0, 5.0, 0.9]]), np.full((1, 5, 2), 3.0)


def tree(root):
    """{relative path: (is a link, bytes)} of everything under ``root``."""
    return {p.relative_to(root): (p.is_symlink(), p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob('*'))}
