"""A neuron model as a description: the one object the engine compiles.

A :class:`NeuronModel` declares

- its parameters (:class:`Parameter`: NEST's name, default, unit, allowed
  range, documentation), from which validation, error messages and the API
  documentation are generated;
- its state variables (:class:`StateVar`: name, unit, initial value or
  rule), one of them the membrane potential that V_m recording reads;
- its two input receptors (:class:`Receptor`): what spikes of excitatory
  and of inhibitory source populations do, in which weight unit and with
  which sign, so that ``connect``, ``add_poisson`` and the generators check
  weights without knowing model names;
- host-side derived constants (propagators etc.), computed once per
  parameter set by ``derived(p, dt)``;
- the per-neuron step, plain scalar Python that Numba compiles into the CPU
  loops and into a CUDA device function;
- whether CPU and CUDA results are bit-identical (``gpu_exact``) or only
  statistically equal (a step that calls ``exp`` on every step).

The step has the signature ::

    step(s, p, in_ex, in_in, i_ext, u) -> (new_state, spiked)

``s`` is the neuron's state (a namedtuple, fields as declared), ``p`` its
parameters and derived constants (a namedtuple: the scalar parameters in
declaration order, except those that only give a state variable its initial
value such as ``V_m``, then the derived constants); ``in_ex`` and ``in_in`` are
the summed weights of the spikes of excitatory and of inhibitory sources that
arrive in this step (units: the receptors'); ``i_ext`` (pA) is a current held
over the step (the Ornstein-Uhlenbeck background); ``u`` is a uniform number
in [0, 1) drawn for this neuron and step from the counter-based generator when
the model declares ``noise=True`` (else 0). It returns the new state as a
tuple in declaration order and whether the neuron spiked in this step (the
spike is stamped at the end of the step, as in NEST).

This module is array-only (NumPy and Numba); it knows no backend.
"""
import hashlib
import inspect
import math
import re
import types
from collections import namedtuple
from dataclasses import dataclass, field

import numpy as np

from brainsim.errors import ModelDefinitionError

#: Units a parameter, state variable or receptor may declare (NEST's units
#: and the dimensionless ones). "1": dimensionless.
UNITS = ("mV", "ms", "pA", "pF", "nS", "Hz", "1", "1/ms", "1/s", "pA/ms", "nS/ms", "mV/ms",
         "nS/mV")

#: Source kinds (population ``kind``) and the receptor each drives.
KINDS = ("E", "I")

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RANGE = re.compile(r"^\s*(>=|>|<=|<)\s*(\S+)\s*$")
_INTERVAL = re.compile(r"^\s*([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])])\s*$")
_CHOICES = re.compile(r"^\s*\{(.*)\}\s*$")
_STEP_ARGS = ("s", "p", "in_ex", "in_in", "i_ext", "u")


# --------------------------------------------------------------- allowed
@dataclass(frozen=True)
class Allowed:
    """An allowed range of values, parsed from text such as ``"> 0"``,
    ``">= 0"``, ``"[0, 1]"``, ``"(0, 1]"``, ``"{0, 1}"`` or ``"any"``; the
    same text is shown in error messages and documentation."""

    text: str
    low: float = -math.inf
    high: float = math.inf
    low_closed: bool = False
    high_closed: bool = False
    choices: tuple = ()

    @classmethod
    def parse(cls, text, where):
        if not isinstance(text, str):
            raise ModelDefinitionError(f"{where}: allowed range must be text such as '> 0', "
                                       f"'[0, 1]' or 'any', got {text!r}")
        if text.strip() == "any":
            return cls("any")
        m = _RANGE.match(text)
        if m:
            op, value = m.group(1), _number(m.group(2), where, text)
            if op.startswith(">"):
                return cls(text.strip(), low=value, low_closed=op == ">=")
            return cls(text.strip(), high=value, high_closed=op == "<=")
        m = _INTERVAL.match(text)
        if m:
            lo, hi = _number(m.group(2), where, text), _number(m.group(3), where, text)
            if not lo < hi:
                raise ModelDefinitionError(f"{where}: interval {text!r} is empty")
            return cls(text.strip(), lo, hi, m.group(1) == "[", m.group(4) == "]")
        m = _CHOICES.match(text)
        if m:
            items = tuple(_number(x, where, text) for x in m.group(1).split(","))
            return cls(text.strip(), choices=items)
        raise ModelDefinitionError(f"{where}: cannot read the allowed range {text!r}; use "
                                   "'> x', '>= x', '< x', '<= x', '[a, b]', '(a, b]', "
                                   "'{a, b}' or 'any'")

    def ok(self, values):
        """True where ``values`` (array) lie in the range (NaN never does)."""
        v = np.asarray(values, float)
        if self.choices:
            return np.isin(v, self.choices)
        good = np.isfinite(v)
        good &= (v >= self.low) if self.low_closed else (v > self.low)
        good &= (v <= self.high) if self.high_closed else (v < self.high)
        return good


