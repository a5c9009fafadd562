"""A neuron model defined outside the package, as a user would: registered
on import, simulated by the tests on every backend and checked against its
own slow reference (``reference.qif_step``).

Quadratic integrate-and-fire neuron with exponential synaptic currents,
forward Euler (Latham et al. 2000, doi 10.1152/jn.2000.83.2.808; the
normal form of a saddle-node neuron):

    C_m dV/dt = k (V - V_r)(V - V_t) + I_syn_ex + I_syn_in + I_e + I_ext
    V >= V_peak: spike, V <- V_reset

Synaptic currents decay with tau_syn and take the weights of arriving
spikes (pA, inhibitory weights negative) after the membrane update, as in
iaf_psc_exp. Only +, -, * per step: CPU and CUDA agree bit for bit.
"""
import numpy as np

from brainsim.neurons import Parameter, Receptor, StateVar, neuron_model

NAME = "qif_psc_exp_user"


@neuron_model(
    NAME,
    parameters=[
        Parameter("C_m", 100.0, "pF", "> 0", "membrane capacitance"),
        Parameter("k", 0.7, "nS/mV", "> 0", "curvature of the membrane current"),
        Parameter("V_r", -60.0, "mV", "any", "resting potential"),
        Parameter("V_t", -40.0, "mV", "any", "instantaneous threshold"),
        Parameter("V_peak", 30.0, "mV", "any", "spike cut-off"),
        Parameter("V_reset", -65.0, "mV", "any", "reset potential"),
        Parameter("tau_syn", 3.0, "ms", "> 0", "synaptic decay time"),
        Parameter("I_e", 0.0, "pA", "any", "constant current"),
        Parameter("V_m", -60.0, "mV", "any", "initial membrane potential"),
    ],
    state=[StateVar("V_m", "mV", "V_m"), StateVar("I_syn_ex", "pA"),
           StateVar("I_syn_in", "pA")],
    receptors={"E": Receptor("ex", "pA", +1), "I": Receptor("in", "pA", -1)},
    derived=lambda p, dt: {"h_C": dt / p["C_m"], "decay": np.exp(-dt / p["tau_syn"])},
    constraints=[("V_reset", "<", "V_peak"), ("V_r", "<", "V_t")],
    gpu_exact=True)
def qif_step(s, p, in_ex, in_in, i_ext, u):
    """Forward Euler of the QIF membrane with the currents of the previous
    step, the spike test, then the currents decay and take this step's input."""
    v = s.V_m
    drive = p.k * (v - p.V_r) * (v - p.V_t) + s.I_syn_ex + s.I_syn_in + p.I_e + i_ext
    v = v + p.h_C * drive
    spiked = v >= p.V_peak
    if spiked:
        v = p.V_reset
    return (v, s.I_syn_ex * p.decay + in_ex, s.I_syn_in * p.decay + in_in), spiked


MODEL = qif_step
