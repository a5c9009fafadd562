"""CUDA kernels of the cuda engine (array-only; imported by it on demand).

The physics is not written here. ``device_function`` turns a scalar
function of ``brainsim.kernels`` (an ``@njit`` dispatcher, or a closure over
such dispatchers) into a CUDA device function compiled from the same Python
source, with every ``@njit`` function it reaches through its globals, its
closure cells or the attributes of a module (``rng.uniform``) turned likewise.
``network_kernels(models)`` compiles, per set of models, the CPU engine's own
per-neuron reference loop of each model (``loops.model_loops(model)[0]``:
synaptic and Poisson input, OU current, the model's uniform draw, the
model's step, called per neuron with ``lo = i, hi = i + 1``) behind a
dispatch on the neuron's model index (``_reference_dispatch``), so both
engines run the same code for every model, built-in or registered by a user.

Time advances in windows of ``n_w <= min delay`` steps. In a window each
thread advances its neurons ``n_w`` steps (inputs arriving in the window were
all emitted before it) and appends the spikes of step ``t0 + w`` to list
``w``; then the spikes of the window are delivered through the rows of a CSR
keyed by source into a ring buffer ``ring (R, 2, N)`` of int64 fixed-point
sums (one slot per arrival step, channel 0 excitatory, 1 inhibitory). A
weight enters as ``round(w * scale)`` with ``scale = 2**k``; integer sums do
not depend on the order of the atomic additions, so every run gives the same
sums, and where the weights are exact in fixed point the sums equal the CPU
engine's float64 sums. Two launches per window (``update``, ``deliver``), or
one cooperative launch for many windows (``persistent``: grid-wide barriers
between the phases).

Window control lives on the device, in ``cnt`` (int64): ``cnt[p]`` (p = the
window's parity) says whether the window runs, ``cnt[2]`` counts the steps
done, ``cnt[3]`` the spikes recorded. Closing window k sets ``cnt[1 - p]``
for window k + 1 (0 when the spike record could overflow) and zeroes the
spike counts of parity 1 - p.

Argument bundles of the kernels::

    st     = ((X, I_ou, inp), ring, scratch (N, 1) int32, 2**-k)
    prm    = ((Q, qrow), model_of)
    inputs = the loops' input bundle (``flatten.KernelNetwork.inputs``)
    rec    = (wcnt, wspk, pop_of, reg_of, rate_pop, rate_reg, rate_t0, bin_steps,
              rec_mode, rec_mask, cnt, rec_step, rec_gid)
    syn    = (indptr, targets, weights, delays, src_ch)
"""
import functools
import math
import threading
import types
import warnings

import numpy as np
from numba import cuda
from numba.core.registry import CPUDispatcher

try:
    from numba.cuda.core import config as _cuda_config
    SIMULATOR = bool(_cuda_config.ENABLE_CUDASIM)
except ImportError:  # pragma: no cover - other numba-cuda layouts
    import os
    SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"

# dispatcher / module -> its device version (or its simulator twin)
_DEVICE = {}