def _number(text, where, spec):
    try:
        return float(text)
    except ValueError:
        raise ModelDefinitionError(f"{where}: {text!r} in the allowed range {spec!r} is not "
                                   "a number") from None


# ---------------------------------------------------------------- pieces
@dataclass(frozen=True)
class Parameter:
    """A model parameter.

    name : str
        NEST's name where NEST has the model (``tau_m``, ``V_th``, ...).
    default : float, tuple of float, or callable
        Default value; a callable ``f(params) -> float`` computes it from
        the other parameters (e.g. an initial V_m between V_reset and V_th).
        A tuple makes a vector parameter (``size`` entries at most).
    unit : str
        One of :data:`UNITS`.
    allowed : str
        Allowed range, e.g. ``"> 0"``, ``">= 0"``, ``"[0, 1]"``, ``"any"``.
    doc : str
        One line for the API documentation.
    size : int
        0 for a scalar; the largest number of entries of a vector parameter
        (NEST's lists, e.g. gif_psc_exp's ``tau_sfa``).
    pad : float
        Value of the absent entries of a vector parameter shorter than
        ``size`` (choose one without effect, e.g. an amplitude of 0).
    """

    name: str
    default: object
    unit: str
    allowed: str = "any"
    doc: str = ""
    size: int = 0
    pad: float = 0.0


@dataclass(frozen=True)
class StateVar:
    """A state variable.

    initial : float, str or callable
        Initial value: a number, the name of a parameter (``"V_m"``: the
        initial membrane potential is a parameter, as in NEST), or a callable
        ``f(params, dt) -> array`` of per-neuron values.
    """

    name: str
    unit: str
    initial: object = 0.0
    doc: str = ""


@dataclass(frozen=True)
class Receptor:
    """What the spikes of one kind of source population do to the model.

    name : str
        Receptor name in the documentation (``"ex"``, ``"AMPA+NMDA"``).
    unit : str
        Weight unit (``"pA"``: current amplitude, ``"nS"``: conductance,
        ``"mV"``: voltage jump, ``"1"``: dimensionless).
    sign : {+1, -1}
        +1: weights onto this receptor are >= 0; -1: they are <= 0 (NEST's
        convention for inhibition: a negative weight, its magnitude the
        current or conductance).
    doc : str
    """

    name: str
    unit: str
    sign: int
    doc: str = ""


