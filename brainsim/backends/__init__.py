"""Backends step a built Network. ``cpu`` is the Numba reference backend.

Shared here: turning a Network into the flat arrays every backend uses
(derived parameter tables, input arrays, CSR with a dense row index).
"""
import math

import numpy as np

from brainsim.kernels import csr, iaf_psc_exp, lif_dtb

from ..errors import UnknownNameError
from ..models import MODEL_IDS, MODELS, refractory_steps

BACKENDS = ("cpu",)


def check_backend(name):
    if name not in BACKENDS:
        raise UnknownNameError(f"backend must be one of {list(BACKENDS)}, got {name!r}")
    return name


def model_ids(net):
    out = np.empty(net.n_neurons, np.int8)
    for pop in net.populations.values():
        out[pop.start:pop.stop] = MODEL_IDS[pop.model]
    return out


def derived_tables(net, dtype):
    """(q_iaf (N or 0, 10), q_dtb (N or 0, 18), ref_steps (N,)) for the
    current parameters; rows of neurons of the other model are unused."""
    models = {pop.model for pop in net.populations.values()}
    tables = {}
    for name, mod in (("iaf_psc_exp", iaf_psc_exp), ("lif_dtb", lif_dtb)):
        if name not in models:
            tables[name] = np.zeros((0, mod.N_DERIVED), dtype)
            continue
        p = {k: net.neuron_param(k) for k in mod.DEFAULTS}
        mask = model_ids(net) == MODEL_IDS[name]
        p = {k: np.where(mask, v, MODELS[name].DEFAULTS[k]) for k, v in p.items()}
        tables[name] = np.ascontiguousarray(mod.derived(p, net.dt), dtype=dtype)
    ref = refractory_steps(net.neuron_param("t_ref"), net.dt)
    return tables["iaf_psc_exp"], tables["lif_dtb"], ref


def input_arrays(net, dtype):
    """Per-neuron arrays of the external inputs (empty arrays when unused).

    Poisson: mean events per step, exp(-mean), weight, delay (steps).
    OU: on flag, mean (pA), decay exp(-dt/tau), noise amplitude sigma sqrt(1 - decay^2).
    """
    inp = net.inputs
    if "poisson_rate" in inp and np.any(inp["poisson_rate"] > 0):
        lam = inp["poisson_rate"] * net.dt * 1e-3
        w = inp["poisson_weight"].astype(dtype)
        d = inp["poisson_delay"].astype(np.int64)
        # exp(-lam) with libm's exp (math.exp), as the kernel would compute it
        values, where = np.unique(lam, return_inverse=True)
        p0 = np.array([math.exp(-x) for x in values])[where]
    else:
        lam = p0 = w = np.zeros(0, dtype)
        d = np.zeros(0, np.int64)
    if "ou_on" in inp and np.any(inp["ou_on"] > 0):
        dec = np.exp(-net.dt / inp["ou_tau"])
        ou = (inp["ou_on"].astype(np.int8), inp["ou_mean"].astype(dtype), dec.astype(dtype),
              (inp["ou_sigma"] * np.sqrt(1.0 - dec**2)).astype(dtype))
    else:
        ou = (np.zeros(0, np.int8),) + tuple(np.zeros(0, dtype) for _ in range(3))
    return (lam.astype(np.float64), p0.astype(np.float64), w, d) + ou


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
