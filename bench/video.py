"""Frames per second of the detectors on a video: one frame per call against batches of frames.

    python -m bench.video [--frames 200] [--batches 4 8 16] [--repeat 3] [--shared ../shared]
                          [--int8-prefix P [--int8-epoch 0]]

A 640 x 384 MP4 of ``--frames`` frames (``mp4v``, 25 frames/s) is written to a temporary
folder: test01.jpg panned, a 640 x 384 window moving down and up over the 640 x 480 photo.
Each detector then runs in a child process of its own (MXNet's OpenMP threads never slow
onnxruntime's), set up as ``detect.py`` and the MTCNN commands run it: ``GOMP_SPINCOUNT``
set before MXNet loads, then ``facekit.mx.runtime.configure_cpu_inference``. The child
decodes the video into memory and times ``detect_batch`` over all frames, B frames per call
(``max_batch`` B), for B = 1 and each of ``--batches``, in interleaved rounds so that load
from other processes hits every B alike; the first pass of each B (binding executors) is
not timed. Every B must find the same faces as B = 1.

Rows: ``mxnet`` the released mnet.25 (FP32 checkpoint, ``RetinaFace``), ``int8`` an INT8
checkpoint (only with ``--int8-prefix``), ``onnx`` mnet.25 exported into the temporary
folder (``RetinaFace.from_onnx``), ``mtcnn`` the released MXNet weights
(``MtcnnDetector.detect_batch``). RetinaFace runs as ``detect.py``'s defaults do (threshold
0.8, scale 1, no flip), MTCNN with its defaults. Prints the median frames/s of
``--repeat`` rounds per B, its ratio to B = 1 (> 1: batches are faster), and the runtime
each child chose (on a busy machine MXNet's commands take fewer OpenMP threads).
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

from facekit.cpu import SPIN_COUNT, CpuLoad, usable_cpus

REPO = pathlib.Path(__file__).resolve().parents[1]

MNET = os.path.join('assets', 'models', 'retinaface-mnet025', 'mnet.25')
MTCNN = os.path.join('assets', 'models', 'mtcnn-mxnet', '%s-0016.params')
SIZE = (640, 384)  # width, height
FPS = 25.0


def write_video(photo, path, frames):
    """``frames`` frames of SIZE panning down and up over ``photo``, one pixel per frame."""
    img = cv2.imread(photo)
    if img is None or img.shape[0] < SIZE[1] or img.shape[1] < SIZE[0]:
        sys.exit('%s: cannot read it, or smaller than %dx%d' % (photo, *SIZE))
    travel = img.shape[0] - SIZE[1]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), FPS, SIZE)
    for index in range(frames):
        top = travel - abs(index % (2 * travel) - travel) if travel else 0
        writer.write(np.ascontiguousarray(img[top:top + SIZE[1], :SIZE[0]]))
    writer.release()


def read_frames(path):
    capture = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def make_detector(kind, model, epoch, load):
    """The detector of row ``kind``, set up as the commands run it (``load``: the CPU load measured since
    the child started): its ``detect_batch`` as f(frames, B), and the runtime in words."""
    if kind == 'onnx':
        from rcnn.detector import RetinaFace
        detector = RetinaFace.from_onnx(model)
        return (lambda frames, batch: detector.detect_batch(frames, threshold=0.8, max_batch=batch),
                'onnxruntime, %d threads' % detector.net.threads)
    from facekit.mx.runtime import DEFAULT_ENGINE, configure_cpu_inference
    engine, threads = configure_cpu_inference(load=load)
    runtime = 'mxnet, %s, %s threads' % (engine or DEFAULT_ENGINE, threads or 'default')
    if kind == 'mtcnn':
        from mtcnn.detector import MtcnnDetector
        detector = MtcnnDetector(*[model % net for net in ('pnet', 'rnet', 'onet')])
        return lambda frames, batch: detector.detect_batch(frames, max_batch=batch), runtime
    from rcnn.detector import RetinaFace
    detector = RetinaFace(model, epoch, ctx_id=-1)
    return lambda frames, batch: detector.detect_batch(frames, threshold=0.8, max_batch=batch), runtime


def measure_here(kind, model, epoch, video, batches, repeat):
    """{B: [seconds of a pass over all frames] * repeat} and {B: faces found} in this process."""
    load = CpuLoad()
    frames = read_frames(video)
    detect, runtime = make_detector(kind, model, epoch, load)

    def run_pass(batch):
        return sum(len(found[0]) for start in range(0, len(frames), batch)
                   for found in detect(frames[start:start + batch], batch))

    faces = {batch: run_pass(batch) for batch in batches}  # untimed: binds executors, warms oneDNN
    times = {batch: [] for batch in batches}
    for _ in range(repeat):
        for batch in batches:
            start = time.perf_counter()
            run_pass(batch)
            times[batch].append(time.perf_counter() - start)
    return {'times': times, 'faces': faces, 'frames': len(frames), 'runtime': runtime}


def run_child(kind, model, epoch, video, batches, repeat):
    command = [sys.executable, '-m', 'bench.video', '--child', kind, '--model', model, '--epoch', str(epoch),
               '--video', video, '--repeat', str(repeat), '--batches'] + [str(b) for b in batches]
    # As the commands start: the spin count is set before MXNet loads (facekit.cpu.prepare_openmp).
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                            env=dict(os.environ, GOMP_SPINCOUNT=SPIN_COUNT))
    if result.returncode:
        sys.exit('the %s run failed:\n%s' % (kind, result.stderr))
    return json.loads(result.stdout.splitlines()[-1])


def main():
    shared = os.environ.get('RETINAFACE_SHARED', str(REPO.parent / 'shared'))
    parser = argparse.ArgumentParser(prog='python -m bench.video', description=__doc__.split('\n')[0])
    parser.add_argument('--frames', type=int, default=200, help='frames of the video')
    parser.add_argument('--batches', type=int, nargs='+', default=[4, 8, 16], help='batch sizes timed against 1')
    parser.add_argument('--repeat', type=int, default=3, help='timed passes over the video per batch size')
    parser.add_argument('--shared', default=shared)
    parser.add_argument('--int8-prefix', help='an INT8 checkpoint prefix: adds the int8 row')
    parser.add_argument('--int8-epoch', type=int, default=0)
    parser.add_argument('--child', choices=('mxnet', 'int8', 'onnx', 'mtcnn'), help='measure one row here (children)')
    parser.add_argument('--model', help='the model of --child')
    parser.add_argument('--epoch', type=int, default=0, help='the checkpoint epoch of --child')
    parser.add_argument('--video', help='the video of --child')
    args = parser.parse_args()
    batches = [1] + [b for b in args.batches if b != 1]
    if args.child:
        print(json.dumps(measure_here(args.child, args.model, args.epoch, args.video, batches, args.repeat)))
        return
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        video = os.path.join(folder, 'pan.mp4')
        write_video(os.path.join(args.shared, 'assets', 'images', 'test01.jpg'), video, args.frames)
        onnx = os.path.join(folder, 'mnet.25.onnx')
        from rcnn.export import export_retinaface  # MXNet: in this process, which times nothing
        export_retinaface(os.path.join(args.shared, MNET), 0, onnx)
        models = [('mxnet', os.path.join(args.shared, MNET), 0)]
        if args.int8_prefix:
            models.append(('int8', args.int8_prefix, args.int8_epoch))
        models += [('onnx', onnx, 0), ('mtcnn', os.path.join(args.shared, MTCNN), 0)]
        for kind, model, epoch in models:
            rows[kind] = run_child(kind, model, epoch, video, batches, args.repeat)
    print('%d frames of %dx%d, %d usable CPUs, median of %d passes per batch size, frames/s (ratio to batch 1)'
          % (args.frames, SIZE[0], SIZE[1], usable_cpus(), args.repeat))
    print('%-8s %7s' % ('detector', 'faces') + ''.join('%18s' % ('batch %d' % b) for b in batches) + '   runtime')
    for kind, row in rows.items():
        fps = {int(b): row['frames'] / float(np.median(t)) for b, t in row['times'].items()}
        faces = set(row['faces'].values())
        if len(faces) != 1:
            sys.exit('%s: the batch sizes found different faces: %s' % (kind, row['faces']))
        cells = ['%.1f (%.2fx)' % (fps[b], fps[b] / fps[1]) for b in batches]
        print('%-8s %7d' % (kind, faces.pop()) + ''.join('%18s' % cell for cell in cells) + '   ' + row['runtime'])


if __name__ == '__main__':
    main()
