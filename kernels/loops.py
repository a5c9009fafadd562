"""The CPU loops around a model's step, compiled per model and per network.

For every model, ``model_loops`` compiles two functions that advance a chunk
of neurons (contiguous ids, one model) by one step:

- ``reference(c, t, seed, lo, hi, chunk_spk, state, params, inputs)``: one
  loop, per neuron: read and clear the synaptic input, add the Poisson
  input, advance the OU current, draw the model's uniform (models with
  noise), call the step, write the state back, collect spikes. The CUDA
  engine compiles this same function for the device, per neuron.
- ``fast(c, t, seed, lo, hi, prow_q, prow, chunk_spk, state, params,
  inputs, pkey)``: the same arithmetic for a chunk whose neurons share their
  Poisson source, in separate branch-free loops (Poisson
  counts, OU currents, the step, spike compaction) that LLVM vectorises; one
  function per input combination (``FAST_VARIANTS``: Poisson input of either
  sign or none, OU or none). A chunk whose neurons share one parameter row
  (``prow_q`` >= 0) keeps it in registers; with per-neuron rows (``prow_q``
  -1: parameter columns, e.g. heterogeneity or HMDA's per-region scales) the
  step's loop gathers each neuron's row. Results are
  bit-identical to ``reference`` (tests/test_fast_kernels.py).

``advance`` is compiled once per state dtype: per step, delivery of due
spikes into the input array, then in parallel over partitions every chunk
through its model's loop (called as a first-class function from a table,
``network_kernels``), then the step's spikes gathered in id order, recorded
and entered in the spike history (see ``brainsim.backends.cpu`` for the data
layout). Everything is array-only.

Bundles (tuples) passed to the loops::

    state  = (X (n_state, N), I_ou (N,), inp (2, N))
    params = (Q (rows, columns), qrow (N,))
    inputs = (pois (3, N) float64: mean events per step, weight, delay steps;
              pois_tab (rows, TABLE_LEN + 1), pois_idx (N,) int32,
              ou (4, N): on (0/1), mean, decay, noise amplitude)

They are few arrays on purpose: ``advance`` calls the loops through
function pointers, and Numba's indirect calls become an order of magnitude
slower beyond about 105 scalar arguments (an array counts 7 or 9).
"""
import functools

import warnings

import numba
import numpy as np
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.core.errors import NumbaExperimentalFeatureWarning

from . import rng
from .codegen import glue, keyed_njit, state_rows
from .inputs import ou_step, poisson_input
from .rng import STREAM_NEURON, STREAM_POISSON, stream_key



