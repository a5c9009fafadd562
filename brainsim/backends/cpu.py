"""CPU backend: one Numba function advances the network by many steps.

Rows of the CSR are sorted by delay, so a row is a list of segments of equal
delay. Per step t: (1) in parallel over target partitions, every spike of the
last R steps whose row has a segment of delay equal to its age adds that
segment's weights into the input array ``inp`` (2 x N: excitatory and
inhibitory channel); (2) in parallel over chunks of neurons (one model each),
read and clear the input, add Poisson input, advance the OU current and the
neuron; (3) gather the step's spikes in ascending id order, record them and
enter them into the spike history.

Step (2) has two implementations. ``_update_chunk`` is the reference: one
loop, per neuron, with the parameter row and input kind looked up per neuron
(the CUDA backend compiles it for the device). ``_update_chunk_fast`` serves
the chunks whose neurons share a parameter row and a Poisson source (every
population of the microcircuit and of generated networks): Poisson counts,
OU currents, model update and spike compaction in separate branch-free loops
that LLVM turns into AVX-512 code, with the same operations in the same order
and types, so results are bit-identical (tests/test_fast_kernels.py).

Delivering late (Brian2's spike queue does the same) keeps the scattered
read-modify-writes inside an array of N values instead of a ring buffer of
R x N, which at full microcircuit scale is the difference between cache and
main memory.

Every neuron and every input cell is written by one thread only, and each
target's input is summed in the same order (delay, source id, creation order
of the synapses) whatever the partitioning: spikes are bit-identical for any
number of partitions and threads.
"""
import numba
import numpy as np
from numba import njit, prange

from brainsim.kernels import iaf_psc_exp, lif_dtb, rng
from brainsim.kernels.inputs import ou_step, poisson_input
from brainsim.kernels.rng import STREAM_POISSON, stream_key

_iaf_update = iaf_psc_exp.update
_dtb_update = lif_dtb.update


@njit(parallel=True, cache=True, nogil=True)
def advance(t0, n_steps, t_base, seed, st, V, S, ref, I_ou, inp, hist,
            chunk_lo, chunk_hi, chunk_model, blk_chunks, q_iaf, q_dtb, qrow, ref_steps,
            pois_lam, pois_tab, pois_idx, pois_w, pois_d, ou_on, ou_mu, ou_dec, ou_amp,
            seg_ptr, seg_start, seg_delay, targets, tgt_base, weights, src_ch,
            rec_mode, rec_mask, spk_step, spk_gid, n_spk,
            pop_of, rate_pop, reg_of, rate_reg, bin_steps, vm_ids, vm_out, plan, pkey):
    """Advance steps t0 .. t0 + n_steps - 1. Returns (steps done, spikes
    recorded, hist); stops early when the spike record could overflow.

    ``inp`` (2, N) collects the synaptic input of the coming step.
    ``hist`` = (spikes (R, cap), counts (R,), cursors (n_parts, R, cap)) holds
    the spikes of the last R steps, slot t % R, and for each partition the
    next delay segment of each spike's row; it is reallocated (and returned)
    when a step has more spikes than ``cap``.
    ``targets`` are local to their partition (``tgt_base[blk]`` is the first
    neuron of partition ``blk``), see ``brainsim.synapses.SynapseTable``.
    ``st`` is scratch: (chunk_spk (n_chunks, max_len), chunk_nspk, step_spikes).
    ``plan, pkey`` come from ``chunk_plan`` (computed once per parameter
    set): chunks whose neurons share their parameter row and Poisson source
    take the split, vectorisable loops of ``_update_chunk_fast``, the others
    the per-neuron reference loop ``_update_chunk`` (the one the CUDA backend
    compiles); the results are identical.
    """
    chunk_spk, chunk_nspk, step_spikes = st
    h_spk, h_n, h_cur = hist
    R = h_n.size
    n_chunks = chunk_lo.size
    n_blocks = seg_ptr.shape[0]
    N = V.size
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
            # (2) the partition's neurons, chunk by chunk
            for c in range(blk_chunks[blk], blk_chunks[blk + 1]):
                if plan[c, 0] < 0:
                    chunk_nspk[c] = _update_chunk(
                        c, t, seed, chunk_lo[c], chunk_hi[c], chunk_model[c], chunk_spk, V, S,
                        ref, I_ou, inp, q_iaf, q_dtb, qrow, ref_steps, pois_lam, pois_tab,
                        pois_idx, pois_w, pois_d, ou_on, ou_mu, ou_dec, ou_amp)
                elif chunk_model[c] == 0:
                    chunk_nspk[c] = _fast_iaf(
                        c, t, seed, chunk_lo[c], chunk_hi[c], plan[c, 1], plan[c, 3], plan[c, 2],
                        chunk_spk, V, S, ref, I_ou, inp, _row10(q_iaf, plan[c, 0]), ref_steps,
                        pois_lam, pois_tab, pkey, pois_w, pois_d, ou_mu, ou_dec, ou_amp)
                else:
                    chunk_nspk[c] = _fast_dtb(
                        c, t, seed, chunk_lo[c], chunk_hi[c], plan[c, 1], plan[c, 3], plan[c, 2],
                        chunk_spk, V, S, ref, I_ou, inp, _row18(q_dtb, plan[c, 0]), ref_steps,
                        pois_lam, pois_tab, pkey, pois_w, pois_d, ou_mu, ou_dec, ou_amp)
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
            h_spk, h_cur = _grow_history(h_spk, h_cur, ns)
        slot = t % R
        h_n[slot] = ns
        for j in range(ns):
            s = step_spikes[j]
            h_spk[slot, j] = s
            for blk in range(n_blocks):
                h_cur[blk, slot, j] = seg_ptr[blk, s]
        for j in range(vm_ids.size):
            vm_out[t - t_base, j] = V[vm_ids[j]]
    return n_steps, n_spk, (h_spk, h_n, h_cur)


