"""NEST's ``aeif_cond_exp``: the adaptive exponential integrate-and-fire
neuron (AdEx; Brette & Gerstner 2005, J. Neurophysiol. 94:3637,
doi 10.1152/jn.00686.2005) with exponentially decaying synaptic
conductances.

Units: V in mV, conductances in nS, currents (w, I_e) in pA, C_m in pF,
times in ms.

Dynamics::

    C_m dV/dt = -g_L (V - E_L) + g_L Delta_T exp((V - V_th) / Delta_T)
                - g_ex (V - E_ex) - g_in (V - E_in) - w + I_e + I_ext
    tau_w dw/dt = a (V - E_L) - w
    dg_ex/dt = -g_ex / tau_syn_ex,    dg_in/dt = -g_in / tau_syn_in

Per step (NEST 3.10's semantics): the state is integrated over the step by
the adaptive Dormand-Prince 5(4) integrator of ``ode.py`` (NEST: GSL's
RKF45), and the spike test is done after every accepted sub-step, inside the
step: V >= V_peak (V_th when Delta_T = 0) resets V to V_reset and adds b to
w; with t_ref > 0 the neuron is then refractory for the rest of this step and
for round(t_ref / dt) more steps, during which V is held at V_reset (dV/dt =
0; w evolves with V = V_reset). In the right-hand side V is capped at V_peak,
so the exponential stays finite within the sub-step that crosses it. After
the integration, the spikes arriving in this step are added to the
conductances: excitatory weights (nS) >= 0 to g_ex, inhibitory weights <= 0
(NEST's sign convention) as |w| to g_in. A spike is stamped at the end of
the step.

With Delta_T = 0 (no exponential term) the test is V >= V_th after each
accepted sub-step; the dynamics are then smooth and the sub-step is mostly
the whole step, so the test falls at the end of the step (as in NEST).

With t_ref = 0 (NEST's default) several resets can happen in one step; the
state follows each of them (w grows by b each time), but the step reports
one spike. Set t_ref > 0 to avoid this (NEST's advice too).

Integration tolerance: ``gsl_error_tol`` (default 1e-6), absolute in mV, nS
and pA for values below 1 and relative above (see ``ode.py``). NEST uses the
same parameter as the absolute and the derivative-scaled relative tolerance
of its RKF45. With the default, spike times agree to the step with a tight
(1e-10) SciPy solution that resets at the exact crossing of V_peak, and V_m
within 5e-3 mV over 0.2 s (tests/test_ode_models.py; measured 4e-4 mV, and
0.01 mV over 1 s with t_ref = 0: the reset comes at the end of the sub-step
that crosses V_peak, here as in NEST, whose V_m differs from that solution
by 0.007 mV). Spike times under DC steps and under input spikes fall in the
same steps as NEST 3.10's (benchmarks/peers/ode_models_vs_nest.py).
"""
import math

import numpy as np
from numba import njit

from brainsim.errors import ParameterError

from .base import NeuronModel, Parameter, Receptor, StateVar, refractory_steps
from .ode import make_integrator

#: (V_peak - V_th) / Delta_T must stay below this, so that the exponential
#: term at V_peak leaves room in double precision (NEST's bound).
MAX_EXP_ARG = math.log(np.finfo(float).max / 1e20)

PARAMETERS = (
    Parameter("C_m", 281.0, "pF", "> 0", "membrane capacitance"),
    Parameter("t_ref", 0.0, "ms", ">= 0", "refractory period (V_m clamped to V_reset)"),
    Parameter("V_reset", -60.0, "mV", "any", "reset potential after a spike"),
    Parameter("E_L", -70.6, "mV", "any", "leak reversal potential"),
    Parameter("g_L", 30.0, "nS", ">= 0", "leak conductance"),
    Parameter("I_e", 0.0, "pA", "any", "constant input current"),
    Parameter("a", 4.0, "nS", "any", "subthreshold adaptation"),
    Parameter("b", 80.5, "pA", "any", "spike-triggered adaptation (added to w at a spike)"),
    Parameter("Delta_T", 2.0, "mV", ">= 0", "slope factor of the exponential term"),
    Parameter("tau_w", 144.0, "ms", "> 0", "adaptation time constant"),
    Parameter("V_th", -50.4, "mV", "any", "spike initiation threshold"),
    Parameter("V_peak", 0.0, "mV", "any", "spike detection threshold (used when Delta_T > 0)"),
    Parameter("E_ex", 0.0, "mV", "any", "excitatory reversal potential"),
    Parameter("E_in", -85.0, "mV", "any", "inhibitory reversal potential"),
    Parameter("tau_syn_ex", 0.2, "ms", "> 0", "decay time of the excitatory conductance"),
    Parameter("tau_syn_in", 2.0, "ms", "> 0", "decay time of the inhibitory conductance"),
    Parameter("gsl_error_tol", 1e-6, "1", "> 0", "tolerance of the adaptive integrator"),
    Parameter("V_m", -70.6, "mV", "any", "initial membrane potential"),
)
STATE = (
    StateVar("V_m", "mV", "V_m", "membrane potential"),
    StateVar("g_ex", "nS", 0.0, "excitatory synaptic conductance"),
    StateVar("g_in", "nS", 0.0, "inhibitory synaptic conductance (>= 0)"),
    StateVar("w", "pA", 0.0, "spike-adaptation current"),
    StateVar("r", "1", 0.0, "remaining refractory steps"),
    StateVar("h_ode", "ms", lambda p, dt: np.full(np.size(p["V_m"]), dt),
             "sub-step size the integrator starts the next step with"),
)
RECEPTORS = {
    "E": Receptor("ex", "nS", +1, "peak conductance of excitatory synapses (>= 0)"),
    "I": Receptor("in", "nS", -1, "peak conductance of inhibitory synapses, negative "
                  "(<= 0; NEST's convention: |w| enters g_in)"),
}


