"""``CropLoader``: the RetinaFace training iterator (random 640 x 640 crops and anchor labels).

Worker processes (spawned, so they are safe next to MXNet's engine threads) crop
and label images straight into shared batch buffers, and a finished buffer is
handed to MXNet without a copy (``mx.nd.from_numpy``); it is refilled only after
MXNet has released it. Every sample is seeded by (seed, epoch, roidb index), so a
run is reproducible from ``seed`` whatever the number of workers, and a run resumed
inside an epoch gets the batches the uninterrupted run got.
"""
import collections
import copy
import ctypes
import logging
import multiprocessing
import queue
import weakref

import mxnet as mx
import numpy as np

from rcnn.contract import label_names, tensor_name
from rcnn.core.crop_worker import BatchLayout, fill_sample, sample_rng, shuffle_rng, worker_loop
from rcnn.io.rpn import AA

__all__ = ['CropLoader', 'feature_shapes']

logger = logging.getLogger(__name__)

# Shared batch buffers: up to _MAX_HELD in the trainer's hands, the others being filled.
_NUM_SLOTS = 4
_MAX_HELD = 2
# Seconds between liveness checks of the workers while waiting for results.
_POLL_SECONDS = 1.0
_JOIN_SECONDS = 10.0


def feature_shapes(feat_sym, cfg):
    """Per stride of ``cfg.RPN_FEAT_STRIDE``, the (height, width) of the score map for a SCALES crop.

    ``feat_sym`` is the training symbol (its ``face_rpn_cls_score_stride{s}`` outputs
    are used), a list of per-stride symbols (the original's ``feat_sym``), or a list
    of shapes whose last two entries are height and width.
    """
    size = cfg.SCALES[0][0]
    if isinstance(feat_sym, mx.sym.Symbol):
        internals = feat_sym.get_internals()
        feat_sym = [internals[tensor_name('rpn_cls_score', s) + '_output'] for s in cfg.RPN_FEAT_STRIDE]
    if len(feat_sym) != len(cfg.RPN_FEAT_STRIDE):
        raise ValueError('feat_sym has %d entries for strides %s' % (len(feat_sym), cfg.RPN_FEAT_STRIDE))
    shapes = []
    for item in feat_sym:
        if isinstance(item, mx.sym.Symbol):
            _, out_shapes, _ = item.infer_shape(data=(1, 3, size, size))
            item = out_shapes[0]
        shapes.append((int(item[-2]), int(item[-1])))
    return shapes


class _Buffers:
    """Batch buffers lent to MXNet as NDArrays without a copy, reusable once MXNet lets go.

    ``lend`` wraps a buffer with ``mx.nd.from_numpy`` and hands out views of that
    NDArray; MXNet keeps the wrapped array referenced until the last view is freed
    and every pending engine operation on it is done. Only then is the buffer free.
    """

    def __init__(self, layout):
        self.layout = layout
        self.buffers = []
        self._lent = []  # per buffer: handed to MXNet and not released yet

    def add(self, buffer):
        self.buffers.append(buffer)
        self._lent.append(False)
        return len(self.buffers) - 1

    def is_lent(self, index):
        return self._lent[index]

    def free_private(self):
        """Index of a free buffer, allocating a private one if none is."""
        for index, lent in enumerate(self._lent):
            if not lent:
                return index
        return self.add(np.empty(self.layout.size, dtype=np.float32))

    def views(self, index):
        return self.layout.views(self.buffers[index])

    def lend(self, index, *name_lists):
        """Per list of names, NDArrays over those arrays of buffer ``index``."""
        flat = np.frombuffer(self.buffers[index], dtype=np.float32, count=self.layout.size)
        self._lent[index] = True
        # Runs when MXNet drops the array, possibly in one of its engine threads.
        weakref.finalize(flat, self._lent.__setitem__, index, False)
        whole = mx.nd.from_numpy(flat, zero_copy=True)
        arrays = []
        for names in name_lists:
            arrays.append([])
            for name in names:
                offset, shape = self.layout.spans[name]
                arrays[-1].append(whole[offset:offset + int(np.prod(shape))].reshape(shape))
        return arrays