@functools.lru_cache(maxsize=None)
def model_loops(model, dtype=None):
    """(reference, fasts) chunk loops of ``model`` (see the module docstring);
    ``fasts`` holds one fast loop per input combination (``FAST_VARIANTS``).

    With ``dtype`` ("float32" or "float64") they are meant for the bundles
    of that state dtype (``loop_signatures``), compiled one by one when a
    network first uses them (``compile_loops``); without, they compile on
    first call (the CUDA engine takes their Python source)."""
    load, store, row, row_of = glue(model)
    step = _jit_step(model)
    noise = model.noise

    @njit(inline="always")
    def apply(X, i, q, in_e, in_i, i_cur, u):
        s, sp = step(load(X, i), q, in_e, in_i, i_cur, u)
        store(X, i, s)
        return sp

    def reference(c, t, seed, lo, hi, chunk_spk, state, params, inputs):
        X, I_ou, inp = state
        Q, qrow = params
        pois, pois_tab, pois_idx, ou = inputs
        cnt = 0
        has_pois = pois.shape[1] > 0
        key0 = stream_key(seed, STREAM_POISSON, 0)
        has_ou = ou.shape[1] > 0
        for i in range(lo, hi):
            in_e = inp[0, i]
            in_i = inp[1, i]
            inp[0, i] = 0.0
            inp[1, i] = 0.0
            if has_pois and pois[0, i] > 0.0:
                x = poisson_input(pois[0, i], pois_tab[pois_idx[i]], key0, pois[1, i],
                                  np.int64(pois[2, i]), seed, i, t)
                if pois[1, i] >= 0.0:
                    in_e += x
                else:
                    in_i += x
            i_cur = 0.0
            if has_ou and ou[0, i] != 0:
                I_ou[i] = ou_step(I_ou[i], ou[1, i], ou[2, i], ou[3, i], seed, i, t)
                i_cur = I_ou[i]
            u = rng.uniform(seed, STREAM_NEURON, i, t, 0) if noise else 0.0
            s, sp = step(load(X, i), row(Q, qrow[i]), in_e, in_i, i_cur, u)
            store(X, i, s)
            if sp:
                chunk_spk[c, cnt] = i
                cnt += 1
        return cnt

    def make_fast(pois_on, exc, ou_on):
        """The fast loop for chunks with (pois_on) or without Poisson input
        of one sign (exc: excitatory), with (ou_on) or without OU current:
        one loop without branches, so one inlined step per function."""

        def fast(c, t, seed, lo, hi, prow_q, prow, chunk_spk, state, params, inputs, pkey):
            X, I_ou, inp = state
            Q, qrow = params
            pois_in, pois_tab, _, ou = inputs
            buf = chunk_spk[c]
            n = hi - lo
            w = 0.0
            if pois_on:
                d = np.int64(pois_in[2, lo])
                w = np.float64(pois_in[1, lo])
                if t >= d:
                    tab = pois_tab[prow]
                    s_pois = t - d
                    last = rng.TABLE_LEN - 1
                    keys = pkey[lo:hi]
                    for j in range(n):
                        uu = rng.step_uniform(keys[j], s_pois)
                        x = 0
                        for k in range(last):
                            x += uu > tab[k]
                        buf[j] = x
                    for j in range(n):  # rare: count beyond the table
                        if buf[j] == last:
                            uu = rng.step_uniform(keys[j], s_pois)
                            buf[j] = rng._search_from(uu, pois_in[0, lo], last,
                                                      tab[rng.TABLE_LEN], tab[last])
                else:  # before the first events arrive: no events (adds 0.0, as the
                    for j in range(n):  # reference loop does)
                        buf[j] = 0
            if ou_on:
                for i in range(lo, hi):
                    I_ou[i] = ou_step(I_ou[i], ou[1, i], ou[2, i], ou[3, i], seed, i, t)
            # unsigned indices, so that addresses need no negative-index
            # wraparound (which keeps LLVM from vectorising)
            ulo = np.uint64(lo)
            if prow_q >= 0:  # one parameter row for the chunk: held in registers
                q = row(Q, prow_q)
                for j in range(n):
                    i = ulo + np.uint64(j)
                    in_e, in_i, i_cur = _chunk_inputs(inp, I_ou, buf, j, i, w, pois_on, exc,
                                                      ou_on)
                    buf[j] = apply(X, i, q, in_e, in_i, i_cur, _u(noise, seed, i, t))
            else:  # per-neuron parameter rows (columns, e.g. heterogeneity): gathered
                for j in range(n):
                    i = ulo + np.uint64(j)
                    in_e, in_i, i_cur = _chunk_inputs(inp, I_ou, buf, j, i, w, pois_on, exc,
                                                      ou_on)
                    buf[j] = apply(X, i, row(Q, qrow[i]), in_e, in_i, i_cur,
                                   _u(noise, seed, i, t))
            # compaction in place (cnt <= j): blocks of 64 without a spike (most)
            # are skipped after a vectorised test
            cnt = 0
            for j0 in range(0, n, 64):
                j1 = min(n, j0 + 64)
                hit = 0
                for j in range(j0, j1):
                    hit |= buf[j]
                if hit:
                    for j in range(j0, j1):
                        f = buf[j]
                        buf[cnt] = lo + j
                        cnt += f
            return cnt
        return fast

    # no reference counting in the loops (they allocate nothing): counting the
    # arrays of the bundles at every call costs more than a small chunk's loop
    key = model.fingerprint() + str(dtype)
    opts = {"cache": True, "nogil": True, "_nrt": False}
    ref = keyed_njit(reference, "reference" + key, **opts)
    fasts = tuple(keyed_njit(make_fast(*flags), f"fast{flags}" + key, **opts)
                  for flags in FAST_VARIANTS)
    return ref, fasts


