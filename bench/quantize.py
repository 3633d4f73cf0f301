"""INT8 against FP32 RetinaFace on the CPU: speed, and with ``--accuracy`` WIDER AP and photo matches.

    python -m bench.quantize [--repeat 20] [--processes 5] [--accuracy] [--val 120] [--shared ../shared]

The released mnet.25 is quantized by ``tools/quantize.py`` on the shared photos t2, t3 and
test01 into a temporary folder. Then, both in the commands' CPU runtime
(``facekit.mx.runtime.configure_cpu_inference``):

- detect: ``RetinaFace.detect`` on t1, t4 and t6 (threshold 0.8, one scale), FP32 and INT8
  alternating in one child process, ``--repeat`` rounds after warm-up; median ms, INT8 / FP32;
- mode1: the whole ``test_widerface.py --mode 1 --gpu -1`` process (start-up and model load
  included) on 5 synthetic val images, FP32 and INT8 alternating, ``--processes`` each;
  median wall seconds, INT8 / FP32.

With ``--accuracy``:

- WIDER AP (``test_widerface.py --mode 0``, the official protocol) on a synthetic val split of
  ``--val`` images for FP32, INT8 calibrated on the 3 photos, and INT8 calibrated on 16 images of
  the synthetic train split (``--calib_images 16``);
- on the six shared photos (threshold 0.8, scale 1.0): the FP32 faces that have an INT8 face
  at IoU >= 0.5, and the INT8 faces that have an FP32 one, for each INT8 model; also for the
  photos the model was not calibrated on.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

from facekit.boxes import matched_pairs
from facekit.cpu import SPIN_COUNT, usable_cpus
from facekit.labels import read_label_file, split_paths, write_label_file
from facekit.mx.runtime import configure_cpu_inference
from rcnn.dataset.synthetic import generate_widerface
from rcnn.detector import RetinaFace
from rcnn.evaluation import widerface

REPO = pathlib.Path(__file__).resolve().parents[1]
MNET = os.path.join('assets', 'models', 'retinaface-mnet025', 'mnet.25')
CALIBRATION_PHOTOS = ('t2', 't3', 'test01')
PHOTOS = ('t1', 't2', 't3', 't4', 't6', 'test01')
TIMED = ('t1', 't4', 't6')
THRESHOLD = 0.8


def run(command, **kwargs):
    result = subprocess.run([str(c) for c in command], cwd=REPO, capture_output=True, text=True, **kwargs)
    if result.returncode:
        sys.exit('%s failed:\n%s' % (' '.join(map(str, command)), result.stderr[-3000:]))
    return result


def quantize(fp32, calib, output, count=None):
    run([sys.executable, 'tools/quantize.py', '--prefix', fp32, '--epoch', '0', '--calib', calib, '--output', output]
        + (['--calib_images', str(count)] if count else []))
    return output


def photo(shared, name):
    return os.path.join(shared, 'assets', 'images', name + '.jpg')


def measure_detect(shared, models, repeat):
    """{image: {model: [ms, ...]}} of alternating ``detect`` calls, in this process."""
    configure_cpu_inference()
    detectors = {name: RetinaFace(prefix, 0, ctx_id=-1) for name, prefix in models.items()}
    times = {}
    for image in TIMED:
        img = cv2.imread(photo(shared, image))
        for detector in detectors.values():
            for _ in range(2):  # binds the executor for this size, quantizes the weights once
                detector.detect(img, threshold=THRESHOLD)
        times[image] = {name: [] for name in detectors}
        for _ in range(repeat):
            for name, detector in detectors.items():
                start = time.perf_counter()
                detector.detect(img, threshold=THRESHOLD)
                times[image][name].append(1e3 * (time.perf_counter() - start))
    return times


def detect_table(shared, models, repeat):
    env = dict(os.environ, GOMP_SPINCOUNT=SPIN_COUNT)  # as the commands start MXNet
    result = run([sys.executable, '-m', 'bench.quantize', '--child-detect', json.dumps(models), '--repeat',
                  str(repeat), '--shared', shared], env=env)
    times = json.loads(result.stdout.splitlines()[-1])
    print('detect(), threshold %.1f, one scale: median of %d alternating calls, ms' % (THRESHOLD, repeat))
    print('%-6s %10s %10s %12s' % ('image', 'FP32', 'INT8', 'INT8 / FP32'))
    for image in TIMED:
        fp32, int8 = (float(np.median(times[image][name])) for name in ('fp32', 'int8'))
        print('%-6s %10.2f %10.2f %11.2fx' % (image, fp32, int8, int8 / fp32))


def subset_split(data, name, count):
    """A split ``name`` of the first ``count`` val images of ``data`` (its images linked)."""
    val_label, val_images = split_paths(data, 'val')
    label, images = split_paths(data, name)
    os.makedirs(os.path.dirname(label))
    os.symlink(val_images, images)
    write_label_file(label, read_label_file(val_label)[:count])
    return name


def test_widerface(prefix, data, split, mode, output):
    return [sys.executable, 'test_widerface.py', '--prefix', prefix, '--epoch', '0', '--mode', str(mode), '--gpu',
            '-1', '--dataset_path', data, '--image_set', split, '--output', output, '--overwrite']


def mode1_table(models, data, work, processes):
    split = subset_split(data, 'val5', 5)
    seconds = {name: [] for name in models}
    for run_index in range(processes):
        for name, prefix in models.items():
            start = time.perf_counter()
            run(test_widerface(prefix, data, split, 1, os.path.join(work, 'mode1-%s-%d' % (name, run_index))))
            seconds[name].append(time.perf_counter() - start)
    fp32, int8 = (float(np.median(seconds[name])) for name in ('fp32', 'int8'))
    print('\ntest_widerface.py --mode 1 on 5 images, whole process: median of %d, seconds' % processes)
    print('%10s %10s %12s' % ('FP32', 'INT8', 'INT8 / FP32'))
    print('%10.2f %10.2f %11.2fx' % (fp32, int8, int8 / fp32))


def accuracy_tables(shared, models, data, work):
    print('\nWIDER AP, test_widerface.py --mode 0 on %d synthetic val images'
          % len(read_label_file(split_paths(data, 'val')[0])))
    print('%-30s %8s %8s %8s' % ('model', 'easy', 'medium', 'hard'))
    aps = {}
    for name, prefix in models.items():
        output = os.path.join(work, 'mode0-' + name)
        run(test_widerface(prefix, data, 'val', 0, output))
        aps[name] = widerface.evaluate(output, os.path.join(data, 'ground_truth'))
        row = [aps[name][setting] for setting in ('easy', 'medium', 'hard')]
        print('%-30s %8.4f %8.4f %8.4f' % ((name,) + tuple(row)))
        if name != 'fp32':
            print('%-30s %+8.2f %+8.2f %+8.2f' % (('  points against FP32',) + tuple(
                100 * (aps[name][s] - aps['fp32'][s]) for s in ('easy', 'medium', 'hard'))))
    print('\nshared photos, threshold %.1f, scale 1.0: matched at IoU >= 0.5 / FP32 faces, / INT8 faces' % THRESHOLD)
    fp32 = RetinaFace(models['fp32'], 0, ctx_id=-1)
    found = {image: fp32.detect(cv2.imread(photo(shared, image)), threshold=THRESHOLD)[0] for image in PHOTOS}
    for name, prefix in models.items():
        if name == 'fp32':
            continue
        detector = RetinaFace(prefix, 0, ctx_id=-1)
        held_out = [p for p in PHOTOS if p not in CALIBRATION_PHOTOS] if 'photos' in name else PHOTOS
        for label, images in (('all six', PHOTOS), ('not calibrated on', held_out)):
            counts = np.zeros(3, int)
            for image in images:
                faces = detector.detect(cv2.imread(photo(shared, image)), threshold=THRESHOLD)[0]
                counts += (len(matched_pairs(faces, found[image])), len(found[image]), len(faces))
            matched, fp32_faces, int8_faces = counts
            print('%-30s %-18s %d / %d = %.3f, %d / %d = %.3f' % (name, label, matched, fp32_faces,
                                                                  matched / fp32_faces, matched, int8_faces,
                                                                  matched / int8_faces))


def main():
    parser = argparse.ArgumentParser(prog='python -m bench.quantize', description=__doc__.split('\n')[0])
    parser.add_argument('--repeat', type=int, default=20, help='timed detect() calls per image and model')
    parser.add_argument('--processes', type=int, default=5, help='test_widerface.py processes per model')
    parser.add_argument('--accuracy', action='store_true', help='also WIDER AP and the photo matches')
    parser.add_argument('--val', type=int, default=120, help='synthetic val images of the AP (--accuracy)')
    parser.add_argument('--shared', default=os.environ.get('RETINAFACE_SHARED', str(REPO.parent / 'shared')))
    parser.add_argument('--child-detect', help='measure detect() of these models (JSON) here, print JSON (child)')
    args = parser.parse_args()
    if args.child_detect:
        print(json.dumps(measure_detect(args.shared, json.loads(args.child_detect), args.repeat)))
        return
    fp32 = os.path.join(args.shared, MNET)
    with tempfile.TemporaryDirectory() as work:
        photos = os.path.join(work, 'photos')
        os.mkdir(photos)
        for name in CALIBRATION_PHOTOS:
            os.symlink(photo(args.shared, name), os.path.join(photos, name + '.jpg'))
        models = {'fp32': fp32, 'int8': quantize(fp32, photos, os.path.join(work, 'int8'))}
        data = os.path.join(work, 'data')
        generate_widerface(data, num_train=16, num_val=max(args.val, 5), num_test=0, seed=0)
        print('mnet.25 FP32 against INT8 (tools/quantize.py on %s), %d usable CPUs, commands\' CPU runtime; '
              '1-minute load average %.2f' % (', '.join(CALIBRATION_PHOTOS), usable_cpus(), os.getloadavg()[0]))
        detect_table(args.shared, models, args.repeat)
        mode1_table(models, data, work, args.processes)
        if args.accuracy:
            accuracy_tables(args.shared, {
                'fp32': fp32, 'int8 calibrated on 3 photos': models['int8'],
                'int8 calibrated on 16 train': quantize(fp32, os.path.join(data, 'train'), os.path.join(work, 'train'),
                                                        16)}, data, work)


if __name__ == '__main__':
    main()