class CropLoader(mx.io.DataIter):
    """Batches of ``data`` (B, 3, S, S) and the per-stride labels of ``rcnn.contract.label_names``.

    Args:
        feat_sym: see ``feature_shapes``.
        roidb: entries of ``retinaface.gt_roidb()`` (with flipped copies).
        cfg: the configuration (``rcnn.config.get_config``), copied at construction.
        batch_size: images per batch, all devices together (BATCH_IMAGES x devices).
        shuffle: new image order every epoch.
        seed: base seed of the image order and of every crop.
        num_workers: worker processes; 0 works in this process.
        num_parts, part_index: this loader reads part ``part_index`` of ``num_parts``
            disjoint, equally long parts of every epoch's order (distributed training:
            kvstore num_workers and rank). Every part sees the same epoch order.
        begin_epoch, begin_batch: where to start: the batch ``begin_batch`` of epoch
            ``begin_epoch`` (the order and crops of epoch e are the same in every run with
            this seed, so a resumed run continues the sequence).

    An epoch has ``batches_per_epoch`` batches; the last incomplete batch is dropped,
    as in the original. The first epoch is ready after construction (``epoch`` is its
    number, ``order`` its roidb indices). A batch's arrays share memory with the
    loader: treat them as read-only. Call ``close()`` (or use ``with``) to stop the workers.
    """

    def __init__(self, feat_sym, roidb, cfg, batch_size=1, shuffle=False, seed=0, num_workers=0,
                 num_parts=1, part_index=0, begin_epoch=0, begin_batch=0):
        cfg = copy.deepcopy(cfg)
        super().__init__(batch_size)
        if batch_size < 1 or num_workers < 0 or seed < 0 or begin_epoch < 0 or begin_batch < 0:
            raise ValueError('need batch_size >= 1 and num_workers, seed, begin_epoch, begin_batch >= 0; got %d, %d, '
                             '%d, %d, %d' % (batch_size, num_workers, seed, begin_epoch, begin_batch))
        if not 0 <= part_index < num_parts:
            raise ValueError('part_index %d is not in [0, num_parts=%d)' % (part_index, num_parts))
        self.part_size = len(roidb) // num_parts
        self.batches_per_epoch = self.part_size // batch_size
        if self.batches_per_epoch == 0:
            raise ValueError('%d images in %d part(s) make no batch of %d' % (len(roidb), num_parts, batch_size))
        if begin_batch >= self.batches_per_epoch:
            raise ValueError('begin_batch %d: an epoch has %d batches' % (begin_batch, self.batches_per_epoch))
        self.cfg = cfg
        self.roidb = roidb
        self.shuffle = shuffle
        self.seed = seed
        self.num_parts = num_parts
        self.part_index = part_index
        self.feat_shapes = feature_shapes(feat_sym, cfg)
        self.aa = AA(self.feat_shapes, cfg)

        size = cfg.SCALES[0][0]
        self.data_name = ['data']
        self.label_name = label_names(cfg)
        empty = {'gt_boxes': np.zeros((0, 5), np.float32), 'gt_landmarks': np.zeros((0, 5, 3), np.float32)}
        one = self.aa.assign_anchor_fpn(empty, None, landmark=cfg.FACE_LANDMARK)
        self._provide_data = [mx.io.DataDesc('data', (batch_size, 3, size, size))]
        self._provide_label = [mx.io.DataDesc(name, (batch_size,) + one[name].shape[1:]) for name in self.label_name]
        self.layout = BatchLayout([(d.name, d.shape) for d in self._provide_data + self._provide_label])

        self._private = _Buffers(self.layout)
        self._workers = []
        self._closed = False
        if num_workers:
            self._start_workers(num_workers)
        self.epoch = begin_epoch - 1
        self._start_epoch(begin_batch)

    # -- DataIter interface -------------------------------------------------------------------
    @property
    def provide_data(self):
        return self._provide_data

    @property
    def provide_label(self):
        return self._provide_label

    def reset(self):
        """Start the next epoch, unless no batch of the current one was taken yet.

        So calling reset() before each epoch (train.py) or after it (``Module.fit``)
        gives the same epochs: ``begin_epoch``, ``begin_epoch + 1``, ...
        """
        self._check_open()
        if self.cur == self._first and self._error is None:
            return
        self._start_epoch()

    def _start_epoch(self, first_batch=0):
        self._drain()
        self.epoch += 1
        self.order = self._epoch_order(self.epoch)
        self.cur = self._first = first_batch * self.batch_size
        self._error = None
        if self._workers:
            self._pending = collections.deque()  # slots in flight, in batch order
            self._submitted = self.cur
            self._submit()

    def iter_next(self):
        return self.cur < len(self.order)

    def next(self):
        self._check_open()
        if not self.iter_next():
            raise StopIteration
        if self._workers:
            buffers, index = self._next_parallel()
        else:
            buffers, index = self._private, self._private.free_private()
            views = buffers.views(index)
            for pos, roidb_index in enumerate(self.order[self.cur:self.cur + self.batch_size]):
                fill_sample(self.roidb[roidb_index], sample_rng(self.seed, self.epoch, roidb_index), self.aa,
                            self.cfg, views, pos)
        self.cur += self.batch_size
        data, label = buffers.lend(index, self.data_name, self.label_name)
        return mx.io.DataBatch(data=data, label=label, pad=0, index=None, provide_data=self._provide_data,
                               provide_label=self._provide_label)

    def getpad(self):
        return 0

    # -- lifetime -----------------------------------------------------------------------------
    def close(self):
        """Stop and reap the worker processes; the loader cannot be used afterwards."""
        if getattr(self, '_closed', True):
            return
        self._closed = True
        if not self._workers:
            return
        self._stop.set()
        for _ in self._workers:
            self._tasks.put(None)
        for process in self._workers:
            process.join(_JOIN_SECONDS)
        for process in self._workers:
            if process.is_alive():
                logger.warning('loader worker %d did not stop; terminating it', process.pid)
                process.terminate()
                process.join()
        self._tasks.cancel_join_thread()
        self._tasks.close()
        self._results.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        self.close()

    # -- internals ----------------------------------------------------------------------------
    def _check_open(self):
        if self._closed:
            raise RuntimeError('CropLoader is closed')

    def _epoch_order(self, epoch):
        """Roidb indices of this part for ``epoch``, a whole number of batches long."""
        order = np.arange(len(self.roidb))
        if self.shuffle:
            order = shuffle_rng(self.seed, epoch).permutation(len(self.roidb))
        order = order[self.part_index::self.num_parts][:self.part_size]
        return order[:self.batches_per_epoch * self.batch_size]

    def _start_workers(self, num_workers):
        context = multiprocessing.get_context('spawn')
        self._shared = _Buffers(self.layout)
        for _ in range(_NUM_SLOTS):
            self._shared.add(context.RawArray(ctypes.c_float, self.layout.size))
        self._tasks = context.Queue()
        self._results = context.Queue()
        self._stop = context.Event()
        self._done = [0] * _NUM_SLOTS
        self._in_flight = set()
        self._outstanding = 0
        for _ in range(num_workers):
            process = context.Process(
                target=worker_loop, daemon=True,
                args=(self._tasks, self._results, self._stop, self.roidb, self.cfg, self.feat_shapes, self.seed,
                      self._shared.buffers, self.layout))
            process.start()
            self._workers.append(process)
        logger.info('CropLoader: %d worker processes', num_workers)

    def _next_parallel(self):
        """(buffers, index) of the next finished batch: the shared slot itself, or a private copy
        when the trainer already holds _MAX_HELD slots (so the workers always have slots to fill)."""
        slot = self._wait_for_batch()
        self._in_flight.discard(slot)
        held = sum(self._shared.is_lent(i) for i in range(_NUM_SLOTS))
        if held < _MAX_HELD:
            result = self._shared, slot
        else:
            index = self._private.free_private()
            shared = self._shared.views(slot)
            for name, view in self._private.views(index).items():
                np.copyto(view, shared[name])
            result = self._private, index
        if result[0] is self._shared:
            self._submit(exclude=slot)
        else:
            self._submit()
        return result

    def _submit(self, exclude=None):
        """Queue the samples of the next batches into the free slots."""
        for slot in range(_NUM_SLOTS):
            if self._submitted >= len(self.order):
                break
            if slot == exclude or slot in self._in_flight or self._shared.is_lent(slot):
                continue
            self._done[slot] = 0
            for pos, index in enumerate(self.order[self._submitted:self._submitted + self.batch_size]):
                self._tasks.put((slot, pos, int(index), self.epoch))
            self._in_flight.add(slot)
            self._pending.append(slot)
            self._submitted += self.batch_size
            self._outstanding += self.batch_size

    def _wait_for_batch(self):
        if self._error is not None:
            raise RuntimeError(self._error)
        slot = self._pending[0]
        while self._done[slot] < self.batch_size:
            self._receive()
            if self._error is not None:
                raise RuntimeError(self._error)
        self._pending.popleft()
        return slot

    def _receive(self):
        """Take one result from the workers; raise if a worker died."""
        while True:
            try:
                slot, _, error = self._results.get(timeout=_POLL_SECONDS)
                break
            except queue.Empty:
                dead = [p for p in self._workers if not p.is_alive()]
                if dead:
                    raise RuntimeError('CropLoader worker (pid %d) exited with code %s'
                                       % (dead[0].pid, dead[0].exitcode)) from None
        self._outstanding -= 1
        self._done[slot] += 1
        if error is not None and self._error is None:
            self._error = 'CropLoader worker failed on ' + error

    def _drain(self):
        """Wait for every queued sample, so the slots can be reused."""
        while self._workers and self._outstanding:
            self._receive()
        if self._workers:
            self._in_flight.clear()
