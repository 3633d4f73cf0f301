"""RetinaFace's compiled anchor kernel (``anchors``); built in place by ``make`` or by ``pip install .``."""
