"""Anchors, box transforms and NMS: the numeric core shared by training and detection."""
