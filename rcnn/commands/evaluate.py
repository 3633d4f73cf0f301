"""WIDER FACE easy / medium / hard AP of a prediction folder, by the official protocol.

    python -m rcnn.evaluation.widerface --pred wout --gt data/retinaface/ground_truth [--output DIR]

Prints the table and writes ``widerface_eval.json`` and ``widerface_pr.png`` (PR curves)
to ``--output`` (default: ``--pred``); see ``rcnn.evaluation.widerface`` for the protocol.
"""
import os

from facekit import args as cli
from rcnn.evaluation import widerface

__all__ = ['build_parser', 'check_args', 'run']


def build_parser():
    parser = cli.ArgumentParser(description='WIDER FACE val easy/medium/hard AP (official protocol)')
    parser.add_argument('--pred', required=True, help='prediction folder: <pred>/<event>/<image>.txt')
    parser.add_argument('--gt', required=True,
                        help='folder with wider_face_val.mat and wider_{easy,medium,hard}_val.mat')
    parser.add_argument('--iou_thresh', type=cli.probability, default=0.5, help='IoU for a match')
    parser.add_argument('--output', aliases=['--out-dir', '--out_dir'], default=None,
                        help='where to write %s and %s (default: --pred)'
                             % (widerface.SUMMARY_FILE, widerface.PR_CURVES_FILE))
    return parser


def check_args(args):
    cli.check_existing_dir(args.pred, '--pred')
    check_ground_truth(args.gt)
    args.output = args.output or args.pred
    cli.check_writable_dir(args.output, '--output')


def check_ground_truth(gt, flag='--gt'):
    """UsageError unless ``gt`` is a folder holding the four ground-truth files."""
    cli.check_existing_dir(gt, flag)
    missing = [name for name in widerface.GROUND_TRUTH_FILES if not os.path.isfile(os.path.join(gt, name))]
    if missing:
        raise cli.UsageError('%s: %s lacks the WIDER FACE ground truth %s' % (flag, gt, ', '.join(missing)))


def run(args, context):
    result = widerface.evaluate(args.pred, args.gt, args.iou_thresh)
    widerface.write_report(result, args.output)
    print(widerface.format_table(result))
