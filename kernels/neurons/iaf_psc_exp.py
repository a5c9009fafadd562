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

from .base import NeuronModel, Parameter, Receptor, StateVar, refractory_steps

PARAMETERS = (
    Parameter("C_m", 250.0, "pF", "> 0", "membrane capacitance"),
    Parameter("tau_m", 10.0, "ms", "> 0", "membrane time constant"),
    Parameter("t_ref", 2.0, "ms", ">= 0", "refractory period (V_m clamped to V_reset)"),
    Parameter("E_L", -70.0, "mV", "any", "resting potential"),
    Parameter("V_reset", -70.0, "mV", "any", "reset potential after a spike"),
    Parameter("V_th", -55.0, "mV", "any", "spike threshold"),
    Parameter("tau_syn_ex", 2.0, "ms", "> 0", "decay time of excitatory synaptic currents"),
    Parameter("tau_syn_in", 2.0, "ms", "> 0", "decay time of inhibitory synaptic currents"),
    Parameter("I_e", 0.0, "pA", "any", "constant input current"),
    Parameter("V_m", -70.0, "mV", "any", "initial membrane potential"),
)
STATE = (
    StateVar("V_m", "mV", "V_m", "membrane potential"),
    StateVar("I_syn_ex", "pA", 0.0, "excitatory synaptic current"),
    StateVar("I_syn_in", "pA", 0.0, "inhibitory synaptic current"),
    StateVar("r", "1", 0.0, "remaining refractory steps"),
)
RECEPTORS = {
    "E": Receptor("ex", "pA", +1, "PSC amplitude of excitatory synapses (>= 0)"),
    "I": Receptor("in", "pA", -1, "PSC amplitude of inhibitory synapses (<= 0)"),
}


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
    """Propagators of one step (exact integration) and the refractory steps."""
    return {
        "P22": np.exp(-dt / p["tau_m"]),
        "P11ex": np.exp(-dt / p["tau_syn_ex"]),
        "P11in": np.exp(-dt / p["tau_syn_in"]),
        "P21ex": propagator_32(p["tau_syn_ex"], p["tau_m"], p["C_m"], dt),
        "P21in": propagator_32(p["tau_syn_in"], p["tau_m"], p["C_m"], dt),
        "P20": -p["tau_m"] / p["C_m"] * np.expm1(-dt / p["tau_m"]),
        "n_ref": refractory_steps(p["t_ref"], dt),
    }


def step(s, p, in_ex, in_in, i_ext, u):
    """NEST's order: V from the currents of the previous step (held while
    refractory), currents decay and take this step's input, threshold."""
    v, r = s.V_m, s.r
    if r == 0:
        e_l = p.E_L
        v = (e_l + (v - e_l) * p.P22 + s.I_syn_ex * p.P21ex + s.I_syn_in * p.P21in
             + (p.I_e + i_ext) * p.P20)
    else:
        r -= 1
    i_ex = s.I_syn_ex * p.P11ex + in_ex
    i_in = s.I_syn_in * p.P11in + in_in
    spiked = v >= p.V_th
    if spiked:
        r = p.n_ref
        v = p.V_reset
    return (v, i_ex, i_in, r), spiked


MODEL = NeuronModel(
    "iaf_psc_exp", PARAMETERS, STATE, RECEPTORS, step, derived,
    constraints=[("V_reset", "<", "V_th")],
    doc="Leaky integrate-and-fire neuron with exponential PSCs, exact integration "
        "(NEST's iaf_psc_exp; Rotter & Diesmann 1999, doi 10.1007/s004220050570).")


def first_spike_time_dc(p, i_dc):
    """Closed-form time (ms) at which a neuron at rest under DC ``i_dc`` (pA)
    reaches threshold, or ``inf`` (for tests and documentation)."""
    v_inf = p["E_L"] + p["tau_m"] / p["C_m"] * (p["I_e"] + i_dc)
    if v_inf <= p["V_th"]:
        return math.inf
    return -p["tau_m"] * math.log((v_inf - p["V_th"]) / (v_inf - p["V_m"]))
