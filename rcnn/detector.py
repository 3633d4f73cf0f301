"""RetinaFace face detector on an MXNet checkpoint (``prefix-symbol.json`` + ``prefix-%04d.params``)
or on its ONNX export (``RetinaFace.from_onnx``).

Gives the detections of the original ``RetinaFace.detect`` (``retinaface.py``) on the
released models and on checkpoints written by ``train.py``, with less work around the
network: executors are bound once per input shape, the image becomes the RGB float tensor
in one vectorised copy, anchors are cached per feature-map size, and only the anchors
above the threshold are decoded. ``detect_batch`` stacks the inputs of one shape (video
frames) into one forward and post-processes each image as ``detect`` does. Every detector
shares everything but the network's forward (``RetinaFace.net``): this module imports no
MXNet, and a detector on an ONNX export runs without it; a checkpoint's forward
(``facekit.mx.executor``) loads MXNet.

Boxes are x1, y1, x2, y2 in pixels of the input image (+1 convention), landmarks
are 5 (x, y) points: left eye, right eye, nose, left and right mouth corners.
"""
import logging
import numbers

import cv2
import numpy as np

from facekit.boxes import cpu_nms_wrapper, pairwise_overlap
from facekit.image import MAX_MEGAPIXELS, check_image, check_megapixels, check_scales, input_shape, nocrop_shape
from facekit.ort import OnnxForward
from facekit.prefix import symbol_path
from rcnn.contract import (BBOX_PRED_LEN, DEFAULT_ANCHORS, LANDMARK_FLIP_ORDER, LANDMARK_POINTS, LANDMARK_PRED_LEN,
                           anchor_settings, anchors_from_json, recorded_anchors, same_anchors)
from rcnn.processing.bbox_transform import clip_boxes, landmark_pred, nonlinear_pred
from rcnn.processing.generate_anchor import anchors_plane, generate_anchors_fpn

__all__ = ['MAX_BATCH', 'RetinaFace', 'bbox_vote']

logger = logging.getLogger(__name__)

_MAX_VOTE_DETECTIONS = 750
# Network inputs per forward in ``detect_batch`` unless told otherwise, and detect.py's --batch (README:
# "Video, batches and blurring").
MAX_BATCH = 8


def detector_anchors(network, recorded, source):
    """Strides and anchor configuration for a detector: the model's record, else ``network``.

    Args:
        network: an anchor layout name (``rcnn.contract.ANCHOR_PRESETS``) or None
            (the record, else the released models' layout).
        recorded: the anchors the model records (``rcnn.contract.recorded_anchors``), or None.
        source: the model's file, named in errors.

    Raises:
        ValueError: ``network`` is given and differs from the layout the model records.
    """
    if network is None:
        return recorded or anchor_settings(DEFAULT_ANCHORS)
    named = anchor_settings(network)
    if recorded is not None and not same_anchors(recorded, named):
        raise ValueError('%s records anchors %s, but network=%r has %s; pass network=None to use the recorded ones'
                         % (source, recorded[1], network, named[1]))
    return named


