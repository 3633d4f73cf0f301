"""Fixtures of every test: ``shared`` (an asset of ../shared, or skip) and the CPU runtime requests
of the commands, recorded and ignored in this process."""
import pytest

from support import require_shared


@pytest.fixture(autouse=True)
def cpu_runtime_requests(monkeypatch):
    """Records the commands' requests for the CPU runtime, and ignores them.

    Tests call the commands' ``main`` in this process; honouring the requests would switch
    the engine of the whole test process (the first MXNet operation fixes it) and change
    the environment its children inherit, so results would depend on test order. The
    runtime itself is tested in child processes (tests/facekit/mx/test_runtime.py).
    Inference requests are recorded as 'cpu' (``parts`` > 1 as 'cpu/N'), training ones as
    'train'.
    """
    from facekit import command, cpu
    from facekit.mx import runtime
    requests = []

    def inference(parts=1, load=None):
        requests.append('cpu' if parts == 1 else 'cpu/%d' % parts)

    monkeypatch.setattr(command, 'prepare_openmp', cpu.CpuLoad)
    monkeypatch.setattr(runtime, 'configure_cpu_inference', inference)
    monkeypatch.setattr(runtime, 'configure_cpu_training', lambda load, single_context=True: requests.append('train'))
    return requests


@pytest.fixture
def shared():
    """Fixture form: ``shared('golden/x.npz')`` returns the path or skips."""
    return require_shared
