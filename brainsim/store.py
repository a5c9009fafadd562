"""The network store (Zarr v3): save, load, load one partition.

The layout and the array-level reading and writing are in
``brainsim.network_format``; this module builds Networks from a store.
"""
import os

from .errors import StoreError
from .network import Network, Population
# save_network and network_info are part of this module's API (re-exported)
from .network_format import (SCHEMA, malformed, network_info, open_network_store,  # noqa: F401
                             read_partition, read_partitions, save_network)
from .neurons import full_params
from .results import results_info, store_schema


def load_partition(path, k):
    """Partition ``k`` of a stored network: dict with lo, hi (neuron range),
    sources, indptr, targets (local to the partition), weights, delays."""
    return read_partition(open_network_store(path), k, path)


def load_network(path, lazy=False):
    """Read a network written by ``Network.save`` or generated into a store
    (built, same partitions). ``lazy=True`` reads populations, parameters
    and inputs now and the synapses at their first use."""
    g = open_network_store(path)
    with malformed(path):
        net = _load_header(g, path)
        if lazy:
            net._attach_store(path, g.attrs["n_synapses"])
        else:
            net._adopt_partitions(read_partitions(g, path, net.n_neurons))
    return net


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


def store_info(path):
    """``network_info`` or ``results_info``, whichever the store at ``path`` is."""
    schema = store_schema(path)
    if schema == SCHEMA:
        return network_info(path)
    if schema == "brainsim-results":
        return results_info(path)
    raise StoreError(f"{os.fspath(path)!r} is not a brainsim store (schema {schema!r})")
