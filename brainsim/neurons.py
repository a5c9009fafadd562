"""Neuron models: the registry, and the helpers that turn user parameters
into a model's full, validated parameter set.

A model is a :class:`NeuronModel` description (``brainsim.kernels.neurons``):
parameters with NEST's names, defaults, units and allowed ranges; state
variables; the receptors of excitatory and inhibitory inputs with their
weight convention; derived constants; and the per-neuron step in plain
Python, which every backend compiles. Built-in models are registered on
import; users register their own with :func:`register` or the
:func:`neuron_model` decorator and use them by name like NEST's::

    from brainsim.neurons import Parameter, Receptor, StateVar, neuron_model

    @neuron_model(
        "my_lif",
        parameters=[Parameter("tau_m", 10.0, "ms", "> 0"), ...],
        state=[StateVar("V_m", "mV", "E_L"), ...],
        receptors={"E": Receptor("ex", "pA", +1), "I": Receptor("in", "pA", -1)},
        derived=lambda p, dt: {"P22": np.exp(-dt / p["tau_m"])})
    def my_lif(s, p, in_ex, in_in, i_ext, u):
        ...
        return (v, ...), spiked

    net.add_population("E", 100, model="my_lif")

See docs/neuron_models.md ("Writing a neuron model").
"""
import numpy as np

from brainsim.kernels.neurons import (BUILTIN, UNITS, NeuronModel, Parameter,  # noqa: F401
                                      Receptor, StateVar)

from .errors import ModelDefinitionError, ParameterError, UnknownNameError
from .validation import check_finite

_REGISTRY = {}


def register(model, replace=False):
    """Register ``model`` (a NeuronModel) under its name and return it.

    The step is compiled once here (for float64), so a step Numba cannot
    compile is reported now, naming the model. ``replace=True`` replaces a
    registered user model of the same name (built-in models cannot be
    replaced).
    """
    if not isinstance(model, NeuronModel):
        raise ModelDefinitionError(f"register needs a brainsim.neurons.NeuronModel, got "
                                   f"{type(model).__name__} {model!r}")
    old = _REGISTRY.get(model.name)
    if old is not None and old is not model:
        if old in BUILTIN:
            raise ModelDefinitionError(f"neuron model {model.name!r} is built in and cannot "
                                       "be replaced; choose another name")
        if not replace:
            raise ModelDefinitionError(f"a neuron model named {model.name!r} is already "
                                       "registered; pass replace=True to replace it")
    _check_compiles(model)
    _REGISTRY[model.name] = model
    return model


def neuron_model(name, parameters, state, receptors, derived=None, **options):
    """Decorator: ``@neuron_model(name, parameters, state, receptors, ...)``
    on the step function builds the NeuronModel, registers it and returns
    it (options as for NeuronModel: membrane, constraints, aliases, noise,
    gpu_exact, doc; ``replace=True`` to replace a registered user model)."""
    replace = options.pop("replace", False)

    def wrap(step):
        doc = options.pop("doc", None) or (step.__doc__ or "")
        return register(NeuronModel(name, parameters, state, receptors, step, derived,
                                    doc=doc, **options), replace=replace)
    return wrap


def _check_compiles(model):
    """Compile the model's step with its glue for float64 (not run), so
    that registration fails early and clearly."""
    from numba.core.errors import NumbaError

    from brainsim.kernels.loops import probe_step
    try:
        n_out = probe_step(model)
    except NumbaError as err:
        first = str(err).strip().splitlines()
        shown = "\n".join(first[:12])
        raise ModelDefinitionError(f"neuron model {model.name!r}: step: Numba cannot compile "
                                   f"it:\n{shown}") from None
    except Exception as err:  # wrong return shape and the like
        raise ModelDefinitionError(f"neuron model {model.name!r}: step: "
                                   f"{type(err).__name__}: {err}") from None
    if n_out != model.n_state:
        raise ModelDefinitionError(
            f"neuron model {model.name!r}: step: returns {n_out} state values, the model "
            f"declares {model.n_state} ({', '.join(model.state_names)}); return "
            "(new_state_tuple, spiked)")