@functools.lru_cache(maxsize=None)
def _jit_step(model):
    from numba import njit
    return njit(inline="always")(getattr(model.step, "py_func", model.step))


@njit(inline="always")
def _take(inp, ch, i):
    """Read and clear one input cell (as float64, like the reference loop)."""
    x = np.float64(inp[ch, i])
    inp[ch, i] = 0.0
    return x


@njit(inline="always")
def _chunk_inputs(inp, I_ou, buf, j, i, w, pois_on, exc, ou_on):
    """Synaptic input (read and cleared), the chunk's Poisson count ``buf[j]``
    of weight ``w`` and the OU current of neuron ``i``, for the fast loops."""
    in_e = _take(inp, 0, i)
    in_i = _take(inp, 1, i)
    if pois_on and exc:
        in_e = in_e + buf[j] * w
    elif pois_on:
        in_i = in_i + buf[j] * w
    i_cur = np.float64(I_ou[i]) if ou_on else 0.0
    return in_e, in_i, i_cur


@njit(inline="always")
def _u(noise, seed, i, t):
    if noise:
        return rng.uniform(seed, STREAM_NEURON, i, t, 0)
    return 0.0


# ------------------------------------------------------------- networks
#: The fast loops' input combinations (Poisson on, Poisson excitatory, OU
#: on); ``chunk_plan`` stores a chunk's index into this table.
FAST_VARIANTS = ((False, True, False), (False, True, True), (True, True, False),
                 (True, True, True), (True, False, False), (True, False, True))
N_FAST = len(FAST_VARIANTS)

#: Slots of the model tables handed to ``advance`` (padded to a power of two
#: >= 4), so that ``advance`` compiles once per dtype and table size, not per
#: set of models.
MIN_SLOTS = 4


@functools.lru_cache(maxsize=None)
def network_kernels(models, dtype):
    """(advance, refs, fasts, addresses) for a network whose chunks use
    ``models`` (a tuple; a chunk's model is its index in it) with state of
    ``dtype``.

    ``refs`` and ``fasts`` are the models' loops for that dtype, of one
    signature per kind (``loop_signatures``); ``addresses`` (2, n) int64
    holds the machine addresses of their compiled entry points (row 0 the C
    wrapper, row 1 the Numba-convention function), refs first, then fasts,
    0 for a loop not compiled yet: ``compile_loops`` compiles those a chunk
    plan calls and fills in their addresses (a network uses one or two of
    each model's seven loops; compiling all of them cost most of a first
    run's time). ``advance`` calls the loops through these addresses (one
    indirect call per chunk and step), so it is compiled once per dtype and
    shared by every set of models. Addresses, not a tuple of the functions:
    Numba types a tuple of 28 dispatchers anew at every call, ~5 ms, which
    at one call per 100 ms of simulated time cost 4 us per step (a 19 %
    slower microcircuit at scale 0.1; benchmarks/RESULTS.md). The
    dispatchers in ``refs`` and ``fasts`` own the machine code: keep them
    alive as long as ``addresses`` is used (this function's cache holds
    them)."""
    loops = [model_loops(m, np.dtype(dtype).name) for m in models]
    n = max(MIN_SLOTS, 1 << (len(loops) - 1).bit_length())
    loops += [loops[-1]] * (n - len(loops))  # unused slots repeat the last model
    refs = tuple(r for r, _ in loops)
    fasts = tuple(f for _, fs in loops for f in fs)
    addresses = np.zeros((2, len(refs) + len(fasts)), np.int64)
    return run_advance, refs, fasts, addresses


