"""Convert the output of the macaque multi-area model code to a specification.

The multi-area model code of Schmidt et al. (2018), github.com/INM-6/
multi-area-model, computes each model instance from its data tables and
writes ``config_files/custom_Data_Model_<label>.json`` (nested dicts
``[target area][target population][source area][source population]``:
``synapses`` (synapse numbers, plus ``[..][..]["external"]["external"]``),
``synapse_weights_mean`` (pA, cortico-cortical factors applied),
``synapse_weights_sd``; ``neuron_numbers[area][population]``,
``distances[target area][source area]`` (mm), ``area_list``, ``structure``)
and its custom parameters ``config_files/<label>_config``. Those files are
under the repository's licence terms and do not ship with brainsim;
:func:`convert_mam` reads them where a user has them and returns a
specification for ``brainsim.generation.multi_area_spec`` (docs/multi_area.md).
"""
import json
import os

import numpy as np

from brainsim.errors import ParameterError

from .multi_area_spec import EXTERNAL, SCHEMA_VERSION, SECTION_DEFAULTS, _key, _number, load_spec

#: Defaults of the MAM code (multiarea_model/default_params.py) that the
#: converter uses where the model's custom parameters do not set them.
MAM_DEFAULTS = {
    "neuron_params": {"single_neuron_dict": dict(SECTION_DEFAULTS["neuron"]["params"]),
                      "V0_mean": -150.0, "V0_sd": 50.0},
    "connection_params": {"cc_weights_factor": 1.9, "cc_weights_I_factor": 2.0,
                          "PSC_rel_sd_normal": 0.1, "lognormal_weights": False},
    "delay_params": {"delay_e": 1.5, "delay_i": 0.75, "delay_rel": 0.5, "interarea_speed": 3.5},
    "input_params": {"rate_ext": 10.0},
}


def _read_json(source, what):
    if isinstance(source, dict):
        return source
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise ParameterError(f"{what} file {path!r} does not exist")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _mam_params(config):
    """MAM defaults updated with the model's custom parameters (nested)."""
    out = json.loads(json.dumps(MAM_DEFAULTS))
    for section, values in (config or {}).items():
        if isinstance(values, dict) and section in out:
            for key, value in values.items():
                if isinstance(value, dict) and isinstance(out[section].get(key), dict):
                    out[section][key].update(value)
                else:
                    out[section][key] = value
    return out


def convert_mam(data, config=None, rates=None, k_stable=None, out=None):
    """Convert the MAM code's model data to a multi-area specification.

    The multi-area model code (github.com/INM-6/multi-area-model) writes,
    for each model instance, ``config_files/custom_Data_Model_<label>.json``
    (keys ``area_list``, ``structure``, ``neuron_numbers``, ``synapses``,
    ``synapse_weights_mean``, ``synapse_weights_sd``, ``distances``) and the
    custom parameters ``config_files/<label>_config``. Nothing of those
    files ships with brainsim.

    Parameters
    ----------
    data : str, os.PathLike or dict
        The ``custom_Data_Model_<label>.json`` file (or its content).
    config : str, os.PathLike or dict, optional
        The ``<label>_config`` file: neuron, delay, input and connection
        parameters (missing ones take the MAM defaults). Its
        ``cc_weights_factor`` and ``cc_weights_I_factor`` were multiplied
        into the data's cortico-cortical weights; they are divided out and
        stored as ``chi`` and ``chi_I``. Without it, the weights are kept as
        they are and chi = chi_I = 1.
    rates : str, os.PathLike or dict, optional
        Full-scale rates ({area: {population: Hz}}, the MAM
        ``fullscale_rates`` file), needed for K scaling.
    k_stable : str or os.PathLike, optional
        A ``.npy`` in-degree matrix (P x P, MAM population order) replacing
        the internal in-degrees, like the MAM's ``K_stable`` parameter
        (the published simulations use the stabilised matrix).
    out : str or os.PathLike, optional
        Write the specification there as JSON.

    Returns
    -------
    dict
        The specification (validated with :func:`load_spec`).
    """
    dat = _read_json(data, "MAM data")
    missing = [k for k in ("area_list", "structure", "neuron_numbers", "synapses",
                           "synapse_weights_mean", "distances") if k not in dat]
    if missing:
        raise ParameterError(f"MAM data lacks the keys {missing} (expected the "
                             f"custom_Data_Model_<label>.json of the MAM code)")
    par = _mam_params(_read_json(config, "MAM config") if config is not None else None)
    if par["connection_params"].get("lognormal_weights"):
        raise ParameterError("MAM models with lognormal_weights = True are not supported "
                             "(brainsim draws normal weights)")
    areas = list(dat["area_list"])
    structure = {a: list(dat["structure"][a]) for a in areas}
    spec = {"schema_version": SCHEMA_VERSION, "name": "mam_converted",
            "description": "converted from the multi-area model code's data file",
            "areas": areas,
            "populations": {a: {p: float(dat["neuron_numbers"][a][p]) for p in structure[a]}
                            for a in areas},
            "rule": "fixed_total_number",
            "distances": {t: {s: float(dat["distances"][t][s]) for s in areas if s != t}
                          for t in areas}}
    spec.update(_mam_connectivity(dat, structure, k_stable))
    spec.update(_mam_sections(dat, structure, par, config is not None))
    if rates is not None:
        r = _read_json(rates, "rates")
        spec["rates"] = {a: {p: _mam_scalar(r[a][p]) for p in structure[a]} for a in areas}
    load_spec(spec)
    if out is not None:
        with open(os.fspath(out), "w", encoding="utf-8") as f:
            json.dump(spec, f, indent=1)
    return spec


