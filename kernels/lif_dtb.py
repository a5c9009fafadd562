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
from numba import njit

DEFAULTS = {
    "C_m": 1000.0,  # pF   (DTB: C = 1 nF)
    "t_ref": 5.0,  # ms
    "g_L": 30.0,  # nS   (DTB: 0.03 uS)
    "E_L": -75.0,  # mV
    "V_th": -50.0,  # mV
    "V_reset": -65.0,  # mV
    "g_AMPA": 1000.0 * 5 / 275,  # nS
    "g_NMDA": 1000.0 * 5 / 4000,  # nS
    "g_GABA_A": 1000.0 * 3 / 30,  # nS
    "g_GABA_B": 1000.0 * 3 / 730,  # nS
    "E_AMPA": 0.0,  # mV
    "E_NMDA": 0.0,  # mV
    "E_GABA_A": -70.0,  # mV
    "E_GABA_B": -100.0,  # mV
    "tau_AMPA": 2.0,  # ms
    "tau_NMDA": 40.0,  # ms
    "tau_GABA_A": 10.0,  # ms
    "tau_GABA_B": 50.0,  # ms
    "I_e": 0.0,  # pA   (DTB: I_ext)
    "V_m": -57.5,  # mV, initial: (V_th + V_reset) / 2
}
UNITS = {k: ("pF" if k == "C_m" else "ms" if k.startswith(("t_", "tau")) else
             "nS" if k.startswith("g_") else "pA" if k == "I_e" else "mV") for k in DEFAULTS}
ALIASES = {"C": "C_m", "T_ref": "t_ref", "V_L": "E_L", "I_ext": "I_e",
           "V_AMPA": "E_AMPA", "V_NMDA": "E_NMDA", "V_GABA_A": "E_GABA_A", "V_GABA_B": "E_GABA_B"}
SYN_STATE = ("J_AMPA", "J_NMDA", "J_GABA_A", "J_GABA_B")
SYN_UNITS = ("1", "1", "1", "1")
WEIGHT_UNIT = "1"
CHANNELS = ("AMPA", "NMDA", "GABA_A", "GABA_B")

DT_C, G_L, E_L, V_TH, V_RESET, I_E = range(6)
G_A, G_N, G_GA, G_GB = range(6, 10)
E_A, E_N, E_GA, E_GB = range(10, 14)
D_A, D_N, D_GA, D_GB = range(14, 18)
N_DERIVED = 18


def validate(p):
    """Return a list of (name, value, allowed) for values out of range."""
    bad = []
    for name in ("C_m", "tau_AMPA", "tau_NMDA", "tau_GABA_A", "tau_GABA_B"):
        if not np.all(np.asarray(p[name]) > 0):
            bad.append((name, p[name], "> 0"))
    for name in ("t_ref", "g_L", "g_AMPA", "g_NMDA", "g_GABA_A", "g_GABA_B"):
        if not np.all(np.asarray(p[name]) >= 0):
            bad.append((name, p[name], ">= 0"))
    if not np.all(np.asarray(p["V_reset"]) < np.asarray(p["V_th"])):
        bad.append(("V_reset", p["V_reset"], f"< V_th ({p['V_th']!r} mV)"))
    return bad


def derived(p, dt):
    """Per-neuron table (n, N_DERIVED): dt/C, conductances, reversal
    potentials and trace decay factors exp(-dt/tau_u)."""
    n = max(np.size(v) for v in p.values())
    col = {k: np.broadcast_to(np.asarray(v, float), (n,)) for k, v in p.items()}
    d = np.empty((n, N_DERIVED))
    d[:, DT_C] = dt / col["C_m"]
    d[:, G_L] = col["g_L"]
    d[:, E_L] = col["E_L"]
    d[:, V_TH] = col["V_th"]
    d[:, V_RESET] = col["V_reset"]
    d[:, I_E] = col["I_e"]
    for j, ch in enumerate(CHANNELS):
        d[:, G_A + j] = col["g_" + ch]
        d[:, E_A + j] = col["E_" + ch]
        d[:, D_A + j] = np.exp(-dt / col["tau_" + ch])
    return d


@njit(inline="always")
def update(v, ja, jn, jga, jgb, ref, in_e, in_i, i_cur, q, ref_steps):
    """One step of one neuron.

    v (mV); ja, jn, jga, jgb (traces, dimensionless); ref (remaining
    refractory steps); in_e, in_i (summed weights of excitatory / inhibitory
    spikes arriving this step); i_cur (pA, extra current such as the OU
    background); q (row of the derived table).
    Returns (v, ja, jn, jga, jgb, ref, spiked).
    """
    i_syn = (q[G_A] * (q[E_A] - v) * ja + q[G_N] * (q[E_N] - v) * jn
             + q[G_GA] * (q[E_GA] - v) * jga + q[G_GB] * (q[E_GB] - v) * jgb)
    if ref > 0:
        ref -= 1
        v = q[V_RESET]
    else:
        v = v + q[DT_C] * (q[G_L] * (q[E_L] - v) + i_syn + q[I_E] + i_cur)
    spiked = v >= q[V_TH]
    if spiked:
        ref = ref_steps
        v = q[V_RESET]
    ja = ja * q[D_A] + in_e
    jn = jn * q[D_N] + in_e
    jga = jga * q[D_GA] + in_i
    jgb = jgb * q[D_GB] + in_i
    return v, ja, jn, jga, jgb, ref, spiked
