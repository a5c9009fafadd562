"""NEST's ``izhikevich``: the simple spiking neuron of Izhikevich (2003),
IEEE Trans. Neural Netw. 14:1569, doi 10.1109/TNN.2003.820440.

Units: V_m, U_m, c, d, V_th, V_min in mV, times in ms, I_e in pA. As in
NEST, currents enter the voltage equation directly (a membrane resistance
of 1, so 1 pA drives 1 mV/ms); ``a`` is a rate (1/ms), ``b`` dimensionless::

    dV/dt = 0.04 V^2 + 5 V + 140 - U + I_e + I_ext
    dU/dt = a (b V - U)
    V >= V_th: spike, V <- c, U <- U + d

Per step of length h (NEST 3.10's order, found and checked by running NEST
side by side; the tests in tests/test_discrete_models.py encode it):

1. ``consistent_integration`` = 1 (NEST's default, ``True``): one forward
   Euler step of both equations from the values at the start of the step;
   the summed weights w (mV) of the spikes arriving in this step are a
   voltage jump, added with the Euler increment (V + (h dV/dt + w), NEST's
   association).
   ``consistent_integration`` = 0 (``False``, the published scheme of
   Izhikevich 2003): V takes two Euler half steps of h / 2, then U one step
   of h from the new V. The spikes arriving in this step enter as a current
   held over the step (added to I_e in both half steps), so a weight w moves
   V by about w h mV, not w: in the published code h = 1 ms and the two
   coincide. NEST 3.10 does the same (its model documentation does not say
   so; NEST runs show it).
2. V is bounded below by ``V_min`` (NEST's default: the most negative
   double, i.e. no bound; -inf in float32 simulations).
3. V >= V_th emits a spike (stamped at the end of the step), V <- c,
   U <- U + d. There is no refractory period.

Weights are voltages (mV) in NEST's sign convention: >= 0 from excitatory
populations, <= 0 from inhibitory ones. Only +, - and * per step, in NEST's
operation order: in float64 the spikes equal NEST's to the step and V_m to
the last bit (1 s runs with DC steps and input spike trains, both schemes),
and CUDA results equal the CPU's. ``I_ext`` is brainsim's OU background
current (pA), added to I_e.
"""
import sys

import numpy as np

from .base import NeuronModel, Parameter, Receptor, StateVar

PARAMETERS = (
    Parameter("a", 0.02, "1/ms", "any", "time scale (rate) of the recovery variable"),
    Parameter("b", 0.2, "1", "any", "sensitivity of the recovery variable to V_m"),
    Parameter("c", -65.0, "mV", "any", "after-spike reset value of V_m"),
    Parameter("d", 8.0, "mV", "any", "after-spike increment of U_m"),
    Parameter("V_th", 30.0, "mV", "any", "spike threshold"),
    Parameter("V_min", -sys.float_info.max, "mV", "any",
              "lower bound of V_m (default: the most negative double, no bound)"),
    Parameter("I_e", 0.0, "pA", "any", "constant input current (1 pA drives 1 mV/ms)"),
    Parameter("consistent_integration", 1.0, "1", "{0, 1}",
              "1: standard forward Euler (NEST's True); 0: the published scheme (False)"),
    Parameter("V_m", -65.0, "mV", "any", "initial membrane potential"),
    Parameter("U_m", -13.0, "mV", "any", "initial recovery variable"),
)
STATE = (
    StateVar("V_m", "mV", "V_m", "membrane potential"),
    StateVar("U_m", "mV", "U_m", "recovery variable"),
)
RECEPTORS = {
    "E": Receptor("spike", "mV", +1, "jump of V_m of excitatory spikes (>= 0)"),
    "I": Receptor("spike", "mV", -1, "jump of V_m of inhibitory spikes (<= 0)"),
}


def derived(p, dt):
    """The step h, the half step h / 2 and h a (ms, ms, 1)."""
    shape = np.shape(p["a"])
    return {"h": np.full(shape, dt), "h_half": np.full(shape, 0.5 * dt), "h_a": dt * p["a"]}


def step(s, p, in_ex, in_in, i_ext, u):
    """Euler step (standard or published), input spikes, V_min, threshold."""
    v, w = s.V_m, s.U_m
    i_cur = p.I_e + i_ext
    jump = in_ex + in_in
    if p.consistent_integration != 0.0:
        v_new = v + (p.h * (0.04 * v * v + 5.0 * v + 140.0 - w + i_cur) + jump)
        w = w + p.h_a * (p.b * v - w)
        v = v_new
    else:
        i_cur = i_cur + jump
        v = v + p.h_half * (0.04 * v * v + 5.0 * v + 140.0 - w + i_cur)
        v = v + p.h_half * (0.04 * v * v + 5.0 * v + 140.0 - w + i_cur)
        w = w + p.h_a * (p.b * v - w)
    if v < p.V_min:
        v = p.V_min
    spiked = v >= p.V_th
    if spiked:
        v = p.c
        w = w + p.d
    return (v, w), spiked


MODEL = NeuronModel(
    "izhikevich", PARAMETERS, STATE, RECEPTORS, step, derived, gpu_exact=True,
    doc="Izhikevich's simple spiking neuron, forward Euler as in NEST (standard or the "
        "published half-step scheme); input spikes are voltage jumps (Izhikevich 2003, "
        "doi 10.1109/TNN.2003.820440).")
