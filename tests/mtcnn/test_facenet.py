"""The canonical MTCNN weights (facenet-pytorch's pnet.pt / rnet.pt / onet.pt): the restricted torch
reader (``mtcnn.torchfile``), the conversion (``mtcnn.facenet``) against facenet-pytorch 2.6.0's
outputs, and the cascade side by side with facenet-pytorch's."""
import io
import pickle
import pickletools
import struct
import zipfile

import cv2
import numpy as np
import pytest

from mtcnn.detector import MtcnnDetector
from mtcnn.evaluate import compare, pair_boxes
from mtcnn.facenet import convert_net, read_facenet
from mtcnn.predictor import load_predictor
from mtcnn.torchfile import MAGIC_NUMBER, PROTOCOL_VERSION, TorchFileError, load_state_dict, read_state_dict
from support import canonical_dir, convert_canonical, make_wheel, require_shared

CANONICAL = 'assets/models/mtcnn-canonical'
GOLDEN = 'golden/mtcnn_facenet_test01.npz'
NETS = ('pnet', 'rnet', 'onet')


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """The converted nets, written by the command line: {'pnet': path, ...}."""
    return convert_canonical(tmp_path_factory.mktemp('canonical'))


# ---------------------------------------------------------------- reader

def legacy_file(obj_pickle, keys=()):
    """The bytes of a legacy torch file whose object pickle is ``obj_pickle`` (no storages)."""
    header = b''.join(pickle.dumps(v, protocol=2) for v in
                      (MAGIC_NUMBER, PROTOCOL_VERSION, {'protocol_version': PROTOCOL_VERSION,
                                                        'little_endian': True,
                                                        'type_sizes': {'short': 2, 'int': 4, 'long': 4}}))
    return header + obj_pickle + pickle.dumps(list(keys), protocol=2)


def calling_pickle(module, name, argument):
    """Protocol-2 pickle of ``module.name(argument)`` inside an OrderedDict value, as torch nests tensors."""
    text = argument.encode()
    call = b'c%s\n%s\nX%s%s\x85R' % (module.encode(), name.encode(), struct.pack('<I', len(text)), text)
    return b'\x80\x02ccollections\nOrderedDict\n)RX\x06\x00\x00\x00weight' + call + b's.'


@pytest.mark.parametrize('module, name', [('os', 'system'), ('posix', 'system'), ('builtins', 'eval'),
                                          ('torch', 'load')])
def test_reader_refuses_other_globals_without_running_them(tmp_path, module, name):
    marker = tmp_path / 'executed'
    if name == 'eval':
        argument = "open(%r, 'w').close()" % str(marker)
    else:
        argument = 'touch %s' % marker
    path = tmp_path / 'evil.pt'
    path.write_bytes(legacy_file(calling_pickle(module, name, argument)))
    with pytest.raises(TorchFileError) as error:
        read_state_dict(path)
    assert str(path) in str(error.value)
    assert '%s.%s' % (module, name) in str(error.value)
    assert not marker.exists()


@pytest.mark.parametrize('state', [b'}X\x01\x00\x00\x00xK\x01s', b'N}X\x0b\x00\x00\x00__defaults__)s\x86'])
def test_reader_stand_ins_take_no_state(tmp_path, state):
    """A pickle cannot set attributes on the stand-ins of the allowed globals (BUILD with a
    dict or a slot state): the file is refused and the next one reads normally."""
    path = tmp_path / 'build.pt'
    path.write_bytes(legacy_file(b'\x80\x02ctorch._utils\n_rebuild_tensor_v2\n' + state + b'b.'))
    with pytest.raises(TorchFileError, match='build.pt: truncated or corrupt'):
        read_state_dict(path)
    assert len(read_state_dict(canonical_dir() / 'pnet.pt')) == 13


def test_the_crafted_pickle_would_run_its_command(tmp_path):
    """The file of the refusal test is a real attack: the stock unpickler runs the command."""
    marker = tmp_path / 'executed'
    pickle.loads(calling_pickle('os', 'system', 'touch %s' % marker))
    assert marker.exists()


def test_reader_gives_the_state_dicts_of_the_canonical_weights():
    """Names and shapes of facenet-pytorch's nets, float32 C-contiguous arrays."""
    state = read_state_dict(canonical_dir() / 'onet.pt')
    assert list(state)[:3] == ['conv1.weight', 'conv1.bias', 'prelu1.weight']
    assert state['dense5.weight'].shape == (256, 1152) and state['dense6_3.weight'].shape == (10, 256)
    assert all(v.dtype == np.float32 and v.flags.c_contiguous for v in state.values())
    # PReLU slopes and biases are real values, not a misread storage (zeros or garbage).
    assert 0 < np.abs(state['prelu1.weight']).max() < 10 and np.isfinite(state['dense5.weight']).all()


def storages_offset(data):
    """Where the raw storages begin: after the five pickles."""
    stream = io.BytesIO(data)
    for _ in range(5):
        for _ in pickletools.genops(stream):
            pass
    return stream.tell()


@pytest.mark.parametrize('cut', ['system information', 'state dict', 'storage header', 'storage data',
                                 'last byte'])
def test_reader_names_a_truncated_file(tmp_path, cut):
    data = (canonical_dir() / 'pnet.pt').read_bytes()
    storages = storages_offset(data)
    stops = {'system information': 30, 'state dict': storages // 2, 'storage header': storages + 3,
             'storage data': storages + 100, 'last byte': len(data) - 1}
    path = tmp_path / 'pnet.pt'
    path.write_bytes(data[:stops[cut]])
    with pytest.raises(TorchFileError, match='truncated') as error:
        read_state_dict(path)
    assert str(path) in str(error.value)