# ------------------------------------------------------- device functions
def _code_names(code):
    """Names a code object (and the code objects nested in it) loads: globals
    and attribute names."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def device_function(f):
    """The CUDA device version of a scalar function.

    ``f`` is an ``@njit`` dispatcher or a plain Python function. Its Python
    source is compiled with ``cuda.jit(device=True, inline="always")``;
    every ``@njit`` function it uses is replaced by its own device version
    (recursively), whether it reaches it as a global, through a closure cell
    (the loops of ``kernels.loops`` are closures over a model's step and
    glue) or as an attribute of a module (``rng.uniform``: the module is
    replaced by a copy holding device versions). Under the simulator the
    rebuilt Python function is returned as is (it then calls only Python
    functions, which accept the simulator's arrays).
    """
    if f in _DEVICE:
        return _DEVICE[f]
    py = getattr(f, "py_func", f)
    glb = dict(py.__globals__)
    for name in _code_names(py.__code__):
        if name in glb:
            glb[name] = _device_value(glb[name])
    cells = None
    if py.__closure__ is not None:
        cells = tuple(_device_cell(c) for c in py.__closure__)
    new = types.FunctionType(py.__code__, glb, py.__name__, py.__defaults__, cells)
    new.__qualname__, new.__module__, new.__doc__ = py.__qualname__, py.__module__, py.__doc__
    _DEVICE[f] = new if SIMULATOR else cuda.jit(device=True, inline="always")(new)
    return _DEVICE[f]


def _device_cell(cell):
    """A new closure cell holding the device twin of ``cell``'s value."""
    try:
        value = cell.cell_contents
    except ValueError:  # an empty cell (a name never bound): keep it empty
        return types.CellType()
    return types.CellType(_device_value(value))


def _device_value(value):
    """The device twin of a value a function uses: njit functions and the
    modules that hold njit functions are replaced, anything else kept."""
    if isinstance(value, CPUDispatcher):
        return device_function(value)
    if isinstance(value, types.ModuleType) and _holds_dispatchers(value):
        return _device_module(value)
    return value


def _holds_dispatchers(module):
    return any(isinstance(v, CPUDispatcher) for v in vars(module).values())


def _device_module(module):
    """A module object with the attributes of ``module``, its ``@njit``
    functions replaced by their device versions."""
    if module in _DEVICE:
        return _DEVICE[module]
    twin = types.ModuleType(module.__name__, module.__doc__)
    _DEVICE[module] = twin  # before converting: functions may refer to their module
    for name, value in vars(module).items():
        if not name.startswith("__"):
            setattr(twin, name, device_function(value) if isinstance(value, CPUDispatcher)
                    else value)
    return twin


# ------------------------------------------------------ no FMA contraction
_LOCAL = threading.local()


def _install_fma_switch():
    """NVVM contracts a * b + c into an FMA by default (one rounding instead of
    two), which changes float results against the CPU; numba-cuda 0.30 has no
    option for it. This wraps NVVM's compile call to pass ``-fma=0`` while a
    brainsim kernel is compiled (see ``launching``); other kernels are untouched."""
    from numba.cuda.cudadrv import nvvm
    if getattr(nvvm.compile_ir, "_brainsim_fma_switch", False):
        return
    original = nvvm.compile_ir

    def compile_ir(llvmir, **options):
        if getattr(_LOCAL, "no_fma", False) and not options.get("fastmath"):
            options["fma"] = False
        return original(llvmir, **options)

    compile_ir._brainsim_fma_switch = True
    nvvm.compile_ir = compile_ir


class launching:
    """Context for kernel launches: kernels compiled inside it (at their first
    launch) get no FMA contraction; under the simulator, numpy's overflow
    warnings of uint64 scalars are silenced (the hash relies on wrap-around;
    the warnings filter is process-wide, so the simulator's threads see it)."""

    def __enter__(self):
        self.before = getattr(_LOCAL, "no_fma", False)
        _LOCAL.no_fma = True
        self.warn = warnings.catch_warnings()
        self.warn.__enter__()
        warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)

    def __exit__(self, *exc):
        self.warn.__exit__(*exc)
        _LOCAL.no_fma = self.before


if not SIMULATOR:
    _install_fma_switch()

# helpers below: device functions on a GPU; plain Python under the simulator,
# where a kernel's fake ``cuda`` module is visible to this module's functions
_device = (lambda f: f) if SIMULATOR else cuda.jit(device=True, inline="always")
# no link-time optimisation: nvJitLink could contract FMAs again at link time
_KERNEL_OPTIONS = {} if SIMULATOR else {"lto": False}


@_device
def _fixed(w, scale):
    """Weight (float) -> int64 fixed point round(w * scale), halves away from
    zero; exact whenever w * scale is an integer."""
    x = np.float64(w) * scale
    r = math.floor(x)
    if x - r >= 0.5:
        r += 1
    return np.int64(r)


