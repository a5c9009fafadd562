"""Streaming generation of fixed-in-degree networks, straight into CSR.

Every target neuron draws its sources from counter-based random numbers
keyed by (seed, stream, target id, draw counter), so the network does not
depend on how targets are chunked over threads or partitions. A partition
is generated in two passes over its targets with the same draws: the first
counts synapses per source, the second writes each synapse at its place in
the CSR keyed by source (only its target: one scattered write per synapse).
A last pass, row by row in memory order, fills weights (keyed by target and
source) and delays (from the regions of both ends) and sorts rows by delay.
Peak memory is the partition's own arrays, 4 bytes per synapse of drawn
sources, and 8 (12 beyond 2**31 synapses per partition) bytes per neuron per
thread; no unsorted copy is held.

A target's inputs come from *blocks* (a source population and a count:
drawn without replacement, never the target itself) and a *remote* count
drawn from the excitatory pools of other regions: a region by an alias table
of the row-normalised connectome, then a neuron of that region's pool,
redrawing both on a repeat.
"""
import numpy as np
from numba import njit, prange

from .csr import chunk_offsets
from .rng import keyed_hash, keyed_uniform, stream_key

STREAM_CONNECT = 3  # sources of synapses
STREAM_WEIGHT = 4  # synaptic weights

_S11 = np.uint64(11)
_S32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_TWO_M53 = 1.0 / 9007199254740992.0
_TWO_M32 = 1.0 / 4294967296.0


def alias_tables(p):
    """Walker alias tables (prob (R, R) float64, alias (R, R) int32) of each
    row of the probability matrix ``p`` (rows summing to 1 or all zero).
    Vose's construction, in row order, exact up to float rounding."""
    n_rows, n = p.shape
    prob = np.zeros((n_rows, n))
    alias = np.zeros((n_rows, n), np.int32)
    for r in range(n_rows):
        if p[r].sum() <= 0:
            continue
        scaled = p[r] * n / p[r].sum()
        small = [i for i in range(n) if scaled[i] < 1.0]
        large = [i for i in range(n) if scaled[i] >= 1.0]
        while small and large:
            s, g = small.pop(), large.pop()
            prob[r, s], alias[r, s] = scaled[s], g
            scaled[g] -= 1.0 - scaled[s]
            (small if scaled[g] < 1.0 else large).append(g)
        for i in small + large:  # leftovers: 1 up to rounding
            prob[r, i], alias[r, i] = 1.0, i
        zero = p[r] <= 0  # never pick a zero-probability column, even by rounding
        prob[r, zero] = 0.0
        alias[r, zero & (alias[r] == np.arange(n))] = int(np.argmax(p[r]))
    return prob, alias


@njit(inline="always")
def _below(h, n):
    """Integer in [0, n) from the top 53 bits of hash ``h``."""
    return np.int64(float(h >> _S11) * _TWO_M53 * n)


@njit(inline="always")
def _emit(src, out, fill):
    """Store source ``src`` of the current target at ``out[fill]``."""
    out[fill] = src
    return fill + 1


@njit(inline="always")
def _clear(table, k):
    """Empty the open-addressing set for k entries; return its size (a
    power of two >= 2k, so probes stay short)."""
    size = 16
    while size < 2 * k:
        size *= 2
    table[:size] = -1
    return size


@njit(inline="always")
def _insert(table, size, s):
    """Add id ``s`` to the set; False if it was there (a repeat)."""
    slot = (s * 0x9E3779B1) & (size - 1)
    while table[slot] != -1:
        if table[slot] == s:
            return False
        slot = (slot + 1) & (size - 1)
    table[slot] = s
    return True


@njit(inline="always")
def _target(j, pop, ctx, table, out, fill):
    """Draw the sources of target ``j`` (population ``pop``) into ``out``
    from position ``fill``; return the new fill."""
    (key_c, blk_ptr, blk_start, blk_n, blk_k, k_remote, pop_region, alias_p, alias_i,
     pool_ptr, pool_start, pool_n, pool_total) = ctx
    ctr = np.uint64(0)
    for b in range(blk_ptr[pop], blk_ptr[pop + 1]):
        start, n, k = blk_start[b], blk_n[b], blk_k[b]
        own = j - start if start <= j < start + n else -1
        n_eff = n - 1 if own >= 0 else n
        if 2 * k > n_eff:  # dense: selection sampling, sorted, n_eff draws
            need = k
            for i in range(n_eff):
                u = keyed_uniform(key_c, j, ctr)
                ctr += np.uint64(1)
                if u * (n_eff - i) < need:
                    s = start + (i + 1 if 0 <= own <= i else i)
                    fill = _emit(s, out, fill)
                    need -= 1
        else:  # sparse: rejection of repeats, found in a small set that stays in cache
            size = _clear(table, k)
            got = 0
            while got < k:
                i = _below(keyed_hash(key_c, j, ctr), n_eff)
                ctr += np.uint64(1)
                s = start + (i + 1 if 0 <= own <= i else i)
                if not _insert(table, size, s):
                    continue
                fill = _emit(s, out, fill)
                got += 1
    r = pop_region[pop]
    n_reg = alias_p.shape[1]
    k_rem = k_remote[pop]
    if k_rem == 0:
        return fill
    size = _clear(table, k_rem)
    got = 0
    while got < k_rem:
        h = keyed_hash(key_c, j, ctr)
        ctr += np.uint64(1)
        col = np.int64(((h >> _S32) * np.uint64(n_reg)) >> _S32)
        q = col if float(h & _LOW32) * _TWO_M32 < alias_p[r, col] else np.int64(alias_i[r, col])
        i = _below(keyed_hash(key_c, j, ctr), pool_total[q])
        ctr += np.uint64(1)
        for e in range(pool_ptr[q], pool_ptr[q + 1]):
            if i < pool_n[e]:
                s = pool_start[e] + i
                break
            i -= pool_n[e]
        if not _insert(table, size, s):
            continue
        fill = _emit(s, out, fill)
        got += 1
    return fill


