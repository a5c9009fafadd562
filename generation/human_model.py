"""The human multi-area model of Pronold et al. (2024), built from its raw tables.

34 Desikan-Killiany areas of the right hemisphere, each 1 mm^2 of cortex at
full scale with layers II/III, IV, V and VI of one E and one I population
(272 populations, 254 non-empty; 3,468,839 neurons, 4.28e10 internal
synapses with the default parameters). Pronold J, van Meegen A, Shimoura
RO, Vollenbroeker H, Senden M, Hilgetag CC, Bakker R, van Albada SJ (2024),
Cereb. Cortex, doi 10.1093/cercor/bhae409. The neuron and synapse numbers
come from :func:`brainsim.generation.human_multi_area_tables.construct`
(brainsim's implementation of the published construction from the raw
data, which ship as package data with their attributions in
``generation/data/human_multi_area/README.md``); this module adds the
published dynamics (reference/multi_area.md):

- iaf_psc_exp: C_m 220 pF (E) / 100 pF (I), tau_m 10 ms, tau_syn_ex =
  tau_syn_in = 2 ms, E_L = V_reset = -70 mV, V_th -45 mV, t_ref 2 ms; initial
  V_m ~ N(-150, 50) mV; dt 0.1 ms;
- weights: the PSC of a 0.1 mV PSP in the target (E <- E 16.4488, I <- E
  7.4767 pA), g = -5 from I sources, 4E -> 23E doubled; cortico-cortical
  E -> E x chi_E, E -> I x chi_I; normal with sd 0.1 x |mean|, clipped at 0;
- external drive: Poisson sources (the type II synapses) with the weight of
  the 0.1 mV PSP (x 1.05 onto 5E, x 1.15 onto 6E) at the rate that gives a
  mean drive of eta_ext x (V_th - E_L) (eta_ext 1.1);
- delays: 1.5 ms (E) / 0.75 ms (I) inside an area, fibre length / 3.5 mm/ms
  between areas; lognormal with sd 0.5 x mean, clipped at dt;
- fixed total number of synapses per projection (multapses and autapses).

Down-scaling follows the Potjans-Diesmann / Schmidt et al. recipe (synapse
numbers x scale x k_scale, weights / sqrt(k_scale), a DC current restoring
every population's mean input at the full-scale rates), which keeps the mean
and variance of each population's input; the published notebook instead
scales synapses by scale^2 and weights by 1 / scale (documented in
docs/multi_area.md).
"""
import functools
import importlib.resources

import numpy as np

from brainsim.errors import ParameterError
from brainsim.validation import number

from .human_multi_area_tables import construct
from .multi_area_spec import load_spec, multi_area, psc_from_psp

#: Cortico-cortical factors (chi_E, chi_I) of the published versions: the
#: base version and the best fit to human resting-state FC.
STATES = {"base": (1.0, 2.0), "best_fit": (2.5, 5.0)}
NEURON = {"tau_m": 10.0, "tau_syn_ex": 2.0, "tau_syn_in": 2.0, "t_ref": 2.0,
          "E_L": -70.0, "V_reset": -70.0, "V_th": -45.0}
C_M = {"E": 220.0, "I": 100.0}
PSP = 0.1
G = -5.0
ETA_EXT = 1.1
EXT_FACTORS = {"5E": 1.05, "6E": 1.15}


def _read_csv(name):
    res = importlib.resources.files("brainsim.generation").joinpath(
        "data", "human_multi_area", name)
    lines = res.read_text(encoding="utf-8").splitlines()
    return lines[0].split(","), [line.split(",") for line in lines[1:] if line]


@functools.lru_cache(maxsize=1)
def _fibre_lengths():
    header, rows = _read_csv("hcp_dti_LowResDK_EstimatedDist_RHem.csv")
    names = header[1:]
    m = np.array([[float(x) for x in r[1:]] for r in rows])
    order = [[r[0] for r in rows].index(a) for a in names]
    return tuple(names), m[order]


@functools.lru_cache(maxsize=1)
def published_rates():
    """The authors' mean-field rates of the base version (chi_E 1, chi_I 2),
    spikes/s, keyed by ``(area, layer, kind)`` with layer in "II/III", "IV",
    "V", "VI" (254 non-empty populations; base_theory_rates.csv)."""
    _, rows = _read_csv("base_theory_rates.csv")
    return {(r[0], r[1], r[2]): float(r[3]) for r in rows}


def human_tables(**options):
    """The construction at full scale (xarray Dataset, before any network):
    see :func:`brainsim.generation.human_multi_area_tables.construct`, whose
    options (``fraction_E``, ``synapse_cellbody``, ``rho_syn``, ``fln``,
    ``min_layer_size``, ...) are passed on."""
    return construct(**options)


def _chi(state, chi_E, chi_I):
    if state not in STATES:
        raise ParameterError(f"state must be one of {list(STATES)}, got {state!r}")
    ce, ci = STATES[state]
    ce = ce if chi_E is None else number("chi_E", chi_E, low=0, low_open=True)
    ci = ci if chi_I is None else number("chi_I", chi_I, low=0)
    return ce, ci