@njit(inline="always")
def _update_chunk(c, t, seed, lo, hi, model, chunk_spk, V, S, ref, I_ou, inp, q_iaf, q_dtb,
                  qrow, ref_steps, pois_lam, pois_tab, pois_idx, pois_w, pois_d, ou_on, ou_mu,
                  ou_dec, ou_amp):
    """Advance neurons lo .. hi - 1 (one model) by step t; returns the spike
    count, spike ids in chunk_spk[c]."""
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
        if model == 0:
            v, a, b, r, sp = _iaf_update(V[i], S[0, i], S[1, i], ref[i], in_e, in_i, i_cur,
                                         q_iaf[qrow[i]], ref_steps[i])
            S[0, i] = a
            S[1, i] = b
        else:
            v, a, b, g1, g2, r, sp = _dtb_update(V[i], S[0, i], S[1, i], S[2, i], S[3, i],
                                                 ref[i], in_e, in_i, i_cur, q_dtb[qrow[i]],
                                                 ref_steps[i])
            S[0, i] = a
            S[1, i] = b
            S[2, i] = g1
            S[3, i] = g2
        V[i] = v
        ref[i] = r
        if sp:
            chunk_spk[c, cnt] = i
            cnt += 1
    return cnt


def chunk_plan(chunks, qrow, inputs, seed, fast=True):
    """(plan, pkey) for ``advance`` from the chunk table ``chunks`` (lo, hi,
    model, ...), the parameter rows ``qrow``, the input arrays ``inputs``
    (``backends.input_arrays``) and the simulation seed; ``fast=False`` sends
    every chunk through the reference loop. Depends only on these: compute
    it again when parameters or inputs change."""
    pois_lam, _, pois_idx, pois_w, pois_d, ou_on = inputs[:6]
    return _chunk_plan(chunks[0], chunks[1], qrow, pois_lam, pois_idx, pois_w, pois_d, ou_on,
                       fast, seed)


