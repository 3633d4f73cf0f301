"""The whole system on built-in data: ``make demo`` (``python tools/demo.py``).

1. synthetic WIDER-format data (``rcnn.dataset.synthetic``) in ``--data``;
2. mnet trained from scratch (``train.py --fix_from_scratch``) for ``--epochs`` epochs;
3. ``test_widerface.py --mode 0`` on the val split and the WIDER evaluation
   (easy / medium / hard AP, JSON summary, PR-curve PNG);
4. a few val images with the detected boxes and five landmarks drawn.

Every stage resumes: generated data is kept, training continues from the newest
checkpoint (one saved inside an epoch too), result files already written are skipped. Interrupt it (Ctrl-C, or
SIGTERM) and run it again to go on where it stopped: the running step gets the
signal (training saves a checkpoint first) and the demo exits with the step's
status, 130 or 143. A step that fails makes it exit 1, naming the step.
"""
import logging
import os
import signal
import subprocess
import sys
import time

from facekit import args as cli
from facekit.labels import read_label_file, split_paths
from facekit.prefix import Position, params_path, saved_positions, symbol_path
from rcnn.evaluation.widerface import PR_CURVES_FILE, SUMMARY_FILE

__all__ = ['REPO', 'build_parser', 'run', 'run_step', 'latest_position', 'link_examples']

logger = logging.getLogger('demo')

# The source tree, whose command lines (train.py, test_widerface.py, detect.py) the demo runs.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SPLIT_FILES = ('train/label.txt', 'val/label.txt', 'test/label.txt', 'ground_truth/wider_hard_val.mat')


INTERRUPTED = {128 + signal.SIGINT: 'SIGINT', 128 + signal.SIGTERM: 'SIGTERM'}


def run_step(command, step):
    """Run ``step`` (a name for messages) in a child process; it chooses its own MXNet runtime.

    The child runs in its own process group and this process forwards SIGINT and
    SIGTERM to it once each time it gets one, so Ctrl-C reaches the child once
    (training saves its checkpoint after the batch; a second Ctrl-C aborts it)
    and is not cut short: the demo waits for it. An interrupted child (status
    130 / 143, or killed by that signal) ends the demo with that status and says how
    to go on; any other failure is a ChildProcessError naming the step (status 1).
    """
    logger.info('$ %s', ' '.join(command))
    child = subprocess.Popen(command, cwd=REPO, start_new_session=True)

    def forward(signum, frame):
        child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if status < 0:  # killed by a signal, as a shell reports it
        status = 128 - status
    if status in INTERRUPTED:
        logger.error('%s was interrupted (%s); run the same command again to go on from where it stopped',
                     step, INTERRUPTED[status])
        raise SystemExit(status)
    if status:
        raise ChildProcessError('%s failed (exit status %d): %s' % (step, status, ' '.join(command)))


def latest_position(prefix):
    """The Position of the newest checkpoint of ``prefix`` (inside an epoch too), or the start."""
    return max(saved_positions(prefix), default=Position(0))


def ensure_data(args):
    if all(os.path.isfile(os.path.join(args.data, f)) for f in SPLIT_FILES):
        logger.info('data already in %s', args.data)
        return
    # --overwrite completes a stopped generation: the generator replaces only files its
    # manifest lists, and refuses a folder holding anything else.
    run_step([sys.executable, '-m', 'rcnn.dataset.synthetic', '--output', args.data, '--num_train',
              str(args.num_train), '--num_val', str(args.num_val), '--num_test', str(args.num_test), '--seed',
              str(args.seed), '--overwrite'], 'making synthetic data')


def ensure_model(args):
    done = latest_position(args.prefix)
    if done >= Position(args.epochs):
        logger.info('model %s already trained', params_path(args.prefix, done.epoch))
        return args.epochs
    command = [sys.executable, 'train.py', '--network', 'mnet', '--dataset', 'retinaface',
               '--dataset_path', args.data, '--prefix', args.prefix, '--end_epoch', str(args.epochs),
               '--lr', str(args.lr), '--lr_step', args.lr_step, '--batch_images', str(args.batch_images),
               '--seed', str(args.seed), '--frequent', '10', '--fix_from_scratch']
    if done > Position(0):
        command += done.resume_flags().split()
    run_step(command, 'training')
    return args.epochs


