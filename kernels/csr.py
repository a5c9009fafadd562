"""Array helpers to build the per-partition CSR (keyed by source) in O(n)."""
import numpy as np
from numba import njit


@njit(cache=True)
def stable_counting_order(keys, n_keys, order):
    """Permutation that visits ``order`` stably sorted by ``keys[order]``.

    keys: int array with values in [0, n_keys); order: int64 permutation.
    """
    counts = np.zeros(n_keys + 1, np.int64)
    for i in range(order.size):
        counts[keys[order[i]] + 1] += 1
    for k in range(n_keys):
        counts[k + 1] += counts[k]
    out = np.empty_like(order)
    for i in range(order.size):
        j = order[i]
        k = keys[j]
        out[counts[k]] = j
        counts[k] += 1
    return out


def csr_order(src, tgt, part_of_tgt, n_neurons, n_parts):
    """Order of synapses by (partition of target, source, target), stable in
    creation order for equal keys; canonical whatever the partitioning."""
    order = np.arange(src.size, dtype=np.int64)
    order = stable_counting_order(tgt, n_neurons, order)
    order = stable_counting_order(src, n_neurons, order)
    if n_parts > 1:
        order = stable_counting_order(part_of_tgt[tgt], n_parts, order)
    return order


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
