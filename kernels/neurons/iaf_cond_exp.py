"""NEST's ``iaf_cond_exp``: leaky integrate-and-fire neuron with a hard
threshold, a fixed refractory period and exponentially decaying synaptic
conductances (Meffin, Burkitt & Grayden 2004, J. Comput. Neurosci. 16:159,
doi 10.1023/B:JCNS.0000014108.03012.81).

Units: V in mV, conductances in nS, currents in pA, C_m in pF, times in ms.

Dynamics::

    C_m dV/dt = -g_L (V - E_L) - g_ex (V - E_ex) - g_in (V - E_in) + I_e + I_ext
    dg_ex/dt = -g_ex / tau_syn_ex,    dg_in/dt = -g_in / tau_syn_in

Per step (NEST 3.10's order): V, g_ex and g_in are integrated over the step
by the adaptive Dormand-Prince 5(4) integrator of ``ode.py`` (NEST: GSL's
RKF45), V held at V_reset while refractory; then a refractory neuron counts
one refractory step down, a free one with V >= V_th spikes (stamped at the
end of the step), is reset to V_reset and is refractory for round(t_ref / dt)
steps; then the spikes arriving in this step are added to the conductances.
A spike of weight w (nS) is a jump of w in the peak conductance: excitatory
weights are >= 0; inhibitory ones are <= 0 (NEST's sign convention) and
enter g_in as |w|.

Integration tolerance: ``TOL`` = 1e-6 (absolute in mV and nS for values
below 1, relative above; see ``ode.py``); NEST uses an absolute error of
1e-3 per component. With it, V_m agrees with a tight (1e-10) SciPy solution
within 1e-5 mV and spike times to the step (tests/test_ode_models.py), and
with NEST 3.10 to the step (benchmarks/peers/ode_models_vs_nest.py).
"""
import numpy as np
from numba import njit

from .base import NeuronModel, Parameter, Receptor, StateVar, refractory_steps
from .ode import make_integrator

#: Tolerance of the adaptive integrator (see the module docstring).
TOL = 1e-6

PARAMETERS = (
    Parameter("V_th", -55.0, "mV", "any", "spike threshold"),
    Parameter("V_reset", -60.0, "mV", "any", "reset potential (V_m clamped to it while "
              "refractory)"),
    Parameter("t_ref", 2.0, "ms", ">= 0", "refractory period"),
    Parameter("g_L", 16.6667, "nS", ">= 0", "leak conductance"),
    Parameter("C_m", 250.0, "pF", "> 0", "membrane capacitance"),
    Parameter("E_ex", 0.0, "mV", "any", "excitatory reversal potential"),
    Parameter("E_in", -85.0, "mV", "any", "inhibitory reversal potential"),
    Parameter("E_L", -70.0, "mV", "any", "leak reversal potential"),
    Parameter("tau_syn_ex", 0.2, "ms", "> 0", "decay time of the excitatory conductance"),
    Parameter("tau_syn_in", 2.0, "ms", "> 0", "decay time of the inhibitory conductance"),
    Parameter("I_e", 0.0, "pA", "any", "constant input current"),
    Parameter("V_m", -70.0, "mV", "any", "initial membrane potential"),
)
STATE = (
    StateVar("V_m", "mV", "V_m", "membrane potential"),
    StateVar("g_ex", "nS", 0.0, "excitatory synaptic conductance"),
    StateVar("g_in", "nS", 0.0, "inhibitory synaptic conductance (>= 0)"),
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
    """Step length, 1 / C_m, the decay rates and the refractory steps."""
    return {
        "dt": np.full(np.shape(p["C_m"]), dt),
        "inv_C": 1.0 / p["C_m"],
        "k_ex": 1.0 / p["tau_syn_ex"],
        "k_in": 1.0 / p["tau_syn_in"],
        "n_ref": refractory_steps(p["t_ref"], dt),
    }


@njit
def rhs(y, p, c):
    """Derivatives of (V_m, g_ex, g_in); ``c = (refractory, I_ext)``."""
    v, g_ex, g_in = y
    dv = 0.0
    if c[0] == 0.0:
        dv = (p.I_e + c[1] - p.g_L * (v - p.E_L) - g_ex * (v - p.E_ex)
              - g_in * (v - p.E_in)) * p.inv_C
    return (dv, -g_ex * p.k_ex, -g_in * p.k_in)


_integrate = make_integrator(rhs, 3)


def step(s, p, in_ex, in_in, i_ext, u):
    """Integrate over the step (V held while refractory), then refractory
    count-down or threshold and reset, then this step's input."""
    r = s.r
    y = (float(s.V_m), float(s.g_ex), float(s.g_in))
    c = (1.0 if r > 0 else 0.0, float(i_ext))
    y, c, h = _integrate(y, p, c, p.dt, float(s.h_ode), TOL)
    v = y[0]
    spiked = False
    if r > 0:
        r -= 1
        v = p.V_reset
    elif v >= p.V_th:
        spiked = True
        r = p.n_ref
        v = p.V_reset
    return (v, y[1] + in_ex, y[2] - in_in, r, h), spiked


MODEL = NeuronModel(
    "iaf_cond_exp", PARAMETERS, STATE, RECEPTORS, step, derived,
    constraints=[("V_reset", "<", "V_th")], gpu_exact=False,
    doc="Leaky integrate-and-fire neuron with exponential synaptic conductances, adaptive "
        "Runge-Kutta integration (NEST's iaf_cond_exp; Meffin et al. 2004, "
        "doi 10.1023/B:JCNS.0000014108.03012.81).")