@_device
def _fetch_input(i, slot, ring, inp, inv_scale):
    """Move the fixed-point sums arriving in ``slot`` into ``inp`` (float),
    where the reference loop reads (and clears) them."""
    inp[0, i] = ring[slot, 0, i] * inv_scale
    inp[1, i] = ring[slot, 1, i] * inv_scale
    ring[slot, 0, i] = 0
    ring[slot, 1, i] = 0


@_device
def _record(i, t, w, par, rec):
    """Enter neuron i's spike of step t (list w of the window) in the window
    list, the rate counts and the spike record."""
    (wcnt, wspk, pop_of, reg_of, rate_pop, rate_reg, rate_t0, bin_steps, rec_mode, rec_mask,
     cnt, rec_step, rec_gid) = rec
    j = cuda.atomic.add(wcnt, (par, w), 1)
    wspk[w, j] = i
    if rate_pop.shape[0] > 0:
        row = (t - rate_t0) // bin_steps
        cuda.atomic.add(rate_pop, (row, pop_of[i]), 1)
        cuda.atomic.add(rate_reg, (row, reg_of[i]), 1)
    if rec_mode == 1 or (rec_mode == 2 and rec_mask[i]):
        k = cuda.atomic.add(cnt, 3, 1)
        if k < rec_step.size:
            rec_step[k] = t
            rec_gid[k] = i


@_device
def _deliver_phase(b, nb, tid, nt, t0, n_w, par, syn, ring, scale, wcnt, wspk):
    """Blocks b = 0 .. nb - 1 take the window's spikes j = b, b + nb, ...;
    their nt threads split each spike's row."""
    indptr, targets, weights, delays, src_ch = syn
    R = ring.shape[0]
    for w in range(n_w):
        t = t0 + w
        for j in range(b, wcnt[par, w], nb):
            s = wspk[w, j]
            ch = src_ch[s]
            for k in range(indptr[s] + tid, indptr[s + 1], nt):
                cuda.atomic.add(ring, ((t + delays[k]) % R, ch, targets[k]),
                                _fixed(weights[k], scale))


@_device
def _close_window(par, n_w, next_w, ctl, wcnt):
    """One thread: count the window as done, clear the other parity's spike
    counts, decide whether the next window (next_w steps) may run."""
    cnt, cap, n_rec = ctl
    cnt[2] += n_w
    for w in range(wcnt.shape[1]):
        wcnt[1 - par, w] = 0
    cnt[1 - par] = 1 if cnt[3] + next_w * n_rec <= cap else 0


# ---------------------------------------------------------------- kernels
@cuda.jit(**_KERNEL_OPTIONS)
def deliver(t0, n_w, next_w, par, syn, ring, scale, wcnt, wspk, ctl):
    """Launch mode, phase 2: deliver the window's spikes (a block per spike).
    The same for every set of models."""
    cnt = ctl[0]
    if cnt[par] == 0:  # this window did not run: neither does the next
        if cuda.grid(1) == 0:
            cnt[1 - par] = 0
        return
    _deliver_phase(cuda.blockIdx.x, cuda.gridDim.x, cuda.threadIdx.x, cuda.blockDim.x, t0, n_w,
                   par, syn, ring, scale, wcnt, wspk)
    if cuda.grid(1) == 0:
        _close_window(par, n_w, next_w, ctl, wcnt)


@functools.lru_cache(maxsize=None)
def network_kernels(models):
    """The kernels of a network whose neurons use ``models`` (a tuple of
    NeuronModel; ``model_of[i]`` indexes it), made once per set of models:
    a namespace with ``update`` and ``persistent`` (model-specific) and
    ``deliver`` (shared). CUDA compiles them at their first launch."""
    update_phase = _make_update_phase(_reference_dispatch(models))
    update, persistent = _make_kernels(update_phase)
    return types.SimpleNamespace(models=models, update=update, deliver=deliver,
                                 persistent=persistent)


_LOOP_ARGS = "c, t, seed, lo, hi, chunk_spk, state, params, inputs"


