"""Neuron model registry: parameter names, defaults, units and validation.

The physics lives in ``brainsim.kernels``; this module only knows names.
"""
import math

import numpy as np

from brainsim.kernels import iaf_psc_exp, lif_dtb

from .errors import ParameterError, UnknownNameError

#: model name -> kernel module (DEFAULTS, UNITS, validate, derived, update)
MODELS = {"iaf_psc_exp": iaf_psc_exp, "lif_dtb": lif_dtb}
#: model name -> integer id used by the backends
MODEL_IDS = {"iaf_psc_exp": 0, "lif_dtb": 1}


def get_model(name):
    """Return the kernel module of model ``name`` or raise a clear error."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise UnknownNameError(
            f"model must be one of {sorted(MODELS)}, got {name!r}") from None


def canonical_name(model, name):
    """Resolve a parameter name (or a DTB alias) of ``model``."""
    mod = get_model(model)
    name = getattr(mod, "ALIASES", {}).get(name, name)
    if name not in mod.DEFAULTS:
        raise UnknownNameError(
            f"unknown parameter {name!r} for model {model!r}; "
            f"allowed: {', '.join(mod.DEFAULTS)}")
    return name


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
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be numeric, got {value!r}") from None
    if not np.all(np.isfinite(arr)):
        shown = value if arr.ndim == 0 else arr[~np.isfinite(arr)][:3]
        raise ParameterError(f"{name} must be finite, got {shown!r}")


def full_params(model, params):
    """Defaults of ``model`` updated with ``params`` (names checked, values
    finite and in range). Returns a dict of Python floats."""
    mod = get_model(model)
    out = dict(mod.DEFAULTS)
    if params is not None and not isinstance(params, dict):
        raise ParameterError(f"params must be a dict of parameter values, got {params!r}")
    for key, value in (params or {}).items():
        name = canonical_name(model, key)
        if np.ndim(value) != 0:
            raise ParameterError(
                f"params[{key!r}] must be a scalar (use per-neuron columns through "
                f"Network.set_property for heterogeneous values), got shape {np.shape(value)}")
        check_finite(f"params[{key!r}]", value)
        out[name] = float(value)
    if model == "lif_dtb" and "V_m" not in (params or {}) and not any(
            lif_dtb.ALIASES.get(k, k) == "V_m" for k in (params or {})):
        out["V_m"] = 0.5 * (out["V_th"] + out["V_reset"])
    check_values(model, out)
    return out


def check_values(model, values):
    """Raise a ParameterError naming the first out-of-range parameter."""
    bad = get_model(model).validate(values)
    if bad:
        name, value, allowed = bad[0]
        value = (f"an array with min {float(np.min(value))!r}" if np.ndim(value)
                 else float(value))
        raise ParameterError(f"{model} parameter {name} must be {allowed}, got {value!r}")


def refractory_steps(t_ref, dt):
    """Refractory period in whole steps (NEST rounds t_ref / dt)."""
    return np.rint(np.asarray(t_ref, float) / dt + 0.0).astype(np.int32)
