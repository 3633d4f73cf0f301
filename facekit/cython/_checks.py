"""Argument checks shared by the Cython kernels.

Typed memoryviews reject a wrong dtype with a message that does not name the
argument; these checks run first so the user learns which argument is wrong.
"""
import numpy as np


def as_real_matrix(value, name, dtype, min_cols):
    """Return ``value`` as a C-contiguous 2-D ``dtype`` array with >= ``min_cols`` columns.

    Integer and floating inputs are converted exactly as NumPy's ``astype`` does;
    anything else (bool, complex, object, strings) raises ``TypeError``.
    """
    array = np.asarray(value)
    if array.dtype.kind not in 'iuf':
        raise TypeError('%s must hold real numbers, got dtype %s' % (name, array.dtype))
    if array.ndim != 2 or array.shape[1] < min_cols:
        raise ValueError('%s must have shape (N, >=%d), got %s' % (name, min_cols, array.shape))
    return np.ascontiguousarray(array, dtype=dtype)


def as_int(value, name, minimum):
    """Return ``value`` as a Python int >= ``minimum``; reject floats and bools."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError('%s must be an integer, got %r' % (name, value))
    if value < minimum:
        raise ValueError('%s must be >= %d, got %d' % (name, minimum, value))
    return int(value)