def _mam_scalar(x):
    return float(x[0] if isinstance(x, (list, tuple)) else x)


def _mam_connectivity(dat, structure, k_stable):
    syn, num = dat["synapses"], dat["neuron_numbers"]
    table = {t: {tp: {s: {sp: float(syn[t][tp][s][sp]) for sp in structure[s]}
                      for s in structure} for tp in structure[t]} for t in structure}
    for t in structure:
        for tp in structure[t]:
            table[t][tp][EXTERNAL] = _number(_key("synapses", t, tp, EXTERNAL),
                                             syn[t][tp][EXTERNAL])
    if k_stable is None:
        return {"synapses": table}
    order = [(a, p) for a in structure for p in structure[a]]
    k = np.load(os.fspath(k_stable), allow_pickle=False)
    if k.shape not in ((len(order), len(order)), (len(order), len(order) + 1)):
        raise ParameterError(f"k_stable must have shape ({len(order)}, {len(order)}), got "
                             f"{k.shape}")
    indeg = {t: {tp: {s: {} for s in structure} for tp in structure[t]} for t in structure}
    for i, (t, tp) in enumerate(order):
        for j, (s, sp) in enumerate(order):
            indeg[t][tp][s][sp] = float(k[i, j])
        indeg[t][tp][EXTERNAL] = table[t][tp][EXTERNAL] / float(num[t][tp])
    return {"indegrees": indeg}


def _mam_sections(dat, structure, par, have_config):
    cp, dp = par["connection_params"], par["delay_params"]
    chi = float(cp["cc_weights_factor"]) if have_config else 1.0
    chi_i = float(cp["cc_weights_I_factor"]) if have_config else 1.0
    w = dat["synapse_weights_mean"]
    weights = {}
    for t in structure:
        for tp in structure[t]:
            row = weights.setdefault(t, {}).setdefault(tp, {})
            for s in structure:
                factor = 1.0 if s == t else chi * (chi_i if tp.endswith("I") else 1.0)
                row[s] = {sp: float(w[t][tp][s][sp]) / factor for sp in structure[s]}
            row[EXTERNAL] = _mam_scalar(w[t][tp][EXTERNAL][EXTERNAL]
                                        if isinstance(w[t][tp][EXTERNAL], dict)
                                        else w[t][tp][EXTERNAL])
    nrn = par["neuron_params"]
    return {
        "neuron": {"params": dict(nrn["single_neuron_dict"]), "V0_mean": float(nrn["V0_mean"]),
                   "V0_sd": float(nrn["V0_sd"])},
        "synapse": {"weights": weights, "rel_sd": float(cp["PSC_rel_sd_normal"]), "chi": chi,
                    "chi_I": chi_i},
        "delay": {"e": float(dp["delay_e"]), "i": float(dp["delay_i"]),
                  "rel_sd": float(dp["delay_rel"]), "speed": float(dp["interarea_speed"])},
        "external": {"rate": float(par["input_params"]["rate_ext"])},
    }