def derived(p, dt):
    """Step length, spike detection potential, reciprocals and refractory
    steps; rejects V_peak, V_th, Delta_T whose exponential would overflow."""
    d_t, v_peak, v_th = np.broadcast_arrays(
        *(np.asarray(p[k], float) for k in ("Delta_T", "V_peak", "V_th")))
    safe_dt = np.where(d_t > 0.0, d_t, 1.0)
    bad = np.flatnonzero((d_t > 0.0) & ((v_peak - v_th) / safe_dt >= MAX_EXP_ARG))
    if bad.size:
        k = bad[0]
        raise ParameterError(
            f"aeif_cond_exp parameters V_peak, V_th and Delta_T must satisfy (V_peak - V_th) "
            f"/ Delta_T < {MAX_EXP_ARG:.1f} (else exp overflows at V_peak), got V_peak="
            f"{float(v_peak.flat[k])!r} mV, V_th={float(v_th.flat[k])!r} mV, Delta_T="
            f"{float(d_t.flat[k])!r} mV")
    return {
        "dt": np.full(np.shape(p["C_m"]), dt),
        "V_spike": np.where(d_t > 0.0, v_peak, v_th),
        "inv_C": 1.0 / p["C_m"],
        "inv_Delta_T": 1.0 / safe_dt,
        "k_ex": 1.0 / p["tau_syn_ex"],
        "k_in": 1.0 / p["tau_syn_in"],
        "k_w": 1.0 / p["tau_w"],
        "n_ref": refractory_steps(p["t_ref"], dt),
    }


@njit
def rhs(y, p, c):
    """Derivatives of (V_m, g_ex, g_in, w); ``c = (refractory, I_ext, spikes)``.
    V is capped at the detection potential; held at V_reset while refractory."""
    g_ex, g_in, w = y[1], y[2], y[3]
    refractory = c[0] != 0.0
    v = p.V_reset if refractory else min(y[0], p.V_spike)
    dv = 0.0
    if not refractory:
        i_spike = 0.0
        if p.Delta_T > 0.0:
            i_spike = p.g_L * p.Delta_T * math.exp((v - p.V_th) * p.inv_Delta_T)
        dv = (p.I_e + c[1] + i_spike - p.g_L * (v - p.E_L) - g_ex * (v - p.E_ex)
              - g_in * (v - p.E_in) - w) * p.inv_C
    return (dv, -g_ex * p.k_ex, -g_in * p.k_in, (p.a * (v - p.E_L) - w) * p.k_w)


@njit
def after(y, p, c):
    """Spike test after an accepted sub-step: reset V, w += b, refractory
    from now on when t_ref > 0; counts the spikes in c[2]."""
    if c[0] == 0.0 and y[0] >= p.V_spike:
        refractory = 1.0 if p.n_ref > 0.0 else 0.0
        return ((float(p.V_reset), y[1], y[2], y[3] + p.b), (refractory, c[1], c[2] + 1.0),
                True)
    return y, c, False


_integrate = make_integrator(rhs, 4, after)


def step(s, p, in_ex, in_in, i_ext, u):
    """Integrate over the step with the spike test inside it, then count
    the refractory period down and add this step's input."""
    r = s.r
    y = (float(s.V_m), float(s.g_ex), float(s.g_in), float(s.w))
    c = (1.0 if r > 0 else 0.0, float(i_ext), 0.0)
    y, c, h = _integrate(y, p, c, p.dt, float(s.h_ode), float(p.gsl_error_tol))
    spiked = c[2] > 0.0
    if spiked:
        r = p.n_ref
    elif r > 0:
        r -= 1
    return (y[0], y[1] + in_ex, y[2] - in_in, y[3], r, h), spiked


MODEL = NeuronModel(
    "aeif_cond_exp", PARAMETERS, STATE, RECEPTORS, step, derived,
    constraints=[("V_peak", ">=", "V_th"), ("V_reset", "<", "V_peak")], gpu_exact=False,
    doc="Adaptive exponential integrate-and-fire neuron with exponential synaptic "
        "conductances, adaptive Runge-Kutta integration with the spike test inside the "
        "step (NEST's aeif_cond_exp; Brette & Gerstner 2005, doi 10.1152/jn.00686.2005).")
