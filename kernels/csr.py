"""Array helpers to build the per-partition CSR (keyed by source) in O(n)."""
import numpy as np
from numba import njit, prange


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


def csr_order(src, delays, part_of_tgt_syn, n_neurons, n_parts):
    """Order of synapses by (partition of the target, source, delay), stable
    in creation order for equal keys. Restricting a row to a partition keeps
    this order, so it is canonical whatever the partitioning; within a row the
    synapses of one delay form one contiguous segment."""
    import numba
    chunks = max(1, numba.get_num_threads())
    order = stable_counting_order(delays, int(delays.max(initial=0)) + 1,
                                  np.empty(0, np.int32), chunks)
    if n_parts == 1:
        return stable_counting_order(src, n_neurons, order, chunks)
    if n_parts * n_neurons <= 1 << 26:  # one pass on the combined key
        key = combined_key(part_of_tgt_syn, src, n_neurons,
                           np.empty(src.size, index_dtype(n_parts * n_neurons)))
        return stable_counting_order(key, n_parts * n_neurons, order, chunks)
    order = stable_counting_order(src, n_neurons, order, chunks)
    return stable_counting_order(part_of_tgt_syn, n_parts, order, chunks)


@njit(parallel=True, cache=True)
def combined_key(part, src, n_neurons, out):
    """part * n_neurons + src into ``out`` (int32 when it fits)."""
    for i in prange(src.size):
        out[i] = part[i] * np.int64(n_neurons) + src[i]
    return out


@njit(parallel=True, cache=True)
def take(arr, order):
    """``arr[order]`` in parallel (a gather)."""
    out = np.empty(order.size, arr.dtype)
    for i in prange(order.size):
        out[i] = arr[order[i]]
    return out


def rows_from_sorted(src_sorted, n_neurons):
    """(sources, indptr) of a CSR whose entries are sorted by source."""
    counts = np.bincount(src_sorted, minlength=n_neurons)
    sources = np.flatnonzero(counts).astype(np.int64)
    indptr = np.zeros(sources.size + 1, np.int64)
    np.cumsum(counts[sources], out=indptr[1:])
    return sources, indptr


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
