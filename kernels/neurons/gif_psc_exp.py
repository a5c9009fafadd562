"""NEST's ``gif_psc_exp``: generalized integrate-and-fire neuron with
spike-triggered currents, a moving threshold and escape noise, and
exponential post-synaptic currents (Mensi et al. 2012, J. Neurophysiol.
107:1756, doi 10.1152/jn.00408.2011; Pozzorini et al. 2015, PLoS Comput.
Biol. 11:e1004275, doi 10.1371/journal.pcbi.1004275).

Units: V in mV, currents in pA, C_m in pF, g_L in nS, times in ms,
lambda_0 in 1/s (as in NEST)::

    C_m dV/dt = -g_L (V - E_L) - sum_j eta_j + I_syn_ex + I_syn_in + I_e + I_ext
    tau_stc_j d eta_j/dt = -eta_j            (spike-triggered currents, pA)
    tau_sfa_j d gamma_j/dt = -gamma_j        (threshold movement, mV)
    V_T = V_T_star + sum_j gamma_j
    lambda = lambda_0 exp((V - V_T) / Delta_V)

A spike adds q_stc_j to eta_j and q_sfa_j to gamma_j. NEST's list parameters
``tau_stc``, ``q_stc``, ``tau_sfa`` and ``q_sfa`` (each pair of equal
length, empty by default) are vector parameters of at most ``MAX_KERNELS``
= 4 entries here; each kernel is a state variable of its own (``stc_0`` ..
``stc_3`` in pA, ``sfa_0`` .. ``sfa_3`` in mV); absent kernels stay 0.
(NEST's documentation gives q_stc in nA; NEST adds q_stc to a current it
sums with I_e in pA, so the unit is pA, as here.)

Per step of length h (NEST 3.10's order, found and checked by running NEST
side by side; the tests in tests/test_discrete_models.py encode it):

1. the sums I_stc = sum eta_j and V_T = V_T_star + sum gamma_j are taken
   (the kernels as the previous step left them, jumps included), then each
   kernel decays by exp(-h / tau);
2. the synaptic currents decay and take the weights of the spikes arriving
   in this step;
3. a free neuron integrates V exactly over the step, with the synaptic
   currents just updated and I_e + I_ext - I_stc held over the step
   (propagators of iaf_psc_exp with tau_m = C_m / g_L); its hazard is
   lambda(V, V_T) and it spikes with probability 1 - exp(-lambda h)
   (lambda in 1/s, h in ms / 1000), compared with the step's uniform draw
   ``u``; a spike adds the jumps and makes it refractory for NEST's number
   of steps (t_ref rounded to 1 us, then up to whole steps);
4. a refractory neuron counts one step down and is held at V_reset; V is
   never reset in the spike step itself, so with t_ref = 0 it is not reset
   at all (as in NEST).

Weights are PSC amplitudes (pA): >= 0 from excitatory populations, <= 0
from inhibitory ones. ``I_ext`` is brainsim's OU background current (pA).
Vector parameters are padded with NaN, which ``derived`` turns into kernels
that decay to 0 and never jump (and uses to check that tau and q have the
same number of entries). The step calls exp each step: CUDA and CPU agree
statistically (``gpu_exact=False``). In float64 the deterministic part
(V_m with spikes given, or the limit Delta_V -> 0) equals NEST's to ~1e-15
relative; NEST's P31 propagators differ from ours in the last bits.
"""
import math

import numpy as np

from brainsim.errors import ParameterError

from .base import NeuronModel, Parameter, Receptor, StateVar
from .iaf_psc_exp import propagator_32

#: Largest number of spike-triggered currents and of threshold kernels.
MAX_KERNELS = 4
#: Resolution to which NEST rounds times (ms) before converting them to steps.
NEST_TIC = 1e-3

