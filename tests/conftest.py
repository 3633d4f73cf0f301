"""Shared fixtures: where ../shared lives and how missing assets are reported.

Tests that need an asset from ../shared (or $RETINAFACE_SHARED) skip with a reason
when it is absent, and fail instead when REQUIRE_SHARED_ASSETS=1 (CI sets it).
"""
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def make_cfg(network='mnet', **settings):
    """``get_config(network, 'retinaface')`` with settings overridden (names of TRAIN
    settings go to ``cfg.TRAIN``, the others to the top level)."""
    from rcnn.config import get_config
    cfg, _ = get_config(network, 'retinaface')
    for key, value in settings.items():
        (cfg.TRAIN if key in cfg.TRAIN else cfg)[key] = value
    return cfg


def shared_root():
    return pathlib.Path(os.environ.get('RETINAFACE_SHARED', REPO.parent / 'shared'))


def require_shared(relpath):
    """Return the path of a ../shared asset, or skip (fail under REQUIRE_SHARED_ASSETS=1)."""
    path = shared_root() / relpath
    if not path.exists():
        message = 'shared asset %s is absent (set RETINAFACE_SHARED to the shared/ folder)' % path
        if os.environ.get('REQUIRE_SHARED_ASSETS') == '1':
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(autouse=True)
def cpu_runtime_requests(monkeypatch):
    """Records the entry points' requests for the CPU runtime, and ignores them.

    Tests call ``main()`` of the command lines in this process; honouring the
    requests would switch the engine of the whole test process (the first MXNet
    operation fixes it) and change the environment its children inherit, so
    results would depend on test order. The runtime itself is tested in child
    processes (tests/test_runtime.py). Inference requests are recorded as 'cpu'
    (``parts`` > 1 as 'cpu/N'), training ones as 'train'.
    """
    from rcnn import runtime
    requests = []

    def inference(parts=1, load=None):
        requests.append('cpu' if parts == 1 else 'cpu/%d' % parts)

    monkeypatch.setattr(runtime, 'prepare_openmp', runtime.CpuLoad)
    monkeypatch.setattr(runtime, 'configure_cpu_inference', inference)
    monkeypatch.setattr(runtime, 'configure_cpu_training', lambda load, single_context=True: requests.append('train'))
    return requests


@pytest.fixture
def shared():
    """Fixture form: ``shared('golden/x.npz')`` returns the path or skips."""
    return require_shared