def plan_slots(plan, chunk_model, n_slots):
    """The columns of ``network_kernels``' addresses that the chunks of a
    plan (``brainsim.backends.cpu.chunk_plan``) call: a chunk's model's
    reference loop, or its fast loop of the plan's variant."""
    variant = plan[:, 1]
    slots = np.where(variant < 0, chunk_model,
                     n_slots + chunk_model.astype(np.int64) * N_FAST + variant)
    return np.unique(slots)


def compile_loops(refs, fasts, addresses, slots, dtype):
    """Compile the loops at ``slots`` (columns of ``addresses``) that are
    not compiled yet (from Numba's cache where it has them) and write their
    entry points into ``addresses``; ``advance`` may then call them."""
    from numba.experimental.function_type import _get_jit_address, _get_wrapper_address
    ref_sig, fast_sig = loop_signatures(np.dtype(dtype).name)
    for v in np.asarray(slots, np.int64):
        if not 0 <= v < addresses.shape[1]:
            raise IndexError(f"loop slot {v} outside 0..{addresses.shape[1] - 1}")
        if addresses[0, v] != 0:
            continue
        f, sig = (refs[v], ref_sig) if v < len(refs) else (fasts[v - len(refs)], fast_sig)
        f.compile(sig)
        pair = (_get_wrapper_address(f, sig), _get_jit_address(f, sig))
        if pair[0] in (0, -1) or pair[1] in (0, -1):  # never: compiled above
            raise RuntimeError("a neuron loop has no compiled entry point")
        addresses[:, v] = pair


