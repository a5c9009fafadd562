"""The Digital Twin Brain leaky integrate-and-fire neuron (``lif_dtb``).

Lu et al., "Simulation and assimilation of the digital human brain", Nature
Computational Science 2024, doi 10.1038/s43588-024-00731-3.

Four conductance-like synaptic channels u in (AMPA, NMDA, GABA_A, GABA_B):
a dimensionless trace J_u decays with tau_u and is incremented by the weights
of arriving spikes (spikes of excitatory sources drive AMPA and NMDA, of
inhibitory sources GABA_A and GABA_B); the synaptic current is
``I_syn = sum_u g_u (E_u - V) J_u``. Per step of length dt (forward Euler,
as in DTB): refractory neurons are held at V_reset; others integrate
``C_m dV/dt = g_L (E_L - V) + I_syn + I_e + I_bg`` with I_syn from the traces
and V of the previous step; V >= V_th emits a spike and resets; then the
traces decay and take this step's input.

Units are NEST's: mV, ms, pF, nS, pA. DTB's own table is in nF, uS and nA
(C = 1, g_L = 0.03, ...); multiply its capacitances, conductances and
currents by 1000 to get these defaults (the dynamics are identical).
DTB's names are accepted as aliases (see ``ALIASES``).
"""
import numpy as np

from .base import NeuronModel, Parameter, Receptor, StateVar, refractory_steps

CHANNELS = ("AMPA", "NMDA", "GABA_A", "GABA_B")
_G = {"AMPA": 1000.0 * 5 / 275, "NMDA": 1000.0 * 5 / 4000, "GABA_A": 1000.0 * 3 / 30,
      "GABA_B": 1000.0 * 3 / 730}
_E = {"AMPA": 0.0, "NMDA": 0.0, "GABA_A": -70.0, "GABA_B": -100.0}
_TAU = {"AMPA": 2.0, "NMDA": 40.0, "GABA_A": 10.0, "GABA_B": 50.0}

PARAMETERS = (
    Parameter("C_m", 1000.0, "pF", "> 0", "membrane capacitance (DTB: C = 1 nF)"),
    Parameter("t_ref", 5.0, "ms", ">= 0", "refractory period (V held at V_reset)"),
    Parameter("g_L", 30.0, "nS", ">= 0", "leak conductance (DTB: 0.03 uS)"),
    Parameter("E_L", -75.0, "mV", "any", "leak reversal potential (DTB: V_L)"),
    Parameter("V_th", -50.0, "mV", "any", "spike threshold"),
    Parameter("V_reset", -65.0, "mV", "any", "reset potential"),
    *(Parameter(f"g_{ch}", _G[ch], "nS", ">= 0", f"{ch} conductance scale") for ch in CHANNELS),
    *(Parameter(f"E_{ch}", _E[ch], "mV", "any", f"{ch} reversal potential") for ch in CHANNELS),
    *(Parameter(f"tau_{ch}", _TAU[ch], "ms", "> 0", f"{ch} trace decay time")
      for ch in CHANNELS),
    Parameter("I_e", 0.0, "pA", "any", "constant input current (DTB: I_ext)"),
    Parameter("V_m", lambda p: 0.5 * (p["V_th"] + p["V_reset"]), "mV", "any",
              "initial membrane potential (default: (V_th + V_reset) / 2)"),
)
STATE = (
    StateVar("V_m", "mV", "V_m", "membrane potential"),
    *(StateVar(f"J_{ch}", "1", 0.0, f"{ch} trace") for ch in CHANNELS),
    StateVar("r", "1", 0.0, "remaining refractory steps"),
)
RECEPTORS = {
    "E": Receptor("AMPA+NMDA", "1", +1, "trace increment of AMPA and NMDA (>= 0)"),
    "I": Receptor("GABA_A+GABA_B", "1", +1, "trace increment of GABA_A and GABA_B (>= 0)"),
}
ALIASES = {"C": "C_m", "T_ref": "t_ref", "V_L": "E_L", "I_ext": "I_e",
           "V_AMPA": "E_AMPA", "V_NMDA": "E_NMDA", "V_GABA_A": "E_GABA_A", "V_GABA_B": "E_GABA_B"}


def derived(p, dt):
    """dt / C_m, the trace decay factors exp(-dt / tau_u) and the refractory steps."""
    out = {"dt_C": dt / p["C_m"]}
    for ch in CHANNELS:
        out["d_" + ch] = np.exp(-dt / p["tau_" + ch])
    out["n_ref"] = refractory_steps(p["t_ref"], dt)
    return out


def step(s, p, in_ex, in_in, i_ext, u):
    """Forward Euler of DTB: I_syn from V and J of the previous step; then
    threshold and reset; then the traces decay and take this step's input."""
    v, r = s.V_m, s.r
    i_syn = (p.g_AMPA * (p.E_AMPA - v) * s.J_AMPA + p.g_NMDA * (p.E_NMDA - v) * s.J_NMDA
             + p.g_GABA_A * (p.E_GABA_A - v) * s.J_GABA_A
             + p.g_GABA_B * (p.E_GABA_B - v) * s.J_GABA_B)
    if r > 0:
        r -= 1
        v = p.V_reset
    else:
        v = v + p.dt_C * (p.g_L * (p.E_L - v) + i_syn + p.I_e + i_ext)
    spiked = v >= p.V_th
    if spiked:
        r = p.n_ref
        v = p.V_reset
    ja = s.J_AMPA * p.d_AMPA + in_ex
    jn = s.J_NMDA * p.d_NMDA + in_ex
    jga = s.J_GABA_A * p.d_GABA_A + in_in
    jgb = s.J_GABA_B * p.d_GABA_B + in_in
    return (v, ja, jn, jga, jgb, r), spiked


MODEL = NeuronModel(
    "lif_dtb", PARAMETERS, STATE, RECEPTORS, step, derived,
    constraints=[("V_reset", "<", "V_th")], aliases=ALIASES,
    doc="The Digital Twin Brain LIF neuron with AMPA, NMDA, GABA_A and GABA_B traces, "
        "forward Euler (Lu et al. 2024, doi 10.1038/s43588-024-00731-3).")
