"""Run a RetinaFace model over a WIDER FACE split and write the official prediction files.

    python test_widerface.py --prefix model/retinaface --epoch 0 --mode 1 \\
        --dataset_path data/retinaface --image_set val --output wout --gt ground_truth/

Images are the ``# path`` entries of ``<dataset_path>/<image_set>/label.txt``, read from
``<dataset_path>/<image_set>/images/<path>``. Each image gets ``<output>/<event>/<name>.txt``:
the relative image name, the number of detections, then one ``x y w h score`` line per
detection, as the original script wrote it. Files that already exist are skipped unless
``--overwrite``, so an interrupted run resumes where it stopped.

Before the first image: every ``label.txt`` path is checked (an absolute path, a ``..``
component or two images mapping to one result file is an error naming the lines, as is a
listed image that does not exist), the ``--gt`` folder must hold the four ``.mat`` files,
and ``--output`` must hold results of this model and these settings only:
``test_widerface_run.json`` records them (the model files' SHA-256, ``--network``,
``--mode``, ``--thresh``, ``--nocrop``), and another run's folder is refused unless
``--overwrite``. The model's anchor layout is checked against its outputs when it loads.

Modes (``rcnn.evaluation.modes``): 0 single scale (short side 1600, long side <= 2150);
1 five-scale pyramid with flip and bbox voting; 2 pyramid with flip, NMS.
"""
import json
import logging
import os

from tqdm import tqdm

from facekit import args as cli
from facekit.args import UsageError
from facekit.files import atomic_open, file_digest
from facekit.image import read_image
from facekit.labels import read_label_file, split_paths
from facekit.prefix import params_path, symbol_path
from rcnn.commands.evaluate import check_ground_truth
from rcnn.detector import RetinaFace
from rcnn.evaluation import widerface
from rcnn.evaluation.modes import MODES, get_scales

__all__ = ['RUN_RECORD', 'build_parser', 'check_args', 'run', 'result_path', 'write_result', 'check_result_paths',
           'image_list', 'detect_split']

logger = logging.getLogger('test_widerface')

# What wrote the result files of an --output folder (run_record).
RUN_RECORD = 'test_widerface_run.json'


def build_parser():
    parser = cli.ArgumentParser(description='Test widerface by retinaface detector')
    parser.add_argument('--network', default=None, type=str,
                        help="anchor layout passed to RetinaFace (default: the checkpoint's, else net3)")
    parser.add_argument('--dataset', default='retinaface', choices=['retinaface'], help='dataset name')
    parser.add_argument('--image_set', default='val', type=str, help='image set name (a folder of --dataset_path)')
    parser.add_argument('--root_path', default='./data', type=str,
                        help='output data folder of the original (roidb cache); accepted, nothing is cached')
    parser.add_argument('--dataset_path', default='./data/retinaface', type=str, help='dataset path')
    parser.add_argument('--gpu', default=None, type=cli.gpu_id,
                        help='GPU id, -1 for the CPU (default: GPU 0 if MXNet has CUDA and sees a GPU, else the CPU)')
    parser.add_argument('--prefix', default='', type=str, help='model prefix')
    parser.add_argument('--epoch', default=0, type=cli.int_at_least(0), help='model epoch')
    parser.add_argument('--output', default='./wout', type=str, help='output folder')
    parser.add_argument('--nocrop', action='store_true', help='RetinaFace nocrop option')
    parser.add_argument('--thresh', default=0.02, type=cli.probability, help='valid detection threshold')
    parser.add_argument('--mode', default=1, type=int, choices=sorted(MODES),
                        help='0 single scale; 1 pyramid + flip + bbox voting; 2 pyramid + flip')
    parser.add_argument('--part', default=0, type=int, help='process images i with i %% parts == part')
    parser.add_argument('--parts', default=1, type=int, help='number of parts the image list is split into')
    parser.add_argument('--overwrite', action='store_true',
                        help="redo images whose result file exists, in a folder of another model's results too")
    parser.add_argument('--gt', default=None, type=str,
                        help='WIDER FACE ground_truth folder: evaluate easy/medium/hard AP when done')
    return parser


def run_record(args):
    """What decides the result files: the model files' SHA-256 and the detection settings."""
    return {'symbol_sha256': file_digest(symbol_path(args.prefix)),
            'params_sha256': file_digest(params_path(args.prefix, args.epoch)),
            'network': args.network, 'mode': args.mode, 'thresh': args.thresh, 'nocrop': args.nocrop}


def _check_output(args):
    """UsageError, unless --overwrite, when --output holds the results of another model or settings
    (its RUN_RECORD differs) or result files without a record."""
    record_path = os.path.join(args.output, RUN_RECORD)
    if args.overwrite or not os.path.isdir(args.output):
        return
    if os.path.isfile(record_path):
        with open(record_path, encoding='utf-8') as f:
            try:
                written = json.load(f)
            except json.JSONDecodeError as error:
                raise UsageError('--output: %s is not valid JSON (%s); pass --overwrite to redo the results'
                                 % (record_path, error)) from None
        differs = sorted(key for key, value in run_record(args).items() if written.get(key) != value)
        if differs:
            raise UsageError('--output %s holds results of another run (%s differ from %s); choose another folder, '
                             'or pass --overwrite to redo them' % (args.output, ', '.join(differs), record_path))
        return
    for _, _, names in os.walk(args.output):
        if any(name.endswith('.txt') for name in names):
            raise UsageError('--output %s holds result files without %s (of another run?); choose another folder, '
                             'or pass --overwrite to redo them' % (args.output, RUN_RECORD))


