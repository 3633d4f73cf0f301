"""The tiny synthetic dataset and the ways to run train.py that the tests of
``rcnn.commands.train`` share (test_train.py, test_train_resume.py)."""
import os
import shutil
import subprocess
import sys

from facekit.prefix import checkpoint_files
from rcnn.commands import retinaface_train
from support import REPO

FAST = ['--network', 'mnet', '--dataset', 'retinaface', '--batch_images', '1', '--workers', '0', '--frequent', '1']


def run_train(*args, env=None):
    """train.py in a child process. Its OpenMP threads are pinned: the sums of a training step
    depend on their number, and runs compared bit for bit must use the same."""
    env = dict(os.environ if env is None else env)
    env.setdefault('OMP_NUM_THREADS', str(len(os.sched_getaffinity(0))))
    return subprocess.run([sys.executable, 'train.py'] + FAST + list(args), cwd=REPO, capture_output=True,
                          text=True, timeout=600, env=env)


def train(argv):
    """The command in this process; returns its exit status."""
    return retinaface_train(FAST + argv, prog='train.py')


def copy_checkpoints(prefix, folder):
    """The checkpoint files of ``prefix`` copied into ``folder`` (a pathlib.Path); returns the new prefix."""
    for path in checkpoint_files(prefix):
        shutil.copy(path, str(folder))
    return str(folder / os.path.basename(prefix))
