"""NEST's ``iaf_psc_exp``: leaky integrate-and-fire neuron with exponential
post-synaptic currents, integrated exactly (Rotter & Diesmann 1999, Biol.
Cybern. 81:381, doi 10.1007/s004220050570).

Units: V in mV, currents in pA, C_m in pF, times in ms.

The per-step order follows NEST 3 (``iaf_psc_exp::update``): the membrane is
propagated with the synaptic currents of the previous step (or held while
refractory), then the currents decay and take the spikes that arrive in this
step, then the threshold is tested. A spike is stamped at the end of the step.
"""
import math

import numpy as np
from numba import njit

#: Parameter names (NEST's), defaults and units.
DEFAULTS = {
    "C_m": 250.0,  # pF
    "tau_m": 10.0,  # ms
    "t_ref": 2.0,  # ms
    "E_L": -70.0,  # mV
    "V_reset": -70.0,  # mV
    "V_th": -55.0,  # mV
    "tau_syn_ex": 2.0,  # ms
    "tau_syn_in": 2.0,  # ms
    "I_e": 0.0,  # pA
    "V_m": -70.0,  # mV, initial membrane potential
}
UNITS = {"C_m": "pF", "tau_m": "ms", "t_ref": "ms", "E_L": "mV", "V_reset": "mV",
         "V_th": "mV", "tau_syn_ex": "ms", "tau_syn_in": "ms", "I_e": "pA", "V_m": "mV"}
#: Synaptic state variables (rows of the state array S) and their units.
SYN_STATE = ("I_syn_ex", "I_syn_in")
SYN_UNITS = ("pA", "pA")
#: Weight unit of synapses onto this model (PSC amplitude).
WEIGHT_UNIT = "pA"

# Columns of the per-neuron table of derived constants.
P22, P11EX, P11IN, P21EX, P21IN, P20, E_L, V_TH, V_RESET, I_E = range(10)
N_DERIVED = 10


def validate(p):
    """Return a list of (name, value, allowed) for values out of range."""
    bad = []
    for name in ("C_m", "tau_m", "tau_syn_ex", "tau_syn_in"):
        if not np.all(np.asarray(p[name]) > 0):
            bad.append((name, p[name], "> 0"))
    if not np.all(np.asarray(p["t_ref"]) >= 0):
        bad.append(("t_ref", p["t_ref"], ">= 0 ms"))
    if not np.all(np.asarray(p["V_reset"]) < np.asarray(p["V_th"])):
        bad.append(("V_reset", p["V_reset"], f"< V_th ({p['V_th']!r} mV)"))
    return bad


def propagator_32(tau_syn, tau_m, c_m, h):
    """Voltage response to a unit synaptic current over one step (NEST's
    ``propagator_32``), accurate to rounding for any pair of time constants.

    The closed form tau_s tau_m / (C (tau_m - tau_s)) (e^{-h/tau_m} - e^{-h/tau_s})
    cancels catastrophically as tau_s -> tau_m (relative error up to ~1e-5
    at tau_s = tau_m (1 + 1e-12)). The same integral is written here as
    (h / C) e^{-h / max(tau_s, tau_m)} phi(-h |tau_s - tau_m| / (tau_s tau_m))
    with phi(y) = expm1(y) / y (phi(0) = 1: the limit h / C e^{-h/tau_m}).

    Arrays allowed; returns (h in ms, taus in ms, C in pF) -> mV/pA.
    """
    tau_syn, tau_m, c_m = np.broadcast_arrays(
        *(np.asarray(x, float) for x in (tau_syn, tau_m, c_m)))
    y = -h * np.abs(tau_syn - tau_m) / (tau_syn * tau_m)
    zero = y == 0.0
    y_safe = np.where(zero, -1.0, y)
    phi = np.where(zero, 1.0, np.expm1(y_safe) / y_safe)
    return h / c_m * np.exp(-h / np.maximum(tau_syn, tau_m)) * phi


def derived(p, dt):
    """Per-neuron table (n, N_DERIVED) of propagators and thresholds.

    ``p`` maps parameter names to arrays of length n (or scalars).
    """
    n = max(np.size(v) for v in p.values())
    col = {k: np.broadcast_to(np.asarray(v, float), (n,)) for k, v in p.items()}
    d = np.empty((n, N_DERIVED))
    d[:, P22] = np.exp(-dt / col["tau_m"])
    d[:, P11EX] = np.exp(-dt / col["tau_syn_ex"])
    d[:, P11IN] = np.exp(-dt / col["tau_syn_in"])
    d[:, P21EX] = propagator_32(col["tau_syn_ex"], col["tau_m"], col["C_m"], dt)
    d[:, P21IN] = propagator_32(col["tau_syn_in"], col["tau_m"], col["C_m"], dt)
    d[:, P20] = -col["tau_m"] / col["C_m"] * np.expm1(-dt / col["tau_m"])
    d[:, E_L] = col["E_L"]
    d[:, V_TH] = col["V_th"]
    d[:, V_RESET] = col["V_reset"]
    d[:, I_E] = col["I_e"]
    return d


@njit(inline="always")
def update(v, i_ex, i_in, ref, in_ex, in_in, i_cur, q, ref_steps):
    """One step of one neuron.

    Parameters: v (mV), i_ex, i_in (pA), ref (remaining refractory steps),
    in_ex, in_in (pA, synaptic input arriving this step), i_cur (pA, extra
    current held constant over the step, e.g. OU background), q (row of the
    derived table), ref_steps (refractory period in steps).
    Returns (v, i_ex, i_in, ref, spiked).
    """
    if ref == 0:
        e_l = q[E_L]
        v = e_l + (v - e_l) * q[P22] + i_ex * q[P21EX] + i_in * q[P21IN] + (q[I_E] + i_cur) * q[P20]
    else:
        ref -= 1
    i_ex = i_ex * q[P11EX] + in_ex
    i_in = i_in * q[P11IN] + in_in
    spiked = v >= q[V_TH]
    if spiked:
        ref = ref_steps
        v = q[V_RESET]
    return v, i_ex, i_in, ref, spiked


def first_spike_time_dc(p, i_dc):
    """Closed-form time (ms) at which a neuron at rest under DC ``i_dc`` (pA)
    reaches threshold, or ``inf`` (for tests and documentation)."""
    v_inf = p["E_L"] + p["tau_m"] / p["C_m"] * (p["I_e"] + i_dc)
    if v_inf <= p["V_th"]:
        return math.inf
    return -p["tau_m"] * math.log((v_inf - p["V_th"]) / (v_inf - p["V_m"]))
