"""The network store (Zarr v3): save, load, load one partition.

Layout::

    attrs            schema, schema_version, dt, seed, units, populations
                     (name, n, model, params, region, kind, start), partition
                     bounds, provenance; JSON only
    neurons/<name>   per-neuron parameter columns (float64, N)
    inputs/<name>    per-neuron external input arrays (float64, N)
    partitions/<p>/  sources (int64), indptr (int64), targets (int32, local to
                     the partition), weights (float32), delays (uint16, steps)
"""
import os
import shutil

import numpy as np
import zarr

from ._version import __version__
from .errors import StoreError, StoreNotFoundError
from .network import Network, Partition, Population
from .results import check_schema

SCHEMA = "brainsim-network"
SCHEMA_VERSION = 1
UNITS = {"time": "ms", "voltage": "mV", "current": "pA", "capacitance": "pF",
         "conductance": "nS", "rate": "Hz", "delays": "steps of dt"}
_CHUNK = 1 << 22


def save_network(net, path, overwrite=False):
    path = os.fspath(path)
    if os.path.exists(path):
        if not overwrite:
            raise StoreError(f"network store {path!r} exists; pass overwrite=True to replace it")
        shutil.rmtree(path)
    g = zarr.open_group(path, mode="w", zarr_format=3)
    g.attrs.update({
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "dt": net.dt, "seed": net.seed,
        "units": UNITS, "brainsim_version": __version__, "n_neurons": net.n_neurons,
        "n_synapses": net.n_synapses, "meta": net.meta,
        "populations": [{"name": p.name, "n": p.n, "model": p.model, "params": p.params,
                         "region": p.region, "kind": p.kind, "start": p.start}
                        for p in net.populations.values()],
        "partitions": [[p.lo, p.hi] for p in net.partitions],
    })
    for group, arrays in (("neurons", net.columns), ("inputs", net.inputs)):
        sub = g.create_group(group)
        for name, arr in arrays.items():
            sub.create_array(name, data=np.asarray(arr, np.float64), chunks=(_CHUNK,))
    syn = net.synapses
    for k, p in enumerate(net.partitions):
        sub = g.create_group(f"partitions/{k}")
        sl = slice(p.offset, p.offset + p.n_synapses)
        local = (syn["targets"][sl] - p.lo).astype(np.int32)
        for name, arr in (("sources", p.sources), ("indptr", p.indptr), ("targets", local),
                          ("weights", syn["weights"][sl]), ("delays", syn["delays"][sl])):
            sub.create_array(name, data=arr, chunks=(max(1, min(_CHUNK, arr.size)),))


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
    sources, indptr, targets (local int32), weights, delays."""
    g = _open(path)
    bounds = g.attrs["partitions"]
    if not isinstance(k, (int, np.integer)) or not 0 <= k < len(bounds):
        raise StoreError(f"partition must be an integer in [0, {len(bounds)}), got {k!r}")
    sub = g[f"partitions/{k}"]
    out = {name: sub[name][:] for name in ("sources", "indptr", "targets", "weights", "delays")}
    out["lo"], out["hi"] = bounds[k]
    return out


def load_network(path):
    """Read a network written by ``Network.save`` (built, same partitions)."""
    g = _open(path)
    a = g.attrs
    net = Network(dt=a["dt"], seed=a["seed"])
    for p in a["populations"]:
        net.populations[p["name"]] = Population(p["name"], p["n"], p["model"], dict(p["params"]),
                                                p["region"], p["kind"], p["start"])
    net.n_neurons = a["n_neurons"]
    net.meta = dict(a.get("meta", {}))
    net.columns = {name: arr[:] for name, arr in g["neurons"].arrays()}
    net.inputs = {name: arr[:] for name, arr in g["inputs"].arrays()}
    parts = [load_partition(path, k) for k in range(len(a["partitions"]))]
    net.synapses = {
        "targets": np.concatenate([p["targets"] + p["lo"] for p in parts]).astype(np.int32),
        "weights": np.concatenate([p["weights"] for p in parts]),
        "delays": np.concatenate([p["delays"] for p in parts]),
    }
    offsets = np.concatenate([[0], np.cumsum([p["indptr"][-1] for p in parts])])
    net.partitions = [Partition(p["lo"], p["hi"], p["sources"], p["indptr"], int(off))
                      for p, off in zip(parts, offsets)]
    return net
