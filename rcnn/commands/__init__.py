"""RetinaFace's command lines, one module each, and the functions that start them (named as the
console scripts, so that they never shadow a command module).

Each function enters through ``facekit.command.main``, which prepares the runtime before
the command module (and with it MXNet) is imported. The launchers call them: ``train.py``,
``test_widerface.py``, ``detect.py``, ``tools/*.py``,
``python -m rcnn.evaluation.widerface``, ``python -m rcnn.dataset.synthetic``, and the
console scripts of ``pip install .`` (``retinaface-train``, ``retinaface-detect``, ...; the demo
and the launcher work in a checkout only, which they write into or start ``train.py`` from).
"""
from facekit.command import main

__all__ = ['retinaface_train', 'retinaface_test', 'retinaface_detect', 'retinaface_evaluate', 'retinaface_export',
           'retinaface_quantize', 'retinaface_synthetic', 'retinaface_demo', 'retinaface_launch']


def retinaface_train(argv=None, prog=None):
    """``train.py``: train RetinaFace (MXNet)."""
    return main('rcnn.commands.train', argv, prog)


def retinaface_test(argv=None, prog=None):
    """``test_widerface.py``: detect on a WIDER FACE split, write the result files, evaluate."""
    return main('rcnn.commands.test_widerface', argv, prog)


def retinaface_detect(argv=None, prog=None):
    """``detect.py``: detect faces in images or a video, draw or blur them, write JSON."""
    return main('rcnn.commands.detect', argv, prog)


def retinaface_evaluate(argv=None, prog=None):
    """``python -m rcnn.evaluation.widerface``: WIDER FACE easy / medium / hard AP."""
    return main('rcnn.commands.evaluate', argv, prog)


def retinaface_export(argv=None, prog=None):
    """``tools/export_onnx.py retinaface``: a checkpoint to ONNX, checked with onnxruntime (MXNet)."""
    return main('rcnn.commands.export', argv, prog)


def retinaface_quantize(argv=None, prog=None):
    """``tools/quantize.py``: an INT8 checkpoint for the CPU (MXNet)."""
    return main('rcnn.commands.quantize', argv, prog)


def retinaface_synthetic(argv=None, prog=None):
    """``python -m rcnn.dataset.synthetic``: WIDER FACE-format data with drawn faces."""
    return main('rcnn.commands.synthetic', argv, prog)


def retinaface_demo(argv=None, prog=None):
    """``tools/demo.py`` (``make demo``): synthetic data, training, WIDER evaluation, pictures."""
    return main('rcnn.commands.demo', argv, prog)


def retinaface_launch(argv=None, prog=None):
    """``tools/launch.py``: an MXNet parameter-server job on this host."""
    return main('rcnn.commands.launch', argv, prog)
