"""A reader of PyTorch's legacy (non-zip) serialization of float32 state dicts, without torch.

``torch.save(..., _use_new_zipfile_serialization=False)`` writes five pickles
and then the raw storages:

1. the magic number 0x1950a86a20f9469cfc6c, 2. the protocol version 1001,
3. a dict of system information (byte order, C type sizes), 4. the object
itself, whose tensors name their storages through persistent ids
``('storage', torch.FloatStorage, key, location, numel, None)`` and are built by
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
hooks)``, 5. the list of storage keys in the order their data follows; each
storage is then an int64 element count and that many little-endian float32s.

The object pickle is read by an unpickler that resolves only the three globals
such a state dict names (``collections.OrderedDict``,
``torch._utils._rebuild_tensor_v2``, ``torch.FloatStorage``) to inert
stand-ins here; any other global (``os.system``, ``builtins.eval``, ...) is
refused before anything is called, with a :class:`TorchFileError` naming the
file and the global. Tensors come back as C-contiguous float32 NumPy arrays.
"""
import collections
import io
import logging
import math
import os
import pickle
import struct

import numpy as np

__all__ = ['TorchFileError', 'load_state_dict', 'read_state_dict']

logger = logging.getLogger(__name__)

MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
PROTOCOL_VERSION = 1001
_FLOAT_BYTES = 4


class TorchFileError(ValueError):
    """A file that is not a legacy torch float32 state dict, or one that names a refused global."""


# The stand-ins are instances without a __dict__ (``__slots__ = ()``): a pickle's BUILD
# opcode can set no attribute on them, and NEWOBJ cannot instantiate them.
class _FloatStorage:
    """Stands for ``torch.FloatStorage`` in persistent ids."""
    __slots__ = ()

    def __repr__(self):
        return 'torch.FloatStorage'


class _RebuildTensor:
    """Stands for ``torch._utils._rebuild_tensor_v2``: records the view, checks the argument types."""
    __slots__ = ()

    def __call__(self, storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                 metadata=None):
        if not isinstance(storage, _StorageRef):
            raise TypeError('tensor storage is %r, not a persistent FloatStorage' % (type(storage).__name__,))
        if not (isinstance(storage_offset, int) and _is_int_tuple(size) and _is_int_tuple(stride)
                and len(size) == len(stride)):
            raise TypeError('tensor offset, size and stride are %r, %r, %r' % (storage_offset, size, stride))
        return _TensorRef(storage, storage_offset, size, stride)


_FLOAT_STORAGE = _FloatStorage()
_REBUILD_TENSOR = _RebuildTensor()

# A storage named by the pickle: its key and declared element count; the data follows the pickles.
_StorageRef = collections.namedtuple('_StorageRef', 'key numel')
# A tensor of the pickle: a strided view (in elements) of a storage.
_TensorRef = collections.namedtuple('_TensorRef', 'storage offset size stride')


