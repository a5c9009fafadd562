"""The macaque multi-area model of Schmidt et al. (2018) from its published tables.

32 areas of macaque visual cortex, each 1 mm^2 of cortex at full scale with
the populations 23E, 23I, 4E, 4I, 5E, 5I, 6E, 6I (TH has no layer 4): 254
populations, 4,130,057 neurons, 2.413e10 internal synapses (Schmidt et al.
2018, Brain Struct. Funct. 223:1409, doi 10.1007/s00429-017-1554-4; PLoS
Comput. Biol. 14:e1006359, doi 10.1371/journal.pcbi.1006359). The neuron
numbers, the stabilised in-degree matrix (Schuecker et al. 2017, PLoS
Comput. Biol. 13:e1005179), the external in-degrees and the distances ship
as package data under CC BY-NC-SA 4.0 (``generation/data/macaque_multi_area/
README.md``); this module's code is brainsim's own.

Dynamics (reference/multi_area.md): iaf_psc_exp, C_m 250 pF, tau_m 10 ms,
tau_syn 0.5 ms, t_ref 2 ms, E_L = V_reset = -65 mV, V_th -50 mV, initial V_m
~ N(-150, 50) mV; PSC 87.8085 pA (PSP 0.15 mV) from E sources, doubled for
4E -> 23E, g = -11 from I sources; cortico-cortical weights x chi, onto I
targets x chi_I more; weights normal (sd 0.1 x mean), redrawn across zero;
delays 1.5 ms (E) / 0.75 ms (I) inside an area, distance / 3.5 mm/ms
between areas, normal (sd 0.5 x mean), redrawn below dt; external Poisson
input 10 spikes/s per source; fixed total number of synapses per projection.

:func:`macaque_multi_area` builds a network at any scale through
:func:`brainsim.generation.multi_area` (down-scaling that keeps every
population's input mean and variance, subsets of areas with the others
replaced by Poisson input, one partition per area).
"""
import functools
import importlib.resources
import math

import numpy as np

from brainsim.errors import ParameterError, StoreError
from brainsim.validation import number

from .multi_area_spec import load_spec, multi_area, psc_from_psp

#: Cortico-cortical weight factors (chi, chi_I) of the published states:
#: the ground state, and the metastable state of Schmidt et al. 2018 (PLoS
#: Comput. Biol.; the repository's default).
STATES = {"ground": (1.0, 1.0), "metastable": (1.9, 2.0)}
NEURON = {"C_m": 250.0, "tau_m": 10.0, "tau_syn_ex": 0.5, "tau_syn_in": 0.5, "t_ref": 2.0,
          "E_L": -65.0, "V_reset": -65.0, "V_th": -50.0}
#: PSC (pA) of the 0.15 mV PSP: 87.8085 pA.
PSC_E = float(psc_from_psp(0.15, NEURON["C_m"], NEURON["tau_m"], NEURON["tau_syn_ex"]))
G = -11.0
RATE_EXT = 10.0
POPULATIONS = ("23E", "23I", "4E", "4I", "5E", "5I", "6E", "6I")


def _data_dir():
    """The folder of the data tables (package data)."""
    return importlib.resources.files("brainsim.generation").joinpath(
        "data", "macaque_multi_area")


def _csv(name):
    """(header, rows) of a data table; every cell after the key columns must
    be a finite number >= 0, else a StoreError names the file, row and column."""
    lines = _data_dir().joinpath(name).read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines[1:] if line]
    keys = 1 if name == "distances.csv" else 2
    for k, row in enumerate(rows):
        if len(row) != len(header):
            raise StoreError(f"macaque data {name}, row {k + 2}: {len(row)} cells, the header "
                             f"has {len(header)} (the package data is damaged: reinstall "
                             f"brainsim)")
        for column, text in zip(header[keys:], row[keys:]):
            try:
                x = float(text)
            except ValueError:
                x = math.nan
            if not (math.isfinite(x) and x >= 0):
                raise StoreError(f"macaque data {name}, row {k + 2}, column {column!r}: "
                                 f"{text!r} is not a finite number >= 0 (the package data is "
                                 f"damaged: reinstall brainsim)")
    return header, rows


