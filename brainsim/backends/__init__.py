"""Backends step a built Network. ``cpu`` is the Numba reference backend.

Shared here: turning a Network into the flat arrays every backend uses
(derived parameter tables, input arrays, CSR with a dense row index).
"""
import numpy as np

from brainsim.kernels import csr, iaf_psc_exp, lif_dtb, rng

from ..errors import UnknownNameError
from ..models import MODEL_IDS, refractory_steps

BACKENDS = ("cpu", "cuda", "dask")
# backend -> (module, class) of its Simulation subclass; imported on first use so
# that numba-cuda and distributed stay optional
_CLASSES = {"cuda": ("brainsim.backends.cuda", "CudaSimulation"),
            "dask": ("brainsim.backends.dask", "DaskSimulation")}


def check_backend(name):
    if not isinstance(name, str) or name not in BACKENDS:
        raise UnknownNameError(f"backend must be one of {list(BACKENDS)}, got {name!r}")
    return name


def simulation_class(name):
    """The Simulation subclass of a non-cpu backend (imported lazily)."""
    import importlib
    module, cls = _CLASSES[check_backend(name)]
    return getattr(importlib.import_module(module), cls)


def model_ids(net):
    out = np.empty(net.n_neurons, np.int8)
    for pop in net.populations.values():
        out[pop.start:pop.stop] = MODEL_IDS[pop.model]
    return out


def derived_tables(net, dtype):
    """(q_iaf (rows, 10), q_dtb (rows, 18), qrow (N,), ref_steps (N,)).

    Each model's table has one row per distinct parameter set (one per
    population unless per-neuron values were set); ``qrow[i]`` is neuron i's
    row in its model's table. Small tables stay in cache.
    """
    mid = model_ids(net)
    qrow = np.zeros(net.n_neurons, np.int32)
    tables = {}
    for name, mod in (("iaf_psc_exp", iaf_psc_exp), ("lif_dtb", lif_dtb)):
        mask = mid == MODEL_IDS[name]
        if not mask.any():
            tables[name] = np.zeros((0, mod.N_DERIVED), dtype)
            continue
        p = {k: net.neuron_param(k)[mask] for k in mod.DEFAULTS}
        full = mod.derived(p, net.dt).astype(dtype)
        rows, inverse = np.unique(full, axis=0, return_inverse=True)
        tables[name] = np.ascontiguousarray(rows)
        qrow[mask] = inverse.ravel()
    ref = refractory_steps(net.neuron_param("t_ref"), net.dt)
    return tables["iaf_psc_exp"], tables["lif_dtb"], qrow, ref


def input_arrays(net, dtype):
    """Per-neuron arrays of the external inputs (empty arrays when unused).

    Poisson: mean events per step, inversion tables and row per neuron, weight,
    delay (steps).
    OU: on flag, mean (pA), decay exp(-dt/tau), noise amplitude sigma sqrt(1 - decay^2).
    """
    inp = net.inputs
    if "poisson_rate" in inp and np.any(inp["poisson_rate"] > 0):
        lam = inp["poisson_rate"] * net.dt * 1e-3
        w = inp["poisson_weight"].astype(dtype)
        d = inp["poisson_delay"].astype(np.int64)
        tab, idx = rng.poisson_tables(lam)
    else:
        lam = w = np.zeros(0, dtype)
        tab, idx = np.zeros((0, rng.TABLE_LEN + 1)), np.zeros(0, np.int32)
        d = np.zeros(0, np.int64)
    if "ou_on" in inp and np.any(inp["ou_on"] > 0):
        dec = np.exp(-net.dt / inp["ou_tau"])
        ou = (inp["ou_on"].astype(np.int8), inp["ou_mean"].astype(dtype), dec.astype(dtype),
              (inp["ou_sigma"] * np.sqrt(1.0 - dec**2)).astype(dtype))
    else:
        ou = (np.zeros(0, np.int8),) + tuple(np.zeros(0, dtype) for _ in range(3))
    return (lam.astype(np.float64), tab, idx, w, d) + ou


def initial_state(net, dtype):
    """State at t = 0 as (V, S, ref, I_ou, inp): V from the ``V_m`` parameter
    (mV), synaptic traces S (2 rows, or 4 with lif_dtb) and the pending input
    ``inp`` (2, N) zero, no neuron refractory, OU currents at their mean (pA)."""
    n = net.n_neurons
    V = net.neuron_param("V_m").astype(dtype)
    n_syn = 4 if any(p.model == "lif_dtb" for p in net.populations.values()) else 2
    I_ou = np.zeros(n, dtype)
    if "ou_on" in net.inputs:
        on = net.inputs["ou_on"] > 0
        I_ou[on] = net.inputs["ou_mean"][on]
    return V, np.zeros((n_syn, n), dtype), np.zeros(n, np.int32), I_ou, np.zeros((2, n), dtype)


def block_rows(net):
    """Dense row index (n_partitions, N + 1) into the network's synapse arrays."""
    return np.stack([csr.dense_indptr(p.sources, p.indptr, net.n_neurons, p.offset)
                     for p in net.partitions])


def source_channels(net):
    """Input channel (0 excitatory, 1 inhibitory) of each neuron's spikes."""
    out = np.empty(net.n_neurons, np.int8)
    for pop in net.populations.values():
        out[pop.start:pop.stop] = 0 if pop.kind == "E" else 1
    return out
