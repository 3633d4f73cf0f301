"""The cascade's sizes and default settings (the MXNet original's), shared by the nets, the
detector and the commands. No MXNet import here."""

__all__ = ['INPUT_SIZE', 'MIN_FACE_SIZE', 'THRESHOLDS', 'SCALE_FACTOR', 'LANDMARK_PARAM']

INPUT_SIZE = {'pnet': 12, 'rnet': 24, 'onet': 48}    # input side of each net, pixels

MIN_FACE_SIZE = 24              # pixels: the first pyramid level is the image scaled by 12 / MIN_FACE_SIZE
THRESHOLDS = (0.6, 0.7, 0.7)    # face probability a candidate needs at P-Net, R-Net, O-Net
SCALE_FACTOR = 0.709            # between consecutive pyramid levels
# The weight of the landmark branch; its presence in a checkpoint selects the branch.
LANDMARK_PARAM = {'pnet': 'conv4_3_weight', 'rnet': 'fc4_weight', 'onet': 'fc4_weight'}
