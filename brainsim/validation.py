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


def _scalar(value):
    """A 0-d numpy array as its Python scalar; anything else unchanged."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    return value


def _interval(low, high, low_open, high_open):
    """The allowed range in words: "> 0", ">= 1", "<= 5" or "in [0, 1)"."""
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>' if low_open else '>='} {low}"
    if low is None:
        return f" {'<' if high_open else '<='} {high}"
    return f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def number(name, value, *, low=None, high=None, low_open=False, high_open=False, unit=""):
    """Return ``value`` as float if it is a finite real number within the
    bounds (``None``: unbounded; ``*_open``: bound excluded), else raise a
    ParameterError naming ``name``, the value and the allowed interval."""
    v = _scalar(value)
    ok = is_number(v) and math.isfinite(v)
    if ok:
        ok = not ((low is not None and (v < low or (low_open and v == low))) or
                  (high is not None and (v > high or (high_open and v == high))))
    if not ok:
        unit = f" {unit}" if unit else ""
        raise ParameterError(f"{name} must be a finite number"
                             f"{_interval(low, high, low_open, high_open)}{unit}, got {value!r}")
    return float(v)


def integer(name, value, *, low=None, high=None, strict=False):
    """Return ``value`` as int if it is an integer (or, unless ``strict``,
    a float with an integral value) within ``[low, high]``, else raise
    naming ``name``. Sizes and seeds are strict, counts are not."""
    v = _scalar(value)
    ok = is_number(v) and math.isfinite(v) and v == int(v) and not (
        strict and not isinstance(v, (int, np.integer)))
    if ok:
        ok = not ((low is not None and v < low) or (high is not None and v > high))
    if not ok:
        raise ParameterError(f"{name} must be an integer{_interval(low, high, False, False)}, "
                             f"got {value!r}")
    return int(v)


def boolean(name, value):
    """Return ``value`` as bool if it is True or False (Python or numpy);
    numbers and strings such as 0 or "no" are refused, not guessed."""
    v = _scalar(value)
    if not isinstance(v, (bool, np.bool_)):
        raise ParameterError(f"{name} must be True or False, got {value!r}")
    return bool(v)


def numeric_array(name, value):
    """``value`` (a number or an array of numbers) as a float array; bools,
    strings, None, dicts and object arrays are refused, not converted, and
    so are NaN and infinities."""
    if isinstance(value, (bool, np.bool_, str, bytes, dict)) or value is None:
        raise ParameterError(f"{name} must be a number or an array of numbers, got {value!r}")
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number or an array of numbers, "
                             f"got {value!r}") from None
    if raw.dtype.kind not in "iuf":
        raise ParameterError(f"{name} must be a number or an array of numbers, got "
                             f"{value!r} (dtype {raw.dtype})")
    arr = raw.astype(float)
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{name} must be finite, got {arr[~np.isfinite(arr)][:3]!r}")
    return arr


def ids_in_range(name, ids, n):
    """``ids`` as an int64 array if every entry is an integer id in [0, n)."""
    arr = np.asarray(ids)
    if arr.size == 0:
        return arr.astype(np.int64).reshape(arr.shape)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ParameterError(f"{name} must hold integer ids, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= n:
        raise ParameterError(f"{name} must lie in [0, {n}), got min {arr.min()} max {arr.max()}")
    return arr.astype(np.int64)


def positive_number(name, value, unit):
    """Return ``value`` as float if it is a finite number > 0, else raise."""
    return number(name, value, low=0, low_open=True, unit=unit)


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
