"""NEST's ``hh_psc_alpha``: the Hodgkin-Huxley neuron (Hodgkin & Huxley 1952,
J. Physiol. 117:500, doi 10.1113/jphysiol.1952.sp004764; rates as in
Gerstner & Kistler 2002 and Dayan & Abbott 2001, shifted to a resting
potential near -65 mV) with alpha-shaped synaptic currents.

Units: V in mV, conductances in nS, currents in pA, C_m in pF, times in ms,
rates in 1/ms; the gating variables m, h, n are dimensionless.

Dynamics::

    C_m dV/dt = -g_Na m^3 h (V - E_Na) - g_K n^4 (V - E_K) - g_L (V - E_L)
                + I_syn_ex + I_syn_in + I_e + I_ext
    dx/dt = alpha_x(V) (1 - x) - beta_x(V) x          for x in m, h, n
    alpha_m = 0.1 (V + 40) / (1 - exp(-(V + 40) / 10)),  beta_m = 4 exp(-(V + 65) / 18)
    alpha_h = 0.07 exp(-(V + 65) / 20),                  beta_h = 1 / (1 + exp(-(V + 35) / 10))
    alpha_n = 0.01 (V + 55) / (1 - exp(-(V + 55) / 10)), beta_n = 0.125 exp(-(V + 65) / 80)
    dI_syn/dt = dI_syn' - I_syn / tau_syn,  d(dI_syn')/dt = -dI_syn' / tau_syn

(the removable singularities of alpha_m and alpha_n at -40 and -55 mV are
evaluated through expm1). A spike of weight w (pA) adds w e / tau_syn to
dI_syn', an alpha current of peak w at tau_syn after its arrival; excitatory
weights are >= 0, inhibitory ones <= 0 (NEST's convention: a negative
current).

Per step (NEST 3.10's order): the state is integrated over the step by the
adaptive Dormand-Prince 5(4) integrator of ``ode.py`` (NEST: GSL's RKF45);
then the spikes arriving in this step are added; then a refractory neuron
counts one refractory step down, and a free one spikes when V >= 0 mV and V
fell during the step (V at its start above V at its end: the maximum of the
action potential has passed), after which it cannot spike for round(t_ref /
dt) steps. There is no reset and no clamping: refractoriness only blocks the
detection. A spike is stamped at the end of the step.

Initial values: V_m = -65 mV and m, h, n at their steady state for -65 mV
(NEST's defaults; not recomputed when V_m is changed).

Integration tolerance: ``TOL`` = 1e-6 (absolute in mV, pA and the gating
variables' unit for values below 1, relative above; see ``ode.py``); NEST
uses an absolute error of 1e-3 per component. With it, V_m agrees with a
tight (1e-10) SciPy solution within 5e-3 mV (measured: 3e-4 mV over 0.2 s,
9e-4 mV over 1 s; NEST's own V_m differs from it by up to 0.045 mV around
action potentials) and spike times to the step (tests/test_ode_models.py);
spike times under DC steps and under input spikes fall in the same steps as
NEST 3.10's (benchmarks/peers/ode_models_vs_nest.py).
"""
import math

import numpy as np
from numba import njit

from .base import NeuronModel, Parameter, Receptor, StateVar, refractory_steps
from .ode import make_integrator

#: Tolerance of the adaptive integrator (see the module docstring).
TOL = 1e-6


@njit
def _x_over_expm1(x):
    """x / (1 - exp(-x)), 1 at x = 0."""
    if x == 0.0:
        return 1.0
    return x / -math.expm1(-x)


@njit
def rates(v):
    """(alpha_m, beta_m, alpha_h, beta_h, alpha_n, beta_n) in 1/ms at V (mV)."""
    return (_x_over_expm1((v + 40.0) / 10.0), 4.0 * math.exp(-(v + 65.0) / 18.0),
            0.07 * math.exp(-(v + 65.0) / 20.0), 1.0 / (1.0 + math.exp(-(v + 35.0) / 10.0)),
            0.1 * _x_over_expm1((v + 55.0) / 10.0), 0.125 * math.exp(-(v + 65.0) / 80.0))


def steady_state(v):
    """(m, h, n) at their steady state alpha / (alpha + beta) for V (mV)."""
    a_m, b_m, a_h, b_h, a_n, b_n = rates.py_func(float(v))
    return a_m / (a_m + b_m), a_h / (a_h + b_h), a_n / (a_n + b_n)


_M0, _H0, _N0 = steady_state(-65.0)