@functools.lru_cache(maxsize=1)
def _raw():
    _, rows = _csv("neurons.csv")
    areas = tuple(dict.fromkeys(r[0] for r in rows))
    pops = tuple((r[0], r[1]) for r in rows)
    n = np.array([float(r[2]) for r in rows])
    header, krows = _csv("indegrees_internal.csv")
    if [tuple(r[:2]) for r in krows] != list(pops) or header[2:] != [f"{a}-{p}" for a, p in pops]:
        raise StoreError("macaque data indegrees_internal.csv: populations differ from "
                         "neurons.csv (the package data is damaged: reinstall brainsim)")
    k = np.array([[float(x) for x in r[2:]] for r in krows])
    _, erows = _csv("indegrees_external.csv")
    if [tuple(r[:2]) for r in erows] != list(pops):
        raise StoreError("macaque data indegrees_external.csv: populations differ from "
                         "neurons.csv (the package data is damaged: reinstall brainsim)")
    k_ext = np.array([float(r[2]) for r in erows])
    dheader, drows = _csv("distances.csv")
    missing = [a for a in areas if a not in dheader[1:] or a not in [r[0] for r in drows]]
    if missing:
        raise StoreError(f"macaque data distances.csv lacks area {missing[0]!r} (the package "
                         f"data is damaged: reinstall brainsim)")
    order = [dheader[1:].index(a) for a in areas]
    dist = np.array([[float(x) for x in r[1:]] for r in drows])
    rows_order = [[r[0] for r in drows].index(a) for a in areas]
    dist = dist[np.ix_(rows_order, order)]
    for arr in (n, k, k_ext, dist):
        arr.setflags(write=False)
    return areas, pops, n, k, k_ext, dist


def macaque_tables():
    """The published full-scale tables as an xarray Dataset.

    Returns
    -------
    xarray.Dataset
        ``neurons`` (population; neurons per mm^2, float as published),
        ``indegree`` (population, source; synapses per target neuron),
        ``indegree_external`` (population; Poisson sources per neuron),
        ``distance`` (area, source_area; mm); coordinates ``area_of``,
        ``layer`` and ``kind`` on ``population`` / ``source``.
    """
    import xarray as xr

    areas, pops, n, k, k_ext, dist = _raw()
    names = [f"{a}/{p}" for a, p in pops]
    coords = {"population": names, "source": names,
              "area_of": ("population", [a for a, _ in pops]),
              "layer": ("population", [p[:-1] for _, p in pops]),
              "kind": ("population", [p[-1] for _, p in pops]),
              "area": list(areas), "source_area": list(areas)}
    ds = xr.Dataset(
        {"neurons": ("population", n.copy(), {"units": "1/mm^2", "long_name": "neurons under "
                                              "1 mm^2 of cortex"}),
         "indegree": (("population", "source"), k.copy(),
                      {"units": "1", "long_name": "synapses per target neuron "
                       "(stabilised, Schuecker et al. 2017)"}),
         "indegree_external": ("population", k_ext.copy(),
                               {"units": "1", "long_name": "external Poisson sources per "
                                "neuron"}),
         "distance": (("area", "source_area"), dist.copy(),
                      {"units": "mm", "long_name": "inter-area distance"})},
        coords=coords,
        attrs={"model": "macaque multi-area model (Schmidt et al. 2018)",
               "licence": "CC BY-NC-SA 4.0 (data); see generation/data/macaque_multi_area"})
    ds["source"].attrs["long_name"] = "source population"
    return ds


def _chi(state, chi, chi_I):
    if state not in STATES:
        raise ParameterError(f"state must be one of {list(STATES)}, got {state!r}")
    c, ci = STATES[state]
    c = c if chi is None else number("chi", chi, low=0)
    ci = ci if chi_I is None else number("chi_I", chi_I, low=0)
    return c, ci


def _spec_dict(chi, chi_I, rates=None):
    areas, pops, n, k, k_ext, dist = _raw()
    populations = {a: {} for a in areas}
    for (a, p), x in zip(pops, n):
        populations[a][p] = float(x)
    d = {
        "name": "macaque multi-area model (Schmidt et al. 2018)",
        "areas": list(areas), "populations": populations,
        "indegree_matrix": np.column_stack([k, k_ext]).tolist(),
        "distances": dist.tolist(),
        "neuron": {"params": dict(NEURON), "V0_mean": -150.0, "V0_sd": 50.0},
        "synapse": {"psc_e": PSC_E, "g": G, "psc_ext": PSC_E, "rel_sd": 0.1,
                    "intra_factors": [{"target": "23E", "source": "4E", "factor": 2.0}],
                    "chi": chi, "chi_I": chi_I},
        "delay": {"e": 1.5, "i": 0.75, "rel_sd": 0.5, "speed": 3.5},
        "external": {"rate": RATE_EXT},
        "rule": "fixed_total_number",
    }
    if rates is not None:
        d["rates"] = [float(x) for x in rates]
    return d


@functools.lru_cache(maxsize=8)
def _mean_field(chi, chi_I):
    import warnings

    from . import siegert as meanfield

    spec = load_spec(_spec_dict(chi, chi_I))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        nu = meanfield.fixed_point(spec.population_model())
    return nu if nu.attrs.get("converged", False) else None