@njit(cache=True)
def _draw_chunk(t_lo, t_hi, pop_start, ctx, max_kin, out):
    """Sources of targets ``t_lo .. t_hi - 1``, target-major, into ``out``."""
    table = np.empty(max(16, 4 * max_kin), np.int64)
    pop = np.searchsorted(pop_start, t_lo, side="right") - 1
    fill = 0
    for j in range(t_lo, t_hi):
        while j >= pop_start[pop + 1]:
            pop += 1
        fill = _target(j, pop, ctx, table, out, fill)
    return fill


@njit(cache=True)
def _count_chunk(src, count_row):
    for i in range(src.size):
        count_row[src[i]] += 1


@njit(cache=True)
def _place_chunk(src, t_lo, t_hi, lo, pop_start, kin, count_row, targets):
    """Write each synapse's target at its row cursor: a tight loop of
    independent scattered writes, whose cache misses overlap."""
    pop = np.searchsorted(pop_start, t_lo, side="right") - 1
    i = 0
    for j in range(t_lo, t_hi):
        while j >= pop_start[pop + 1]:
            pop += 1
        for _ in range(kin[pop]):
            s = src[i]
            pos = count_row[s]
            count_row[s] = pos + 1
            targets[pos] = j - lo
            i += 1


@njit(parallel=True, cache=True)
def _draw(bounds, starts, pop_start, ctx, max_kin, src, count):
    """Draw every chunk's sources (chunk c: targets bounds[c] .. bounds[c+1]
    - 1 into src[starts[c]:starts[c+1]]) and count them per source."""
    for c in prange(bounds.size - 1):
        part = src[starts[c]:starts[c + 1]]  # each target draws exactly its in-degree
        _draw_chunk(bounds[c], bounds[c + 1], pop_start, ctx, max_kin, part)
        _count_chunk(part, count[c])


@njit(parallel=True, cache=True)
def _place(bounds, starts, lo, pop_start, kin, src, count, targets):
    for c in prange(bounds.size - 1):
        _place_chunk(src[starts[c]:starts[c + 1]], bounds[c], bounds[c + 1], lo, pop_start,
                     kin, count[c], targets)


def _cursors(count, cursor):
    """Write cursors (chunks, N) from per-chunk counts, rows in source order
    and chunks in target order; return the row lengths."""
    chunk_offsets(count, cursor)
    return count.sum(axis=0, dtype=np.int64)


@njit(parallel=True, cache=True)
def _fill_rows(sources, indptr, lo, targets, weights, delays, wctx):
    """Weights and delays, row by row (sequential memory): the weight is
    uniform in [low, high) of the source's kind, keyed by (target, source);
    the delay is ``local_steps`` within a region, else remote_delay[target
    region, source region]. Then each row is sorted stably by delay."""
    key_w, region_of, inhibitory, local_steps, remote_delay, w_lo, w_hi = wctx
    for r in prange(sources.size):
        s = sources[r]
        rs, ks = region_of[s], inhibitory[s]
        low, span = w_lo[ks], w_hi[ks] - w_lo[ks]
        a, b = indptr[r], indptr[r + 1]
        for pos in range(a, b):  # separate simple loops: this one vectorises
            rt = region_of[targets[pos] + lo]
            delays[pos] = local_steps if rt == rs else remote_delay[rt, rs]
        if span > 0:
            for pos in range(a, b):
                weights[pos] = low + span * keyed_uniform(key_w, targets[pos] + lo, s)
        else:
            weights[a:b] = low
        ordered = True
        for pos in range(a + 1, b):
            if delays[pos] < delays[pos - 1]:
                ordered = False
                break
        if not ordered:
            order = np.argsort(delays[a:b], kind="mergesort")
            targets[a:b] = targets[a:b][order]
            weights[a:b] = weights[a:b][order]
            delays[a:b] = delays[a:b][order]


