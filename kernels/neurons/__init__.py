"""Neuron model descriptions (array-only): the description classes and the
built-in models, each in a file of its own. The registry that maps names to
models is ``brainsim.neurons``."""
from .base import (KINDS, UNITS, Allowed, NeuronModel, Parameter, Receptor, StateVar,  # noqa
                   code_hash, refractory_steps)
from . import iaf_psc_exp, lif_dtb, spike_source  # noqa: F401
from . import aeif_cond_exp, hh_psc_alpha, iaf_cond_exp  # noqa: F401
from . import gif_psc_exp, izhikevich  # noqa: F401

#: The models brainsim ships, in registration order.
BUILTIN = (iaf_psc_exp.MODEL, lif_dtb.MODEL, spike_source.MODEL,
           iaf_cond_exp.MODEL, aeif_cond_exp.MODEL, hh_psc_alpha.MODEL,
           izhikevich.MODEL, gif_psc_exp.MODEL)
