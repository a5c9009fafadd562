"""Neuron model descriptions (array-only): the description classes and the
built-in models, each in a file of its own. The registry that maps names to
models is ``brainsim.neurons``."""
from .base import (KINDS, UNITS, Allowed, NeuronModel, Parameter, Receptor, StateVar,  # noqa
                   code_hash, refractory_steps)
from . import iaf_psc_exp, lif_dtb, spike_source  # noqa: F401

#: The models brainsim ships, in registration order.
BUILTIN = (iaf_psc_exp.MODEL, lif_dtb.MODEL, spike_source.MODEL)
