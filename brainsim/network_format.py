"""The network store's layout (Zarr v3) and its array-level reading and
writing.

Layout::

    attrs            schema, schema_version, dt, seed, units, populations
                     (name, n, model, params, region, kind, start), partition
                     bounds, provenance; JSON only
    neurons/<name>   per-neuron parameter columns (float64, N)
    inputs/<name>    per-neuron external input arrays (float64, N)
    partitions/<p>/  sources (int64), indptr (int64), targets (local to the
                     partition: uint16 when every partition has <= 65,536
                     neurons, else int32; either is read), weights (float32),
                     delays (uint16, steps)

Integrity: every array carries the CRC-32 of its bytes (array attribute
``crc32``; the root's ``checksums`` attribute says so), written with the
array and checked whenever it is read, with its dtype and shape against
this layout: a deleted chunk (which Zarr would read as its fill value), a
garbage chunk, an edited dtype or shape is a StoreError naming the array,
never a network of zeros. Stores written before checksums (no ``checksums``
attribute) are read with the dtype, shape and value checks only.

This module knows arrays and JSON attrs, not the Network class: the
network uses it for ``Network.save`` and for synapses loaded at first use,
and ``brainsim.store`` builds Networks from a store on top of it (so
``brainsim.network`` never imports ``brainsim.store``).
"""
import contextlib
import os

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from ._version import __version__
from .errors import BrainsimError, BuildError, ParameterError, StoreError, StoreNotFoundError
from .integrity import CHECKSUM, _read_verified, checksum, get_checked, put_array  # noqa: F401
from .results import check_schema, plain_json, prepare_path
from .validation import integer

SCHEMA = "brainsim-network"
SCHEMA_VERSION = 1
UNITS = {"time": "ms", "voltage": "mV", "current": "pA", "capacitance": "pF",
         "conductance": "nS", "rate": "Hz", "delays": "steps of dt"}
_CHUNK = 1 << 22
_ARRAYS = ("sources", "indptr", "targets", "weights", "delays")
#: dtypes each array may have on disk (the first is written)
_DTYPES = {"sources": ("int64",), "indptr": ("int64",), "targets": ("uint16", "int32"),
           "weights": ("float32",), "delays": ("uint16",), "column": ("float64",)}
_FAST_CODEC = BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")


def save_network(net, path, overwrite=False):
    """Write the built ``net`` to a new Zarr v3 store at ``path``.

    An existing path is replaced only with ``overwrite=True`` and only if it
    is an empty folder or a network store.
    """
    if not net.is_built:
        raise BuildError("save_network needs a built network (use Network.save or build())")
    g = create_network_store(net, path, [[p.lo, p.hi] for p in net.partitions],
                             net.n_synapses, overwrite)
    syn = net.synapses
    for k, p in enumerate(net.partitions):
        write_partition(g, k, p.sources, p.indptr, syn.local_of(k), syn.weights_of(k),
                        syn.delays_of(k))


def create_network_store(net, path, bounds, n_synapses, overwrite=False):
    """Start a network store: attrs, per-neuron columns and inputs of
    ``net`` with partition ``bounds`` [[lo, hi], ...]; the partitions are
    written next by ``write_partition`` (streaming generation). Returns the
    open Zarr group."""
    attrs = plain_json({
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "dt": net.dt, "seed": net.seed,
        "units": UNITS, "brainsim_version": __version__, "n_neurons": net.n_neurons,
        "n_synapses": int(n_synapses), "meta": net.meta,
        "populations": [{"name": p.name, "n": p.n, "model": p.model, "params": p.params,
                         "region": p.region, "kind": p.kind, "start": p.start}
                        for p in net.populations.values()],
        "partitions": [[int(lo), int(hi)] for lo, hi in bounds], "checksums": CHECKSUM,
    }, "network attrs")
    path = prepare_path(path, SCHEMA, overwrite, "network store")
    g = zarr.open_group(path, mode="w", zarr_format=3)
    g.update_attributes(attrs)
    for group, arrays in (("neurons", net.columns), ("inputs", net.inputs)):
        sub = g.create_group(group)
        for name, arr in arrays.items():
            put_array(sub, name, np.asarray(arr, np.float64))
    return g


