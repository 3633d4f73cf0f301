"""MXNet's process-wide runtime for CPU inference, one image at a time.

MXNet's default threaded engine hands every operator to a worker thread and,
unless ``OMP_NUM_THREADS`` is set, runs operators on fewer OpenMP threads than
there are cores (one on a 2-core machine). The detectors run small graphs
one image at a time and wait for each result, so the hand-off buys no overlap.
The naive engine runs each operator in the calling thread, and every core can
go to the operators' OpenMP threads. Outputs are bit-identical
(``tests/test_runtime.py``); on 2 cores MTCNN's ``detect()`` takes about 0.7
times as long (``bench/mtcnn.py``). The detection entry points call
:func:`configure_cpu_inference` when they run on the CPU. ``train.py`` keeps
MXNet's threaded engine unless ``MXNET_ENGINE_TYPE`` says otherwise (``make demo``
sets it: checkpoints are the same, iterations faster on 2 cores).
"""
import ctypes
import logging
import os

import mxnet as mx

__all__ = ['configure_cpu_inference', 'usable_cpus', 'DeviceError', 'cuda_gpus', 'choose_gpu', 'choose_gpus',
           'check_context']

logger = logging.getLogger(__name__)

ENGINE = 'NaiveEngine'


class DeviceError(ValueError):
    """A requested device that this MXNet build or this machine does not have."""


def cuda_gpus():
    """GPUs this process can use: 0 with a CPU build of MXNet (pip package ``mxnet``)."""
    if not mx.runtime.Features().is_enabled('CUDA'):
        return 0
    return mx.context.num_gpus()


def _check_gpu(gpu, what, available, on_cpu):
    """Raise DeviceError unless GPU ``gpu`` exists; ``what`` names the request ('--gpu 1')."""
    if available == 0:
        raise DeviceError('%s: this MXNet build has no CUDA support (GPUs need mxnet-cu112, see the README); '
                          'to run on the CPU, %s' % (what, on_cpu))
    if gpu >= available:
        raise DeviceError('%s: MXNet sees %d GPU(s) here (ids 0..%d); to run on the CPU, %s'
                          % (what, available, available - 1, on_cpu))


def choose_gpu(gpu, flag='--gpu'):
    """The device of a detection command: a GPU id, or -1 for the CPU.

    ``gpu`` None picks GPU 0 when MXNet has CUDA and a GPU is visible, else the CPU
    (logged once). An explicit id must exist.

    Raises:
        DeviceError: one line naming ``flag`` and how to run on the CPU.
    """
    available = cuda_gpus()
    if gpu is None:
        if available:
            return 0
        logger.info('no GPU available to MXNet: running on the CPU')
        return -1
    if gpu >= 0:
        _check_gpu(gpu, '%s %d' % (flag, gpu), available, 'pass %s -1' % flag)
    return gpu


def choose_gpus(gpus, flag='--gpus'):
    """The GPU ids of a training run: ``gpus`` (a list) checked, or, for None, every GPU
    MXNet sees; an empty list means the CPU (logged once when nothing was asked for).

    Raises:
        DeviceError: one line naming ``flag`` and how to run on the CPU.
    """
    available = cuda_gpus()
    if gpus is None:
        if not available:
            logger.info('no GPU available to MXNet: training on the CPU')
        return list(range(available))
    for gpu in gpus:
        _check_gpu(gpu, '%s %d' % (flag, gpu), available, 'leave %s out' % flag)
    return list(gpus)


def check_context(ctx, on_cpu='use mx.cpu()'):
    """Raise DeviceError (one line) unless MXNet context ``ctx`` exists here: the Python API's check,
    made before MXNet would fail on a missing GPU (a C++ error, on some paths an abort)."""
    if ctx.device_type.startswith('gpu'):
        _check_gpu(ctx.device_id, 'mx.gpu(%d)' % ctx.device_id, cuda_gpus(), on_cpu)


def usable_cpus():
    """CPUs this process may run on."""
    if hasattr(os, 'sched_getaffinity'):  # a container's or taskset's CPU set, not the host's
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def configure_cpu_inference():
    """Select the naive engine and one OpenMP thread per CPU this process may use.

    Process-wide, and effective only before the process's first MXNet
    operation: MXNet creates its engine then and never replaces it (call it at
    the start of a program). Settings the user made win: an
    ``MXNET_ENGINE_TYPE`` or ``OMP_NUM_THREADS`` in the environment is left
    as it is. Child processes keep MXNet's defaults (the environment is
    restored once the engine exists).

    Returns:
        (engine, threads): what was requested; None for a setting left to the
        environment.
    """
    engine = threads = None
    if 'MXNET_ENGINE_TYPE' not in os.environ:
        engine = ENGINE
        os.environ['MXNET_ENGINE_TYPE'] = engine
        try:
            mx.nd.zeros((1,)).wait_to_read()  # creates the engine while the variable is set
        finally:
            del os.environ['MXNET_ENGINE_TYPE']
    if 'OMP_NUM_THREADS' not in os.environ:
        threads = usable_cpus()
        mx.base.check_call(mx.base._LIB.MXSetNumOMPThreads(ctypes.c_int(threads)))
    logger.info('MXNet CPU inference runtime: engine %s, OpenMP threads %s',
                engine or 'MXNET_ENGINE_TYPE=%s' % os.environ['MXNET_ENGINE_TYPE'],
                threads or 'OMP_NUM_THREADS=%s' % os.environ['OMP_NUM_THREADS'])
    return engine, threads