_NAN = math.nan
PARAMETERS = (
    Parameter("C_m", 80.0, "pF", "> 0", "membrane capacitance"),
    Parameter("g_L", 4.0, "nS", "> 0", "leak conductance"),
    Parameter("E_L", -70.0, "mV", "any", "leak reversal (resting) potential"),
    Parameter("V_reset", -55.0, "mV", "any", "potential V_m is held at while refractory"),
    Parameter("V_T_star", -35.0, "mV", "any", "base threshold"),
    Parameter("Delta_V", 0.5, "mV", "> 0", "stochasticity level (escape-rate width)"),
    Parameter("lambda_0", 1.0, "1/s", ">= 0", "firing intensity at the threshold V_T"),
    Parameter("t_ref", 4.0, "ms", ">= 0", "refractory period"),
    Parameter("tau_syn_ex", 2.0, "ms", "> 0", "decay time of excitatory synaptic currents"),
    Parameter("tau_syn_in", 2.0, "ms", "> 0", "decay time of inhibitory synaptic currents"),
    Parameter("I_e", 0.0, "pA", "any", "constant input current"),
    Parameter("tau_stc", (), "ms", "> 0", "time constants of the spike-triggered currents",
              size=MAX_KERNELS, pad=_NAN),
    Parameter("q_stc", (), "pA", "any", "jumps of the spike-triggered currents at a spike",
              size=MAX_KERNELS, pad=_NAN),
    Parameter("tau_sfa", (), "ms", "> 0", "time constants of the threshold kernels",
              size=MAX_KERNELS, pad=_NAN),
    Parameter("q_sfa", (), "mV", "any", "jumps of the threshold kernels at a spike",
              size=MAX_KERNELS, pad=_NAN),
    Parameter("V_m", -70.0, "mV", "any", "initial membrane potential"),
)
STATE = (
    StateVar("V_m", "mV", "V_m", "membrane potential"),
    StateVar("I_syn_ex", "pA", 0.0, "excitatory synaptic current"),
    StateVar("I_syn_in", "pA", 0.0, "inhibitory synaptic current"),
    StateVar("r", "1", 0.0, "remaining refractory steps"),
    *(StateVar(f"stc_{j}", "pA", 0.0, f"spike-triggered current {j}")
      for j in range(MAX_KERNELS)),
    *(StateVar(f"sfa_{j}", "mV", 0.0, f"threshold kernel {j}") for j in range(MAX_KERNELS)),
)
RECEPTORS = {
    "E": Receptor("ex", "pA", +1, "PSC amplitude of excitatory synapses (>= 0)"),
    "I": Receptor("in", "pA", -1, "PSC amplitude of inhibitory synapses (<= 0)"),
}


def nest_steps(t, dt):
    """Whole steps of a duration ``t`` (ms) as NEST counts them: ``t``
    rounded to NEST's tic (1 us), then rounded up to whole steps of ``dt``
    (e.g. t_ref = 0.25 ms at dt = 0.1 ms: 3 steps)."""
    tics = np.rint(np.asarray(t, float) / NEST_TIC)
    return np.ceil(tics * NEST_TIC / dt - 1e-9)


def _kernels(tau, q, names, dt):
    """Decay factors and jumps (n, MAX_KERNELS) of one kernel family; absent
    entries (the NaN padding) decay to 0 and jump by 0."""
    tau, q = np.asarray(tau, float), np.asarray(q, float)
    if np.any(np.isnan(tau) != np.isnan(q)):
        n_tau = int(np.max(np.sum(~np.isnan(tau), axis=-1)))
        n_q = int(np.max(np.sum(~np.isnan(q), axis=-1)))
        raise ParameterError(f"gif_psc_exp parameters {names[0]} and {names[1]} must have the "
                             f"same number of entries, got {n_tau} and {n_q}")
    absent = np.isnan(tau)
    decay = np.where(absent, 0.0, np.exp(-dt / np.where(absent, 1.0, tau)))
    return decay, np.where(absent, 0.0, q)


