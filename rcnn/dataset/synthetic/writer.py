"""Writing a synthetic data set: images by a pool of processes, label.txt files, the WIDER
ground-truth ``.mat`` files, and the manifest that records what the generator owns."""
import json
import logging
import multiprocessing
import os
import time

import cv2
import numpy as np
import scipy.io
from tqdm import tqdm

from facekit.files import atomic_open, atomic_path, file_digest
from facekit.labels import LabelRecord, split_paths, write_label_file
from rcnn.dataset.synthetic.faces import ATTRIBUTES
from rcnn.dataset.synthetic.scene import SPLITS, image_path, render_image

__all__ = ['MEDIUM_MIN_HEIGHT', 'EASY_MIN_HEIGHT', 'MANIFEST', 'BYTES_PER_IMAGE', 'OutputConflict', 'output_files',
           'write_ground_truth', 'generate_widerface']

logger = logging.getLogger(__name__)

MEDIUM_MIN_HEIGHT = 24  # WIDER-like difficulty thresholds on the box height, pixels
EASY_MIN_HEIGHT = 50
MANIFEST = 'synthetic_manifest.json'  # what the generator wrote in its output folder
# Disk space reserved per image: about twice the mean JPEG (docs/benchmarks.md).
BYTES_PER_IMAGE = 200000
_GENERATOR = 'rcnn.dataset.synthetic'
# Paths whose presence means the folder already holds a data set.
_DATA_SET_MARKERS = tuple('%s/label.txt' % split for split in SPLITS) + ('ground_truth',)
_GROUND_TRUTH = tuple('ground_truth/%s' % name for name in
                      ('wider_face_val.mat', 'wider_easy_val.mat', 'wider_medium_val.mat', 'wider_hard_val.mat'))


def _generate_one(task):
    """Worker: render, write the JPEG atomically; returns the annotations (no pixels) and the file's SHA-256."""
    root, seed, split, index = task
    sample = render_image(seed, split, index)
    with atomic_path(os.path.join(split_paths(root, split)[1], sample.path)) as tmp:
        if not cv2.imwrite(tmp, sample.image, [cv2.IMWRITE_JPEG_QUALITY, sample.jpeg_quality]):
            raise IOError('could not write %s' % tmp)
        digest = file_digest(tmp)
    sample.image = None  # do not ship pixels back to the parent
    return sample, digest


def _worker_init():
    cv2.setNumThreads(1)  # one process per core; cv2's own threads would oversubscribe


def _render_split(root, split, count, seed, workers):
    tasks = [(root, seed, split, i) for i in range(count)]
    progress = dict(total=count, desc='synthetic %s' % split, unit='img')
    workers = min(workers, count)
    if workers <= 1:
        return [_generate_one(t) for t in tqdm(tasks, **progress)]
    # spawn, not fork: a parent whose cv2 thread pool is already running deadlocks forked children.
    with multiprocessing.get_context('spawn').Pool(workers, initializer=_worker_init) as pool:
        return list(tqdm(pool.imap(_generate_one, tasks, chunksize=4), **progress))


class OutputConflict(FileExistsError):
    """The output folder holds a data set (without ``overwrite``) or a file this generator did not write."""


def output_files(num_train, num_val, num_test, seed=0):
    """Paths (relative to the output folder) that ``generate_widerface`` writes, manifest aside."""
    files = []
    for split, count in (('train', num_train), ('val', num_val), ('test', num_test)):
        if count > 0:
            files += ['%s/images/%s' % (split, image_path(seed, split, i))
                      for i in tqdm(range(count), desc='listing %s' % split, unit='img', disable=count < 10000)]
            files.append('%s/label.txt' % split)
    if num_val > 0:
        files += list(_GROUND_TRUTH)
    return files


class _Manifest:
    """``<root>/synthetic_manifest.json``: {relative path: SHA-256, or None while being written}."""

    def __init__(self, root):
        self.path = os.path.join(root, MANIFEST)
        self.root = root
        self.files = {}
        if not os.path.lexists(self.path):
            return
        try:
            if os.path.islink(self.path):
                raise ValueError('a link')
            with open(self.path, encoding='utf-8') as f:
                data = json.load(f)
            if data.get('generator') != _GENERATOR or not isinstance(data.get('files'), dict):
                raise ValueError('another program\'s JSON')
        except (OSError, ValueError, AttributeError) as err:
            raise OutputConflict('%s is not a manifest written by this generator (%s); give --output a fresh folder'
                                 % (self.path, err)) from None
        self.files = data['files']

    def claim(self, targets, overwrite):
        """Check that every existing target is this generator's, then list all as being written.

        Raises:
            OutputConflict naming the first data set file (without ``overwrite``) or foreign file.
        """
        present = [m + ('/' if m == 'ground_truth' else '') for m in _DATA_SET_MARKERS
                   if os.path.lexists(os.path.join(self.root, m))]
        if present and not overwrite:
            raise OutputConflict('%s already holds a data set (%s); give --output a fresh folder, or pass '
                                 '--overwrite to replace only what this generator wrote there (listed in %s)'
                                 % (self.root, ', '.join(present), MANIFEST))
        for rel in targets:
            path = os.path.join(self.root, rel)
            if not os.path.lexists(path):
                continue
            if rel not in self.files:
                raise OutputConflict('refusing to replace %s: this generator did not write it (not listed in %s); '
                                     'give --output a fresh folder' % (path, self.path))
            if os.path.islink(path) or not os.path.isfile(path) or \
                    self.files[rel] is not None and file_digest(path) != self.files[rel]:
                raise OutputConflict('refusing to replace %s: it changed since this generator wrote it '
                                     '(its checksum differs from %s); move it away or give --output a fresh folder'
                                     % (path, self.path))
        self.record({rel: None for rel in targets})

    def record(self, digests):
        """Add or update ``digests`` {relative path: SHA-256 or None} and rewrite the manifest atomically."""
        self.files.update(digests)
        with atomic_open(self.path, 'w') as f:
            json.dump({'generator': _GENERATOR, 'files': dict(sorted(self.files.items()))}, f, indent=0)
            f.write('\n')

    def record_files(self, relpaths):
        self.record({rel: file_digest(os.path.join(self.root, rel)) for rel in relpaths})


