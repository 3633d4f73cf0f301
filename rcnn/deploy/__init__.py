"""Deployment outside MXNet: faithful ONNX export checked with onnxruntime (``onnx_export``)
and an onnxruntime CPU forward of the exported models (``ort``).

Neither ``onnx`` nor ``onnxruntime`` is imported here: the MXNet detectors work without them.
"""