def _nonempty(tables):
    keep = np.flatnonzero(tables["neurons"].values > 0)
    return tables.isel(population=keep, source=keep)


def _spec_dict(tables, chi_E, chi_I, eta_ext, rates=None):
    t = _nonempty(tables)
    names = [str(x) for x in t["population"].values]
    area_of = [str(x) for x in t["area_of"].values]
    local = [n.split("/", 1)[1] for n in names]
    kinds = [str(x) for x in t["kind"].values]
    areas = list(dict.fromkeys(area_of))
    populations = {a: {} for a in areas}
    for a, p, n in zip(area_of, local, t["neurons"].values):
        populations[a][p] = float(n)
    syn = np.asarray(t["synapses"].values, float)
    syn_ext = np.asarray(t["synapses_external"].values, float)
    n = np.asarray(t["neurons"].values, float)
    # the rate per external source that gives a mean drive of eta_ext (V_th - E_L):
    # nu K_ext w tau_s / C_m x tau_m = eta_ext (V_th - E_L), w the unscaled PSC
    c_m = np.array([C_M[k] for k in kinds])
    w_ext = psc_from_psp(PSP, c_m, NEURON["tau_m"], NEURON["tau_syn_ex"])
    k_ext = syn_ext / n
    with np.errstate(divide="ignore"):
        nu = np.where(k_ext > 0, 1e3 * (NEURON["V_th"] - NEURON["E_L"]) * eta_ext * c_m
                      / (NEURON["tau_m"] * k_ext * NEURON["tau_syn_ex"] * w_ext), 0.0)
    lengths_names, lengths = _fibre_lengths()
    idx = [lengths_names.index(a) for a in areas]
    d = {
        "name": "human multi-area model (Pronold et al. 2024)",
        "areas": areas, "populations": populations,
        "kinds": {p: k for p, k in zip(local, kinds)},
        "synapse_matrix": np.column_stack([syn, syn_ext]).tolist(),
        "distances": lengths[np.ix_(idx, idx)].tolist(),
        "neuron": {"params": dict(NEURON), "params_E": {"C_m": C_M["E"]},
                   "params_I": {"C_m": C_M["I"]}, "V0_mean": -150.0, "V0_sd": 50.0},
        "synapse": {"psp_e": PSP, "g": G, "psp_ext": PSP, "rel_sd": 0.1, "bounds": "clip",
                    "intra_factors": [{"target": "23E", "source": "4E", "factor": 2.0}],
                    "ext_factors": [{"target": k, "factor": v} for k, v in EXT_FACTORS.items()],
                    "chi": chi_E, "chi_I": chi_I / chi_E},
        "delay": {"e": 1.5, "i": 0.75, "rel_sd": 0.5, "speed": 3.5,
                  "distribution": "lognormal", "bounds": "clip"},
        "external": {"rate": nu.tolist()},
        "rule": "fixed_total_number",
    }
    if rates is not None:
        d["rates"] = [float(x) for x in rates]
    return d


def _published_vector(tables):
    t = _nonempty(tables)
    table = published_rates()
    out = []
    for a, layer, kind in zip(t["area_of"].values, t["layer"].values, t["kind"].values):
        key = (str(a), str(layer), str(kind))
        if key not in table:
            raise ParameterError(f"rates='published': no published rate for population {key} "
                                 f"(the published rates belong to the default construction)")
        out.append(table[key])
    if len(out) != len(table):
        raise ParameterError("rates='published' needs the default construction (254 non-empty "
                             f"populations), got {len(out)}")
    return np.array(out)


def human_spec(state="base", chi_E=None, chi_I=None, eta_ext=ETA_EXT, rates="meanfield",
               **options):
    """The full-scale model as a :class:`~brainsim.generation.multi_area_spec.MultiAreaSpec`
    (the 254 non-empty populations).

    Parameters
    ----------
    state : {"base", "best_fit"}
        Cortico-cortical factors: base chi_E 1, chi_I 2; best fit chi_E 2.5,
        chi_I 5 (Pronold et al. 2024).
    chi_E, chi_I : float, optional
        E -> E and E -> I cortico-cortical weight factors (override the state's).
    eta_ext : float > 0
        Mean external drive in units of V_th - E_L (1.1).
    rates : "meanfield", "published", array or None
        Full-scale rates recorded in the spec (DC of down-scaled networks,
        rates of replaced areas): brainsim's mean-field rates of this model
        (default, :func:`human_rates`; a fixed point of the model, so the DC
        makes it one of every down-scaled network too; where the model has
        no stationary mean-field state, as in the best fit, the base
        version's, as in the published tutorial), the authors'
        mean-field rates of the base version (``published_rates``; they
        differ from brainsim's by up to 0.49 spikes/s in
        medialorbitofrontal's layer 4), given ones (254, Hz), or none.
    **options
        Construction options, see :func:`human_tables`.
    """
    chi_E, chi_I = _chi(state, chi_E, chi_I)
    eta_ext = number("eta_ext", eta_ext, low=0, low_open=True)
    tables = construct(**options)
    if isinstance(rates, str):
        if rates == "published":
            rates = _published_vector(tables)
        elif rates == "meanfield":
            rates = _meanfield_rates(tables, state, chi_E, chi_I, eta_ext, options)
        else:
            raise ParameterError(f"rates must be 'published', 'meanfield', an array (Hz) or "
                                 f"None, got {rates!r}")
    return load_spec(_spec_dict(tables, chi_E, chi_I, eta_ext, rates))