def _is_int_tuple(value):
    return isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals of a float32 state dict, to the stand-ins above."""

    GLOBALS = {('collections', 'OrderedDict'): collections.OrderedDict,
               ('torch._utils', '_rebuild_tensor_v2'): _REBUILD_TENSOR,
               ('torch', 'FloatStorage'): _FLOAT_STORAGE}

    def __init__(self, stream, name):
        super().__init__(stream)
        self.name = name
        self.storages = {}

    def find_class(self, module, name):
        try:
            return self.GLOBALS[module, name]
        except KeyError:
            allowed = ', '.join('%s.%s' % key for key in self.GLOBALS)
            raise TorchFileError('%s: refusing to load the global %s.%s (a torch state dict names only %s)'
                                 % (self.name, module, name, allowed)) from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == 'storage'):
            raise TorchFileError('%s: unsupported persistent id %r' % (self.name, pid))
        _, storage_type, key, location, numel, view = pid
        if storage_type is not _FLOAT_STORAGE:
            raise TorchFileError('%s: storage %r is not a FloatStorage' % (self.name, key))
        if not (isinstance(key, str) and isinstance(location, str) and isinstance(numel, int)
                and numel >= 0 and view is None):
            raise TorchFileError('%s: unsupported storage record %r' % (self.name, pid))
        storage = self.storages.setdefault(key, _StorageRef(key, numel))
        if storage.numel != numel:
            raise TorchFileError('%s: storage %r declared with %d and %d elements'
                                 % (self.name, key, storage.numel, numel))
        return storage


def _load_pickle(stream, name, what):
    unpickler = _RestrictedUnpickler(stream, name)
    try:
        return unpickler.load(), unpickler.storages
    except TorchFileError:
        raise
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError, KeyError,
            struct.error, OverflowError, RecursionError, MemoryError) as error:
        raise TorchFileError('%s: truncated or corrupt torch file (reading the %s: %s: %s)'
                             % (name, what, type(error).__name__, error)) from None


def _read_storages(stream, name, keys, storages):
    """Element arrays of the storages, read in the order of ``keys`` from ``stream``."""
    data = {}
    for key in keys:
        if key not in storages:
            raise TorchFileError('%s: data of storage %r, which no tensor uses' % (name, key))
        header = stream.read(8)
        if len(header) < 8:
            raise TorchFileError('%s: truncated: the file ends before storage %r' % (name, key))
        (numel,) = struct.unpack('<q', header)
        if numel != storages[key].numel:
            raise TorchFileError('%s: storage %r holds %d elements, %d declared'
                                 % (name, key, numel, storages[key].numel))
        raw = stream.read(numel * _FLOAT_BYTES)
        if len(raw) < numel * _FLOAT_BYTES:
            raise TorchFileError('%s: truncated: storage %r has %d of its %d bytes'
                                 % (name, key, len(raw), numel * _FLOAT_BYTES))
        data[key] = np.frombuffer(raw, '<f4')
    missing = sorted(set(storages) - set(data))
    if missing:
        raise TorchFileError('%s: no data for storage(s) %s' % (name, ', '.join(missing)))
    rest = len(stream.read())
    if rest:
        raise TorchFileError('%s: %d unexpected bytes after the last storage' % (name, rest))
    return data


def _tensor(ref, data, name, key):
    """The C-contiguous float32 array of a tensor view, after checking it lies inside its storage."""
    values = data[ref.storage.key]
    if ref.offset < 0 or any(n < 0 for n in ref.size) or any(s < 0 for s in ref.stride):
        raise TorchFileError('%s: tensor %r has a negative offset, size or stride' % (name, key))
    if 0 not in ref.size:
        last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
        if last >= len(values):
            raise TorchFileError('%s: tensor %r reaches element %d of a %d-element storage'
                                 % (name, key, last, len(values)))
        if math.prod(ref.size) > len(values):   # a broadcast view: no state dict holds one
            raise TorchFileError('%s: tensor %r of shape %s has more elements than its storage (%d)'
                                 % (name, key, ref.size, len(values)))
    view = np.lib.stride_tricks.as_strided(values[ref.offset:], shape=ref.size,
                                           strides=[s * _FLOAT_BYTES for s in ref.stride], writeable=False)
    return np.ascontiguousarray(view, dtype=np.float32)


def load_state_dict(data, name):
    """The state dict pickled in ``data`` (bytes of a legacy torch file) as an OrderedDict.

    Args:
        data: the file's bytes.
        name: how errors name the file (a path, or ``wheel!member``).

    Returns:
        OrderedDict parameter name -> float32 ndarray of the tensor's shape.

    Raises:
        TorchFileError naming ``name``: a refused global, a truncated or
        malformed file, or an object that is not a flat dict of float tensors.
    """
    stream = io.BytesIO(data)
    magic, _ = _load_pickle(stream, name, 'magic number')
    if magic != MAGIC_NUMBER:
        raise TorchFileError('%s: not a legacy torch file (magic number %r)' % (name, magic))
    protocol, _ = _load_pickle(stream, name, 'protocol version')
    if protocol != PROTOCOL_VERSION:
        raise TorchFileError('%s: unsupported torch protocol version %r' % (name, protocol))
    info, _ = _load_pickle(stream, name, 'system information')
    if not isinstance(info, dict) or info.get('little_endian') is not True:
        raise TorchFileError('%s: only little-endian torch files are supported (system information %r)'
                             % (name, info))
    state, storages = _load_pickle(stream, name, 'state dict')
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, _TensorRef)
                                              for k, v in state.items()):
        raise TorchFileError('%s: not a state dict of float tensors' % name)
    keys, _ = _load_pickle(stream, name, 'storage keys')
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or len(set(keys)) != len(keys):
        raise TorchFileError('%s: malformed storage key list' % name)
    values = _read_storages(stream, name, keys, storages)
    return collections.OrderedDict((key, _tensor(ref, values, name, key)) for key, ref in state.items())


def read_state_dict(path):
    """:func:`load_state_dict` of the file at ``path``; FileNotFoundError names a missing file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError('torch file not found: %s' % path)
    with open(path, 'rb') as f:
        data = f.read()
    state = load_state_dict(data, path)
    logger.info('read %s: %d tensors', path, len(state))
    return state
