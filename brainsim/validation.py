"""Number validators shared by the public API (one copy of each).

Bools and strings are not numbers here, whatever Python says; messages name
the parameter, the value and what is allowed.
"""
import math

import numpy as np

from .errors import ParameterError


def is_number(value):
    """True for a real scalar (int, float, numpy number; not bool or str)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))


def positive_number(name, value, unit):
    """Return ``value`` as float if it is a finite number > 0, else raise."""
    if not is_number(value) or not math.isfinite(value) or value <= 0:
        raise ParameterError(f"{name} must be a finite number > 0 {unit}, got {value!r}")
    return float(value)


def check_finite(name, value):
    """Raise if ``value`` (scalar or array) is not numeric or holds NaN or inf."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise ParameterError(f"{name} must be numeric, got {value!r}")
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be numeric, got {value!r}") from None
    if not np.all(np.isfinite(arr)):
        shown = value if arr.ndim == 0 else arr[~np.isfinite(arr)][:3]
        raise ParameterError(f"{name} must be finite, got {shown!r}")


def finite_array(name, value, shape):
    """``value`` as a new float array of ``shape`` (broadcast); raise if it
    does not broadcast to ``shape`` or holds NaN or inf."""
    try:
        arr = np.array(np.broadcast_to(np.asarray(value, float), shape))
    except ValueError:
        raise ParameterError(f"{name} must have shape {shape} (or broadcast to it), got shape "
                             f"{np.shape(value)}") from None
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{name} must be finite, got {arr[~np.isfinite(arr)][:3]!r}")
    return arr