def macaque_rates(state="ground", chi=None, chi_I=None):
    """Mean-field (Siegert) stationary rates of the full-scale model.

    The ground state (chi = chi_I = 1) has a stationary low-activity fixed
    point (mean over populations 3.74 spikes/s; Schmidt et al. report about
    3.7). With strong cortico-cortical weights (the metastable state, chi
    1.9) the pseudo-dynamics from 0 Hz find none: the rates fluctuate. There
    the ground state's rates are returned (``attrs["from"]`` says so), so
    that down-scaled networks get the DC of the input at ground-state rates;
    give ``rates=`` from a full-scale simulation to do better.

    Returns
    -------
    xarray.DataArray (population,), spikes/s
        From ``brainsim.analysis.meanfield.fixed_point`` started at 0 Hz,
        with its ``mu`` / ``sigma`` (mV) coordinates and residual.
    """
    chi, chi_I = _chi(state, chi, chi_I)
    nu = None if (state == "metastable" and (chi, chi_I) == STATES["metastable"]) else \
        _mean_field(chi, chi_I)
    if nu is None:
        nu = _mean_field(*STATES["ground"]).copy()
        nu.attrs["from"] = (f"ground state (chi = chi_I = 1): no stationary mean-field "
                            f"solution at chi={chi}, chi_I={chi_I}")
        return nu
    nu = nu.copy()
    nu.attrs["from"] = f"chi={chi}, chi_I={chi_I}"
    return nu


def macaque_spec(state="ground", chi=None, chi_I=None, rates="meanfield"):
    """The full-scale model as a :class:`~brainsim.generation.multi_area_spec.MultiAreaSpec`.

    Parameters
    ----------
    state : {"ground", "metastable"}
        Preset cortico-cortical factors: ground chi = chi_I = 1; metastable
        chi = 1.9, chi_I = 2 (Schmidt et al. 2018).
    chi, chi_I : float, optional
        Override the preset's factors.
    rates : "meanfield", array (254,) of spikes/s, or None
        Full-scale rates recorded in the spec (used for the DC of
        down-scaled networks and as the rates of replaced areas):
        :func:`macaque_rates` (default), given ones, or none.
    """
    chi, chi_I = _chi(state, chi, chi_I)
    if isinstance(rates, str):
        if rates != "meanfield":
            raise ParameterError(f"rates must be 'meanfield', an array of 254 rates (Hz) or "
                                 f"None, got {rates!r}")
        rates = macaque_rates(state, chi, chi_I).values
    elif rates is not None:
        rates = np.asarray(rates, dtype=float)
        if rates.shape != (len(_raw()[1]),):
            raise ParameterError(f"rates must have one entry per population (254), got shape "
                                 f"{rates.shape}")
    return load_spec(_spec_dict(chi, chi_I, rates))


def macaque_multi_area(scale=1.0, k_scale=None, state="ground", chi=None, chi_I=None,
                       areas=None, replacement_rates=None, rates="meanfield", input="poisson",
                       seed=0, dt=0.1, store=None, overwrite=False):
    """Build the macaque multi-area model (not yet built; see ``Network.build``).

    Parameters
    ----------
    scale : float in (0, 1]
        Fraction of the neurons of every population (at least one each).
    k_scale : float in (0, 1], optional
        Fraction of the in-degrees (default: ``scale``, as in the published
        notebooks). Weights / sqrt(k_scale) and a DC current computed from
        the full-scale rates keep each population's input mean and variance.
    state : {"ground", "metastable"}
    chi, chi_I : float, optional
        Cortico-cortical weight factors (default: the state's).
    areas : str or list of str, optional
        Areas to simulate (default all 32); the others' input becomes
        Poisson input at ``replacement_rates`` (default: the full-scale
        rates).
    replacement_rates : dict or array, optional
        See :func:`brainsim.generation.multi_area`.
    rates : "meanfield", array (254,) or None
        Full-scale rates (spikes/s) for the DC compensation and the replaced
        areas; see :func:`macaque_spec`.
    input : {"poisson", "dc"}
    seed : int
    dt : float, ms
    store, overwrite
        Stream the network into a network store, one area at a time; see
        :func:`brainsim.generation.multi_area`.

    Returns
    -------
    Network
        One region per area, populations ``"<area>/<population>"``.
    """
    scale = number("scale", scale, low=0, high=1, low_open=True)
    k_scale = scale if k_scale is None else number("k_scale", k_scale, low=0, high=1,
                                                   low_open=True)
    if rates is None and (k_scale < 1 or areas is not None) and replacement_rates is None:
        raise ParameterError("rates=None: down-scaling (k_scale < 1) and replacing areas need "
                             "full-scale rates; use rates='meanfield' or give them")
    spec = macaque_spec(state, chi, chi_I, rates)
    return multi_area(spec, n_scale=scale, k_scale=k_scale, areas=areas,
                      replacement_rates=replacement_rates, input=input, seed=seed, dt=dt,
                      store=store, overwrite=overwrite,
                      meta={"model": "macaque_multi_area", "state": state})
