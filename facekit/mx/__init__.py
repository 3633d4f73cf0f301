"""The MXNet side of what the detectors share: ``runtime`` (device, engine, threads),
``executor`` (shape-cached forwards), ``checkpoint`` (files without pickle), ``finite``
(NaN checks), ``metric`` and ``schedule``, ``trainer`` (the one training loop), and the ONNX
export (``onnx_convert``, ``onnx_export``). Every module here imports MXNet."""
