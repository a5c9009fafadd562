"""The Potjans & Diesmann (2014) cortical microcircuit.

Potjans TC, Diesmann M (2014) The cell-type specific cortical microcircuit:
relating structure and activity in a full-scale spiking network model.
Cereb. Cortex 24:785, doi 10.1093/cercor/bhs358. Numbers as in NEST's
``Potjans_2014`` example; down-scaling of neurons (``scale``) and in-degrees
(``k_scale``) with weights / sqrt(k_scale) and the DC compensation that keeps
the mean input of the full-scale network (van Albada et al. 2015, PLoS
Comput. Biol. 11:e1004490). :func:`microcircuit` builds the Network,
:func:`population_model` its mean-field model (``brainsim.analysis.meanfield``).
"""
import numpy as np

from brainsim.errors import ParameterError
from brainsim.network import Network

from .mean_field_model import NEURON_KEYS, PopulationModel

POPULATIONS = ("L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I")
N_FULL = np.array([20683, 5834, 21915, 5479, 4850, 1065, 14395, 2948])
#: Connection probabilities C[target, source].
CONN_PROBS = np.array([
    [0.1009, 0.1689, 0.0437, 0.0818, 0.0323, 0.0, 0.0076, 0.0],
    [0.1346, 0.1371, 0.0316, 0.0515, 0.0755, 0.0, 0.0042, 0.0],
    [0.0077, 0.0059, 0.0497, 0.1350, 0.0067, 0.0003, 0.0453, 0.0],
    [0.0691, 0.0029, 0.0794, 0.1597, 0.0033, 0.0, 0.1057, 0.0],
    [0.1004, 0.0622, 0.0505, 0.0057, 0.0831, 0.3726, 0.0204, 0.0],
    [0.0548, 0.0269, 0.0257, 0.0022, 0.0600, 0.3158, 0.0086, 0.0],
    [0.0156, 0.0066, 0.0211, 0.0166, 0.0572, 0.0197, 0.0396, 0.2252],
    [0.0364, 0.0010, 0.0034, 0.0005, 0.0277, 0.0080, 0.0658, 0.1443]])
K_EXT = np.array([1600, 1500, 2100, 1900, 2000, 1900, 2900, 2100])
BG_RATE = 8.0  # Hz
PSC_E = 87.81  # pA, a PSP of 0.15 mV
G = -4.0
REL_SD_WEIGHT = 0.1
DELAY_E, DELAY_I, REL_SD_DELAY = 1.5, 0.75, 0.5  # ms
DELAY_POISSON = 1.5  # ms
V0_MEAN = np.array([-68.28, -63.16, -63.33, -63.45, -63.11, -61.66, -66.72, -61.43])
V0_SD = np.array([5.36, 4.57, 4.74, 4.94, 4.94, 4.55, 5.46, 4.48])
#: Full-scale reference rates (spikes/s) used for the DC compensation of
#: down-scaled in-degrees.
FULL_RATES = np.array([0.903, 2.965, 4.414, 5.876, 7.569, 8.633, 1.105, 7.829])
NEURON = {"C_m": 250.0, "tau_m": 10.0, "tau_syn_ex": 0.5, "tau_syn_in": 0.5, "t_ref": 2.0,
          "E_L": -65.0, "V_reset": -65.0, "V_th": -50.0}


def full_synapse_numbers():
    """Synapses per projection at full scale: ln(1 - C) / ln(1 - 1/(N_post N_pre))."""
    prod = np.outer(N_FULL, N_FULL).astype(float)
    return np.log(1.0 - CONN_PROBS) / np.log((prod - 1.0) / prod)


def mean_psc_matrix():
    """Mean PSC amplitude (pA) per projection [target, source]."""
    w = np.tile([PSC_E, G * PSC_E], (8, 4))
    w[0, 2] = 2.0 * PSC_E  # L4E -> L23E doubled
    return w


def _check_fraction(name, value):
    if np.ndim(value) != 0 or not np.isfinite(value) or not 0.0 < value <= 1.0:
        raise ParameterError(f"{name} must be in (0, 1], got {value!r}")