def _reference_dispatch(models):
    """Device function ``neuron_update(m, c, t, seed, lo, hi, chunk_spk,
    state, params, inputs)``: the reference loop of ``models[m]``
    (``loops.model_loops(model)[0]``, its Python source compiled for the
    device), chosen by the model index m (generated source: one branch per
    model, no physics)."""
    from .loops import model_loops
    ns = {f"ref{k}": device_function(model_loops(m)[0]) for k, m in enumerate(models)}
    src = [f"def neuron_update(m, {_LOOP_ARGS}):"]
    src += [f"    if m == {k}:\n        return ref{k}({_LOOP_ARGS})" for k in range(len(models))]
    src += ["    return 0"]
    exec(compile("\n".join(src), "<brainsim cuda model dispatch>", "exec"), ns)  # noqa: S102
    return ns["neuron_update"] if SIMULATOR else cuda.jit(device=True, inline="always")(
        ns["neuron_update"])


def _make_update_phase(neuron_update):
    """The update phase around ``neuron_update(m, c, t, seed, lo, hi,
    chunk_spk, state, params, inputs)`` (the models' reference loops behind
    a dispatch on the model index m)."""

    @_device
    def update_phase(g, ng, t0, n_w, par, seed, st, prm, inputs, rec, vm_col, vm, vm_t0):
        """Threads g = 0 .. ng - 1 advance neurons g, g + ng, ... by n_w
        steps: input of the step from the ring, the model's reference loop
        for the one neuron (its spike, if any, goes to ``scratch[i, 0]``),
        V_m sample, spike record."""
        state, ring, scratch, inv_scale = st
        params, model_of = prm
        X, inp = state[0], state[2]
        R = ring.shape[0]
        for i in range(g, X.shape[1], ng):
            m = model_of[i]
            for w in range(n_w):
                t = t0 + w
                _fetch_input(i, t % R, ring, inp, inv_scale)
                sp = neuron_update(m, i, t, seed, i, i + 1, scratch, state, params, inputs)
                if vm_col[i] >= 0:
                    vm[t - vm_t0, vm_col[i]] = X[0, i]
                if sp > 0:
                    _record(i, t, w, par, rec)

    return update_phase


def _make_kernels(update_phase):
    """(update, persistent) kernels around ``update_phase``."""

    @cuda.jit(**_KERNEL_OPTIONS)
    def update(t0, n_w, par, seed, st, prm, inputs, rec, vm_col, vm, vm_t0, ctl):
        """Launch mode, phase 1: one window of neuron updates."""
        if ctl[0][par] == 0:
            return
        update_phase(cuda.grid(1), cuda.gridsize(1), t0, n_w, par, seed, st, prm, inputs, rec,
                     vm_col, vm, vm_t0)

    @cuda.jit(**_KERNEL_OPTIONS)
    def persistent(t0, n_steps, W, par0, seed, st, prm, inputs, rec, vm_col, vm, vm_t0, syn,
                   scale, ctl):
        """Persistent mode: windows of W steps over n_steps with grid-wide
        barriers between the phases (cooperative launch); stops early when
        the window flag says so."""
        grid = cuda.cg.this_grid()
        g, ng = cuda.grid(1), cuda.gridsize(1)
        cnt = ctl[0]
        wcnt, wspk = rec[0], rec[1]
        ring = st[1]
        t, par = t0, par0
        while t < t0 + n_steps and cnt[par] != 0:
            n_w = min(W, t0 + n_steps - t)
            update_phase(g, ng, t, n_w, par, seed, st, prm, inputs, rec, vm_col, vm, vm_t0)
            grid.sync()
            _deliver_phase(cuda.blockIdx.x, cuda.gridDim.x, cuda.threadIdx.x, cuda.blockDim.x,
                           t, n_w, par, syn, ring, scale, wcnt, wspk)
            if g == 0:
                _close_window(par, n_w, min(W, t0 + n_steps - t - n_w), ctl, wcnt)
            grid.sync()
            t += n_w
            par = 1 - par

    return update, persistent