def check_args(args):
    if args.parts < 1 or not 0 <= args.part < args.parts:
        raise UsageError('--part must be in [0, --parts), got --part %d --parts %d' % (args.part, args.parts))
    label, _ = split_paths(args.dataset_path, args.image_set)
    if not os.path.isfile(label):
        raise UsageError('--dataset_path / --image_set: label file %s does not exist' % label)
    cli.check_checkpoint(args.prefix, args.epoch)
    cli.check_writable_dir(args.output, '--output')
    if args.gt is not None:
        check_ground_truth(args.gt)
    _check_output(args)


def result_path(output, image_path):
    """``<output>/<event>/<name>.txt`` for the relative image path ``<event>/<name>.jpg``."""
    event = os.path.basename(os.path.dirname(image_path))
    name = os.path.splitext(os.path.basename(image_path))[0]
    return os.path.join(output, event, name + '.txt')


def write_result(path, image_path, boxes):
    """Write one prediction file atomically.

    Args:
        image_path: relative image path; its last two components head the file.
        boxes: (N, 5) ``x1 y1 x2 y2 score`` in pixels of the original image.

    The lines are ``x1 y1 x2-x1 y2-y1 score`` with ``%d`` (truncating) coordinates,
    ``%g`` score and a trailing space, byte for byte the original's format.
    """
    name = '/'.join(image_path.replace(os.sep, '/').split('/')[-2:])
    with atomic_open(path, 'w') as f:
        f.write('%s\n' % name)
        f.write('%d\n' % boxes.shape[0])
        for box in boxes:
            f.write('%d %d %d %d %g \n' % (box[0], box[1], box[2] - box[0], box[3] - box[1], box[4]))


def check_result_paths(records, label):
    """Raise ValueError, naming ``label``'s lines, for image paths whose result file would leave
    the output folder (absolute, a ``..`` component) or that share one result file.

    Args:
        records: ``LabelRecord`` list of ``label`` (``read_label_file``), each with its ``line``.
    """
    first = {}
    for record in records:
        where = '%s:%d' % (label, record.line)
        if os.path.isabs(record.path):
            raise ValueError("%s: image path %r is absolute; paths are relative to the split's images/ folder, "
                             "and its result file would leave --output" % (where, record.path))
        if '..' in record.path.split('/'):
            raise ValueError('%s: image path %r has a ".." component; its result file would leave --output'
                             % (where, record.path))
        key = result_path('', record.path)
        if os.path.basename(key) == '.txt':
            raise ValueError('%s: image path %r has no file name' % (where, record.path))
        if key in first:
            raise ValueError('%s: image %r maps to the result file <output>/%s, as %r on line %d does '
                             '(results are <event>/<name>.txt: image names must differ within an event)'
                             % (where, record.path, key, first[key].path, first[key].line))
        first[key] = record


def image_list(label):
    """The records of the ``label.txt`` file ``label`` in file order, their paths checked
    (``check_result_paths``)."""
    records = read_label_file(label)
    check_result_paths(records, label)
    return records


def load_detector(args):
    """The RetinaFace of ``--prefix``/``--epoch`` on the device ``--gpu`` chooses; on the CPU each
    of the ``--parts`` processes takes its share of the cores (the load measured since the start
    is not used: the other parts would count)."""
    from facekit.mx.runtime import inference_context  # MXNet loads here, for the checkpoint's forward
    ctx = inference_context(args.gpu, parts=args.parts)
    _, vote = MODES[args.mode]
    return RetinaFace(args.prefix, args.epoch, ctx_id=ctx.device_id if ctx.device_type == 'gpu' else -1,
                      network=args.network, nocrop=args.nocrop, vote=vote)


def detect_split(args):
    """Detect on this part's images still without a result file, then evaluate if ``--gt``.

    Bad input (label.txt, a listed image, the model files, the ground truth or the prediction
    files) ends the run with one line naming the file and line, exit status 1.
    """
    label, image_root = split_paths(args.dataset_path, args.image_set)
    records = image_list(label)
    mine = [r for i, r in enumerate(records) if i % args.parts == args.part]
    todo = [r for r in mine if args.overwrite or not os.path.exists(result_path(args.output, r.path))]
    for record in todo:
        path = os.path.join(image_root, record.path)
        if not os.path.isfile(path):
            raise FileNotFoundError('%s:%d: image %s does not exist' % (label, record.line, path))
    gt = widerface.load_ground_truth(args.gt) if args.gt else None
    logger.info('%d images in %s, %d in part %d/%d, %d to do', len(records), args.image_set,
                len(mine), args.part, args.parts, len(todo))

    if todo:
        detector = load_detector(args)
        os.makedirs(args.output, exist_ok=True)
        with atomic_open(os.path.join(args.output, RUN_RECORD)) as f:
            json.dump(run_record(args), f, indent=1)
        for record in tqdm(todo, desc='widerface %s' % args.image_set, unit='img'):
            try:
                im = read_image(os.path.join(image_root, record.path))
            except ValueError as err:
                raise ValueError('%s:%d: %s' % (label, record.line, err)) from None
            scales, do_flip = get_scales(im.shape, args.mode)
            boxes, _ = detector.detect(im, threshold=args.thresh, scales=scales, do_flip=do_flip)
            write_result(result_path(args.output, record.path), record.path, boxes)

    if gt is not None:
        result = widerface.evaluate(args.output, gt)
        widerface.write_report(result, args.output)
        print(widerface.format_table(result))
        return result
    return None


def run(args, context):
    logger.info('Called with argument: %s', args)
    detect_split(args)