def microcircuit(scale=1.0, k_scale=None, input="dc", seed=0, dt=0.1):
    """Build the Potjans-Diesmann microcircuit (iaf_psc_exp, 8 populations).

    Parameters
    ----------
    scale : float in (0, 1]
        Fraction of the 77,169 neurons.
    k_scale : float in (0, 1], optional
        Fraction of the in-degrees (default: ``scale``). Weights are divided
        by sqrt(k_scale) and a DC current restores the full-scale mean input.
    input : {"dc", "poisson"}
        External drive: K_ext Poisson sources at 8 Hz of 87.81 pA (delay
        1.5 ms), or its mean as a DC current (NEST's ``poisson_input=False``).
    seed : int
        Network seed (connectivity, weights, delays, initial V).
    dt : float, ms
        Resolution (0.1 ms in the published model).

    Returns
    -------
    Network
        Not yet built; ``net.meta`` records the model and scaling.
    """
    k_scale = scale if k_scale is None else k_scale
    _check_fraction("scale", scale)
    _check_fraction("k_scale", k_scale)
    if input not in ("dc", "poisson"):
        raise ParameterError(f"input must be 'dc' or 'poisson', got {input!r}")
    net = Network(dt=dt, seed=seed)
    n = np.maximum(np.round(N_FULL * scale).astype(int), 1)
    rng = np.random.default_rng([seed, 0])
    psc = mean_psc_matrix()
    syn_full = full_synapse_numbers()
    indegree_full = syn_full / N_FULL[:, None]
    w_scaled = psc / np.sqrt(k_scale)
    w_ext = PSC_E / np.sqrt(k_scale)
    tau_syn_s = NEURON["tau_syn_ex"] * 1e-3
    rec_mean = (psc * indegree_full * FULL_RATES).sum(axis=1)  # pA/s per unit tau
    dc = tau_syn_s * (1.0 - np.sqrt(k_scale)) * rec_mean
    if input == "dc":
        dc = dc + tau_syn_s * BG_RATE * K_EXT * PSC_E
    else:
        dc = dc + tau_syn_s * (1.0 - np.sqrt(k_scale)) * K_EXT * BG_RATE * PSC_E
    for k, name in enumerate(POPULATIONS):
        pop = net.add_population(name, int(n[k]), "iaf_psc_exp",
                                 params={**NEURON, "I_e": float(dc[k])},
                                 region="microcircuit", kind="E" if k % 2 == 0 else "I")
        net.set_property(name, "V_m", rng.normal(V0_MEAN[k], V0_SD[k], size=pop.n))
    for t, tgt in enumerate(POPULATIONS):
        for s, src in enumerate(POPULATIONS):
            n_syn = int(np.round(indegree_full[t, s] * n[t] * k_scale))
            if n_syn == 0:
                continue
            mean_w = w_scaled[t, s]
            mean_d = DELAY_E if s % 2 == 0 else DELAY_I
            net.connect(src, tgt, rule="fixed_total_number", n=n_syn,
                        weight={"distribution": "normal", "mean": mean_w,
                                "sd": abs(mean_w) * REL_SD_WEIGHT},
                        delay={"distribution": "normal", "mean": mean_d,
                               "sd": mean_d * REL_SD_DELAY})
    if input == "poisson":
        for k, name in enumerate(POPULATIONS):
            k_ext = int(np.round(K_EXT[k] * k_scale))
            net.add_poisson(name, rate=BG_RATE, weight=w_ext, indegree=k_ext,
                            delay=DELAY_POISSON)
    net.meta.update(model="potjans_diesmann_2014", scale=scale, k_scale=k_scale, input=input)
    return net


def population_model(scale=1.0, k_scale=None, input="poisson"):
    """The mean-field model (``mean_field_model.PopulationModel``, solved by
    ``brainsim.analysis.meanfield``) of the network :func:`microcircuit`
    builds with the same arguments, computed from the definition without
    building it: realised in-degrees (rounded synapse numbers per target
    neuron), weights and their second moment (relative sd 0.1), Poisson
    input and the DC compensation.

    Parameters
    ----------
    scale, k_scale : float in (0, 1]
        Neuron and in-degree scaling as in :func:`microcircuit` (default
        k_scale = scale).
    input : {"poisson", "dc"}
        External drive: K_ext x 8 Hz Poisson events of 87.81 pA, or its mean
        as a DC current.

    Returns
    -------
    PopulationModel
        Weights in pA, rates in Hz, currents in pA.
    """
    k_scale = scale if k_scale is None else k_scale
    _check_fraction("scale", scale)
    _check_fraction("k_scale", k_scale)
    if input not in ("dc", "poisson"):
        raise ParameterError(f"input must be 'dc' or 'poisson', got {input!r}")
    n = np.maximum(np.round(N_FULL * scale), 1)
    k_full = full_synapse_numbers() / N_FULL[:, None]
    k = np.round(k_full * n[:, None] * k_scale) / n[:, None]  # realised synapses per target
    psc = mean_psc_matrix()
    w = psc / np.sqrt(k_scale)
    tau_s = NEURON["tau_syn_ex"] * 1e-3  # s
    dc = tau_s * ((psc * k_full - w * k) @ FULL_RATES)  # pA, keeps the full-scale mean
    k_ext = np.round(K_EXT * k_scale) if input == "poisson" else np.zeros(8)
    w_ext = PSC_E / np.sqrt(k_scale)
    dc += tau_s * BG_RATE * (K_EXT * PSC_E - k_ext * w_ext)
    neuron = {key: NEURON[key] for key in NEURON_KEYS}
    return PopulationModel(names=POPULATIONS, K=k, J=w, J2=w ** 2 * (1 + REL_SD_WEIGHT ** 2),
                           kinds=["E", "I"] * 4, neuron=neuron, ext_rate=k_ext * BG_RATE,
                           ext_weight=w_ext, I_e=dc,
                           meta={"source": "potjans_diesmann_2014", "scale": scale,
                                 "k_scale": k_scale, "input": input})