PARAMETERS = (
    Parameter("t_ref", 2.0, "ms", ">= 0", "refractory period (spike detection blocked)"),
    Parameter("g_Na", 12000.0, "nS", ">= 0", "sodium peak conductance"),
    Parameter("g_K", 3600.0, "nS", ">= 0", "potassium peak conductance"),
    Parameter("g_L", 30.0, "nS", ">= 0", "leak conductance"),
    Parameter("C_m", 100.0, "pF", "> 0", "membrane capacitance"),
    Parameter("E_Na", 50.0, "mV", "any", "sodium reversal potential"),
    Parameter("E_K", -77.0, "mV", "any", "potassium reversal potential"),
    Parameter("E_L", -54.402, "mV", "any", "leak reversal potential"),
    Parameter("tau_syn_ex", 0.2, "ms", "> 0", "rise time of the excitatory alpha current"),
    Parameter("tau_syn_in", 2.0, "ms", "> 0", "rise time of the inhibitory alpha current"),
    Parameter("I_e", 0.0, "pA", "any", "constant input current"),
    Parameter("V_m", -65.0, "mV", "any", "initial membrane potential"),
    Parameter("Act_m", _M0, "1", ">= 0", "initial sodium activation m (default: steady "
              "state at -65 mV)"),
    Parameter("Inact_h", _H0, "1", ">= 0", "initial sodium inactivation h (default: steady "
              "state at -65 mV)"),
    Parameter("Act_n", _N0, "1", ">= 0", "initial potassium activation n (default: steady "
              "state at -65 mV)"),
)
STATE = (
    StateVar("V_m", "mV", "V_m", "membrane potential"),
    StateVar("Act_m", "1", "Act_m", "sodium activation m"),
    StateVar("Inact_h", "1", "Inact_h", "sodium inactivation h"),
    StateVar("Act_n", "1", "Act_n", "potassium activation n"),
    StateVar("dI_syn_ex", "pA/ms", 0.0, "derivative variable of the excitatory alpha current"),
    StateVar("I_syn_ex", "pA", 0.0, "excitatory synaptic current"),
    StateVar("dI_syn_in", "pA/ms", 0.0, "derivative variable of the inhibitory alpha current"),
    StateVar("I_syn_in", "pA", 0.0, "inhibitory synaptic current (<= 0)"),
    StateVar("r", "1", 0.0, "remaining refractory steps"),
    StateVar("h_ode", "ms", lambda p, dt: np.full(np.size(p["V_m"]), dt),
             "sub-step size the integrator starts the next step with"),
)
RECEPTORS = {
    "E": Receptor("ex", "pA", +1, "peak current of excitatory synapses (>= 0)"),
    "I": Receptor("in", "pA", -1, "peak current of inhibitory synapses (<= 0)"),
}


def derived(p, dt):
    """Step length, 1 / C_m, 1 / tau_syn, the jump of dI_syn' per pA of
    weight (e / tau_syn, for a peak of 1 pA) and the refractory steps."""
    return {
        "dt": np.full(np.shape(p["C_m"]), dt),
        "inv_C": 1.0 / p["C_m"],
        "k_ex": 1.0 / p["tau_syn_ex"],
        "k_in": 1.0 / p["tau_syn_in"],
        "psc_ex": math.e / p["tau_syn_ex"],
        "psc_in": math.e / p["tau_syn_in"],
        "n_ref": refractory_steps(p["t_ref"], dt),
    }


@njit
def rhs(y, p, c):
    """Derivatives of (V_m, m, h, n, dI_ex, I_ex, dI_in, I_in); ``c = (I_ext,)``."""
    v, m, h, n, di_ex, i_ex, di_in, i_in = y
    a_m, b_m, a_h, b_h, a_n, b_n = rates(v)
    n2 = n * n
    i_ion = (p.g_Na * m * m * m * h * (v - p.E_Na) + p.g_K * n2 * n2 * (v - p.E_K)
             + p.g_L * (v - p.E_L))
    dv = (p.I_e + c[0] + i_ex + i_in - i_ion) * p.inv_C
    return (dv, a_m * (1.0 - m) - b_m * m, a_h * (1.0 - h) - b_h * h, a_n * (1.0 - n) - b_n * n,
            -di_ex * p.k_ex, di_ex - i_ex * p.k_ex, -di_in * p.k_in, di_in - i_in * p.k_in)


_integrate = make_integrator(rhs, 8)


def step(s, p, in_ex, in_in, i_ext, u):
    """Integrate over the step, add this step's input, then refractory
    count-down or detection of a maximum above 0 mV."""
    y = (float(s.V_m), float(s.Act_m), float(s.Inact_h), float(s.Act_n), float(s.dI_syn_ex),
         float(s.I_syn_ex), float(s.dI_syn_in), float(s.I_syn_in))
    y, c, h = _integrate(y, p, (float(i_ext),), p.dt, float(s.h_ode), TOL)
    v = y[0]
    r = s.r
    spiked = False
    if r > 0:
        r -= 1
    elif v >= 0.0 and s.V_m > v:
        spiked = True
        r = p.n_ref
    return (v, y[1], y[2], y[3], y[4] + in_ex * p.psc_ex, y[5], y[6] + in_in * p.psc_in, y[7],
            r, h), spiked


MODEL = NeuronModel(
    "hh_psc_alpha", PARAMETERS, STATE, RECEPTORS, step, derived, gpu_exact=False,
    doc="Hodgkin-Huxley neuron with alpha-shaped synaptic currents, adaptive Runge-Kutta "
        "integration, spike at a maximum of V above 0 mV (NEST's hh_psc_alpha; Hodgkin & "
        "Huxley 1952, doi 10.1113/jphysiol.1952.sp004764).")
