"""The network store (Zarr v3): save, load, load one partition.

The layout and the array-level reading and writing are in
``brainsim.network_format``; this module builds Networks from a store.
"""
import os

import numpy as np

from .errors import BrainsimError, StoreError
from .network import MAX_DELAY_STEPS, Network, Population
# save_network and network_info are part of this module's API (re-exported)
from .integrity import CHECKSUM
from .network_format import (SCHEMA, get_array, malformed,  # noqa: F401
                             network_info, open_network_store, read_partition, read_partitions,
                             save_network)
from .neurons import check_values, full_params, get_model
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
    verify = a.get("checksums") == CHECKSUM
    for group, target in (("neurons", net.columns), ("inputs", net.inputs)):
        for name in sorted(g[group].array_keys()):
            target[name] = get_array(g[group], name, f"{path!r} {group}", "column",
                                     net.n_neurons, verify)
    check_loaded_values(net, path)
    return net


#: Per-neuron input arrays and what each may hold (the checks of add_poisson
#: and add_ou); a store with other input names is refused.
_INPUT_RULES = {
    "poisson_rate": (lambda v: v >= 0, ">= 0 Hz"),
    "poisson_weight": (lambda v: np.isfinite(v), "finite"),
    "poisson_delay": (lambda v: (v >= 1) & (v <= MAX_DELAY_STEPS) & (v == np.rint(v)),
                      f"whole steps in [1, {MAX_DELAY_STEPS}]"),
    "ou_mean": (lambda v: np.isfinite(v), "finite (pA)"),
    "ou_sigma": (lambda v: v >= 0, ">= 0 pA"),
    "ou_tau": (lambda v: v > 0, "> 0 ms"),
    "ou_on": (lambda v: (v == 0) | (v == 1), "0 or 1"),
}


def check_loaded_values(net, path):
    """Validate a loaded network's per-neuron columns and inputs as the API
    validates them when they are set (the models' parameter tables and
    constraints; add_poisson's and add_ou's rules): a store edited to hold
    tau_m = 0, V_th below V_reset or a negative rate is a StoreError, not a
    simulation."""
    for name, col in net.columns.items():
        if not any(name in get_model(q.model).param_names for q in net.populations.values()):
            raise StoreError(f"{path!r}: per-neuron column {name!r} is not a parameter of any "
                             f"model in the network")
    for q in net.populations.values():
        names = get_model(q.model).param_names
        cols = {n: c[q.start:q.stop] for n, c in net.columns.items() if n in names}
        try:
            check_values(q.model, {**q.params, **cols})
        except BrainsimError as err:
            raise StoreError(f"{path!r}: population {q.name!r}: {err}") from None
    for name, arr in net.inputs.items():
        if name not in _INPUT_RULES:
            raise StoreError(f"{path!r}: unknown input array {name!r} (known: "
                             f"{sorted(_INPUT_RULES)})")
        rule, allowed = _INPUT_RULES[name]
        with np.errstate(invalid="ignore"):
            ok = rule(arr) & np.isfinite(arr)
        if not ok.all():
            i = int(np.argmin(ok))
            raise StoreError(f"{path!r}: input {name!r} of neuron {i} must be {allowed}, got "
                             f"{float(arr[i])!r}")


def store_info(path):
    """``network_info`` or ``results_info``, whichever the store at ``path`` is."""
    schema = store_schema(path)
    if schema == SCHEMA:
        return network_info(path)
    if schema == "brainsim-results":
        return results_info(path)
    raise StoreError(f"{os.fspath(path)!r} is not a brainsim store (schema {schema!r})")