def run_advance(*args):
    """``advance(*args)`` without Numba's note that first-class functions are
    experimental (the feature is exercised by every simulation and its tests)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaExperimentalFeatureWarning)
        return advance(*args)


def _function_at(kind):
    """An intrinsic ``f(c_addr, jit_addr, state)`` -> a first-class function
    of the ``kind`` ("ref" or "fast") loop signature for ``state``'s dtype,
    calling the compiled loop at those addresses (``network_kernels``)."""

    @intrinsic
    def function_at(typingctx, c_addr, jit_addr, state):
        dtype = np.dtype(str(state.types[0].dtype)).name
        sig = loop_signatures(dtype)[0 if kind == "ref" else 1]
        fty = types.FunctionType(sig)

        def codegen(context, builder, signature, args):
            ptr = context.get_value_type(types.voidptr)
            fn = cgutils.create_struct_proxy(fty)(context, builder)
            fn.c_addr = builder.inttoptr(args[0], ptr)
            fn.py_addr = ptr(None)  # no Python object: the call never needs one
            fn.jit_addr = builder.inttoptr(args[1], ptr)
            return fn._getvalue()
        return fty(types.int64, types.int64, state), codegen
    return function_at


_ref_at = _function_at("ref")
_fast_at = _function_at("fast")


@njit(parallel=True, cache=True, nogil=True)
def advance(t0, n_steps, t_base, seed, st, state, params, inputs, syn, chunks, rec, n_spk,
            hist, addresses):
    """Advance steps t0 .. t0 + n_steps - 1. Returns (steps done, spikes
    recorded, hist); stops early when the spike record could overflow.
    ``addresses``: the compiled reference and fast chunk loops of each
    model slot (``network_kernels``), called for the chunks of that model."""
    chunk_spk, chunk_nspk, step_spikes = st
    X = state[0]
    inp = state[2]
    h_spk, h_n, h_cur = hist
    seg_ptr, seg_start, seg_delay, targets, tgt_base, weights, src_ch = syn
    chunk_lo, chunk_hi, chunk_model, blk_chunks, plan, pkey = chunks
    (rec_mode, rec_mask, spk_step, spk_gid, pop_of, rate_pop, reg_of, rate_reg, bin_steps,
     vm_ids, vm_out) = rec
    R = h_n.size
    n_chunks = chunk_lo.size
    n_blocks = seg_ptr.shape[0]
    N = X.shape[1]
    seed64 = np.int64(seed)
    n_refs = addresses.shape[1] // (1 + N_FAST)
    for it in range(n_steps):
        if rec_mode != 0 and n_spk + N > spk_step.size:
            return it, n_spk, (h_spk, h_n, h_cur)
        t = np.int64(t0 + it)
        for blk in prange(n_blocks):
            b0 = tgt_base[blk]  # targets are local to their partition
            # (1) spikes emitted `age` steps ago reach their targets in this
            # partition through the row segment of delay == age (ages
            # ascending, then ids ascending)
            for age in range(1, R):
                if age > t:
                    break
                slot = (t - age) % R
                for j in range(h_n[slot]):
                    s = h_spk[slot, j]
                    c0 = seg_ptr[blk, s]
                    c = c0 + np.int64(h_cur[blk, slot, j])
                    if c < seg_ptr[blk, s + 1] and seg_delay[c] == age:
                        ch = src_ch[s]
                        for k in range(seg_start[c], seg_start[c + 1]):
                            inp[ch, b0 + targets[k]] += weights[k]
                        h_cur[blk, slot, j] = np.uint16(c + 1 - c0)
            # (2) the partition's neurons, chunk by chunk, each through its
            # model's loop
            for c in range(blk_chunks[blk], blk_chunks[blk + 1]):
                c64 = np.int64(c)
                m = chunk_model[c]
                lo, hi = np.int64(chunk_lo[c]), np.int64(chunk_hi[c])
                if plan[c, 1] < 0:
                    ref = _ref_at(addresses[0, m], addresses[1, m], state)
                    chunk_nspk[c] = ref(c64, t, seed64, lo, hi, chunk_spk, state, params, inputs)
                else:
                    v = n_refs + m * N_FAST + plan[c, 1]
                    fast = _fast_at(addresses[0, v], addresses[1, v], state)
                    chunk_nspk[c] = fast(c64, t, seed64, lo, hi, plan[c, 0], plan[c, 3],
                                         chunk_spk, state, params, inputs, pkey)
        # (3) gather in id order, record, enter into the history
        ns = 0
        row = (t - t_base) // bin_steps
        for c in range(n_chunks):
            for j in range(chunk_nspk[c]):
                i = chunk_spk[c, j]
                step_spikes[ns] = i
                ns += 1
                if rate_pop.shape[0] > 0:
                    rate_pop[row, pop_of[i]] += 1
                    rate_reg[row, reg_of[i]] += 1
                if rec_mode == 1 or (rec_mode == 2 and rec_mask[i]):
                    spk_step[n_spk] = t
                    spk_gid[n_spk] = i
                    n_spk += 1
        if ns > h_spk.shape[1]:
            h_spk, h_cur = grow_history(h_spk, h_cur, ns)
        slot = t % R
        h_n[slot] = ns
        for j in range(ns):
            s = step_spikes[j]
            h_spk[slot, j] = s
            for blk in range(n_blocks):
                h_cur[blk, slot, j] = 0
        for j in range(vm_ids.size):
            vm_out[t - t_base, j] = X[0, vm_ids[j]]
    return n_steps, n_spk, (h_spk, h_n, h_cur)


def loop_signatures(dtype):
    """Numba signatures of the reference and fast loops for state ``dtype``
    (the bundles of the module docstring, C-contiguous arrays)."""
    f = numba.from_dtype(np.dtype(dtype))
    i64 = types.int64

    def arr(t, nd):
        return types.Array(t, nd, "C")
    state = types.Tuple((arr(f, 2), arr(f, 1), arr(f, 2)))
    params = types.Tuple((arr(f, 2), arr(types.int32, 1)))
    inputs = types.Tuple((arr(types.float64, 2), arr(types.float64, 2), arr(types.int32, 1),
                          arr(f, 2)))
    spk = arr(types.int32, 2)
    ref = i64(i64, i64, i64, i64, i64, spk, state, params, inputs)
    fast = i64(i64, i64, i64, i64, i64, i64, i64, spk, state, params, inputs,
               arr(types.uint64, 1))
    return ref, fast


@njit(cache=True)
def grow_history(h_spk, h_cur, need):
    """The spike history with room for ``need`` spikes per step."""
    cap = max(need, 2 * h_spk.shape[1])
    spk = np.zeros((h_spk.shape[0], cap), h_spk.dtype)
    cur = np.zeros((h_cur.shape[0], h_cur.shape[1], cap), h_cur.dtype)
    spk[:, :h_spk.shape[1]] = h_spk
    cur[:, :, :h_cur.shape[2]] = h_cur
    return spk, cur


def new_history(n_slots, n_blocks, cap):
    """Empty spike history: (spikes (R, cap), counts (R,), cursors (B, R, cap)).

    A cursor is the spike's next delay segment in its row of partition B,
    counted from the row's first segment: at most one segment per distinct
    delay (uint16 steps), so uint16 holds it. The cursors are the history's
    bulk (B x R x the most spikes of any step: 34 partitions x 1,000 slots
    x 8,192 spikes after the first step of a multi-area model, whose
    initial V_m puts 2 % of the neurons above threshold, was 2.2 GB as
    int64 absolute segment indices)."""
    return (np.zeros((n_slots, cap), np.int32), np.zeros(n_slots, np.int64),
            np.zeros((n_blocks, n_slots, cap), np.uint16))


def probe_step(model):
    """Compile ``model``'s step with its glue for float64 and run it once on
    the default parameters; returns the number of state values it returns
    (registration compares it with the declared state)."""
    load, store, row, _ = glue(model)
    step = _jit_step(model)

    @njit
    def count(X, Q):
        s, sp = step(load(X, 0), row(Q, 0), 0.0, 0.0, 0.0, 0.5)
        return len(s)

    @njit
    def full(X, Q):
        s, sp = step(load(X, 0), row(Q, 0), 0.0, 0.0, 0.0, 0.5)
        store(X, 0, s)
        return bool(sp)

    p = {k: (np.asarray(v, float)[None, :] if isinstance(v, tuple) else np.array([v]))
         for k, v in model.defaults.items()}
    X = np.empty((model.n_state, 1))
    X[list(state_rows(model))] = model.initial_state(p, 0.1)
    Q = np.ascontiguousarray(model.derive(p, 0.1))
    n = count(X, Q)
    if n == model.n_state:
        full(X, Q)
    return n


@functools.lru_cache(maxsize=None)
def _columns_kernel(model):
    load, store, row, _ = glue(model)
    step = _jit_step(model)

    @njit
    def columns(X, Q, in_ex, in_in, i_ext, u, spiked):
        for i in range(X.shape[1]):
            s, sp = step(load(X, i), row(Q, i), in_ex[i], in_in[i], i_ext[i], u[i])
            store(X, i, s)
            spiked[i] = sp
    return columns


def step_many(model, state, params, dt, in_ex=0.0, in_in=0.0, i_ext=0.0, u=0.0):
    """One step of ``model`` for n independent neurons, through the same
    compiled step and glue as the engines (float64; for tests and for
    checking a model by hand).

    state : dict state variable -> array (n,)
    params : dict parameter -> array (n,) (all of the model's parameters)
    in_ex, in_in, i_ext, u : scalars or arrays (n,), as the step receives them
    Returns (new state dict, spiked bool array).
    """
    n = np.size(state[model.state_names[0]])
    X = np.empty((model.n_state, n))
    for name, r in zip(model.state_names, state_rows(model)):
        X[r] = state[name]
    Q = np.ascontiguousarray(model.derive(params, dt))
    if Q.shape[0] != n:
        Q = np.ascontiguousarray(np.broadcast_to(Q, (n, Q.shape[1])))
    args = [np.ascontiguousarray(np.broadcast_to(np.asarray(x, float), (n,)))
            for x in (in_ex, in_in, i_ext, u)]
    spiked = np.zeros(n, np.bool_)
    _columns_kernel(model)(X, Q, *args, spiked)
    return {name: X[r].copy() for name, r in zip(model.state_names, state_rows(model))}, spiked