# ------------------------------------------------------------------ model
@dataclass(frozen=True, eq=False)
class NeuronModel:
    """The description of a neuron model (see the module docstring).

    Parameters
    ----------
    name : str
        Model name (NEST's where NEST has the model).
    parameters : sequence of Parameter
    state : sequence of StateVar
    receptors : dict
        ``{"E": Receptor, "I": Receptor}``: the receptors that spikes of
        excitatory and of inhibitory source populations reach.
    step : function
        ``step(s, p, in_ex, in_in, i_ext, u) -> (new_state, spiked)``,
        plain scalar Python (an ``@njit`` function is accepted too).
    derived : function, optional
        ``derived(p, dt) -> dict`` of per-neuron constants (arrays of the
        length of the parameter arrays in ``p``; ``dt`` in ms).
    membrane : str
        The state variable that holds the membrane potential (mV).
    constraints : sequence of (str, str, str)
        Relations between parameters, e.g. ``("V_reset", "<", "V_th")``.
    aliases : dict, optional
        Other accepted parameter names (e.g. DTB's) -> the model's name.
    noise : bool
        The step uses ``u`` (a uniform draw per neuron and step).
    gpu_exact : bool
        True when CUDA results equal the CPU's bit for bit (only +, -, *,
        / and comparisons per step); False when the step calls functions
        such as ``exp`` whose last bit differs between the CPU's and the
        GPU's math libraries (results then agree statistically).
    doc : str
        Description with references (DOI).
    """

    name: str
    parameters: tuple
    state: tuple
    receptors: dict
    step: object
    derived: object = None
    membrane: str = "V_m"
    constraints: tuple = ()
    aliases: dict = field(default_factory=dict)
    noise: bool = False
    gpu_exact: bool = True
    doc: str = ""

    def __post_init__(self):
        object.__setattr__(self, "parameters", tuple(self.parameters))
        object.__setattr__(self, "state", tuple(self.state))
        object.__setattr__(self, "constraints", tuple(tuple(c) for c in self.constraints))
        object.__setattr__(self, "aliases", dict(self.aliases or {}))
        _check_model(self)
        object.__setattr__(self, "_allowed", {
            p.name: Allowed.parse(p.allowed, f"model {self.name!r} parameter {p.name!r}")
            for p in self.parameters})
        _check_defaults(self)
        names = _derived_names(self)
        object.__setattr__(self, "derived_names", names)
        initial = {v.initial for v in self.state if isinstance(v.initial, str)}
        fields = tuple(p.name for p in self.parameters
                       if not p.size and p.name not in initial) + names
        object.__setattr__(self, "param_fields", fields)
        object.__setattr__(self, "State", namedtuple(f"{self.name}_state",
                                                     [v.name for v in self.state]))
        object.__setattr__(self, "Params", namedtuple(f"{self.name}_params", fields))

    # ------------------------------------------------------------ tables
    @property
    def param_names(self):
        """Parameter names in declaration order."""
        return tuple(p.name for p in self.parameters)

    @property
    def state_names(self):
        return tuple(v.name for v in self.state)

    @property
    def n_state(self):
        return len(self.state)

    @property
    def n_fields(self):
        """Columns of the parameter row the step sees (``p``)."""
        return len(self.param_fields)

    def parameter(self, name):
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def canonical(self, name):
        """The model's name for parameter ``name`` (aliases resolved), or None."""
        name = self.aliases.get(name, name)
        return name if name in self.param_names else None

    @property
    def defaults(self):
        """Default values (callable defaults evaluated)."""
        out = {}
        for p in self.parameters:
            if not callable(p.default):
                out[p.name] = p.default if p.size else float(p.default)
        for p in self.parameters:
            if callable(p.default):
                out[p.name] = float(p.default(out))
        return out

    @property
    def units(self):
        return {p.name: p.unit for p in self.parameters}

    def allowed(self, name):
        return self._allowed[name]

    def violations(self, values):
        """[(name, value, allowed text)] of parameters out of range in
        ``values`` (scalars or per-neuron arrays), constraints included."""
        bad = []
        for p in self.parameters:
            if p.name not in values:
                continue
            v = values[p.name]
            rule = self._allowed[p.name]
            if p.size:
                arr = np.asarray(v, float).ravel()
                if not np.all(rule.ok(arr)):
                    bad.append((p.name, v, f"{rule.text} {p.unit}".strip()))
            elif not np.all(rule.ok(v)):
                bad.append((p.name, v, f"{rule.text} {p.unit}".strip()))
        for a, op, b in self.constraints:
            if a in values and b in values:
                va, vb = np.asarray(values[a], float), np.asarray(values[b], float)
                if not np.all(_OPS[op](va, vb)):
                    shown = values[b] if np.ndim(values[b]) == 0 else "per neuron"
                    bad.append((a, values[a], f"{op} {b} ({shown!r} {self.units[b]})"))
        return bad

    def derive(self, p, dt):
        """Per-neuron table (n, n_fields): the ``param_fields`` (scalar
        parameters that are not initial values, then derived constants). ``p`` maps every parameter to scalars or arrays (n,)
        (vector parameters: tuples, or arrays (n, size))."""
        n = 1
        for prm in self.parameters:
            if not prm.size:
                n = max(n, np.size(p[prm.name]))
        cols = {}
        for prm in self.parameters:
            if prm.size:
                cols[prm.name] = _vector_column(p[prm.name], n, prm)
            else:
                cols[prm.name] = np.broadcast_to(np.asarray(p[prm.name], float), (n,))
        out = np.empty((n, self.n_fields))
        k = 0
        for name in self.param_fields:
            if name in cols:
                out[:, k] = cols[name]
                k += 1
        if self.derived is not None:
            d = self.derived(cols, float(dt))
            for name in self.derived_names:
                out[:, k] = np.broadcast_to(np.asarray(d[name], float), (n,))
                k += 1
        return out

    def initial_state(self, p, dt):
        """Initial state (n_state, n) from per-neuron parameters ``p``."""
        n = max(np.size(p[prm.name]) for prm in self.parameters if not prm.size)
        out = np.empty((self.n_state, n))
        for k, var in enumerate(self.state):
            init = var.initial
            if isinstance(init, str):
                out[k] = p[init]
            elif callable(init):
                out[k] = init(p, dt)
            else:
                out[k] = init
        return out

    def fingerprint(self):
        """A hash of everything that decides the compiled code: names and
        order of state and parameter fields, the noise flag and the code of
        the step and of every function it calls (changes invalidate cached
        machine code)."""
        h = hashlib.sha256()
        for part in (self.name, self.state_names, self.param_fields, self.noise):
            h.update(repr(part).encode())
        h.update(code_hash(self.step).encode())
        return h.hexdigest()

    def __repr__(self):
        return (f"<NeuronModel {self.name}: {len(self.parameters)} parameters, state "
                f"{', '.join(self.state_names)}>")


