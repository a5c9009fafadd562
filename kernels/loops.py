"""The CPU loops around a model's step, compiled per model and per network.

For every model, ``model_loops`` compiles two functions that advance a chunk
of neurons (contiguous ids, one model) by one step:

- ``reference(c, t, seed, lo, hi, chunk_spk, state, params, inputs)``: one
  loop, per neuron: read and clear the synaptic input, add the Poisson
  input, advance the OU current, draw the model's uniform (models with
  noise), call the step, write the state back, collect spikes. The CUDA
  engine compiles this same function for the device, per neuron.
- ``fast(c, t, seed, lo, hi, plan_row, chunk_spk, state, params, inputs,
  pkey)``: the same arithmetic for a chunk whose neurons share their
  parameter row and Poisson source, in separate branch-free loops (Poisson
  counts, OU currents, the step, spike compaction) that LLVM vectorises.
  Results are bit-identical to ``reference`` (tests/test_fast_kernels.py).

``advance`` (``network_kernels``) is compiled per set of models: per step,
delivery of due spikes into the input array, then in parallel over
partitions every chunk through its model's loop, then the step's spikes
gathered in id order, recorded and entered in the spike history (see
``brainsim.backends.cpu`` for the data layout). Everything is array-only.

Bundles (tuples) passed to the loops::

    state  = (X (n_state, N), I_ou (N,), inp (2, N))
    params = (Q (rows, columns), qrow (N,))
    inputs = (pois_lam, pois_tab, pois_idx, pois_w, pois_d,
              ou_on, ou_mu, ou_dec, ou_amp)
"""
import functools
import hashlib

import numpy as np
from numba import njit, prange

from . import rng
from .codegen import glue, keyed_njit, state_rows
from .inputs import ou_step, poisson_input
from .rng import STREAM_NEURON, STREAM_POISSON, stream_key


