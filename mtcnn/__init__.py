"""MTCNN face detection cascade (P-Net, R-Net, O-Net) with the MXNet symbol API."""