_OPS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
        "!=": np.not_equal}


def _vector_column(value, n, prm):
    """A vector parameter as an array (n, size), absent entries = prm.pad."""
    arr = np.asarray(value, float)
    if arr.ndim == 1:
        arr = arr[None, :]
    out = np.full((arr.shape[0], prm.size), float(prm.pad))
    out[:, :arr.shape[1]] = arr
    return np.broadcast_to(out, (n, prm.size)) if out.shape[0] == 1 else out


# ------------------------------------------------------------ validation
def _fail(model, what, msg):
    name = getattr(model, "name", "?")
    raise ModelDefinitionError(f"neuron model {name!r}: {what}: {msg}")


def _check_model(m):
    if not isinstance(m.name, str) or not _IDENT.match(m.name):
        raise ModelDefinitionError(f"neuron model name must be an identifier (letters, digits, "
                                   f"_), got {m.name!r}")
    seen = set()
    if not m.parameters:
        _fail(m, "parameters", "at least one parameter is needed")
    for p in m.parameters:
        if not isinstance(p, Parameter):
            _fail(m, "parameters", f"entries must be brainsim Parameter objects, got {p!r}")
        _check_name(m, "parameter", p.name, seen)
        if p.unit not in UNITS:
            _fail(m, f"parameter {p.name!r}", f"unknown unit {p.unit!r}; allowed: "
                  f"{', '.join(UNITS)}")
        if p.default is None:
            _fail(m, f"parameter {p.name!r}", "has no default (give a number, a tuple for a "
                  "vector parameter, or a function of the other parameters)")
        if isinstance(p.size, bool) or not isinstance(p.size, int) or p.size < 0:
            _fail(m, f"parameter {p.name!r}", f"size must be an integer >= 0, got {p.size!r}")
    for v in m.state:
        if not isinstance(v, StateVar):
            _fail(m, "state", f"entries must be brainsim StateVar objects, got {v!r}")
        _check_name(m, "state variable", v.name, set())
        if v.unit not in UNITS:
            _fail(m, f"state variable {v.name!r}", f"unknown unit {v.unit!r}; allowed: "
                  f"{', '.join(UNITS)}")
        if isinstance(v.initial, str) and v.initial not in {p.name for p in m.parameters}:
            _fail(m, f"state variable {v.name!r}", f"initial value names {v.initial!r}, which "
                  "is not a parameter of the model")
        if not (isinstance(v.initial, (str, int, float)) or callable(v.initial)) or isinstance(
                v.initial, bool):
            _fail(m, f"state variable {v.name!r}", "initial must be a number, a parameter "
                  f"name or a function (params, dt) -> values, got {v.initial!r}")
    names = [v.name for v in m.state]
    if not names:
        _fail(m, "state", "at least one state variable (the membrane potential) is needed")
    if len(set(names)) != len(names):
        _fail(m, "state", f"duplicate state variable names in {names}")
    if m.membrane not in names:
        _fail(m, "membrane", f"{m.membrane!r} is not a state variable ({', '.join(names)})")
    if not isinstance(m.receptors, dict) or set(m.receptors) != set(KINDS):
        _fail(m, "receptors", "must be a dict {'E': Receptor, 'I': Receptor}, got "
              f"{m.receptors!r}")
    for kind, r in m.receptors.items():
        if not isinstance(r, Receptor):
            _fail(m, f"receptors[{kind!r}]", f"must be a brainsim Receptor, got {r!r}")
        if r.unit not in UNITS:
            _fail(m, f"receptors[{kind!r}]", f"unknown unit {r.unit!r}; allowed: "
                  f"{', '.join(UNITS)}")
        if r.sign not in (1, -1) or isinstance(r.sign, bool):
            _fail(m, f"receptors[{kind!r}]", f"sign must be +1 (weights >= 0) or -1 "
                  f"(weights <= 0), got {r.sign!r}")
    if m.step is None:
        _fail(m, "step", "missing: give the per-neuron step function "
              "step(s, p, in_ex, in_in, i_ext, u) -> (new_state, spiked)")
    fn = getattr(m.step, "py_func", m.step)
    if not isinstance(fn, types.FunctionType):
        _fail(m, "step", f"must be a Python function, got {m.step!r}")
    try:
        args = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        args = []
    if len(args) != len(_STEP_ARGS):
        _fail(m, "step", f"must take {len(_STEP_ARGS)} arguments ({', '.join(_STEP_ARGS)}), "
              f"got ({', '.join(args)})")
    if m.derived is not None and not callable(m.derived):
        _fail(m, "derived", f"must be a function (params, dt) -> dict, got {m.derived!r}")
    pnames = {p.name for p in m.parameters}
    for c in m.constraints:
        if len(c) != 3 or c[1] not in _OPS or c[0] not in pnames or c[2] not in pnames:
            _fail(m, "constraints", f"each must be (parameter, op, parameter) with op in "
                  f"{sorted(_OPS)}, got {c!r}")
    for alias, target in m.aliases.items():
        if target not in pnames:
            _fail(m, "aliases", f"{alias!r} points to {target!r}, not a parameter")
    if not isinstance(m.noise, bool) or not isinstance(m.gpu_exact, bool):
        _fail(m, "noise / gpu_exact", "must be True or False")


