"""Mean-field (Siegert) rates of networks of iaf_psc_exp populations.

In the diffusion approximation a leaky integrate-and-fire neuron receiving
many small, independent Poisson inputs has a free membrane potential with
mean ``mu`` and white-noise amplitude ``sigma`` (mV); its stationary rate is
the Siegert formula (Siegert 1951; Amit & Brunel 1997, Cereb. Cortex 7:237,
doi 10.1093/cercor/7.3.237)

    1 / nu = t_ref + tau_m sqrt(pi) int_{y_r}^{y_th} exp(u^2) (1 + erf u) du,
    y_th = (V_th - mu) / sigma + a,   y_r = (V_reset - mu) / sigma + a,

where exponential synaptic currents (time constant tau_s) shift both bounds
by ``a = sqrt(tau_s / tau_m) |zeta(1/2)| / sqrt(2)`` (Fourcaud & Brunel 2002,
Neural Comput. 14:2057, doi 10.1162/089976602320264015; ``a = 0`` is the
plain Siegert formula). For a network of populations, ``mu`` and ``sigma``
follow from the rates, in-degrees and weights,

    mu_i = E_L + tau_m / C_m (I_e + sum_j K_ij nu_j w_ij tau_s),
    sigma_i^2 = tau_m sum_j K_ij nu_j <w_ij^2> (tau_s / C_m)^2,

(weights ``w`` are PSC amplitudes in pA, rates in Hz converted to 1/ms),
and the stationary rates are the fixed point nu = Phi(nu), found here by a
damped iteration polished with ``scipy.optimize.root``.

A model comes from explicit matrices (:class:`PopulationModel`), from a
Network (:func:`from_network`), from the Potjans-Diesmann microcircuit
(:func:`from_microcircuit`) or from a multi-area specification
(``brainsim.generation.multi_area_spec.population_model``).
``PopulationModel`` is defined in ``brainsim.generation.mean_field_model``
(generation produces it, so it sits below this module).
"""

import numpy as np

from ..errors import ParameterError
from ..generation import siegert as _siegert
from ..generation.mean_field_model import NEURON_KEYS, PopulationModel
from ..generation.siegert import (  # noqa: F401 -- re-exported, the public solver API
    FB_SHIFT, ZETA_HALF, erfcx_integral, input_moments, siegert, siegert_integral, transfer)
from ..generation.potjans_diesmann import population_model as _microcircuit_model
from ..network import Network


def fixed_point(model, initial=None, tol=1e-6, damping=0.1, max_iter=2000):
    """Self-consistent stationary rates nu = Phi(nu) of a population network
    (a PopulationModel, a Network or a multi-area specification; see
    :func:`as_model`); the solver is
    :func:`brainsim.generation.siegert.fixed_point`, whose docstring gives
    the parameters and the returned DataArray."""
    return _siegert.fixed_point(as_model(model), initial=initial, tol=tol, damping=damping,
                                max_iter=max_iter)


def as_model(source, **kwargs):
    """A PopulationModel from ``source``: a PopulationModel (returned as is),
    a Network (:func:`from_network`) or an object with a
    ``population_model(**kwargs)`` method (a multi-area specification)."""
    if isinstance(source, PopulationModel):
        return source
    if isinstance(source, Network):
        return from_network(source)
    if hasattr(source, "population_model"):
        return source.population_model(**kwargs)
    raise ParameterError(f"mean-field source must be a PopulationModel, a Network or a "
                         f"multi-area specification, got {type(source).__name__}")


# ------------------------------------------------------------- from a Network
def _pair_moments(net, n_pops, pop_of):
    """Synapse count, sum of weights and of squared weights per (target,
    source), accumulated partition by partition (memory: one partition)."""
    size = n_pops * n_pops
    out = [np.zeros(size) for _ in range(3)]
    syn = net.synapses
    for k, part in enumerate(net.partitions):
        src = np.repeat(part.sources, np.diff(part.indptr))
        key = pop_of[syn.targets_of(k)].astype(np.int64) * n_pops + pop_of[src]
        w = syn.weights_of(k).astype(np.float64)
        for acc, x in zip(out, (None, w, w * w)):
            acc += np.bincount(key, weights=x, minlength=size)
    return [x.reshape(n_pops, n_pops) for x in out]


def _per_pop_mean(values, pop_of, sizes):
    return np.bincount(pop_of, weights=values, minlength=sizes.size) / sizes


def from_network(net):
    """The PopulationModel of a Network of iaf_psc_exp populations.

    The network is built if needed (as Simulation does). In-degrees and
    weight moments are counted from its synapses; Poisson inputs (rate x
    in-degree per neuron), constant currents and per-neuron parameters are
    averaged over each population. Delays do not enter stationary rates.
    """
    pops = list(net.populations.values())
    bad = [p.name for p in pops if p.model != "iaf_psc_exp"]
    if bad:
        raise ParameterError(f"mean field supports iaf_psc_exp only; populations {bad} use "
                             f"another model")
    if "ou_on" in net.inputs and np.any(net.inputs["ou_on"] > 0):
        raise ParameterError("mean field does not support Ornstein-Uhlenbeck input "
                             "(add_ou); use Poisson or DC input")
    net.build()
    pop_of = net.pop_index()
    sizes = np.array([p.n for p in pops], float)
    count, sum_w, sum_w2 = _pair_moments(net, len(pops), pop_of)
    with np.errstate(invalid="ignore", divide="ignore"):
        J = np.where(count > 0, sum_w / count, 0.0)
        J2 = np.where(count > 0, sum_w2 / count, 0.0)
    lam = net.inputs.get("poisson_rate", np.zeros(net.n_neurons))
    w = net.inputs.get("poisson_weight", np.zeros(net.n_neurons))
    ext_rate = _per_pop_mean(lam, pop_of, sizes)
    with np.errstate(invalid="ignore", divide="ignore"):
        ext_w = np.nan_to_num(_per_pop_mean(lam * w, pop_of, sizes) / ext_rate)
        ext_w2 = np.nan_to_num(_per_pop_mean(lam * w * w, pop_of, sizes) / ext_rate)
    neuron = {k: _per_pop_mean(net.neuron_param(k), pop_of, sizes) for k in NEURON_KEYS}
    return PopulationModel(names=[p.name for p in pops], K=count / sizes[:, None], J=J,
                           J2=J2, kinds=[p.kind for p in pops], neuron=neuron,
                           ext_rate=ext_rate, ext_weight=ext_w, ext_weight2=ext_w2,
                           I_e=_per_pop_mean(net.neuron_param("I_e"), pop_of, sizes),
                           meta={"source": "network", **net.meta})


# ------------------------------------------------------ the PD14 microcircuit
def from_microcircuit(scale=1.0, k_scale=None, input="poisson"):
    """The PopulationModel of the Potjans-Diesmann microcircuit, computed from
    its definition without building it; see
    ``brainsim.generation.potjans_diesmann.population_model``.

    Parameters
    ----------
    scale, k_scale : float in (0, 1]
        Neuron and in-degree scaling as in ``microcircuit`` (default k_scale
        = scale): in-degrees x k_scale, weights / sqrt(k_scale) and the DC
        compensation computed from the full-scale reference rates.
    input : {"poisson", "dc"}
        External drive: K_ext x 8 Hz Poisson events of 87.81 pA, or its mean.
    """
    return _microcircuit_model(scale, k_scale, input)
