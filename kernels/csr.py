"""Array helpers to build the per-partition CSR (keyed by source) in O(n)."""
import numpy as np
from numba import njit, prange


@njit(cache=True)
def bincount(values, n):
    """``np.bincount(values, minlength=n)`` without its int64 copy of
    ``values`` (8 bytes per synapse at the build's peak)."""
    out = np.zeros(n, np.int64)
    for v in values:
        out[v] += 1
    return out


def index_dtype(n):
    """int32 for indices below 2**31 (half the memory of int64), else int64."""
    return np.int32 if n < 2**31 else np.int64


def stable_counting_order(keys, n_keys, order, n_chunks):
    """Permutation that visits ``order`` stably sorted by ``keys[order]``.

    keys: int array with values in [0, n_keys); order: int permutation of
    range(keys.size), or an empty array for the identity. Parallel over
    ``n_chunks`` slices of the input, each with its own histogram, so the
    result is the same stable order for any number of chunks. The result is
    int32 when keys.size < 2**31 (a full-scale microcircuit's 3e8 synapses:
    1.2 GB less per permutation alive during the build).
    """
    out = np.empty(keys.size, index_dtype(keys.size))
    return _counting_order(keys, n_keys, order, n_chunks, out)


@njit(parallel=True, cache=True)
def _counting_order(keys, n_keys, order, n_chunks, out):
    n = keys.size
    identity = order.size == 0
    hist = np.zeros((n_chunks, n_keys), np.int64)
    step = (n + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        for i in range(c * step, min(n, (c + 1) * step)):
            j = i if identity else order[i]
            hist[c, keys[j]] += 1
    chunk_offsets(hist, hist)
    for c in prange(n_chunks):
        for i in range(c * step, min(n, (c + 1) * step)):
            j = i if identity else order[i]
            k = keys[j]
            out[hist[c, k]] = j
            hist[c, k] += 1
    return out


@njit(cache=True)
def chunk_offsets(hist, out):
    """Exclusive prefix sum of per-chunk histograms (chunks, keys) in key-
    major, chunk-minor order, into ``out`` (may be ``hist`` itself): where
    chunk c writes its first item of key k in a stable counting sort."""
    running = 0
    for k in range(hist.shape[1]):
        for c in range(hist.shape[0]):
            count = hist[c, k]
            out[c, k] = running
            running += count


HIST_BUDGET = 1 << 25  # histogram cells (int64) of the one-pass CSR sort: <= 256 MB


def csr_order(src, delays, tgt, part_of, n_neurons, n_parts):
    """Order of synapses by (partition of the target, source, delay), stable
    in creation order for equal keys, and the synapse count of every row:
    (order, rows (n_parts, n_neurons) int64). Restricting a row to a
    partition keeps this order, so it is canonical whatever the partitioning;
    within a row the synapses of one delay form one contiguous segment.

    ``part_of`` (n_neurons,) is the partition of each neuron. When the key
    space n_parts x n_neurons x (max delay + 1) fits ``HIST_BUDGET``, one
    counting sort on the combined key computed on the fly (memory: the
    order, 4 bytes per synapse); otherwise three stable passes (delay, then
    source, then partition; 12 bytes per synapse at the peak)."""
    import numba
    chunks = max(1, numba.get_num_threads())
    n_d = int(delays.max(initial=0)) + 1
    out = np.empty(src.size, index_dtype(src.size))
    rows = np.zeros((n_parts, n_neurons), np.int64)
    if n_parts * n_neurons * n_d * chunks <= HIST_BUDGET:
        return _order_by_row_and_delay(src, delays, tgt, part_of, n_neurons, n_d, chunks, out,
                                       rows), rows
    order = _counting_order(delays, n_d, np.empty(0, np.int32), chunks,
                            np.empty(src.size, index_dtype(src.size)))
    order = _counting_order(src, n_neurons, order, chunks, out)
    if n_parts > 1:
        order = stable_counting_order(part_of[tgt], n_parts, order, chunks)
    _row_counts(src, tgt, part_of, rows)
    return order, rows


@njit(parallel=True, cache=True)
def _order_by_row_and_delay(src, delays, tgt, part_of, n_neurons, n_d, n_chunks, out, rows):
    """Stable counting sort of the synapses by (part_of[tgt], src, delay),
    the key computed on the fly; fills ``rows`` (n_parts, n_neurons) with
    the synapse count of every (partition, source)."""
    n = src.size
    n_parts = rows.shape[0]
    hist = np.zeros((n_chunks, n_parts * n_neurons * n_d), np.int64)
    step = (n + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        for i in range(c * step, min(n, (c + 1) * step)):
            key = (part_of[tgt[i]] * np.int64(n_neurons) + src[i]) * n_d + delays[i]
            hist[c, key] += 1
    for r in prange(n_parts * n_neurons):
        total = 0
        for k in range(r * n_d, (r + 1) * n_d):
            for c in range(n_chunks):
                total += hist[c, k]
        rows[r // n_neurons, r % n_neurons] = total
    chunk_offsets(hist, hist)
    for c in prange(n_chunks):
        for i in range(c * step, min(n, (c + 1) * step)):
            key = (part_of[tgt[i]] * np.int64(n_neurons) + src[i]) * n_d + delays[i]
            out[hist[c, key]] = i
            hist[c, key] += 1
    return out


@njit(cache=True)
def _row_counts(src, tgt, part_of, rows):
    for i in range(src.size):
        p = part_of[tgt[i]]
        rows[p, src[i]] += 1


def rows_from_counts(counts):
    """(sources, indptr) of a CSR row whose per-source synapse counts are
    ``counts`` (n_neurons,)."""
    sources = np.flatnonzero(counts).astype(np.int64)
    indptr = np.zeros(sources.size + 1, np.int64)
    np.cumsum(counts[sources], out=indptr[1:])
    return sources, indptr


@njit(parallel=True, cache=True)
def take_local(tgt, order, part_of, lo, out):
    """``tgt[order] - lo[part_of[tgt[order]]]`` into ``out`` (the targets'
    indices inside their partitions, e.g. uint16), in parallel."""
    for i in prange(order.size):
        t = tgt[order[i]]
        out[i] = t - lo[part_of[t]]
    return out


@njit(parallel=True, cache=True)
def take(arr, order):
    """``arr[order]`` in parallel (a gather)."""
    out = np.empty(order.size, arr.dtype)
    for i in prange(order.size):
        out[i] = arr[order[i]]
    return out


def dense_indptr(sources, indptr, n_neurons, offset):
    """Expand a sparse-row CSR to an indptr over all ``n_neurons`` sources,
    shifted by ``offset`` (the partition's first synapse)."""
    counts = np.zeros(n_neurons, np.int64)
    counts[sources] = np.diff(indptr)
    out = np.empty(n_neurons + 1, np.int64)
    out[0] = offset
    np.cumsum(counts, out=out[1:])
    out[1:] += offset
    return out


@njit(cache=True)
def row_segments(indptr, delays):
    """Split every row of one partition's CSR into runs of equal delay.

    ``indptr`` (n_rows + 1) indexes ``delays`` (uint16 steps, non-decreasing
    within each row). Returns seg_rows (n_rows + 1, int64): the segments of
    row r are seg_rows[r] .. seg_rows[r + 1] - 1; seg_start (n_seg, int64):
    the first synapse of each segment (relative to ``indptr``); seg_delay
    (n_seg, uint16): its delay.
    """
    n_rows = indptr.size - 1
    n_seg = 0
    for r in range(n_rows):
        for k in range(indptr[r], indptr[r + 1]):
            if k == indptr[r] or delays[k] != delays[k - 1]:
                n_seg += 1
    seg_rows = np.empty(n_rows + 1, np.int64)
    seg_start = np.empty(n_seg, np.int64)
    seg_delay = np.empty(n_seg, np.uint16)
    i = 0
    for r in range(n_rows):
        seg_rows[r] = i
        for k in range(indptr[r], indptr[r + 1]):
            if k == indptr[r] or delays[k] != delays[k - 1]:
                seg_start[i] = k
                seg_delay[i] = delays[k]
                i += 1
    seg_rows[n_rows] = i
    return seg_rows, seg_start, seg_delay