def _check_name(m, what, name, seen):
    if not isinstance(name, str) or not _IDENT.match(name):
        _fail(m, what, f"name must be an identifier, got {name!r}")
    if name in seen:
        _fail(m, what, f"{name!r} is declared twice")
    seen.add(name)


def _check_defaults(m):
    try:
        values = m.defaults
    except Exception as err:  # a callable default failed
        _fail(m, "parameters", f"computing a default failed: {type(err).__name__}: {err}")
    for p in m.parameters:
        v = values[p.name]
        if p.size:
            arr = np.asarray(v, float)
            if arr.ndim != 1 or arr.size > p.size:
                _fail(m, f"parameter {p.name!r}", f"default must be a sequence of at most "
                      f"{p.size} numbers, got {v!r}")
        elif not math.isfinite(v):
            _fail(m, f"parameter {p.name!r}", f"default must be finite, got {v!r}")
    bad = m.violations(values)
    if bad:
        name, value, allowed = bad[0]
        _fail(m, f"parameter {name!r}", f"default {value!r} is outside its allowed range "
              f"({allowed})")


def _derived_names(m):
    if m.derived is None:
        return ()
    p = {}
    for prm in m.parameters:
        v = m.defaults[prm.name]
        p[prm.name] = (_vector_column(v, 2, prm) if prm.size
                       else np.array([float(v), float(v)]))
    try:
        d = m.derived(p, 0.1)
    except Exception as err:
        _fail(m, "derived", f"calling it with the default parameters failed: "
              f"{type(err).__name__}: {err}")
    if not isinstance(d, dict):
        _fail(m, "derived", f"must return a dict of per-neuron arrays, got {type(d).__name__}")
    names = tuple(d)
    for name in names:
        if not isinstance(name, str) or not _IDENT.match(name):
            _fail(m, "derived", f"keys must be identifiers, got {name!r}")
        if name in m.param_names:
            _fail(m, "derived", f"{name!r} is also a parameter name")
        shape = np.shape(d[name])
        if shape not in ((), (2,)):
            _fail(m, "derived", f"{name!r} must be a scalar or one value per neuron, got "
                  f"shape {shape}")
    return names