def test_reader_refuses_trailing_bytes_and_other_files(tmp_path):
    data = (canonical_dir() / 'pnet.pt').read_bytes()
    with pytest.raises(TorchFileError, match='x.pt: 3 unexpected bytes'):
        load_state_dict(data + b'abc', 'x.pt')
    with pytest.raises(TorchFileError, match='y.pt: not a legacy torch file'):
        load_state_dict(pickle.dumps(12345, protocol=2), 'y.pt')
    with pytest.raises(FileNotFoundError, match='missing.pt'):
        read_state_dict(tmp_path / 'missing.pt')


def test_reader_reads_the_wheel_directly(tmp_path):
    source = canonical_dir()
    from_wheel = read_facenet(make_wheel(tmp_path / 'facenet_pytorch-2.6.0-py3-none-any.whl', source))
    from_dir = read_facenet(source)
    assert list(from_wheel) == list(NETS)
    for net in NETS:
        assert list(from_wheel[net]) == list(from_dir[net])
        for key in from_dir[net]:
            np.testing.assert_array_equal(from_wheel[net][key], from_dir[net][key])


def test_reader_names_a_wheel_without_the_weights(tmp_path):
    wheel = tmp_path / 'other-1.0-py3-none-any.whl'
    with zipfile.ZipFile(wheel, 'w') as z:
        z.writestr('other/__init__.py', '')
    with pytest.raises(FileNotFoundError, match='other-1.0-py3-none-any.whl has no facenet_pytorch/data/pnet.pt'):
        read_facenet(wheel)


# ---------------------------------------------------------------- conversion

def test_converter_names_wrong_parameters():
    state = read_state_dict(canonical_dir() / 'rnet.pt')
    with pytest.raises(ValueError, match=r'rnet\.pt: no parameters for fc1_weight'):
        convert_net('rnet', {k: v for k, v in state.items() if k != 'dense4.weight'}, 'rnet.pt')
    with pytest.raises(ValueError, match=r'rnet\.pt: dense4\.weight has shape \(128, 575\)'):
        convert_net('rnet', dict(state, **{'dense4.weight': state['dense4.weight'][:, 1:]}), 'rnet.pt')
    with pytest.raises(ValueError, match=r'rnet\.pt: unexpected parameter dense6_3\.weight'):
        convert_net('rnet', dict(state, **{'dense6_3.weight': np.zeros((10, 128), np.float32)}), 'rnet.pt')


@pytest.mark.parametrize('net', NETS)
def test_converted_nets_reproduce_facenet(converted, net):
    """On the same pixels (ours BGR, facenet's RGB) each converted net gives facenet-pytorch
    2.6.0's probabilities, box offsets and landmarks (five x then five y) within 1e-5."""
    golden = np.load(require_shared(GOLDEN))
    outputs = load_predictor(net, converted[net])(golden[net + '_input'])
    assert len(outputs) == (3 if net == 'onet' else 2)
    np.testing.assert_allclose(outputs[0], golden[net + '_prob'], rtol=0, atol=1e-5)
    np.testing.assert_allclose(outputs[1], golden[net + '_reg'], rtol=0, atol=1e-5)
    if net == 'onet':
        ours = outputs[2].reshape(-1, 5, 2)          # (x1, y1), ..., (x5, y5)
        theirs = golden['onet_landmarks'].reshape(-1, 2, 5).transpose(0, 2, 1)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)


def test_cascade_agrees_with_facenet_on_test01(converted):
    """Our cascade (our defaults and arithmetic) with the converted weights against
    facenet-pytorch's MTCNN(min_face_size=24, thresholds=[0.6, 0.7, 0.7], factor=0.709) on
    test01.jpg: >= 80 % of the faces of each matched by the other at IoU >= 0.5, and a mean
    landmark error <= 5 % of the face width. Both misses are faces cut by the image border,
    whose crops facenet-pytorch stretches where we pad (see mtcnn.convert)."""
    golden = np.load(require_shared(GOLDEN))
    img = cv2.imread(str(require_shared('assets/images/test01.jpg')))
    boxes, landmarks = MtcnnDetector(converted['pnet'], converted['rnet'], converted['onet']).detect(img)
    assert landmarks.shape == (len(boxes), 5, 2)
    agreement = compare(golden['test01_boxes'], golden['test01_landmarks'], boxes, landmarks)
    assert agreement.reference_matched >= 0.8
    assert agreement.detections_matched >= 0.8
    assert agreement.landmark_error <= 0.05


def test_compare_pairs_faces_one_to_one():
    theirs = np.array([[0, 0, 9, 9], [1, 0, 10, 9], [50, 50, 59, 59]], np.float64)
    ours = np.array([[1, 0, 10, 9, 0.9], [0, 0, 9, 9, 0.8], [100, 100, 109, 109, 0.9]])
    assert pair_boxes(theirs, ours) == [(0, 1), (1, 0)]
    landmarks = np.zeros((3, 5, 2))
    moved = landmarks + [[[0.0]], [[3.0]], [[0.0]]]   # ours[1] (paired with theirs[0]) 3 px off in x and y
    agreement = compare(theirs, landmarks, ours, moved)
    assert (agreement.reference, agreement.detections, agreement.matched) == (3, 3, 2)
    assert agreement.reference_matched == agreement.detections_matched == pytest.approx(2 / 3)
    assert agreement.landmark_error == pytest.approx(np.hypot(3, 3) / 9 / 2)