def generate_partition(lo, hi, pop_start, kin, ctx, wctx, work, out=None, scratch=None):
    """Synapses onto neurons ``lo .. hi - 1`` as CSR keyed by source.

    ``kin`` is the in-degree per population; ``ctx`` and ``wctx`` come from
    ``make_context`` and ``make_weight_context``; ``work`` = (count,
    cursor), two (chunks, N) arrays reused across partitions (one chunk of
    targets per thread, see ``new_work``);
    ``out`` optional preallocated (targets, weights, delays), ``scratch``
    an optional int32 buffer for the drawn sources (same length). Returns
    (sources, indptr, targets local int32, weights float32, delays uint16).
    Besides the result, memory is ``work`` and 4 bytes per synapse.
    """
    count, cursor = work
    count[:] = 0
    n_chunks = count.shape[0]
    bounds = np.linspace(lo, hi, n_chunks + 1).astype(np.int64)
    starts = synapses_before(pop_start, kin, bounds) - synapses_before(pop_start, kin, lo)
    n_syn = int(starts[-1])
    if out is None:
        out = (np.empty(n_syn, np.int32), np.empty(n_syn, np.float32),
               np.empty(n_syn, np.uint16))
    targets, weights, delays = out
    src = np.empty(n_syn, np.int32) if scratch is None else scratch
    _draw(bounds, starts, pop_start, ctx, max_indegree(ctx), src, count)
    rows = _cursors(count, cursor)
    _place(bounds, starts, lo, pop_start, kin, src, cursor, targets)
    del src
    sources = np.flatnonzero(rows).astype(np.int64)
    indptr = np.zeros(sources.size + 1, np.int64)
    np.cumsum(rows[sources], out=indptr[1:])
    _fill_rows(sources, indptr, lo, targets, weights, delays, wctx)
    return sources, indptr, targets, weights, delays


def new_work(n_neurons, n_chunks, max_synapses):
    """Scratch arrays of ``generate_partition`` for ``n_chunks`` threads and
    partitions of at most ``max_synapses``: counts and cursors, int32 where
    the positions fit (half the cache footprint of the scattered accesses)."""
    wide = max_synapses >= np.iinfo(np.int32).max
    return (np.zeros((n_chunks, n_neurons), np.int32),
            np.zeros((n_chunks, n_neurons), np.int64 if wide else np.int32))


def synapses_before(pop_start, kin, ids):
    """Synapses onto the neurons below each of ``ids`` (fixed in-degree
    ``kin`` per population, populations starting at ``pop_start``): O(pops)
    per id, no N-sized array."""
    ids = np.asarray(ids, np.int64)
    sizes = np.clip(ids[..., None] - pop_start[:-1], 0, np.diff(pop_start))
    return (sizes * np.asarray(kin, np.int64)).sum(axis=-1)


def max_indegree(ctx):
    """Largest number of inputs of one target (blocks plus remote)."""
    ptr, k, k_remote = ctx[1], ctx[4], ctx[5]
    per_pop = np.array([k[a:b].sum() for a, b in zip(ptr[:-1], ptr[1:])], np.int64)
    return int((per_pop + k_remote).max(initial=0))


def make_context(seed, blocks, k_remote, pop_region, p_remote, pools):
    """Pack the tables that draw sources.

    blocks : list over target populations of lists of (start, n, k);
    k_remote, pop_region : per target population; p_remote : (R, R)
    row-normalised connectome [target region, source region]; pools : list
    over regions of lists of (start, n) of the populations remote inputs
    are drawn from.
    """
    ptr = np.zeros(len(blocks) + 1, np.int64)
    ptr[1:] = np.cumsum([len(b) for b in blocks])
    cols = np.array([x for b in blocks for x in b] or [(0, 0, 0)], np.int64).reshape(-1, 3)
    pptr = np.zeros(len(pools) + 1, np.int64)
    pptr[1:] = np.cumsum([len(p) for p in pools])
    pflat = np.array([x for p in pools for x in p] or [(0, 0)], np.int64).reshape(-1, 2)
    total = np.array([sum(n for _, n in p) for p in pools], np.int64)
    prob, alias = alias_tables(np.asarray(p_remote, np.float64))
    # keys as np.uint64: a Python int would be typed int64 and hash differently
    key_c = np.uint64(stream_key(np.uint64(seed), np.uint64(STREAM_CONNECT), np.uint64(0)))
    return (key_c, ptr, cols[:, 0].copy(), cols[:, 1].copy(), cols[:, 2].copy(),
            np.asarray(k_remote, np.int64), np.asarray(pop_region, np.int64), prob, alias,
            pptr, pflat[:, 0].copy(), pflat[:, 1].copy(), total)


def make_weight_context(seed, region_of, inhibitory, local_steps, remote_delay, weight_range):
    """Pack the tables that give weights and delays: per neuron its region
    (int32) and kind (1 = inhibitory); delays in steps; weight_range (2, 2)
    [E/I][low, high]."""
    wr = np.asarray(weight_range, np.float64)
    key_w = np.uint64(stream_key(np.uint64(seed), np.uint64(STREAM_WEIGHT), np.uint64(0)))
    return (key_w, np.asarray(region_of, np.int32), np.asarray(inhibitory, np.uint8),
            np.uint16(local_steps), np.asarray(remote_delay, np.uint16), wr[:, 0].copy(),
            wr[:, 1].copy())