@functools.lru_cache(maxsize=4)
def _default_rates(chi_E, chi_I, eta_ext):
    """Mean-field rates of the default construction (cached, read-only), or
    None where the solver finds no stationary state from 0 Hz."""
    nu = _mean_field(load_spec(_spec_dict(construct(), chi_E, chi_I, eta_ext)))
    if not nu.attrs["converged"]:
        return None
    nu = nu.values
    nu.setflags(write=False)
    return nu


def _meanfield_rates(tables, state, chi_E, chi_I, eta_ext, options):
    """Full-scale rates for the spec: the mean field of this model; where it
    has no stationary solution (the best-fit state's strong cortico-cortical
    weights: the solver from 0 Hz stalls at a residual of 13 Hz), those of
    the base version, as the published tutorial does for the best fit."""
    import warnings

    best_fit = (chi_E, chi_I) == STATES["best_fit"]
    if best_fit:
        nu = None  # known not to converge: skip the 30 s of a failing solve
    elif not options:
        nu = _default_rates(chi_E, chi_I, eta_ext)
    else:
        got = _mean_field(load_spec(_spec_dict(tables, chi_E, chi_I, eta_ext)))
        nu = got.values if got.attrs["converged"] else None
    if nu is not None:
        return nu
    if (chi_E, chi_I) == STATES["base"]:
        raise ParameterError("the mean field of the base version did not converge "
                             f"(eta_ext={eta_ext}, options {options}); give rates")
    if not best_fit:
        warnings.warn(f"human_spec: no stationary mean-field rates at chi_E={chi_E}, "
                      f"chi_I={chi_I}; the full-scale rates (DC of down-scaled networks, "
                      f"replaced areas) are the base version's", RuntimeWarning, stacklevel=3)
    return _meanfield_rates(tables, "base", *STATES["base"], eta_ext, options)


def _mean_field(spec):
    import warnings

    from . import siegert as meanfield

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # callers read attrs["converged"]
        return meanfield.fixed_point(spec.population_model())


def human_rates(state="base", chi_E=None, chi_I=None, eta_ext=ETA_EXT, **options):
    """brainsim's mean-field (Siegert) rates of the full-scale model
    (xarray.DataArray over the 254 non-empty populations, spikes/s), from
    ``brainsim.analysis.meanfield.fixed_point`` started at 0 Hz;
    ``attrs["converged"]`` is False where the solver finds no stationary
    state (the best fit: residual 13 Hz after its 2,000 steps, about 30 s)."""
    return _mean_field(human_spec(state, chi_E, chi_I, eta_ext, rates=None, **options))


def human_multi_area(scale=1.0, k_scale=None, state="base", chi_E=None, chi_I=None,
                     eta_ext=ETA_EXT, areas=None, replacement_rates=None, rates="meanfield",
                     input="poisson", seed=0, dt=0.1, store=None, overwrite=False, **options):
    """Build the human multi-area model (not yet built; see ``Network.build``).

    Parameters
    ----------
    scale : float in (0, 1]
        Fraction of the neurons of every population (at least one each).
    k_scale : float in (0, 1], optional
        Fraction of the in-degrees (default ``scale``); weights /
        sqrt(k_scale) and a DC from the full-scale ``rates`` keep every
        population's input mean and variance.
    state, chi_E, chi_I, eta_ext, rates, **options
        See :func:`human_spec`.
    areas : str or list of str, optional
        Areas to simulate (default all 34); the others become Poisson input.
    replacement_rates, input, seed, dt, store, overwrite
        See :func:`brainsim.generation.multi_area` (``store``: stream the
        network into a network store one area at a time).

    Returns
    -------
    Network
        One region per area, populations ``"<area>/<population>"``
        (e.g. ``"bankssts/23E"``).
    """
    scale = number("scale", scale, low=0, high=1, low_open=True)
    k_scale = scale if k_scale is None else number("k_scale", k_scale, low=0, high=1,
                                                   low_open=True)
    spec = human_spec(state, chi_E, chi_I, eta_ext, rates, **options)
    return multi_area(spec, n_scale=scale, k_scale=k_scale, areas=areas,
                      replacement_rates=replacement_rates, input=input, seed=seed, dt=dt,
                      store=store, overwrite=overwrite,
                      meta={"model": "human_multi_area", "state": state})