def derived(p, dt):
    """Propagators of the membrane (tau_m = C_m / g_L) and of the synaptic
    currents, lambda_0 h in the unit of a probability, NEST's refractory
    steps, and per kernel its decay factor and jump."""
    tau_m = p["C_m"] / p["g_L"]
    p30 = -tau_m / p["C_m"] * np.expm1(-dt / tau_m)
    out = {
        "P33": np.exp(-dt / tau_m),
        "P30": p30,
        "P30_EL": p30 * p["g_L"] * p["E_L"],
        "P31ex": propagator_32(p["tau_syn_ex"], tau_m, p["C_m"], dt),
        "P31in": propagator_32(p["tau_syn_in"], tau_m, p["C_m"], dt),
        "P11ex": np.exp(-dt / p["tau_syn_ex"]),
        "P11in": np.exp(-dt / p["tau_syn_in"]),
        "lambda_h": p["lambda_0"] * (dt * 1e-3),
        "n_ref": nest_steps(p["t_ref"], dt),
    }
    for fam in ("stc", "sfa"):
        decay, jump = _kernels(p["tau_" + fam], p["q_" + fam], ("tau_" + fam, "q_" + fam), dt)
        for j in range(MAX_KERNELS):
            out[f"d_{fam}_{j}"] = decay[..., j]
            out[f"q_{fam}_{j}"] = jump[..., j]
    return out


def step(s, p, in_ex, in_in, i_ext, u):
    """Kernel sums then decay; synaptic currents take this step's input; V
    (free) or V_reset (refractory); escape noise; jumps at a spike."""
    i_stc = s.stc_0 + s.stc_1 + s.stc_2 + s.stc_3
    v_t = p.V_T_star + s.sfa_0 + s.sfa_1 + s.sfa_2 + s.sfa_3
    e0, e1, e2, e3 = s.stc_0 * p.d_stc_0, s.stc_1 * p.d_stc_1, s.stc_2 * p.d_stc_2, \
        s.stc_3 * p.d_stc_3
    g0, g1, g2, g3 = s.sfa_0 * p.d_sfa_0, s.sfa_1 * p.d_sfa_1, s.sfa_2 * p.d_sfa_2, \
        s.sfa_3 * p.d_sfa_3
    i_ex = s.I_syn_ex * p.P11ex + in_ex
    i_in = s.I_syn_in * p.P11in + in_in
    r = s.r
    spiked = False
    if r == 0:
        v = (p.P30 * (p.I_e + i_ext - i_stc) + p.P33 * s.V_m + p.P30_EL + p.P31ex * i_ex
             + p.P31in * i_in)
        hazard = p.lambda_h * math.exp((v - v_t) / p.Delta_V)
        # 1 - e^-H <= H (also in floating point): u >= H never spikes, which
        # spares most steps the expm1 without changing any decision
        if u < hazard:
            spiked = u < -math.expm1(-hazard)
        if spiked:
            e0, e1, e2, e3 = e0 + p.q_stc_0, e1 + p.q_stc_1, e2 + p.q_stc_2, e3 + p.q_stc_3
            g0, g1, g2, g3 = g0 + p.q_sfa_0, g1 + p.q_sfa_1, g2 + p.q_sfa_2, g3 + p.q_sfa_3
            r = p.n_ref
    else:
        r -= 1
        v = p.V_reset
    return (v, i_ex, i_in, r, e0, e1, e2, e3, g0, g1, g2, g3), spiked


MODEL = NeuronModel(
    "gif_psc_exp", PARAMETERS, STATE, RECEPTORS, step, derived, noise=True, gpu_exact=False,
    doc="Generalized integrate-and-fire neuron with spike-triggered currents, moving "
        "threshold and escape noise, exponential PSCs (NEST's gif_psc_exp; Mensi et al. "
        "2012, doi 10.1152/jn.00408.2011; Pozzorini et al. 2015, "
        "doi 10.1371/journal.pcbi.1004275).")
