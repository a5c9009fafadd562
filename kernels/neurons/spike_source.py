"""``spike_source``: a node that emits one spike at a given time.

``Network.add_spike_generator(name, spike_times)`` makes a population of
these, one node per spike time, so that connecting it to targets plays a
fixed spike train into them, as NEST's ``spike_generator`` does: a spike of
time stamp ``spike_time`` (ms, a multiple of dt, >= dt) reaches a target
with delay d in the step that ends at ``spike_time + d``. The node receives
no input (weights onto it have no effect).
"""
import numpy as np

from .base import NeuronModel, Parameter, Receptor, StateVar

PARAMETERS = (
    Parameter("spike_time", 1.0, "ms", "> 0", "time stamp of the spike (multiple of dt)"),
)
STATE = (
    StateVar("V_m", "mV", 0.0, "unused (0): a source has no membrane"),
    StateVar("steps", "1", 0.0, "steps simulated so far"),
)
RECEPTORS = {
    "E": Receptor("none", "1", +1, "inputs are ignored"),
    "I": Receptor("none", "1", +1, "inputs are ignored"),
}


def derived(p, dt):
    """The step in which the spike is emitted (stamped at its end)."""
    return {"emit_step": np.rint(p["spike_time"] / dt) - 1.0}


def step(s, p, in_ex, in_in, i_ext, u):
    spiked = s.steps == p.emit_step
    return (s.V_m, s.steps + 1.0), spiked


MODEL = NeuronModel("spike_source", PARAMETERS, STATE, RECEPTORS, step, derived,
                    doc="Emits one spike at spike_time (ms); Network.add_spike_generator "
                        "builds a population of these from a list of spike times.")
