"""The CPUs a command may use, and what must be set before MXNet loads. No MXNet import here.

- ``usable_cpus()``: the CPUs of this process's affinity mask (a container's or
  ``taskset``'s set, not the host's).
- ``CpuLoad``: how many of them other processes keep busy, measured from the start of
  a command on (``/proc/stat``), so that networks of small operators take only idle
  cores (``facekit.mx.runtime``).
- ``prepare_openmp()``: idle OpenMP threads spin briefly before they sleep
  (``GOMP_SPINCOUNT``). libgomp's default spin takes the CPU from every other process
  on a shared machine; it reads the setting once, when MXNet loads it, so
  ``facekit.command.main`` calls this before any command module is imported.

A variable the user exported wins (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``), and
``RETINAFACE_CPU_RUNTIME=mxnet`` leaves every setting to MXNet. The measurements behind
these choices are in docs/benchmarks.md.
"""
import os
import time

__all__ = ['RUNTIME_VARIABLE', 'SPIN_COUNT', 'ours', 'usable_cpus', 'cpu_flags', 'CpuLoad', 'prepare_openmp']

# Set to 'mxnet' to keep MXNet's own runtime defaults.
RUNTIME_VARIABLE = 'RETINAFACE_CPU_RUNTIME'
SPIN_COUNT = '10000'
# Shortest interval CpuLoad measures over (it waits for the rest), seconds.
_MIN_INTERVAL = 0.05


def ours():
    """Whether the commands choose the runtime (unless ``RETINAFACE_CPU_RUNTIME=mxnet``)."""
    return os.environ.get(RUNTIME_VARIABLE, '') != 'mxnet'


def usable_cpus():
    """CPUs this process may run on."""
    if hasattr(os, 'sched_getaffinity'):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_flags(cpuinfo='/proc/cpuinfo'):
    """The instruction-set flags the kernel reports for the first CPU (a set; empty where unknown)."""
    try:
        with open(cpuinfo, encoding='utf-8', errors='replace') as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() in ('flags', 'Features'):
                    return set(value.split())
    except OSError:
        pass
    return set()


def _cpu_times():
    """(busy, total) clock ticks of this process's CPUs since boot (``/proc/stat``), or None."""
    cpus = {'cpu%d' % c for c in os.sched_getaffinity(0)} if hasattr(os, 'sched_getaffinity') else None
    try:
        with open('/proc/stat') as f:
            lines = [line.split() for line in f if line.startswith('cpu') and not line.startswith('cpu ')]
    except OSError:
        return None
    busy = total = 0
    for fields in lines:
        if cpus is None or fields[0] in cpus:
            ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
            total += sum(ticks)
            busy += sum(ticks) - ticks[3] - ticks[4]
    return busy, total


class CpuLoad:
    """How many of this process's CPUs other processes keep busy, measured from construction on.

    ``idle_cpus()`` subtracts this process's own CPU time from the busy time of its CPUs.
    """

    def __init__(self):
        self._start = time.monotonic(), time.process_time(), _cpu_times()

    def idle_cpus(self):
        """CPUs left idle by other processes since construction (a float), or None where
        ``/proc/stat`` is not available."""
        wall, own, ticks = self._start
        if ticks is None:
            return None
        elapsed = time.monotonic() - wall
        if elapsed < _MIN_INTERVAL:
            time.sleep(_MIN_INTERVAL - elapsed)
        now = _cpu_times()
        if now is None or now[1] <= ticks[1]:
            return None
        cpus = usable_cpus()
        wall_ticks = (now[1] - ticks[1]) / cpus  # ticks per CPU over the interval
        own_ticks = (time.process_time() - own) * os.sysconf('SC_CLK_TCK')
        others = max(0.0, (now[0] - ticks[0]) - own_ticks) / wall_ticks
        return max(0.0, cpus - others)


def prepare_openmp():
    """Before MXNet loads: make idle OpenMP threads spin only ``SPIN_COUNT`` times before they sleep.

    A no-op when the user chose (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT`` or
    ``RETINAFACE_CPU_RUNTIME=mxnet``). Child processes inherit the variable.
    Returns a ``CpuLoad`` started now.
    """
    if ours() and 'OMP_WAIT_POLICY' not in os.environ and 'GOMP_SPINCOUNT' not in os.environ:
        os.environ['GOMP_SPINCOUNT'] = SPIN_COUNT
    return CpuLoad()
