"""The cascade's default settings (the MXNet original's), shared by ``MtcnnDetector`` and the
command lines; no MXNet import, so that argument parsing can show them before MXNet loads."""

__all__ = ['MIN_FACE_SIZE', 'THRESHOLDS', 'SCALE_FACTOR']

MIN_FACE_SIZE = 24              # pixels: the first pyramid level is the image scaled by 12 / MIN_FACE_SIZE
THRESHOLDS = (0.6, 0.7, 0.7)    # face probability a candidate needs at P-Net, R-Net, O-Net
SCALE_FACTOR = 0.709            # between consecutive pyramid levels
