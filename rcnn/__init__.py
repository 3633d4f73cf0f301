"""RetinaFace training, testing and evaluation with the MXNet symbol API."""