@njit(cache=True)
def _chunk_plan(lo, hi, qrow, pois_lam, pois_idx, pois_w, pois_d, ou_on, fast, seed):
    """Per chunk: (parameter row shared by all its neurons or -1 (reference
    loop), Poisson mode (0 none, 1 one source shared by all: mean < 12 per
    step, one table row, weight and delay), OU on (0 / 1 for all), that
    Poisson table row or -1); and the Poisson stream's ``rng.neuron_key`` of
    every neuron of the fast Poisson chunks (half of each draw's hash, the
    same at every step)."""
    n = lo.size
    plan = np.full((n, 4), -1, np.int64)
    pkey = np.empty(pois_lam.size, np.uint64)
    if not fast:
        return plan, pkey
    has_pois = pois_lam.size > 0
    has_ou = ou_on.size > 0
    key0 = stream_key(seed, STREAM_POISSON, 0)
    for c in range(n):
        a, b = lo[c], hi[c]
        ok = True
        for i in range(a + 1, b):
            if qrow[i] != qrow[a]:
                ok = False
        pmode = 0
        if has_pois:
            lam_on = 0
            for i in range(a, b):
                lam_on += pois_lam[i] > 0.0
            if lam_on == b - a and pois_lam[a] < rng.POISSON_INVERSION_MAX:
                pmode = 1
                for i in range(a + 1, b):
                    if (pois_idx[i] != pois_idx[a] or pois_w[i] != pois_w[a]
                            or pois_d[i] != pois_d[a]):
                        ok = False
            elif lam_on != 0:
                ok = False
        omode = 0
        if has_ou:
            n_on = 0
            for i in range(a, b):
                n_on += ou_on[i] != 0
            if n_on == b - a:
                omode = 1
            elif n_on != 0:
                ok = False
        if ok:
            plan[c, 0] = qrow[a]
            plan[c, 1] = pmode
            plan[c, 2] = omode
            if pmode == 1:
                plan[c, 3] = pois_idx[a]
                for i in range(a, b):
                    pkey[i] = rng.neuron_key(key0, i)
    return plan, pkey


@njit(inline="always")
def _row10(q, r):
    return (q[r, 0], q[r, 1], q[r, 2], q[r, 3], q[r, 4], q[r, 5], q[r, 6], q[r, 7], q[r, 8],
            q[r, 9])


@njit(inline="always")
def _row18(q, r):
    return (q[r, 0], q[r, 1], q[r, 2], q[r, 3], q[r, 4], q[r, 5], q[r, 6], q[r, 7], q[r, 8],
            q[r, 9], q[r, 10], q[r, 11], q[r, 12], q[r, 13], q[r, 14], q[r, 15], q[r, 16],
            q[r, 17])


# The state write-back of the fast loops. The reference loop keeps its own inline
# copy on purpose: calling these from it made it 4x slower (bench_kernels.py, DC:
# 5.1 -> 20.4 ns per neuron-step).
@njit(inline="always")
def _iaf_step(S, V, ref, i, in_e, in_i, i_cur, q, ref_steps):
    v, a, b, r, sp = _iaf_update(V[i], S[0, i], S[1, i], ref[i], in_e, in_i, i_cur, q, ref_steps)
    S[0, i] = a
    S[1, i] = b
    V[i] = v
    ref[i] = r
    return sp


@njit(inline="always")
def _dtb_step(S, V, ref, i, in_e, in_i, i_cur, q, ref_steps):
    v, a, b, g1, g2, r, sp = _dtb_update(V[i], S[0, i], S[1, i], S[2, i], S[3, i], ref[i],
                                         in_e, in_i, i_cur, q, ref_steps)
    S[0, i] = a
    S[1, i] = b
    S[2, i] = g1
    S[3, i] = g2
    V[i] = v
    ref[i] = r
    return sp


@njit(inline="always")
def _take(inp, ch, i):
    """Read and clear one input cell (as float64, like the reference loop)."""
    x = np.float64(inp[ch, i])
    inp[ch, i] = 0.0
    return x


