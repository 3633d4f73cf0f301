"""The MTCNN command lines, one module each, and the functions that start them (named as the
console scripts, so that they never shadow a command module).

Each function enters through ``facekit.command.main``, which prepares the runtime before
the command module (and with it MXNet) is imported. The launchers call them
(``python -m mtcnn.demo``, ``-m mtcnn.train``, ``-m mtcnn.prepare``, ``-m mtcnn.evaluate``,
``-m mtcnn.convert``, ``tools/export_onnx.py mtcnn``), and so do the console scripts of
``pip install .`` (``mtcnn-detect``, ``mtcnn-train``, ...).
"""
from facekit.command import main

__all__ = ['mtcnn_detect', 'mtcnn_train', 'mtcnn_prepare', 'mtcnn_evaluate', 'mtcnn_convert', 'mtcnn_export']


def mtcnn_detect(argv=None, prog=None):
    """``python -m mtcnn.demo``: detect faces in an image and draw them."""
    return main('mtcnn.commands.demo', argv, prog)


def mtcnn_train(argv=None, prog=None):
    """``python -m mtcnn.train``: train one net of the cascade (MXNet)."""
    return main('mtcnn.commands.train', argv, prog)


def mtcnn_prepare(argv=None, prog=None):
    """``python -m mtcnn.prepare``: write the training samples of one net."""
    return main('mtcnn.commands.prepare', argv, prog)


def mtcnn_evaluate(argv=None, prog=None):
    """``python -m mtcnn.evaluate``: recall and precision of the cascade over a label.txt."""
    return main('mtcnn.commands.evaluate', argv, prog)


def mtcnn_convert(argv=None, prog=None):
    """``python -m mtcnn.convert``: the canonical weights of facenet-pytorch to MXNet .params (MXNet)."""
    return main('mtcnn.commands.convert', argv, prog)


def mtcnn_export(argv=None, prog=None):
    """``tools/export_onnx.py mtcnn``: a net to ONNX, checked with onnxruntime (MXNet)."""
    return main('mtcnn.commands.export', argv, prog)
