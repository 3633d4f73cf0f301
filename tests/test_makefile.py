"""The Makefile installs the GPU build of MXNet where an NVIDIA driver answers, else the CPU build."""
import os
import shutil
import subprocess

import pytest

from support import REPO


def dry_run_venv(tmp_path, nvidia_smi_status=None, **variables):
    """``make -n venv`` into a fresh venv path, with a stand-in ``nvidia-smi`` exiting with
    ``nvidia_smi_status`` first on PATH (None: no nvidia-smi at all)."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    for tool in ('make', 'sh'):
        os.symlink(shutil.which(tool), bin_dir / tool)
    if nvidia_smi_status is not None:
        (bin_dir / 'nvidia-smi').write_text('#!/bin/sh\nexit %d\n' % nvidia_smi_status)
        (bin_dir / 'nvidia-smi').chmod(0o755)
    args = ['make', '-n', 'venv', 'VENV=%s' % (tmp_path / 'venv')] + ['%s=%s' % kv for kv in variables.items()]
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, env={'PATH': str(bin_dir)})
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize('status, expected, reason', [
    (None, 'requirements.txt', 'no working nvidia-smi'),
    (9, 'requirements.txt', 'no working nvidia-smi'),   # a driver that does not answer
    (0, 'requirements-gpu.txt', 'nvidia-smi works'),
])
def test_requirements_follow_nvidia_smi(tmp_path, status, expected, reason):
    out = dry_run_venv(tmp_path, status)
    assert 'installing %s (%s)' % (expected, reason) in out
    assert 'pip install -q -r %s' % expected in out


def test_requirements_variable_overrides(tmp_path):
    out = dry_run_venv(tmp_path, 0, REQUIREMENTS='requirements.txt')
    assert 'installing requirements.txt (REQUIREMENTS was given)' in out
    assert 'pip install -q -r requirements.txt' in out


def test_both_requirements_install_this_project_with_the_same_pins_but_mxnet():
    """requirements*.txt name an extra of pyproject.toml; the GPU extra differs only in the MXNet build."""
    import tomllib
    extras = tomllib.loads((REPO / 'pyproject.toml').read_text())['project']['optional-dependencies']
    lines = {name: [line for line in (REPO / name).read_text().splitlines() if not line.startswith('#')]
             for name in ('requirements.txt', 'requirements-gpu.txt')}
    assert lines == {'requirements.txt': ['-e .[mxnet,test]'], 'requirements-gpu.txt': ['-e .[gpu,test]']}
    assert [pin for pin in extras['gpu'] if pin not in extras['mxnet']] == ['mxnet-cu112==1.9.1']
    assert [pin for pin in extras['mxnet'] if pin not in extras['gpu']] == ['mxnet==1.9.1']


def test_test_fast_leaves_out_the_slow_tests(tmp_path):
    result = subprocess.run(['make', '-n', 'test-fast', 'VENV=%s' % (tmp_path / 'venv')], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "pytest -q -m 'not slow'" in result.stdout