def evaluate(args, epoch):
    predictions = os.path.join(args.output, 'predictions-%04d' % epoch)
    run_step([sys.executable, 'test_widerface.py', '--mode', '0', '--gpu', '-1', '--prefix', args.prefix,
              '--epoch', str(epoch), '--dataset_path', args.data, '--image_set', 'val', '--output', predictions,
              '--gt', os.path.join(args.data, 'ground_truth')], 'evaluation')
    return predictions


def link_examples(images, paths, folder):
    """Make ``folder`` (the demo's own) hold exactly the symbolic links ``<event>_<name>`` to
    ``images/<event>/<name>`` of the label paths: unique names, as the paths are. Links to
    other targets or of other names (data moved or regenerated, an earlier run) are removed."""
    os.makedirs(folder, exist_ok=True)
    wanted = {path.replace('/', '_'): os.path.abspath(os.path.join(images, path)) for path in paths}
    for name in os.listdir(folder):
        link = os.path.join(folder, name)
        if os.path.islink(link) and wanted.get(name) != os.readlink(link):
            os.remove(link)
    for name, target in wanted.items():
        link = os.path.join(folder, name)
        if not os.path.lexists(link):
            os.symlink(target, link)


def draw_examples(args, epoch):
    """The first val images with their detections drawn, in the demo's own folder (replaced each run)."""
    label, images = split_paths(args.data, 'val')
    records = read_label_file(label)[:args.num_pictures]
    examples = os.path.join(args.output, 'examples')
    link_examples(images, [r.path for r in records], examples)
    pictures = os.path.join(args.output, 'detections')
    run_step([sys.executable, 'detect.py', '--prefix', args.prefix, '--epoch', str(epoch), '--image', examples,
              '--output', pictures, '--json', os.path.join(pictures, 'detections.json'), '--thresh', '0.5',
              '--overwrite'], 'drawing detections')
    return pictures


def build_parser():
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', default='data/synthetic', help='synthetic data folder')
    parser.add_argument('--prefix', default='model/demo/mnet', help='checkpoint prefix')
    parser.add_argument('--output', default='demo_out', help='predictions, evaluation and pictures')
    parser.add_argument('--num_train', type=cli.int_at_least(1), default=1000)
    parser.add_argument('--num_val', type=cli.int_at_least(1), default=100)
    parser.add_argument('--num_test', type=cli.int_at_least(0), default=20)
    # From scratch in under 30 minutes on 2 cores: 10 epochs of 2000 crops (with flips), the random
    # stem kept fixed (train.py --fix_from_scratch), lr 0.03 stepped down at epochs 7 and 9; the
    # learning-rate sweep that chose it is in docs/benchmarks.md.
    parser.add_argument('--epochs', type=cli.int_at_least(1), default=10)
    parser.add_argument('--lr', type=cli.positive_float, default=0.03)
    parser.add_argument('--lr_step', default='7,9')
    parser.add_argument('--batch_images', type=cli.int_at_least(1), default=8)
    parser.add_argument('--num_pictures', type=cli.int_at_least(1), default=4)
    parser.add_argument('--seed', type=cli.int_at_least(0), default=0)
    return parser


def run(args, context):
    start = time.time()
    ensure_data(args)
    epoch = ensure_model(args)
    predictions = evaluate(args, epoch)
    pictures = draw_examples(args, epoch)
    print('\nDemo finished in %.1f min.' % ((time.time() - start) / 60))
    print('  model:        %s, %s' % (symbol_path(args.prefix), params_path(args.prefix, epoch)))
    print('  predictions:  %s/<event>/<name>.txt' % predictions)
    print('  evaluation:   %s' % os.path.join(predictions, SUMMARY_FILE))
    print('  PR curves:    %s' % os.path.join(predictions, PR_CURVES_FILE))
    print('  pictures:     %s/' % pictures)
