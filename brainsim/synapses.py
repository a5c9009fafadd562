"""Synapse storage of a built network: six bytes per synapse plus delay segments.

Synapses are held per target partition, in CSR order keyed by source (rows of
one source sorted by delay, see ``Network.build``). Per synapse only two
values are kept:

- ``local``: the target's index inside its partition (target id minus the
  partition's first neuron), ``uint16`` when every partition has at most
  65,536 neurons, ``int32`` otherwise;
- ``weights``: ``float32`` (pA for iaf_psc_exp, dimensionless for lif_dtb).

Delays are kept once per *delay segment*, a run of synapses of one row with
equal delay, which is the unit in which the CPU and Dask backends deliver
spikes: ``seg_start`` (first synapse; ``uint32`` below 2**32 synapses) and
``seg_delay`` (``uint16`` steps of dt), with ``seg_rows[k]`` mapping partition
``k``'s rows to their segments. The microcircuit has ~40 segments per row of
~2,000 synapses, so segments cost about 0.1 byte per synapse.

The table is a read-only mapping for code that wants plain per-synapse
arrays: ``table["targets"]`` (global ``int32`` ids), ``table["weights"]`` and
``table["delays"]`` (``uint16`` steps). Targets and delays are expanded into
new arrays at each access; ``targets_of(k)``/``delays_of(k)`` expand one
partition.
"""
from collections.abc import Mapping

import numpy as np

from brainsim.kernels import csr

LOCAL_LIMIT = 1 << 16  # partitions up to this many neurons store uint16 targets
_KEYS = ("targets", "weights", "delays")


def local_dtype(bounds):
    """``uint16`` when every partition (``bounds``: its (lo, hi) neuron
    ranges) has at most 65,536 neurons, else ``int32``."""
    widest = max((hi - lo for lo, hi in bounds), default=0)
    return np.dtype(np.uint16 if widest <= LOCAL_LIMIT else np.int32)


class SynapseTable(Mapping):
    """The synapses of a network: see the module docstring.

    Parameters
    ----------
    parts : list of Partition
        Target partitions (lo, hi, sources, indptr, offset); their synapse
        ranges must tile ``0 .. n_synapses`` in order.
    local : ndarray of uint16 or int32
        Target index inside its partition, per synapse. Kept, not copied.
    weights : ndarray of float32
        Per synapse. Kept, not copied.
    delays : ndarray of uint16
        Per synapse, in steps of dt (>= 1), non-decreasing within each row.
        Only read here: the table keeps delay segments instead.
    """

    def __init__(self, parts, local, weights, delays):
        n = int(local.size)
        if weights.size != n or delays.size != n:
            raise ValueError(f"local, weights and delays must have one length, got {n}, "
                             f"{weights.size} and {delays.size}")
        want = local_dtype((p.lo, p.hi) for p in parts)
        if local.dtype != want:
            raise ValueError(f"local targets must be {want} for these partitions, "
                             f"got {local.dtype}")
        ends = [p.offset + p.n_synapses for p in parts]
        if [p.offset for p in parts] != [0] + ends[:-1] or (ends[-1] if ends else 0) != n:
            raise ValueError("partition synapse ranges must tile the synapse arrays in order")
        self.parts = list(parts)
        self.local = local
        self.weights = weights
        rows, starts, dels, n_seg = [], [], [], 0
        start_dtype = np.uint32 if n < 1 << 32 else np.int64
        for p in self.parts:
            r, s, d = csr.row_segments(p.indptr, delays[p.offset:p.offset + p.n_synapses])
            rows.append(r + n_seg)
            # narrowed per partition: a network store's table has about one segment per
            # synapse, and int64 starts for all of them cost 8 bytes per synapse at load
            starts.append((s + p.offset).astype(start_dtype))
            dels.append(d)
            n_seg += d.size
        self.seg_rows = rows
        starts.append(np.array([n], start_dtype))
        self.seg_start = np.concatenate(starts)
        self.seg_delay = np.concatenate(dels) if dels else np.zeros(0, np.uint16)

    # ------------------------------------------------------------ mapping
    def __getitem__(self, key):
        if key == "weights":
            return self.weights
        if key == "targets":
            out = np.empty(self.n_synapses, np.int32)
            for k, p in enumerate(self.parts):
                out[p.offset:p.offset + p.n_synapses] = self.targets_of(k)
            return out
        if key == "delays":
            return np.repeat(self.seg_delay, np.diff(self.seg_start))
        raise KeyError(f"synapse arrays are {_KEYS}, got {key!r}")

    def __iter__(self):
        return iter(_KEYS)

    def __len__(self):
        return len(_KEYS)

    # ------------------------------------------------------- per partition
    def _slice(self, k):
        p = self.parts[k]
        return slice(p.offset, p.offset + p.n_synapses)

    def local_of(self, k):
        """Partition-local targets of partition ``k`` (a view)."""
        return self.local[self._slice(k)]

    def targets_of(self, k):
        """Global target ids (int32) of partition ``k`` (a new array)."""
        return self.local[self._slice(k)].astype(np.int32) + np.int32(self.parts[k].lo)

    def weights_of(self, k):
        """Weights of partition ``k`` (a view)."""
        return self.weights[self._slice(k)]

    def delays_of(self, k):
        """Delays (uint16 steps) of partition ``k`` (a new array)."""
        a, b = self.seg_rows[k][0], self.seg_rows[k][-1]
        return np.repeat(self.seg_delay[a:b], np.diff(self.seg_start[a:b + 1]))

    # ------------------------------------------------------------ summary
    @property
    def n_synapses(self):
        return int(self.local.size)

    @property
    def n_segments(self):
        return int(self.seg_delay.size)

    @property
    def max_delay(self):
        """Largest delay in steps (1 without synapses)."""
        return int(self.seg_delay.max()) if self.seg_delay.size else 1

    @property
    def nbytes(self):
        """Bytes held: per-synapse arrays, delay segments and the partitions'
        row arrays (sources, indptr)."""
        rows = sum(p.sources.nbytes + p.indptr.nbytes for p in self.parts)
        return int(self.local.nbytes + self.weights.nbytes + self.seg_start.nbytes
                   + self.seg_delay.nbytes + sum(r.nbytes for r in self.seg_rows) + rows)

    def kernel_arrays(self, n_neurons):
        """(seg_ptr, seg_start, seg_delay, local, base, weights) as the CPU
        kernels take them: seg_ptr (n_parts, n_neurons + 1) int64 holds the
        segments of source s in partition b at seg_ptr[b, s] ..
        seg_ptr[b, s + 1] - 1, and base (n_parts,) int64 the partitions'
        first neuron ids."""
        seg_ptr = np.empty((len(self.parts), n_neurons + 1), np.int64)
        for k, (p, r) in enumerate(zip(self.parts, self.seg_rows)):
            seg_ptr[k] = csr.dense_indptr(p.sources, r - r[0], n_neurons, r[0])
        base = np.array([p.lo for p in self.parts], np.int64)
        return seg_ptr, self.seg_start, self.seg_delay, self.local, base, self.weights

    def __repr__(self):
        return (f"<SynapseTable: {self.n_synapses} synapses in {len(self.parts)} partitions, "
                f"{self.n_segments} delay segments, {self.local.dtype} targets, "
                f"{self.nbytes / max(self.n_synapses, 1):.2f} B/synapse>")