# ------------------------------------------------------------- code hash
def code_hash(func, _seen=None):
    """A hash of a function's code and of the functions and constants it
    uses (recursively through globals, closures and module attributes)."""
    _seen = set() if _seen is None else _seen
    fn = getattr(func, "py_func", func)
    h = hashlib.sha256()
    if not isinstance(fn, types.FunctionType) or id(fn) in _seen:
        h.update(repr(getattr(fn, "__qualname__", type(fn).__name__)).encode())
        return h.hexdigest()
    _seen.add(id(fn))
    _hash_code(h, fn.__code__)
    names = _all_names(fn.__code__)
    glb = fn.__globals__
    modules = [v for v in glb.values() if isinstance(v, types.ModuleType)]
    cells = dict(zip(fn.__code__.co_freevars, fn.__closure__ or ()))
    for name in sorted(names):
        if name in cells:
            try:
                value = cells[name].cell_contents
            except ValueError:
                continue
        elif name in glb:
            value = glb[name]
        else:
            value = next((getattr(mod, name) for mod in modules if hasattr(mod, name)), None)
        h.update(name.encode())
        h.update(_value_hash(value, _seen).encode())
    return h.hexdigest()


def _value_hash(value, seen):
    if isinstance(value, (types.FunctionType,)) or hasattr(value, "py_func"):
        return code_hash(value, seen)
    if isinstance(value, (int, float, bool, str, complex, type(None))):
        return repr(value)
    if isinstance(value, (tuple, list)) and all(
            isinstance(v, (int, float, bool, str)) for v in value):
        return repr(tuple(value))
    if isinstance(value, np.ndarray) and value.size < 4096:
        return hashlib.sha256(value.tobytes() + repr(value.dtype).encode()).hexdigest()
    if isinstance(value, type) and issubclass(value, tuple) and hasattr(value, "_fields"):
        return repr((value.__name__, value._fields))
    if isinstance(value, types.ModuleType):
        return value.__name__
    return type(value).__name__


def _all_names(code):
    names = set(code.co_names) | set(code.co_freevars)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _all_names(const)
    return names


def _hash_code(h, code):
    h.update(code.co_code)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _hash_code(h, const)
        else:
            h.update(repr(const).encode())
    h.update(repr(code.co_names).encode())


def refractory_steps(t_ref, dt):
    """Whole steps of a refractory period (NEST: round(t_ref / dt))."""
    return np.rint(np.asarray(t_ref, float) / dt)
