"""The MTCNN cascade on ONNX nets gives the MXNet cascade's boxes (within 0.01 px, scores within 1e-4)."""
import cv2
import pytest

from mtcnn.detector import MtcnnDetector
from mtcnn.export import export_mtcnn
from support import assert_same_faces, require_shared


def test_mtcnn_cascade_on_onnx_nets(tmp_path):
    params = {net: str(require_shared('assets/models/mtcnn-mxnet/%s-0016.params' % net))
              for net in ('pnet', 'rnet', 'onet')}
    exported = {}
    for net, path in params.items():
        exported[net] = str(tmp_path / ('%s.onnx' % net))
        export_mtcnn(net, path, exported[net])
    img = cv2.imread(str(require_shared('assets/images/test01.jpg')))
    boxes, _ = MtcnnDetector(*[exported[n] for n in ('pnet', 'rnet', 'onet')]).detect(img)
    ref_boxes, _ = MtcnnDetector(*[params[n] for n in ('pnet', 'rnet', 'onet')]).detect(img)
    assert len(ref_boxes) > 0
    assert_same_faces(boxes, None, ref_boxes, None, px=0.01, score=1e-4)
    with pytest.raises(ValueError, match=r"rnet.onnx is an ONNX export of 'mtcnn-rnet', not of the pnet"):
        MtcnnDetector(exported['rnet'])