def _probability(value, name):
    """``value`` as a float in [0, 1], else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError('%s must be a number in [0, 1], got %r' % (name, value))
    return float(value)


def bbox_vote(det, threshold):
    """Bounding-box voting of score-sorted (N, 5) detections, as the original.

    Repeatedly takes the top box and every box with IoU >= ``threshold`` to it
    (itself included): a cluster of two or more becomes the score-weighted mean box
    with the cluster's maximum score; a lone top box is dropped unless it is the
    last box left. Returns at most 750 rows (M, 5) float64.
    """
    det = np.asarray(det, dtype=np.float64)
    kept = []
    while det.shape[0] > 0:
        merge = pairwise_overlap(det[:1], det)[0] >= threshold
        cluster = det[merge]
        det = det[~merge]
        if cluster.shape[0] <= 1:
            if det.shape[0] == 0:
                kept.append(cluster)
            continue
        scores = cluster[:, 4:5]
        merged = np.empty((1, 5))
        merged[:, 0:4] = np.sum(cluster[:, 0:4] * scores, axis=0) / np.sum(scores)
        merged[:, 4] = cluster[:, 4].max()
        kept.append(merged)
    if not kept:
        return np.zeros((0, 5))
    return np.vstack(kept)[:_MAX_VOTE_DETECTIONS]


class RetinaFace:
    """Face detector; see ``detect`` and ``detect_batch``. One call at a time per instance (the
    bound executors and their input buffers are reused).

    Args:
        prefix, epoch: checkpoint ``prefix-symbol.json`` + ``prefix-%04d.params``.
        ctx_id: GPU id, or -1 for the CPU.
        network: anchor layout name (``rcnn.contract.ANCHOR_PRESETS``, e.g. 'net3' for
            the released models); None takes the layout the checkpoint records
            (``train.py`` checkpoints do), else 'net3'. A name that disagrees with the
            record is an error.
        nms: NMS IoU threshold (also the bbox-voting threshold).
        nocrop: pad the network input with zeros to a multiple of 32.
        decay4: factor on the scores of stride 4 (layouts with a stride-4 level).
        vote: bbox voting instead of NMS (no landmarks returned).
        max_megapixels: largest network input ``detect`` accepts, in megapixels (H x W / 1e6 of a
            scaled, and with ``nocrop`` padded, image; default ``MAX_MEGAPIXELS``, 20).

    Raises:
        facekit.mx.runtime.DeviceError (a ValueError): GPU ``ctx_id`` is not available here.
    """

    # Input shapes whose executors stay bound.
    max_cached_shapes = 8

    def __init__(self, prefix, epoch, ctx_id=0, network=None, nms=0.4, nocrop=False, decay4=0.5, vote=False,
                 max_megapixels=MAX_MEGAPIXELS):
        # MXNet is needed by checkpoints only: the ONNX detector (from_onnx) runs without it.
        from facekit.mx.executor import checkpoint_forward
        max_megapixels = check_megapixels(max_megapixels)
        forward = checkpoint_forward(prefix, epoch, ctx_id, max_shapes=self.max_cached_shapes)
        self._setup(forward, recorded_anchors(forward.symbol), symbol_path(prefix), network, nms, nocrop, decay4,
                    vote, max_megapixels)
        self.ctx_id = ctx_id
        self.ctx = forward.ctx

    @classmethod
    def from_onnx(cls, path, network=None, nms=0.4, nocrop=False, decay4=0.5, vote=False,
                  max_megapixels=MAX_MEGAPIXELS, threads=None):
        """The detector on an ONNX export (``tools/export_onnx.py retinaface``), run by onnxruntime
        on the CPU (``facekit.ort.OnnxForward``; ``threads`` intra-op threads, default one
        per usable CPU). ``detect`` and the other arguments are the MXNet detector's; the
        anchors are the ones the export records, as for a checkpoint. A static-shape export
        detects only on images whose network input has exactly its size.
        """
        max_megapixels = check_megapixels(max_megapixels)
        forward = OnnxForward(path, threads=threads)
        recorded = forward.metadata.get('anchors')
        detector = cls.__new__(cls)
        detector._setup(forward, recorded and anchors_from_json(recorded), path, network, nms, nocrop, decay4, vote,
                        max_megapixels)
        detector.ctx_id, detector.ctx = -1, None
        return detector

    def _setup(self, forward, recorded, source, network, nms, nocrop, decay4, vote, max_megapixels):
        """Everything but the network: anchors, output layout and post-processing settings.

        ``forward`` becomes ``self.net``: it maps a float32 (B, 3, H, W) RGB input to the
        deploy outputs (``rcnn.contract``) as NumPy arrays of B rows, and offers
        ``input_buffer(shape)``, ``output_names`` and ``output_shapes(input_shape)``.
        """
        self.max_megapixels = max_megapixels
        strides, anchor_cfg = detector_anchors(network, recorded, source)
        num_outputs = len(forward.output_names)
        per_stride = num_outputs // len(strides)
        if num_outputs % len(strides) or per_stride not in (2, 3):
            raise ValueError('%s has %d outputs; with anchor strides %s the detector needs 2 or 3 per stride'
                             % (source, num_outputs, strides))
        self.net = forward
        self._feat_stride_fpn = strides
        base_anchors = generate_anchors_fpn(dense_anchor=False, cfg=anchor_cfg)
        self._anchors_fpn = {s: a.astype(np.float32) for s, a in zip(strides, base_anchors)}
        self._num_anchors = {s: a.shape[0] for s, a in self._anchors_fpn.items()}
        self._anchor_planes = {}
        self._outputs_per_stride = per_stride
        self.use_landmarks = per_stride == 3
        self._check_layout(source, network or ('recorded in the model' if recorded else DEFAULT_ANCHORS))
        self.nms_threshold = nms
        self.nms = cpu_nms_wrapper(nms)
        self.nocrop = nocrop
        self.decay4 = decay4
        self.vote = vote

    def _check_layout(self, source, layout):
        """ValueError unless the network's outputs have, per stride, the channels the anchor layout
        needs (2A, 4A, 10A) and the feature-map size of that stride (on a 64 x 64 input, or on
        the input size of a static export)."""
        static = getattr(self.net, 'input_shape', None)
        height, width = static[2:] if static and None not in static else (64, 64)
        shapes = self.net.output_shapes((1, 3, height, width))
        lengths = (2, BBOX_PRED_LEN, LANDMARK_PRED_LEN)[:self._outputs_per_stride]
        for level, stride in enumerate(self._feat_stride_fpn):
            anchors = self._num_anchors[stride]
            for k, length in enumerate(lengths):
                index = level * self._outputs_per_stride + k
                name, shape = self.net.output_names[index], tuple(shapes[index][1:])
                expected = (length * anchors, -(-height // stride), -(-width // stride))
                if shape != expected:
                    raise ValueError('%s: output %s is (C, H, W) = %s on a %dx%d input, but anchor layout %s needs '
                                     '%s at stride %d (%d anchors per position): a model of another layout?'
                                     % (source, name, shape, width, height, layout, expected, stride, anchors))

    def _anchor_plane(self, stride, height, width):
        """(H*W*A, 4) float32 anchors of a stride's H x W feature map, computed once per size."""
        key = (stride, height, width)
        plane = self._anchor_planes.get(key)
        if plane is None:
            plane = anchors_plane(height, width, stride, self._anchors_fpn[stride]).reshape(-1, 4)
            self._anchor_planes[key] = plane
        return plane

    def _forward(self, ims):
        """Network outputs (NumPy, (B, C, h, w) each) for B BGR images of one shape (H, W, 3), fed as
        RGB float32 (B, 3, H, W) in one forward."""
        buffer = self.net.input_buffer((len(ims), 3) + ims[0].shape[:2])
        for row, im in zip(buffer, ims):
            row[...] = im.transpose(2, 0, 1)[::-1]
        return self.net(buffer)

    def _decode(self, net_out, im_shape, threshold):
        """Candidates of one image's network outputs ``net_out`` ((C, h, w) each, one row of a
        batch): the anchors whose face probability is >= threshold.

        Returns:
            boxes (n, 4) float64 clipped to ``im_shape``, scores (n, 1) float32 (stride 4
            times ``decay4``), landmarks (n, 5, 2) float32 or None; strides in order, anchors
            in (h, w, a) order within a stride, as the original concatenates them.
        """
        scores, anchors, box_deltas, landmark_deltas = [], [], [], []
        for level, stride in enumerate(self._feat_stride_fpn):
            outs = net_out[level * self._outputs_per_stride:(level + 1) * self._outputs_per_stride]
            num_anchors = self._num_anchors[stride]
            _, height, width = outs[1].shape
            # Face probabilities (channels A..2A-1) in the (h, w, a) order of the anchors.
            level_scores = outs[0][num_anchors:].transpose(1, 2, 0).reshape(-1, 1)
            keep = np.flatnonzero(level_scores[:, 0] >= threshold)
            if keep.size == 0:
                continue
            level_scores = level_scores[keep]
            if stride == 4 and self.decay4 < 1.0:
                level_scores *= self.decay4
            scores.append(level_scores)
            anchors.append(self._anchor_plane(stride, height, width)[keep])
            # Only the kept anchors' deltas: channel a * len + k at position h * W + w.
            anchor_idx, position = keep % num_anchors, keep // num_anchors
            box_deltas.append(outs[1].reshape(num_anchors, -1, height * width)[anchor_idx, :, position])
            if self.use_landmarks and not self.vote:
                landmark_deltas.append(outs[2].reshape(num_anchors, -1, height * width)[anchor_idx, :, position])
        if not scores:
            return None
        anchors = np.vstack(anchors)
        boxes = clip_boxes(nonlinear_pred(anchors, np.vstack(box_deltas)), im_shape)
        landmarks = None
        if landmark_deltas:
            landmarks = landmark_pred(anchors, np.vstack(landmark_deltas).reshape(len(anchors), LANDMARK_POINTS, 2))
        return boxes, np.vstack(scores), landmarks

    def check_input(self, height, width, scales):
        """``check_scales`` with this detector's ``max_megapixels`` and ``nocrop``; for a static
        ONNX export, also that every scale gives the network input it takes. Returns the scales
        as floats; ValueError otherwise."""
        scales = check_scales(height, width, scales, self.max_megapixels, self.nocrop)
        static = getattr(self.net, 'input_shape', None)
        if static and None not in static:
            for scale in scales:
                shape = input_shape(height, width, scale, self.nocrop)
                if shape != tuple(static[2:]):
                    raise ValueError('scale %g turns the %dx%d image into a %dx%d network input, but %s takes only '
                                     '%dx%d (a static export; export with dynamic sizes to detect on any image)'
                                     % (scale, width, height, shape[1], shape[0], self.net.path, static[3],
                                        static[2]))
        return scales

    def detect(self, img, threshold=0.5, scales=(1.0,), do_flip=False):
        """Faces in a BGR uint8 image (H, W, 3).

        For every scale (cv2 INTER_LINEAR unless 1.0) and, with ``do_flip``, its mirror:
        the face probability of every anchor, boxes decoded and clipped to the network
        input, kept at probability >= ``threshold`` (then stride-4 scores times
        ``decay4``), mapped back to the image; then NMS (or bbox voting) over all.

        Args:
            img: BGR uint8 (H, W, 3).
            threshold: face probability in [0, 1].
            scales: non-empty list of finite resize factors > 0, each giving a network input
                of at most ``max_megapixels`` (``check_scales``).

        Returns:
            det: (N, 5) float64 x1, y1, x2, y2, score by descending score;
            landmarks: (N, 5, 2) float32, or None with ``vote`` or a model without landmarks.

        Raises:
            ValueError for any other argument, before any work.
        """
        check_image(img, 'RetinaFace.detect')
        return self.detect_batch([img], threshold, scales, do_flip)[0]

    def detect_batch(self, images, threshold=0.5, scales=(1.0,), do_flip=False, max_batch=MAX_BATCH):
        """``detect`` on several images, the network inputs of one shape stacked into one forward.

        Each image's (det, landmarks) is what ``detect`` gives for it: the same decoding and
        NMS per image; only the forward runs on up to ``max_batch`` inputs at once (the images
        of one size at one scale, and their mirrors). A static ONNX export takes its fixed
        batch (1) per forward.

        Args:
            images: a sequence of BGR uint8 images (H, W, 3), of one size or several.
            threshold, scales, do_flip: as for ``detect``, the same for every image.
            max_batch: most network inputs per forward, an integer >= 1 (memory grows with it:
                a float32 copy of each input).

        Returns:
            a list with one (det (N, 5), landmarks (N, 5, 2) or None) per image, in order.

        Raises:
            ValueError for a bad argument or image (named by its index), before any work.
        """
        images = list(images)
        for index, img in enumerate(images):
            check_image(img, 'RetinaFace.detect_batch (image %d)' % index)
        threshold = _probability(threshold, 'threshold')
        if isinstance(max_batch, bool) or not isinstance(max_batch, numbers.Integral) or max_batch < 1:
            raise ValueError('max_batch must be an integer >= 1, got %r' % (max_batch,))
        for height, width in sorted({img.shape[:2] for img in images}):
            scales = self.check_input(height, width, scales)
        static = getattr(self.net, 'input_shape', (None,))[0]
        max_batch = min(max_batch, static or max_batch)
        candidates = [[] for _ in images]
        for im_scale in scales:
            # Every network input of this scale: (image index, flipped, input).
            inputs = []
            for index, img in enumerate(images):
                scaled = img if im_scale == 1.0 else cv2.resize(img, None, None, fx=im_scale, fy=im_scale,
                                                                interpolation=cv2.INTER_LINEAR)
                for flip in ([False, True] if do_flip else [False]):
                    im = scaled[:, ::-1, :] if flip else scaled
                    inputs.append((index, flip, self._pad_to_32(im) if self.nocrop else im))
            outputs = self._forward_grouped([im for _, _, im in inputs], max_batch)
            for (index, flip, im), net_out in zip(inputs, outputs):
                found = self._decode(net_out, im.shape, threshold)
                if found is not None:
                    candidates[index].append(self._to_image(found, im.shape[1], flip, im_scale))
        return [self._merge(found) for found in candidates]

    def _forward_grouped(self, ims, max_batch):
        """Each input's network outputs ((C, h, w) NumPy arrays), in order: the inputs of one shape
        run in forwards of up to ``max_batch``."""
        groups = {}
        for position, im in enumerate(ims):
            groups.setdefault(im.shape, []).append(position)
        outputs = [None] * len(ims)
        for positions in groups.values():
            for start in range(0, len(positions), max_batch):
                chunk = positions[start:start + max_batch]
                net_out = self._forward([ims[p] for p in chunk])
                for row, position in enumerate(chunk):
                    outputs[position] = [out[row] for out in net_out]
        return outputs

    @staticmethod
    def _to_image(found, width, flip, im_scale):
        """``_decode``'s candidates of a network input ``width`` pixels wide, mirrored back if ``flip``
        and divided by the scale: pixels of the image. With nocrop ``width`` is the padded
        input's: the original mirrors in its width too."""
        boxes, scores, landmarks = found
        if flip:
            boxes[:, [0, 2]] = width - boxes[:, [2, 0]] - 1
        boxes /= im_scale
        if landmarks is not None:
            if flip:
                landmarks[:, :, 0] = width - landmarks[:, :, 0] - 1
                landmarks = landmarks[:, LANDMARK_FLIP_ORDER]
            landmarks /= im_scale
        return boxes, scores, landmarks

    def _merge(self, candidates):
        """One image's detections from the candidates of all its passes (in scale, flip order):
        sorted by score, then NMS (or bbox voting)."""
        if not candidates:
            return np.zeros((0, 5)), (np.zeros((0, 5, 2)) if self.use_landmarks else None)
        boxes = np.vstack([boxes for boxes, _, _ in candidates])
        scores = np.vstack([scores for _, scores, _ in candidates])
        order = scores.ravel().argsort()[::-1]
        pre_det = np.hstack((boxes[order], scores[order])).astype(np.float32, copy=False)
        if self.vote:
            return bbox_vote(pre_det, self.nms_threshold), None
        keep = self.nms(pre_det)
        landmarks = None
        if self.use_landmarks:
            landmarks = np.vstack([marks for _, _, marks in candidates])[order].astype(np.float32, copy=False)[keep]
        return pre_det[keep].astype(np.float64), landmarks

    @staticmethod
    def _pad_to_32(im):
        """Zero-pad (bottom, right) to multiples of 32, as float32 (the original's nocrop input)."""
        padded = np.zeros(nocrop_shape(*im.shape[:2]) + (3,), dtype=np.float32)
        padded[:im.shape[0], :im.shape[1]] = im
        return padded

    def detect_center(self, img, threshold=0.5, scales=(1.0,), do_flip=False):
        """The detection that is largest and closest to the image centre (area minus twice the
        squared centre offset), as (box (5,), landmarks (5, 2) or None); (None, None) if no face."""
        det, landmarks = self.detect(img, threshold, scales, do_flip)
        if det.shape[0] == 0:
            return None, None
        index = 0
        if det.shape[0] > 1:
            img_center = np.asarray(img.shape[:2]) / 2
            area = (det[:, 2] - det[:, 0]) * (det[:, 3] - det[:, 1])
            offsets = np.vstack([(det[:, 0] + det[:, 2]) / 2 - img_center[1],
                                 (det[:, 1] + det[:, 3]) / 2 - img_center[0]])
            index = np.argmax(area - np.sum(offsets ** 2, axis=0) * 2.0)
        return det[index], (None if landmarks is None else landmarks[index])

    @staticmethod
    def check_large_pose(landmark, bbox):
        """Classify a face's pose from its landmarks (5, 2) and box (4,) as the original.

        Returns:
            (ret, left_score, right_score, up_score, down_score); ret is 0 frontal,
            1 turned left, 2 turned right, 3 looking up, 4 looking down.
        """
        landmark = np.asarray(landmark, dtype=np.float32)
        if landmark.shape != (5, 2) or len(bbox) != 4:
            raise ValueError('check_large_pose expects landmark (5, 2) and bbox of 4 values, got %s and %d'
                             % (landmark.shape, len(bbox)))

        def angle(base, x, y):
            # Signed angle (degrees) from base->x to base->y, image y pointing up.
            vx, vy = x - base, y - base
            d = np.degrees(np.arctan2(-vy[1], vy[0]) - np.arctan2(-vx[1], vx[0]))
            if d < -180.0:
                d += 360.0
            elif d > 180.0:
                d -= 360.0
            return d

        lm = landmark
        theta1 = angle(lm[0], lm[3], lm[2])
        theta2 = angle(lm[1], lm[2], lm[4])
        theta3 = angle(lm[0], lm[2], lm[1])
        theta4 = angle(lm[1], lm[0], lm[2])
        theta5 = angle(lm[3], lm[4], lm[2])
        theta6 = angle(lm[4], lm[2], lm[3])
        theta7 = angle(lm[3], lm[2], lm[0])
        theta8 = angle(lm[4], lm[1], lm[2])
        left_score = right_score = 0.0
        if theta1 <= 0.0:
            left_score = 10.0
        elif theta2 <= 0.0:
            right_score = 10.0
        else:
            left_score, right_score = theta2 / theta1, theta1 / theta2
        up_score = 10.0 if theta3 <= 10.0 or theta4 <= 10.0 else max(theta1 / theta3, theta2 / theta4)
        down_score = 10.0 if theta5 <= 10.0 or theta6 <= 10.0 else max(theta7 / theta5, theta8 / theta6)
        mleft = (lm[0][0] + lm[3][0]) / 2
        mright = (lm[1][0] + lm[4][0]) / 2
        box_center_x = (bbox[0] + bbox[2]) / 2
        ret = 0
        if left_score >= 3.0 or (left_score >= 2.0 and mright <= box_center_x):
            ret = 1
        elif right_score >= 3.0 or (right_score >= 2.0 and mleft >= box_center_x):
            ret = 2
        elif up_score >= 2.0:
            ret = 3
        elif down_score >= 5.0:
            ret = 4
        return ret, left_score, right_score, up_score, down_score
