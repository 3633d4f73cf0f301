"""rcnn.quantize: what stays FP32 in an INT8 RetinaFace, and how calibration images are prepared."""
import cv2
import numpy as np

from rcnn.evaluation.modes import SINGLE_SCALE
from rcnn.quantize import calibration_input, high_resolution_layers
from rcnn.symbol import get_symbol_test
from support import make_cfg


def test_the_convolutions_at_output_strides_2_and_4_stay_fp32():
    mnet = high_resolution_layers(get_symbol_test('mnet', make_cfg('mnet')))
    # mobilenet0.25: conv0 (stride 2) .. conv6; conv7 is the depthwise convolution to stride 8.
    assert mnet == ['mobilenet0_conv%d_fwd' % i for i in range(7)]
    resnet = high_resolution_layers(get_symbol_test('resnet', make_cfg('resnet')))
    assert resnet[0] == 'conv0' and all(name.startswith(('stage1_', 'stage2_unit1_conv1')) for name in resnet[1:])
    assert 'stage2_unit1_conv2' not in resnet  # stage 2 strides to 8 in its first 3x3 convolution


def test_calibration_input_is_the_mode0_network_input():
    rng = np.random.RandomState(0)
    img = rng.randint(0, 256, (300, 400, 3)).astype(np.uint8)
    data = calibration_input(img)
    scale = SINGLE_SCALE[0] / 300.0  # short side to 1600; the long side, 2133, fits under 2150
    expected = cv2.resize(img, None, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    assert data.shape == (1, 3, 1600, 2133) and data.dtype == np.float32
    np.testing.assert_array_equal(data[0], expected[:, :, ::-1].transpose(2, 0, 1))  # RGB, 0..255
