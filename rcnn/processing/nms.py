"""NMS wrappers: functions of (N, 5) detections returning the kept indices."""
import logging

from rcnn.cython.cpu_nms import cpu_nms

logger = logging.getLogger(__name__)


def cpu_nms_wrapper(thresh):
    """NMS by the Cython ``cpu_nms``: IoU (+1 areas) above ``thresh`` is suppressed."""
    def _nms(dets):
        return cpu_nms(dets, thresh)
    return _nms


def gpu_nms_wrapper(thresh, device_id):
    """Compatibility: the original's GPU NMS entry point, for scripts that call it.

    This port ships no CUDA NMS kernel (NMS is a small fraction of detection time),
    so it warns and returns the CPU NMS, which gives identical results.
    """
    logger.warning('no CUDA NMS is built; using cpu_nms instead of gpu_nms on device %d', device_id)
    return cpu_nms_wrapper(thresh)
