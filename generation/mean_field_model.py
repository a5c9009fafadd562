"""The population-level description of a network of iaf_psc_exp neurons
that the mean-field solver (``brainsim.analysis.meanfield``) reads: mean
in-degrees, weights and their second moments, external Poisson drive and
constant currents per population (:class:`PopulationModel`).

The generators produce it next to the networks they build
(``brainsim.generation.potjans_diesmann.population_model``,
``MultiAreaSpec.population_model``); ``meanfield.from_network`` counts it
from a built Network. It lives here, below the analysis layer, so that
generation never imports ``brainsim.analysis``.
"""
from dataclasses import dataclass, field

import numpy as np

from brainsim.errors import ParameterError
from brainsim.validation import finite_array

#: Neuron parameters a PopulationModel needs (iaf_psc_exp names, NEST units).
NEURON_KEYS = ("C_m", "tau_m", "tau_syn_ex", "tau_syn_in", "t_ref", "E_L", "V_th", "V_reset")


@dataclass(frozen=True)
class PopulationModel:
    """Populations of iaf_psc_exp neurons for the mean-field computation.

    Parameters
    ----------
    names : sequence of str, length P
    K : array (P, P)
        Mean in-degree [target, source] (synapses per target neuron).
    J : array (P, P), pA
        Mean PSC amplitude [target, source]; sources of ``kind`` "E" use the
        target's excitatory channel (``tau_syn_ex``), "I" the inhibitory one.
    kinds : sequence of {"E", "I"}, length P
    neuron : dict
        ``NEURON_KEYS`` (C_m pF, tau_m ms, tau_syn_ex ms, tau_syn_in ms,
        t_ref ms, E_L mV, V_th mV, V_reset mV): scalars or arrays (P,).
    J2 : array (P, P), pA^2, optional
        Second moment <w^2> of the weights (default J^2, fixed weights).
    ext_rate : array (P,), Hz
        Total rate of external Poisson events per neuron (in-degree x rate).
    ext_weight, ext_weight2 : array (P,), pA and pA^2
        Mean and second moment of the external weights; the sign of the
        mean picks the channel (>= 0 excitatory).
    I_e : array (P,), pA
        Constant current.
    """

    names: tuple
    K: np.ndarray
    J: np.ndarray
    kinds: tuple
    neuron: dict
    J2: np.ndarray = None
    ext_rate: np.ndarray = 0.0
    ext_weight: np.ndarray = 0.0
    ext_weight2: np.ndarray = None
    I_e: np.ndarray = 0.0
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        names = tuple(str(n) for n in self.names)
        p = len(names)
        if p == 0 or len(set(names)) != p:
            raise ParameterError(f"names must be {p} distinct population names, got {names!r}")
        kinds = tuple(self.kinds)
        if len(kinds) != p or not set(kinds) <= {"E", "I"}:
            raise ParameterError(f"kinds must be {p} values of 'E' or 'I', got {kinds!r}")
        set_ = object.__setattr__
        set_(self, "names", names)
        set_(self, "kinds", kinds)
        for name, shape in (("K", (p, p)), ("J", (p, p)), ("ext_rate", (p,)),
                            ("ext_weight", (p,)), ("I_e", (p,))):
            set_(self, name, finite_array(name, getattr(self, name), shape))
        j2 = self.J ** 2 if self.J2 is None else self.J2
        e2 = self.ext_weight ** 2 if self.ext_weight2 is None else self.ext_weight2
        set_(self, "J2", finite_array("J2", j2, (p, p)))
        set_(self, "ext_weight2", finite_array("ext_weight2", e2, (p,)))
        set_(self, "neuron", self._check_neuron(p))
        if np.any(self.K < 0) or np.any(self.ext_rate < 0):
            raise ParameterError("K and ext_rate must be >= 0")
        if np.any(self.J2 < self.J ** 2 * (1 - 1e-9)):
            raise ParameterError("J2 (second moment) must be >= J^2")

    def _check_neuron(self, p):
        missing = [k for k in NEURON_KEYS if k not in self.neuron]
        unknown = sorted(set(self.neuron) - set(NEURON_KEYS))
        if missing or unknown:
            raise ParameterError(f"neuron must give exactly {NEURON_KEYS}; missing {missing}, "
                                 f"unknown {unknown}")
        out = {k: finite_array(f"neuron[{k!r}]", self.neuron[k], (p,)) for k in NEURON_KEYS}
        for k in ("C_m", "tau_m", "tau_syn_ex", "tau_syn_in"):
            if np.any(out[k] <= 0):
                raise ParameterError(f"neuron[{k!r}] must be > 0, got {out[k].min()!r}")
        if np.any(out["V_reset"] >= out["V_th"]):
            raise ParameterError("neuron['V_reset'] must be < neuron['V_th']")
        return out

    def __len__(self):
        return len(self.names)