@functools.lru_cache(maxsize=None)
def model_loops(model):
    """(reference, fast) chunk loops of ``model`` (see the module docstring)."""
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
        pois_lam, pois_tab, pois_idx, pois_w, pois_d, ou_on, ou_mu, ou_dec, ou_amp = inputs
        cnt = 0
        has_pois = pois_lam.size > 0
        key0 = stream_key(seed, STREAM_POISSON, 0)
        has_ou = ou_on.size > 0
        for i in range(lo, hi):
            in_e = inp[0, i]
            in_i = inp[1, i]
            inp[0, i] = 0.0
            inp[1, i] = 0.0
            if has_pois and pois_lam[i] > 0.0:
                x = poisson_input(pois_lam[i], pois_tab[pois_idx[i]], key0, pois_w[i],
                                  pois_d[i], seed, i, t)
                if pois_w[i] >= 0.0:
                    in_e += x
                else:
                    in_i += x
            i_cur = 0.0
            if has_ou and ou_on[i] != 0:
                I_ou[i] = ou_step(I_ou[i], ou_mu[i], ou_dec[i], ou_amp[i], seed, i, t)
                i_cur = I_ou[i]
            u = rng.uniform(seed, STREAM_NEURON, i, t, 0) if noise else 0.0
            s, sp = step(load(X, i), row(Q, qrow[i]), in_e, in_i, i_cur, u)
            store(X, i, s)
            if sp:
                chunk_spk[c, cnt] = i
                cnt += 1
        return cnt

    def fast(c, t, seed, lo, hi, plan_row, chunk_spk, state, params, inputs, pkey):
        X, I_ou, inp = state
        Q = params[0]
        pois_lam, pois_tab, _, pois_w, pois_d, _, ou_mu, ou_dec, ou_amp = inputs
        prow_q, pmode, omode, prow = plan_row[0], plan_row[1], plan_row[2], plan_row[3]
        q = row(Q, prow_q)
        buf = chunk_spk[c]
        n = hi - lo
        pois = pmode == 1 and t >= pois_d[lo]
        w = 0.0
        exc = True
        if pois:
            tab = pois_tab[prow]
            s_pois = t - pois_d[lo]
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
                    buf[j] = rng._search_from(uu, pois_lam[lo], last, tab[rng.TABLE_LEN],
                                              tab[last])
            w = np.float64(pois_w[lo])
            exc = w >= 0.0
        if omode == 1:
            for i in range(lo, hi):
                I_ou[i] = ou_step(I_ou[i], ou_mu[i], ou_dec[i], ou_amp[i], seed, i, t)
        # one loop per input combination: no branch inside a loop that must
        # vectorise; unsigned indices, so that addresses need no negative-index
        # wraparound (which keeps LLVM from vectorising)
        ulo = np.uint64(lo)
        if not pois and omode == 0:
            for j in range(n):
                i = ulo + np.uint64(j)
                buf[j] = apply(X, i, q, _take(inp, 0, i), _take(inp, 1, i),
                                0.0, _u(noise, seed, i, t))
        elif not pois:
            for j in range(n):
                i = ulo + np.uint64(j)
                buf[j] = apply(X, i, q, _take(inp, 0, i), _take(inp, 1, i),
                                np.float64(I_ou[i]), _u(noise, seed, i, t))
        elif exc and omode == 0:
            for j in range(n):
                i = ulo + np.uint64(j)
                buf[j] = apply(X, i, q, _take(inp, 0, i) + buf[j] * w,
                                _take(inp, 1, i), 0.0, _u(noise, seed, i, t))
        elif exc:
            for j in range(n):
                i = ulo + np.uint64(j)
                buf[j] = apply(X, i, q, _take(inp, 0, i) + buf[j] * w,
                                _take(inp, 1, i), np.float64(I_ou[i]), _u(noise, seed, i, t))
        elif omode == 0:
            for j in range(n):
                i = ulo + np.uint64(j)
                buf[j] = apply(X, i, q, _take(inp, 0, i),
                                _take(inp, 1, i) + buf[j] * w, 0.0, _u(noise, seed, i, t))
        else:
            for j in range(n):
                i = ulo + np.uint64(j)
                buf[j] = apply(X, i, q, _take(inp, 0, i),
                                _take(inp, 1, i) + buf[j] * w, np.float64(I_ou[i]),
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

    key = model.fingerprint()
    return (keyed_njit(reference, "reference" + key, cache=True, nogil=True),
            keyed_njit(fast, "fast" + key, cache=True, nogil=True))


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
def _u(noise, seed, i, t):
    if noise:
        return rng.uniform(seed, STREAM_NEURON, i, t, 0)
    return 0.0


# ------------------------------------------------------------- networks
@functools.lru_cache(maxsize=None)
def network_kernels(models):
    """``advance`` for a network whose chunks use ``models`` (a tuple; a
    chunk's model is its index in it), compiled once per set of models."""
    loops = [model_loops(m) for m in models]
    dispatch_ref, dispatch_fast = _dispatchers(loops)

    def advance(t0, n_steps, t_base, seed, st, state, params, inputs, syn, chunks, rec, n_spk,
                hist):
        chunk_spk, chunk_nspk, step_spikes = st
        X = state[0]
        h_spk, h_n, h_cur = hist
        seg_ptr, seg_start, seg_delay, targets, tgt_base, weights, src_ch = syn
        chunk_lo, chunk_hi, chunk_model, blk_chunks, plan, pkey = chunks
        (rec_mode, rec_mask, spk_step, spk_gid, pop_of, rate_pop, reg_of, rate_reg, bin_steps,
         vm_ids, vm_out) = rec
        inp = state[2]
        R = h_n.size
        n_chunks = chunk_lo.size
        n_blocks = seg_ptr.shape[0]
        N = X.shape[1]
        for it in range(n_steps):
            if rec_mode != 0 and n_spk + N > spk_step.size:
                return it, n_spk, (h_spk, h_n, h_cur)
            t = t0 + it
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
                        c = h_cur[blk, slot, j]
                        s = h_spk[slot, j]
                        if c < seg_ptr[blk, s + 1] and seg_delay[c] == age:
                            ch = src_ch[s]
                            for k in range(seg_start[c], seg_start[c + 1]):
                                inp[ch, b0 + targets[k]] += weights[k]
                            h_cur[blk, slot, j] = c + 1
                # (2) the partition's neurons, chunk by chunk, each through
                # its model's loops
                for c in range(blk_chunks[blk], blk_chunks[blk + 1]):
                    if plan[c, 0] < 0:
                        chunk_nspk[c] = dispatch_ref(chunk_model[c], c, t, seed, chunk_lo[c],
                                                     chunk_hi[c], chunk_spk, state, params,
                                                     inputs)
                    else:
                        chunk_nspk[c] = dispatch_fast(chunk_model[c], c, t, seed, chunk_lo[c],
                                                      chunk_hi[c], plan[c], chunk_spk, state,
                                                      params, inputs, pkey)
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
                    h_cur[blk, slot, j] = seg_ptr[blk, s]
            for j in range(vm_ids.size):
                vm_out[t - t_base, j] = X[0, vm_ids[j]]
        return n_steps, n_spk, (h_spk, h_n, h_cur)

    key = hashlib.sha256("|".join(m.fingerprint() for m in models).encode()).hexdigest()
    return keyed_njit(advance, "advance" + key, parallel=True, cache=True, nogil=True)


def _dispatchers(loops):
    """Inlined functions calling model m's reference / fast loop."""
    ref_args = "c, t, seed, lo, hi, chunk_spk, state, params, inputs"
    fast_args = "c, t, seed, lo, hi, plan_row, chunk_spk, state, params, inputs, pkey"
    src = [f"def dispatch_ref(m, {ref_args}):"]
    src += [f"    if m == {k}:\n        return ref{k}({ref_args})" for k in range(len(loops))]
    src += ["    return 0", f"def dispatch_fast(m, {fast_args}):"]
    src += [f"    if m == {k}:\n        return fast{k}({fast_args})" for k in range(len(loops))]
    src += ["    return 0"]
    ns = {}
    for k, (ref, fast) in enumerate(loops):
        ns[f"ref{k}"], ns[f"fast{k}"] = ref, fast
    exec(compile("\n".join(src), "<brainsim model dispatch>", "exec"), ns)  # noqa: S102
    return njit(inline="always")(ns["dispatch_ref"]), njit(inline="always")(ns["dispatch_fast"])


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
    """Empty spike history: (spikes (R, cap), counts (R,), cursors (B, R, cap))."""
    return (np.zeros((n_slots, cap), np.int32), np.zeros(n_slots, np.int64),
            np.zeros((n_blocks, n_slots, cap), np.int64))


def probe_step(model):
    """Compile ``model``'s step with its glue for float64 and run it once on
    the default parameters; returns the number of state values it returns
    (registration compares it with the declared state)."""
    load, store, row, _ = glue(model)
    step = _jit_step(model)

    @njit
    def probe(X, Q):
        s, sp = step(load(X, 0), row(Q, 0), 0.0, 0.0, 0.0, 0.5)
        n = len(s)
        if n == X.shape[0]:
            store(X, 0, s)
        return n, bool(sp)

    p = {k: (np.asarray(v, float)[None, :] if isinstance(v, tuple) else np.array([v]))
         for k, v in model.defaults.items()}
    X = np.empty((model.n_state, 1))
    X[list(state_rows(model))] = model.initial_state(p, 0.1)
    Q = np.ascontiguousarray(model.derive(p, 0.1))
    return probe(X, Q)[0]


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
