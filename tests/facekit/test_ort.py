"""facekit.ort.OnnxForward: sessions set up for a shared machine, inputs checked, bad files named."""
import os

import numpy as np
import pytest

from facekit.cpu import usable_cpus
from facekit.ort import OnnxForward
from rcnn.export import export_retinaface
from support import released_mnet


@pytest.fixture(scope='module')
def mnet_onnx(tmp_path_factory):
    """The released mnet.25 exported with dynamic batch, height and width."""
    path = str(tmp_path_factory.mktemp('mnet') / 'mnet.25.onnx')
    return path, export_retinaface(released_mnet(), 0, path)


def test_onnx_forward_session_settings(mnet_onnx):
    path, _ = mnet_onnx
    forward = OnnxForward(path)
    options = forward.session.get_session_options()
    assert options.intra_op_num_threads == usable_cpus() == forward.threads
    assert options.inter_op_num_threads == 1
    assert options.get_session_config_entry('session.intra_op.allow_spinning') == '0'
    assert options.get_session_config_entry('session.inter_op.allow_spinning') == '0'
    spinning = OnnxForward(path, threads=1, spinning=True).session.get_session_options()
    assert spinning.intra_op_num_threads == 1
    assert spinning.get_session_config_entry('session.intra_op.allow_spinning') == '1'
    with pytest.raises(ValueError, match=r'takes data of shape \(None, 3, None, None\)'):
        forward(np.zeros((3, 32, 32), np.float32))
    with pytest.raises(FileNotFoundError, match='ONNX model not found: .*missing.onnx'):
        OnnxForward(os.path.join(os.path.dirname(path), 'missing.onnx'))


@pytest.mark.parametrize('content', [b'', b'hello world', None])
def test_a_file_that_is_not_an_onnx_model_is_named(content, tmp_path, mnet_onnx):
    path = tmp_path / 'model.onnx'
    path.write_bytes(content if content is not None else open(mnet_onnx[0], 'rb').read()[:5000])
    with pytest.raises(ValueError, match=r'^%s: not an ONNX model onnxruntime can load' % path):
        OnnxForward(str(path))
