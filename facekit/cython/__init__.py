"""Compiled box kernels: IoU (``bbox``), RetinaFace's float32 NMS (``cpu_nms``) and the float64
greedy NMS loop (``greedy_nms``); built in place by ``make`` or by ``pip install .``."""
