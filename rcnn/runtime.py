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

__all__ = ['configure_cpu_inference', 'usable_cpus']

logger = logging.getLogger(__name__)

ENGINE = 'NaiveEngine'


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
