"""Time the WIDER FACE evaluation on the golden dev predictions (3226 val images).

    .venv/bin/python -m bench.evaluate [--runs 5] [--pred DIR] [--gt DIR]

Without --pred the golden archive ``<shared>/golden/widerface_val_predictions_dev.tar.gz``
is extracted to a temporary folder.  Prints the median wall time of each stage and
of the whole ``evaluate`` call over --runs runs, and the three APs.
"""
import argparse
import os
import pathlib
import statistics
import tarfile
import tempfile
import time

from rcnn.evaluation import widerface

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = os.environ.get('RETINAFACE_SHARED', str(REPO.parent / 'shared'))


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main():
    parser = argparse.ArgumentParser(prog='python -m bench.evaluate', description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--pred', default=None, help='prediction folder (default: the golden dev archive)')
    parser.add_argument('--gt', default=os.path.join(SHARED, 'assets', 'widerface', 'ground_truth'))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        pred = args.pred
        if pred is None:
            with tarfile.open(os.path.join(SHARED, 'golden', 'widerface_val_predictions_dev.tar.gz')) as tar:
                tar.extractall(tmp, filter='data')
            pred = os.path.join(tmp, 'wider_preds_dev')

        stages = {'load ground truth': [], 'read predictions': [], 'evaluate (total)': []}
        for _ in range(args.runs):
            dt, gt = timed(widerface.load_ground_truth, args.gt)
            stages['load ground truth'].append(dt)
            dt, _ = timed(widerface.load_predictions, pred, gt)
            stages['read predictions'].append(dt)
            dt, result = timed(widerface.evaluate, pred, args.gt)
            stages['evaluate (total)'].append(dt)

    print('WIDER FACE evaluation, %d images, %d runs (median seconds)' % (result['num_images'], args.runs))
    print('%-20s %10s %10s' % ('stage', 'median', 'min'))
    for stage, times in stages.items():
        print('%-20s %10.3f %10.3f' % (stage, statistics.median(times), min(times)))
    print()
    print(widerface.format_table(result))


if __name__ == '__main__':
    main()