def _label_records(samples, with_faces):
    """LabelRecords for label.txt; paths only when ``with_faces`` is False (test split)."""
    if not with_faces:
        return [LabelRecord(path=s.path) for s in samples]
    return [LabelRecord(path=s.path, boxes=s.boxes.astype(np.float32), landmarks=s.landmarks, blur=s.blur)
            for s in samples]


def _cell(items):
    """(n, 1) object array, the layout scipy.io gives for a MATLAB column cell."""
    out = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        out[i, 0] = item
    return out


def _index_dtype(values):
    # MATLAB stores small integer-valued doubles compactly; the official files load as uint8/uint16.
    return np.uint8 if len(values) == 0 or max(values) < 256 else np.uint16


def write_ground_truth(directory, samples):
    """Write wider_face_val.mat and wider_{easy,medium,hard}_val.mat for ``samples`` (val split)."""
    events = sorted({s.event for s in samples})  # string order, as in the official files
    by_event = {e: [s for s in samples if s.event == e] for e in events}
    base = {
        'event_list': _cell([np.array([e]) for e in events]),
        'file_list': _cell([_cell([np.array([s.name]) for s in by_event[e]]) for e in events]),
        'face_bbx_list': _cell([_cell([s.boxes.astype(np.int32) for s in by_event[e]]) for e in events]),
    }
    for j, attr in enumerate(ATTRIBUTES):
        base['%s_label_list' % attr] = _cell([_cell([s.attributes[:, j:j + 1].copy() for s in by_event[e]])
                                              for e in events])
    _savemat(os.path.join(directory, 'wider_face_val.mat'), base)
    for setting in ('easy', 'medium', 'hard'):
        gt = _cell([_cell([_gt_list(s, setting) for s in by_event[e]]) for e in events])
        _savemat(os.path.join(directory, 'wider_%s_val.mat' % setting), dict(base, gt_list=gt))


def _gt_list(sample, setting):
    """1-based indices (k, 1) of the faces that count in ``setting``."""
    h = sample.boxes[:, 3]
    attr = dict(zip(ATTRIBUTES, sample.attributes.T))
    keep = {'hard': np.ones(len(h), bool),
            'medium': h >= MEDIUM_MIN_HEIGHT,
            'easy': (h >= EASY_MIN_HEIGHT) & (attr['occlusion'] == 0) & (attr['blur'] < 2)}[setting]
    index = np.flatnonzero(keep) + 1
    return index.astype(_index_dtype(index)).reshape(-1, 1)


def _savemat(path, variables):
    with atomic_open(path, 'wb') as f:
        scipy.io.savemat(f, variables, do_compression=True)


def generate_widerface(root, num_train, num_val, num_test, seed=0, workers=None, overwrite=False):
    """Generate the three splits and the val ground truth under ``root``; returns seconds taken.

    Raises:
        OutputConflict: ``root`` already holds a data set and ``overwrite`` is False, or a
            file to be written is not one this generator wrote (see the module docstring).
    """
    root = os.fspath(root)
    manifest = _Manifest(root)
    manifest.claim(output_files(num_train, num_val, num_test, seed), overwrite)
    workers = workers or os.cpu_count() or 1
    start = time.perf_counter()
    for split, count in (('train', num_train), ('val', num_val), ('test', num_test)):
        if count <= 0:
            continue
        results = _render_split(root, split, count, seed, workers)
        samples = [sample for sample, _ in results]
        manifest.record({'%s/images/%s' % (split, sample.path): digest for sample, digest in results})
        write_label_file(split_paths(root, split)[0], _label_records(samples, split != 'test'))
        manifest.record_files(['%s/label.txt' % split])
        logger.info('%s: %d images, %d faces', split, count, sum(len(s.boxes) for s in samples))
        if split == 'val':
            write_ground_truth(os.path.join(root, 'ground_truth'), samples)
            manifest.record_files(_GROUND_TRUTH)
    return time.perf_counter() - start
