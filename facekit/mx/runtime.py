"""MXNet's process-wide runtime: the device, and on the CPU the engine and the OpenMP threads.

What the commands choose on the CPU (the measurements: ``bench/runtime.py``, docs/benchmarks.md):

- **Engine.** MXNet's default threaded engine hands every operator to a worker
  thread. With several OpenMP threads the naive engine, which runs operators in
  the calling thread, is faster: the detectors and the training loop wait for
  each result. With one thread (as many ``--parts`` as cores, a busy machine, the
  user's ``OMP_NUM_THREADS=1``) MXNet's threaded engine stays where its workers
  run one thread too: it runs the operators while the Python thread goes on, which
  was the faster of the two on a busy machine. Its workers keep MXNet's own thread
  count (half the CPUs on x86; ``OMP_NUM_THREADS`` or ``MXNET_OMP_MAX_THREADS`` where
  set as MXNet loads), which ``MXSetNumOMPThreads`` does not change; where that is
  more than one, the naive engine runs the one thread chosen.
- **OpenMP threads.** One per CPU this process may use, shared out among the
  ``parts`` processes of one job (``test_widerface.py --parts``). MXNet's default
  is half the CPUs.
- **Load.** MTCNN's operators are small and the training loop's medium-sized: their
  threads gain only when each gets a core at once, so for them the threads are also
  capped by the CPUs other processes leave idle (``facekit.cpu.CpuLoad``).
  RetinaFace's large operators gain from every core even on a busy machine.
- **Wait policy.** ``facekit.cpu.prepare_openmp``, before MXNet loads.

Outputs are bit-identical in every runtime (tests/facekit/mx/test_runtime.py). A variable
the user exported wins (``MXNET_ENGINE_TYPE``, ``OMP_NUM_THREADS``), and
``RETINAFACE_CPU_RUNTIME=mxnet`` leaves everything to MXNet.
"""
import ctypes
import logging
import os

import mxnet as mx

from facekit.args import UsageError
from facekit.cpu import RUNTIME_VARIABLE, ours, usable_cpus

__all__ = ['DEFAULT_ENGINE', 'configure_cpu_inference', 'configure_cpu_training', 'DeviceError', 'cuda_gpus',
           'choose_gpu', 'choose_gpus', 'check_context', 'inference_context']

logger = logging.getLogger(__name__)

ENGINE = 'NaiveEngine'
DEFAULT_ENGINE = 'ThreadedEnginePerDevice'  # MXNet's, where MXNET_ENGINE_TYPE is unset


def _threads(parts, load):
    threads = max(1, usable_cpus() // parts)
    idle = load.idle_cpus() if load is not None else None
    if idle is not None:
        threads = max(1, min(threads, int(round(idle))))
    return threads


def _engine_worker_threads():
    """OpenMP threads of MXNet's engine workers, None without GNU OpenMP.

    As it loads, MXNet sets its count (half the CPUs on x86) on the loading thread, unless the
    user set ``OMP_NUM_THREADS`` (then that) or ``MXNET_OMP_MAX_THREADS`` (then the smaller of
    it and libgomp's count); its workers take the same. Read on the thread that loaded MXNet,
    before ``MXSetNumOMPThreads``, which changes the calling thread's count only.
    """
    try:
        count = ctypes.CDLL('libgomp.so.1').omp_get_max_threads()
    except OSError:
        return None
    cap = os.environ.get('MXNET_OMP_MAX_THREADS', '').strip()
    if 'OMP_NUM_THREADS' not in os.environ and cap.isascii() and cap.isdigit():
        count = min(count, int(cap))
    return count


def _configure(engine, parts, load, what):
    """Engine (None: MXNet's) and OpenMP threads; see configure_cpu_inference."""
    if not ours():
        logger.info('%s runtime: MXNet defaults (%s=mxnet)', what, RUNTIME_VARIABLE)
        return None, None
    threads = None if 'OMP_NUM_THREADS' in os.environ else _threads(parts, load)
    if threads in (None, 1) and _engine_worker_threads() == 1:
        engine = None
    if engine is not None and 'MXNET_ENGINE_TYPE' not in os.environ:
        os.environ['MXNET_ENGINE_TYPE'] = engine
        try:
            mx.nd.zeros((1,)).wait_to_read()  # creates the engine while the variable is set
        finally:
            del os.environ['MXNET_ENGINE_TYPE']
    else:
        engine = None
    if threads is not None:
        mx.base.check_call(mx.base._LIB.MXSetNumOMPThreads(ctypes.c_int(threads)))
    engine_text = engine or ('%s (MXNET_ENGINE_TYPE)' % os.environ['MXNET_ENGINE_TYPE']
                             if 'MXNET_ENGINE_TYPE' in os.environ else "%s (MXNet's default)" % DEFAULT_ENGINE)
    logger.info('%s runtime: engine %s, OpenMP threads %s, spin count %s', what, engine_text,
                threads or '%s (OMP_NUM_THREADS)' % os.environ['OMP_NUM_THREADS'],
                os.environ.get('GOMP_SPINCOUNT', 'OMP_WAIT_POLICY=%s' % os.environ.get('OMP_WAIT_POLICY', 'default')))
    return engine, threads


def configure_cpu_inference(parts=1, load=None):
    """Select the engine and the OpenMP threads for detection on the CPU.

    Process-wide, and effective only before the process's first MXNet operation:
    MXNet creates its engine then and never replaces it. The threads are
    ``usable_cpus() // parts``, and with a ``load`` (``CpuLoad``) at most the CPUs
    other processes left idle: pass one for networks of small operators (MTCNN).
    The engine is the naive one on several threads; on one, MXNet's threaded engine where its
    workers run one thread too. Call it on the thread that imported MXNet.
    The environment of child processes is left as it was.

    Returns:
        (engine, threads): what was set; None for a setting left to the user or MXNet.
    """
    return _configure(ENGINE, parts, load, 'MXNet CPU inference')


def configure_cpu_training(load, single_context=True):
    """The runtime of a training process on the CPU: as ``configure_cpu_inference`` with the
    threads capped by ``load``. Several contexts keep MXNet's threaded engine, which overlaps
    them. Returns (engine, threads) likewise."""
    return _configure(ENGINE if single_context else None, 1, load, 'MXNet CPU training')


class DeviceError(UsageError, ValueError):
    """A requested device that this MXNet build or this machine does not have: a bad argument of a
    command (exit status 2), a ValueError of the Python API."""


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
        _check_gpu(gpu, '%s %d' % (flag, gpu), available, "pass %s ''" % flag)
    return list(gpus)


def check_context(ctx, on_cpu='use mx.cpu()'):
    """Raise DeviceError (one line) unless MXNet context ``ctx`` exists here: the Python API's check,
    made before MXNet would fail on a missing GPU (a C++ error, on some paths an abort)."""
    if ctx.device_type.startswith('gpu'):
        _check_gpu(ctx.device_id, 'mx.gpu(%d)' % ctx.device_id, cuda_gpus(), on_cpu)


def inference_context(gpu, flag='--gpu', parts=1, load=None):
    """The MXNet context of a detection command: ``choose_gpu(gpu, flag)``, and on the CPU the
    runtime of ``configure_cpu_inference(parts, load)`` (call it before the first MXNet operation)."""
    gpu = choose_gpu(gpu, flag)
    if gpu >= 0:
        return mx.gpu(gpu)
    configure_cpu_inference(parts, load)
    return mx.cpu()