def get_model(name):
    """The registered NeuronModel called ``name`` (or ``name`` itself if
    it is a registered NeuronModel); UnknownNameError otherwise."""
    if isinstance(name, NeuronModel):
        if _REGISTRY.get(name.name) is not name:
            raise UnknownNameError(f"neuron model {name.name!r} is not registered; call "
                                   "brainsim.neurons.register(model) first")
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownNameError(
            f"model must be one of {sorted(_REGISTRY)}, got {name!r}") from None


def available():
    """Names of the registered models, built-in first."""
    return list(_REGISTRY)


def canonical_name(model, name):
    """Resolve a parameter name (or an alias) of ``model``."""
    m = get_model(model)
    canon = m.canonical(name) if isinstance(name, str) else None
    if canon is None:
        raise UnknownNameError(
            f"unknown parameter {name!r} for model {m.name!r}; "
            f"allowed: {', '.join(m.param_names)}")
    return canon


def full_params(model, params):
    """Defaults of ``model`` updated with ``params`` (names checked, values
    finite and in range). Returns a dict of Python floats (tuples for vector
    parameters)."""
    m = get_model(model)
    if params is not None and not isinstance(params, dict):
        raise ParameterError(f"params must be a dict of parameter values, got {params!r}")
    given = {}
    for key, value in (params or {}).items():
        name = canonical_name(m.name, key)
        prm = m.parameter(name)
        if prm.size:
            given[name] = _vector(m, prm, key, value)
            continue
        if np.ndim(value) != 0:
            raise ParameterError(
                f"params[{key!r}] must be a scalar (use per-neuron columns through "
                f"Network.set_property for heterogeneous values), got shape {np.shape(value)}")
        if isinstance(value, (bool, np.bool_)) and m.allowed(name).choices == (0.0, 1.0):
            value = float(value)  # a switch (NEST's booleans, e.g. consistent_integration)
        check_finite(f"params[{key!r}]", value)
        given[name] = float(value)
    out = {}
    for prm in m.parameters:
        if prm.name in given:
            out[prm.name] = given[prm.name]
        elif not callable(prm.default):
            out[prm.name] = tuple(float(x) for x in prm.default) if prm.size else float(
                prm.default)
    for prm in m.parameters:  # defaults computed from the other values
        if prm.name not in out:
            out[prm.name] = float(prm.default(out))
    out = {prm.name: out[prm.name] for prm in m.parameters}
    check_values(m.name, out)
    return out


def _vector(m, prm, key, value):
    if isinstance(value, (str, bytes, dict)) or np.ndim(value) != 1:
        raise ParameterError(f"params[{key!r}] of {m.name} must be a sequence of at most "
                             f"{prm.size} numbers ({prm.unit}), got {value!r}")
    check_finite(f"params[{key!r}]", value)
    if len(value) > prm.size:
        raise ParameterError(f"params[{key!r}] of {m.name} must have at most {prm.size} "
                             f"entries, got {len(value)}")
    return tuple(float(x) for x in value)


def check_values(model, values):
    """Raise a ParameterError naming the first out-of-range parameter."""
    m = get_model(model)
    bad = m.violations(values)
    if bad:
        name, value, allowed = bad[0]
        if isinstance(value, tuple):
            value = value
        elif np.ndim(value):
            value = f"an array with min {float(np.nanmin(value))!r}"
        else:
            value = float(value)
        raise ParameterError(f"{m.name} parameter {name} must be {allowed}, got {value!r}")


def refractory_steps(t_ref, dt):
    """Refractory period in whole steps (NEST rounds t_ref / dt)."""
    return np.rint(np.asarray(t_ref, float) / dt + 0.0).astype(np.int32)


for _m in BUILTIN:
    _REGISTRY[_m.name] = _m
del _m
