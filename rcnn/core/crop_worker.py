"""The per-sample work of ``CropLoader`` and its worker processes (no MXNet import here).

A sample is one roidb entry cropped by ``get_crop_image1`` and labelled by
``AA.assign_anchor_fpn``, written into a batch buffer at its position. Each sample
draws from its own generator seeded by (seed, epoch, roidb index), so batches do
not depend on the number of workers or on which worker did what.
"""
import ctypes
import signal

import cv2
import numpy as np

from rcnn.io.augment import crop_image, load_image, transform
from rcnn.io.rpn import AA, gt_label

__all__ = ['BatchLayout', 'sample_rng', 'shuffle_rng', 'fill_sample', 'worker_loop']


def sample_rng(seed, epoch, index):
    """Generator for roidb entry ``index`` in ``epoch``."""
    return np.random.default_rng([seed, 1, epoch, index])


def shuffle_rng(seed, epoch):
    """Generator for the image order of ``epoch`` (the tag 0 keeps it apart from ``sample_rng``)."""
    return np.random.default_rng([seed, 0, epoch])


class BatchLayout:
    """Float32 arrays of one batch packed in a flat buffer: 'data' (B, 3, S, S), then the labels.

    Args:
        shapes: list of (name, shape), shape including the batch dimension.
    """

    def __init__(self, shapes):
        self.spans = {}  # name -> (offset, shape) in float32 elements
        offset = 0
        for name, shape in shapes:
            self.spans[name] = (offset, tuple(shape))
            offset += int(np.prod(shape))
        self.size = offset

    def views(self, buffer):
        """{name: ndarray view} into ``buffer`` (anything exposing >= ``size`` float32s)."""
        flat = np.frombuffer(buffer, dtype=np.float32, count=self.size)
        return {name: flat[offset:offset + int(np.prod(shape))].reshape(shape)
                for name, (offset, shape) in self.spans.items()}


def fill_sample(roi_rec, rng, aa, cfg, views, pos):
    """Crop ``roi_rec`` and assign anchors (``get_crop_batch`` + ``assign_anchor_fpn``), writing
    data and labels straight into batch position ``pos`` of ``views``."""
    im, rec = crop_image(load_image(roi_rec), roi_rec, rng, cfg)
    transform(im, cfg.PIXEL_MEANS, cfg.PIXEL_STDS, cfg.PIXEL_SCALE, out=views['data'][pos:pos + 1])
    labels = aa.assign_anchor_fpn(gt_label(rec, cfg.FACE_LANDMARK), rec['im_info'][np.newaxis],
                                  landmark=cfg.FACE_LANDMARK)
    for name, value in labels.items():
        views[name][pos] = value[0]


def retain_freed_memory():
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it to the system.

    Every sample allocates the same large arrays (the resized image alone is up to
    ~20 MB). With the default thresholds each one is fresh zeroed pages, and the page
    faults of several workers at once cost more than the work on small VMs. No-op
    where ``mallopt`` is not available.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError, TypeError):  # not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)  # glibc's maximum on 64-bit systems
    mallopt(m_trim_threshold, 128 << 20)


def worker_loop(tasks, results, stop, roidb, cfg, feat_shapes, seed, buffers, layout):
    """Process (slot, pos, roidb index, epoch) tasks until a None task or ``stop`` is set.

    Reports (slot, pos, None) on success, (slot, pos, message) on failure; the
    message names the image.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and shuts workers down
    cv2.setNumThreads(1)  # parallelism comes from the processes
    retain_freed_memory()
    aa = AA(feat_shapes, cfg)
    slot_views = [layout.views(buffer) for buffer in buffers]
    while True:
        task = tasks.get()
        if task is None or stop.is_set():
            break
        slot, pos, index, epoch = task
        try:
            fill_sample(roidb[index], sample_rng(seed, epoch, index), aa, cfg, slot_views[slot], pos)
        except Exception as exc:  # reported to the parent, which raises it
            results.put((slot, pos, 'roidb entry %d (image %s): %s: %s'
                         % (index, roidb[index].get('image'), type(exc).__name__, exc)))
        else:
            results.put((slot, pos, None))