def get_array(group, name, where, kind, length=None, verify=True):
    """Read array ``name`` of ``group`` whole, checked: its dtype is one of
    ``_DTYPES[kind]``, it is 1-D (of ``length`` if given) and, with
    ``verify``, its bytes match the checksum written with it. ``where``
    names it in errors (path and group)."""
    try:
        arr = group[name]
    except KeyError:
        raise StoreError(f"{where}: array {name!r} is missing") from None
    if str(arr.dtype) not in _DTYPES[kind] or arr.ndim != 1 or (
            length is not None and arr.shape != (length,)):
        expect = f"({length},)" if length is not None else "1-D"
        raise StoreError(f"{where}: array {name!r} has dtype {arr.dtype} and shape {arr.shape}; "
                         f"the network schema has {' or '.join(_DTYPES[kind])}, {expect}")
    return _read_verified(arr, name, where, verify)


def write_partition(g, k, sources, indptr, targets, weights, delays):
    """Write partition ``k`` (CSR keyed by source; ``targets`` local to the
    partition) into the network store group ``g``. Blosc LZ4 with byte
    shuffle: about 4x faster than zarr's default Zstd here and a little
    smaller (benchmarks/RESULTS.md)."""
    sub = g.create_group(f"partitions/{k}")
    for name, arr in zip(_ARRAYS, (sources, indptr, targets, weights, delays)):
        put_array(sub, name, arr, compressors=[_FAST_CODEC])


def open_network_store(path):
    """The network store at ``path`` opened read-only (schema checked)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ParameterError(f"network store path must be a str or os.PathLike, got {path!r}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise StoreNotFoundError(f"network store not found: {path!r}")
    try:
        g = zarr.open_group(path, mode="r")
    except Exception as err:
        raise StoreError(f"{path!r} is not a Zarr network store: {err}") from err
    check_schema(dict(g.attrs), SCHEMA, SCHEMA_VERSION, path)
    return g


def read_partition(g, k, path):
    """Partition ``k`` of the open store ``g``: dict with lo, hi (neuron
    range), sources, indptr, targets (local to the partition), weights,
    delays; a StoreError unless it is a consistent CSR."""
    bounds = g.attrs["partitions"]
    try:
        k = integer("partition k", k, low=0, high=len(bounds) - 1, strict=True)
    except ParameterError as err:
        raise StoreError(str(err)) from None
    try:
        sub = g[f"partitions/{k}"]
    except KeyError as err:
        raise StoreError(f"{path!r}: partition {k} is incomplete ({err})") from err
    verify = g.attrs.get("checksums") == CHECKSUM
    out = {name: get_array(sub, name, f"{path!r} partition {k}", name, verify=verify)
           for name in _ARRAYS}
    out["lo"], out["hi"] = bounds[k]
    _check_partition(out, int(g.attrs["n_neurons"]), k, path)
    return out


def _rows_sorted_by_delay(delays, indptr):
    """True when every row's delays are non-decreasing: the CPU backend walks
    a row's delay segments in ascending order and would skip the others."""
    if delays.size < 2 or indptr.size < 2:
        return True
    falls = np.flatnonzero(np.diff(delays.astype(np.int64)) < 0) + 1  # first index after a drop
    return bool(np.all(np.isin(falls, indptr[1:-1])))


def _check_partition(p, n_neurons, k, path):
    """Raise a StoreError unless partition ``p`` is a consistent CSR (the
    kernels trust it and would read out of bounds otherwise)."""
    src, ptr, n_syn = p["sources"], p["indptr"], p["targets"].size
    problems = [
        (0 <= p["lo"] < p["hi"] <= n_neurons, f"neuron range [{p['lo']}, {p['hi']})"),
        (ptr.size == src.size + 1 and ptr[0] == 0 and ptr[-1] == n_syn
         and np.all(np.diff(ptr) >= 0), "indptr"),
        (src.size == 0 or (src[0] >= 0 and src[-1] < n_neurons and np.all(np.diff(src) > 0)),
         "sources"),
        (p["weights"].size == n_syn and p["delays"].size == n_syn, "array lengths"),
        (np.issubdtype(p["targets"].dtype, np.integer), "targets (integer dtype)"),
        (n_syn == 0 or (p["targets"].min() >= 0 and p["targets"].max() < p["hi"] - p["lo"]),
         "targets"),
        (n_syn == 0 or p["delays"].min() >= 1, "delays (steps >= 1)"),
        (np.all(np.isfinite(p["weights"])), "weights (finite)"),
        (_rows_sorted_by_delay(p["delays"], ptr), "delays (non-decreasing within each row)"),
    ]
    for ok, what in problems:
        if not ok:
            raise StoreError(f"{path!r}: partition {k} has inconsistent {what}")


