"""NMS wrappers: functions of (N, 5) detections returning the kept indices.

NMS runs on the CPU on every device: the original's CUDA ``gpu_nms`` is not ported
(NMS is a small fraction of detection time, and the results are the same).
"""
from rcnn.cython.cpu_nms import cpu_nms


def cpu_nms_wrapper(thresh):
    """NMS by the Cython ``cpu_nms``: IoU (+1 areas) above ``thresh`` is suppressed."""
    def _nms(dets):
        return cpu_nms(dets, thresh)
    return _nms
