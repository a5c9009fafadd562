"""The network store (Zarr v3): save, load, load one partition.

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
"""
import contextlib
import os

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from ._version import __version__
from .errors import BrainsimError, BuildError, StoreError, StoreNotFoundError
from .neurons import full_params
from .network import Network, Partition, Population
from .results import check_schema, plain_json, prepare_path, results_info, store_schema
from .synapses import SynapseTable, local_dtype

SCHEMA = "brainsim-network"
SCHEMA_VERSION = 1
UNITS = {"time": "ms", "voltage": "mV", "current": "pA", "capacitance": "pF",
         "conductance": "nS", "rate": "Hz", "delays": "steps of dt"}
_CHUNK = 1 << 22
_ARRAYS = ("sources", "indptr", "targets", "weights", "delays")
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
        "partitions": [[int(lo), int(hi)] for lo, hi in bounds],
    }, "network attrs")
    path = prepare_path(path, SCHEMA, overwrite, "network store")
    g = zarr.open_group(path, mode="w", zarr_format=3)
    g.attrs.update(attrs)
    for group, arrays in (("neurons", net.columns), ("inputs", net.inputs)):
        sub = g.create_group(group)
        for name, arr in arrays.items():
            arr = np.asarray(arr, np.float64)
            sub.create_array(name, data=arr, chunks=(max(1, min(_CHUNK, arr.size)),))
    return g


def write_partition(g, k, sources, indptr, targets, weights, delays):
    """Write partition ``k`` (CSR keyed by source; ``targets`` local to the
    partition) into the network store group ``g``. Blosc LZ4 with byte
    shuffle: about 4x faster than zarr's default Zstd here and a little
    smaller (benchmarks/RESULTS.md)."""
    sub = g.create_group(f"partitions/{k}")
    for name, arr in zip(_ARRAYS, (sources, indptr, targets, weights, delays)):
        sub.create_array(name, data=arr, chunks=(max(1, min(_CHUNK, arr.size)),),
                         compressors=[_FAST_CODEC])


def _open(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise StoreNotFoundError(f"network store not found: {path!r}")
    try:
        g = zarr.open_group(path, mode="r")
    except Exception as err:
        raise StoreError(f"{path!r} is not a Zarr network store: {err}") from err
    check_schema(dict(g.attrs), SCHEMA, SCHEMA_VERSION, path)
    return g


def load_partition(path, k):
    """Partition ``k`` of a stored network: dict with lo, hi (neuron range),
    sources, indptr, targets (local to the partition), weights, delays."""
    return _read_partition(_open(path), k, path)


def _read_partition(g, k, path):
    bounds = g.attrs["partitions"]
    if (isinstance(k, bool) or not isinstance(k, (int, np.integer))
            or not 0 <= k < len(bounds)):
        raise StoreError(f"partition k must be an integer in [0, {len(bounds)}), got {k!r}")
    try:
        sub = g[f"partitions/{k}"]
        out = {name: sub[name][:] for name in _ARRAYS}
    except KeyError as err:
        raise StoreError(f"{path!r}: partition {k} is incomplete ({err})") from err
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


def load_network(path, lazy=False):
    """Read a network written by ``Network.save`` or generated into a store
    (built, same partitions). ``lazy=True`` reads populations, parameters
    and inputs now and the synapses at their first use."""
    g = _open(path)
    with _malformed(path):
        net = _load_header(g, path)
        if lazy:
            net._attach_store(path, g.attrs["n_synapses"])
        else:
            _load_synapses(net, g, path)
    return net


def load_synapses(net, path):
    """Fill the partitions and synapses of a lazily loaded ``net``."""
    with _malformed(path):
        _load_synapses(net, _open(path), path)


@contextlib.contextmanager
def _malformed(path):
    """Report a missing key or a wrong type in a store as a StoreError."""
    try:
        yield
    except StoreError:
        raise
    except (KeyError, TypeError, BrainsimError) as err:
        raise StoreError(f"{path!r} is a malformed {SCHEMA} store: {err}") from err


def _load_header(g, path):
    a = g.attrs
    net = Network(dt=a["dt"], seed=a["seed"])
    start = 0
    for p in a["populations"]:
        if p["start"] != start or not isinstance(p["n"], int) or p["n"] < 1:
            raise StoreError(f"{path!r}: population {p['name']!r} has start {p['start']!r} "
                             f"and n {p['n']!r}; populations must tile 0..N-1")
        params = full_params(p["model"], p["params"])
        net.populations[p["name"]] = Population(p["name"], p["n"], p["model"], params,
                                                p["region"], p["kind"], p["start"])
        start += p["n"]
    net.n_neurons = a["n_neurons"]
    if start != net.n_neurons:
        raise StoreError(f"{path!r}: populations hold {start} neurons, attrs say {net.n_neurons}")
    net.meta = dict(a.get("meta", {}))
    net.columns = {name: arr[:] for name, arr in g["neurons"].arrays()}
    net.inputs = {name: arr[:] for name, arr in g["inputs"].arrays()}
    for name, arr in {**net.columns, **net.inputs}.items():
        if arr.shape != (net.n_neurons,):
            raise StoreError(f"{path!r}: per-neuron array {name!r} has shape {arr.shape}, "
                             f"expected ({net.n_neurons},)")
    return net


def _load_synapses(net, g, path):
    parts = [_read_partition(g, k, path) for k in range(len(g.attrs["partitions"]))]
    if [p["lo"] for p in parts[1:]] != [p["hi"] for p in parts[:-1]] or not parts or \
            parts[0]["lo"] != 0 or parts[-1]["hi"] != net.n_neurons:
        raise StoreError(f"{path!r}: partitions do not tile 0..{net.n_neurons - 1}")
    offsets = np.concatenate([[0], np.cumsum([p["indptr"][-1] for p in parts])])
    held = [Partition(p["lo"], p["hi"], p["sources"], p["indptr"], int(off))
            for p, off in zip(parts, offsets)]
    dtype = local_dtype((p["lo"], p["hi"]) for p in parts)
    net.synapses = SynapseTable(
        held, np.concatenate([p["targets"].astype(dtype, copy=False) for p in parts]),
        np.concatenate([p["weights"] for p in parts]),
        np.concatenate([p["delays"] for p in parts]))
    net.partitions = held


def network_info(path):
    """Summary of a network store (dict of plain values): sizes,
    populations, partitions, dt, seed, and bytes per synapse of the
    partition arrays (sources, indptr, targets, weights, delays) on disk
    (compressed chunks, metadata excluded) and uncompressed."""
    path = os.fspath(path)
    g = _open(path)
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


def store_info(path):
    """``network_info`` or ``results_info``, whichever the store at ``path`` is."""
    schema = store_schema(path)
    if schema == SCHEMA:
        return network_info(path)
    if schema == "brainsim-results":
        return results_info(path)
    raise StoreError(f"{os.fspath(path)!r} is not a brainsim store (schema {schema!r})")