@contextlib.contextmanager
def malformed(path):
    """Report a missing key or a wrong type in a store as a StoreError."""
    try:
        yield
    except StoreError:
        raise
    except (KeyError, TypeError, BrainsimError) as err:
        raise StoreError(f"{path!r} is a malformed {SCHEMA} store: {err}") from err


def read_partitions(g, path, n_neurons):
    """Every partition of the open store ``g``, checked to tile ``0 ..
    n_neurons - 1``: (total synapses, the partitions' (lo, hi), an iterator
    of the partitions as :func:`read_partition` gives them, read one at a
    time so that a caller can copy each into its place and drop it before
    the next is read)."""
    bounds = [tuple(b) for b in g.attrs["partitions"]]
    if not bounds or bounds[0][0] != 0 or bounds[-1][1] != n_neurons or \
            any(a[1] != b[0] for a, b in zip(bounds, bounds[1:])):
        raise StoreError(f"{path!r}: partitions do not tile 0..{n_neurons - 1}")
    try:
        total = sum(int(g[f"partitions/{k}/targets"].shape[0]) for k in range(len(bounds)))
    except KeyError as err:
        raise StoreError(f"{path!r}: a partition is incomplete ({err})") from err
    return total, bounds, (read_partition(g, k, path) for k in range(len(bounds)))


def read_synapses(path, n_neurons, adopt):
    """``adopt(read)`` of the partitions of the network store at ``path``
    (``read``: what :func:`read_partitions` returns; ``adopt``:
    ``Network._adopt_partitions``), consumed inside the guard that reports a
    missing key or a wrong type as a StoreError (the partitions are read
    lazily, as ``adopt`` iterates)."""
    with malformed(path):
        return adopt(read_partitions(open_network_store(path), path, n_neurons))


def network_info(path):
    """Summary of a network store (dict of plain values): sizes,
    populations, partitions, dt, seed, and bytes per synapse of the
    partition arrays (sources, indptr, targets, weights, delays) on disk
    (compressed chunks, metadata excluded) and uncompressed."""
    path = os.fspath(path)
    g = open_network_store(path)
    a = g.attrs
    parts, raw = [], 0
    for k, (lo, hi) in enumerate(a["partitions"]):
        sub = g[f"partitions/{k}"]
        raw += sum(sub[name].nbytes for name in _ARRAYS)
        parts.append({"lo": lo, "hi": hi, "n_synapses": int(sub["targets"].shape[0])})
    stored = _chunk_bytes(os.path.join(path, "partitions"))
    n_syn = int(a["n_synapses"])
    return {
        "kind": "network", "path": path, "schema_version": a["schema_version"],
        "n_neurons": int(a["n_neurons"]), "n_synapses": n_syn,
        "populations": [{key: p[key] for key in ("name", "n", "model", "region", "kind")}
                        for p in a["populations"]],
        "partitions": parts, "dt": a["dt"], "seed": a["seed"],
        "bytes_per_synapse_disk": stored / n_syn if n_syn else None,
        "bytes_per_synapse_raw": raw / n_syn if n_syn else None,
        "columns": sorted(g["neurons"].array_keys()), "inputs": sorted(g["inputs"].array_keys()),
        "meta": dict(a.get("meta", {})), "brainsim_version": a.get("brainsim_version"),
    }


def _chunk_bytes(folder):
    """Bytes of the chunk files under ``folder`` (metadata files excluded)."""
    total = 0
    for root, _, files in os.walk(folder):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files if f != "zarr.json")
    return total