def _fast_loops(step):
    """``_update_chunk_fast`` for one model (``step``: _iaf_step or _dtb_step)."""

    @njit(inline="always")
    def _update_chunk_fast(c, t, seed, lo, hi, pmode, prow, omode, chunk_spk, V, S, ref, I_ou,
                           inp, q, ref_steps, pois_lam, pois_tab, pkey, pois_w, pois_d, ou_mu,
                           ou_dec, ou_amp):
        """``_update_chunk`` for a chunk whose neurons share the parameter row
        ``q`` (a tuple) and their Poisson source, in separate loops without
        per-neuron branches: Poisson counts, OU currents, the model update, spike
        compaction. The arithmetic (operations, order, types) is the reference
        loop's, so states and spikes are identical. ``chunk_spk[c]`` holds the
        Poisson counts, then the spike flags, then the spike ids."""
        buf = chunk_spk[c]
        n = hi - lo
        pois = pmode == 1 and t >= pois_d[lo]
        w = 0.0
        exc = True
        if pois:
            row = pois_tab[prow]
            s = t - pois_d[lo]
            last = rng.TABLE_LEN - 1
            keys = pkey[lo:hi]
            for j in range(n):
                u = rng.step_uniform(keys[j], s)
                x = 0
                for k in range(last):
                    x += u > row[k]
                buf[j] = x
            for j in range(n):  # rare: count beyond the table
                if buf[j] == last:
                    u = rng.step_uniform(keys[j], s)
                    buf[j] = rng._search_from(u, pois_lam[lo], last, row[rng.TABLE_LEN], row[last])
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
                buf[j] = step(S, V, ref, i, _take(inp, 0, i), _take(inp, 1, i), 0.0, q,
                              ref_steps[i])
        elif not pois:
            for j in range(n):
                i = ulo + np.uint64(j)
                buf[j] = step(S, V, ref, i, _take(inp, 0, i), _take(inp, 1, i),
                              np.float64(I_ou[i]), q, ref_steps[i])
        elif exc and omode == 0:
            for j in range(n):
                i = ulo + np.uint64(j)
                buf[j] = step(S, V, ref, i, _take(inp, 0, i) + buf[j] * w, _take(inp, 1, i), 0.0,
                              q, ref_steps[i])
        elif exc:
            for j in range(n):
                i = ulo + np.uint64(j)
                buf[j] = step(S, V, ref, i, _take(inp, 0, i) + buf[j] * w, _take(inp, 1, i),
                              np.float64(I_ou[i]), q, ref_steps[i])
        elif omode == 0:
            for j in range(n):
                i = ulo + np.uint64(j)
                buf[j] = step(S, V, ref, i, _take(inp, 0, i), _take(inp, 1, i) + buf[j] * w, 0.0,
                              q, ref_steps[i])
        else:
            for j in range(n):
                i = ulo + np.uint64(j)
                buf[j] = step(S, V, ref, i, _take(inp, 0, i), _take(inp, 1, i) + buf[j] * w,
                              np.float64(I_ou[i]), q, ref_steps[i])
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

    return _update_chunk_fast


_fast_iaf = _fast_loops(_iaf_step)
_fast_dtb = _fast_loops(_dtb_step)


@njit(cache=True)
def _grow_history(h_spk, h_cur, need):
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


def set_threads(threads):
    """Use ``threads`` Numba threads (None: all available)."""
    n = numba.config.NUMBA_NUM_THREADS if threads is None else int(threads)
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


def make_chunks(net, model_ids, size=2048, bounds=None):
    """Contiguous neuron ranges of one model and one partition, <= size long,
    and the chunk index range of each partition. ``bounds``: the (lo, hi)
    neuron ranges of consecutive partitions to cover (default: all of the
    network's; a Dask worker passes its own)."""
    if bounds is None:
        bounds = [(p.lo, p.hi) for p in net.partitions]
    lo_all, hi_all = bounds[0][0], bounds[-1][1]
    edges = {lo_all, hi_all}
    edges.update(lo for lo, _ in bounds)
    edges.update(q.start for q in net.populations.values() if lo_all < q.start < hi_all)
    edges = np.array(sorted(edges))
    lo, hi, model = [], [], []
    for a, b in zip(edges[:-1], edges[1:]):
        for x in range(a, b, size):
            lo.append(x)
            hi.append(min(b, x + size))
            model.append(model_ids[x])
    lo = np.array(lo, np.int64)
    blk_chunks = np.searchsorted(lo, [b[0] for b in bounds] + [hi_all])
    return (lo, np.array(hi, np.int64), np.array(model, np.int8), blk_chunks.astype(np.int64))
