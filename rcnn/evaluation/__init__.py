"""Evaluation: WIDER FACE easy / medium / hard average precision (``widerface``)."""
