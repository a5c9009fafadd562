"""Multi-area models of cortex from a model specification.

A multi-area model (Schmidt et al. 2018, Brain Struct. Funct. 223:1409, doi
10.1007/s00429-017-1554-4, and PLoS Comput. Biol. 14:e1006359, doi
10.1371/journal.pcbi.1006359; the human version, Pronold et al. 2024, Cereb.
Cortex, doi 10.1093/cercor/bhae409) is a set of areas, each a laminar
network of iaf_psc_exp populations, connected by cortico-cortical synapses.
The data tables of these models are under non-commercial / GPL terms and
are not shipped: a model is a specification (JSON or YAML; schema in
docs/multi_area.md). A small self-made one ships (:func:`example_spec`) and
:func:`brainsim.generation.mam.convert_mam` turns the output of the MAM code
into a specification.

:func:`multi_area` builds a Network: one region per area (partitions follow
areas); intra-area delays 1.5 ms (E sources) / 0.75 ms (I sources),
inter-area delays distance / speed, normal with a relative sd; weights
normal with a relative sd, cortico-cortical ones x chi (and x chi_I more
onto inhibitory targets); N and K scaling with weights / sqrt(K_scaling) and
a DC current that keeps the full-scale mean input (van Albada et al. 2015,
PLoS Comput. Biol. 11:e1004490); a subset of areas simulated, the input
from the others replaced by Poisson sources. :func:`population_model` hands
the same network to the mean-field solver (``brainsim.analysis.meanfield``).
"""
import importlib.resources
import json
import math
import os
from dataclasses import dataclass

import numpy as np

from brainsim.errors import ParameterError, UnknownNameError
from brainsim.validation import number
from brainsim.neurons import full_params
from brainsim.network import Network

from .mean_field_model import NEURON_KEYS, PopulationModel

SCHEMA_VERSION = 1
TOP_KEYS = ("schema_version", "name", "description", "areas", "populations", "kinds",
            "indegrees", "indegree_matrix", "synapses", "synapse_matrix", "distances",
            "neuron", "synapse", "delay", "external", "rule", "rates")
RULES = ("fixed_total_number", "fixed_indegree")
BOUNDS = ("redraw", "clip")
DELAY_DISTRIBUTIONS = ("normal", "lognormal")
#: Defaults of the optional sections: the macaque multi-area model's values
#: (Schmidt et al. 2018; reference/mam.md).
SECTION_DEFAULTS = {
    "neuron": {"params": {"C_m": 250.0, "tau_m": 10.0, "tau_syn_ex": 0.5, "tau_syn_in": 0.5,
                          "t_ref": 2.0, "E_L": -65.0, "V_reset": -65.0, "V_th": -50.0},
               "params_E": {}, "params_I": {}, "V0_mean": None, "V0_sd": 5.0},
    "synapse": {"psc_e": 87.81, "g": -11.0, "psc_ext": 87.81, "rel_sd": 0.1,
                "intra_factors": [], "chi": 1.0, "chi_I": 1.0, "weights": None,
                "psp_e": None, "psp_ext": None, "ext_factors": [], "bounds": "redraw"},
    "delay": {"e": 1.5, "i": 0.75, "rel_sd": 0.5, "speed": 3.5, "distribution": "normal",
              "bounds": "redraw"},
    "external": {"rate": 10.0},
}
EXTERNAL = "external"


# ============================================================ the specification
@dataclass(frozen=True)
class MultiAreaSpec:
    """A validated multi-area model at full scale (see :func:`load_spec`).

    Populations are numbered area by area in the order of the file; arrays
    over populations have length P, matrices are [target, source].

    Attributes
    ----------
    name : str
    areas : tuple of str
    pop_area : ndarray (P,) int, index into ``areas``
    pop_local : tuple of str, population names inside their area ("23E")
    kinds : tuple of {"E", "I"}
    n : ndarray (P,), neurons at full scale
    indegree : ndarray (P, P), synapses per target neuron
    indegree_ext : ndarray (P,), external Poisson sources per neuron
    weight : ndarray (P, P), pA, mean PSC before chi
    weight_ext : ndarray (P,), pA
    distances : ndarray (A, A), mm, [target area, source area]
    neuron : tuple of dict, iaf_psc_exp parameters per population
    V0_mean, V0_sd : ndarray (P,), mV, initial membrane potentials
    rel_sd_weight, chi, chi_I : float
    delay_e, delay_i : float, ms
    delay_rel_sd : float
    speed : float, mm/ms (= m/s)
    rate_ext : ndarray (P,), Hz, rate of each external Poisson source
    weight_bounds : {"redraw", "clip"}
        Weights drawn across zero are redrawn (MAM) or set to 0 (HuMAM).
    delay_distribution : {"normal", "lognormal"}
    delay_bounds : {"redraw", "clip"}
        Delays drawn below dt are redrawn (MAM) or set to dt (HuMAM).
    rule : {"fixed_total_number", "fixed_indegree"}
    rates : ndarray (P,), Hz, or None (full-scale rates)
    """

    name: str
    areas: tuple
    pop_area: np.ndarray
    pop_local: tuple
    kinds: tuple
    n: np.ndarray
    indegree: np.ndarray
    indegree_ext: np.ndarray
    weight: np.ndarray
    weight_ext: np.ndarray
    distances: np.ndarray
    neuron: tuple
    V0_mean: np.ndarray
    V0_sd: np.ndarray
    rel_sd_weight: float
    chi: float
    chi_I: float
    delay_e: float
    delay_i: float
    delay_rel_sd: float
    speed: float
    rate_ext: np.ndarray
    rule: str
    rates: np.ndarray = None
    weight_bounds: str = "redraw"
    delay_distribution: str = "normal"
    delay_bounds: str = "redraw"

    @property
    def names(self):
        """Global population names ``"<area>/<population>"``."""
        return tuple(f"{self.areas[a]}/{p}" for a, p in zip(self.pop_area, self.pop_local))

    @property
    def cortico_cortical(self):
        """Boolean (P, P): target and source in different areas."""
        return self.pop_area[:, None] != self.pop_area[None, :]

    def weights(self, chi=None, chi_I=None):
        """Mean PSC amplitudes (P, P), pA, with the cortico-cortical factors
        applied: x chi, and x chi_I more onto inhibitory targets."""
        chi = self.chi if chi is None else _nonneg("chi", chi)
        chi_I = self.chi_I if chi_I is None else _nonneg("chi_I", chi_I)
        onto_i = np.array([k == "I" for k in self.kinds])[:, None]
        factor = np.where(self.cortico_cortical, chi * np.where(onto_i, chi_I, 1.0), 1.0)
        return self.weight * factor

    def mean_delays(self):
        """Mean delays (P, P), ms: delay_e / delay_i inside an area (by source
        kind), distance / speed between areas."""
        local = np.where(np.array(self.kinds) == "E", self.delay_e, self.delay_i)[None, :]
        remote = self.distances[self.pop_area[:, None], self.pop_area[None, :]] / self.speed
        return np.where(self.cortico_cortical, remote, np.broadcast_to(local, remote.shape))

    def population_model(self, **kwargs):
        """Mean-field model of this specification; see :func:`population_model`."""
        return population_model(self, **kwargs)


def _nonneg(name, value):
    return number(name, value, low=0)


def _positive(name, value):
    return number(name, value, low=0, low_open=True)


def _key(root, *parts):
    return root + "".join(f"[{p!r}]" for p in parts)


def _section(d, name):
    """Section ``name`` of the raw spec merged over its defaults; unknown keys raise."""
    given = d.get(name, {})
    if not isinstance(given, dict):
        raise ParameterError(f"{name} must be a mapping, got {given!r}")
    unknown = sorted(set(given) - set(SECTION_DEFAULTS[name]))
    if unknown:
        raise UnknownNameError(f"unknown key {_key(name, unknown[0])} in the specification; "
                               f"allowed: {sorted(SECTION_DEFAULTS[name])}")
    return {**SECTION_DEFAULTS[name], **given}


# ------------------------------------------------------------------ reading
def example_spec():
    """The shipped example: three self-made areas (A, B and C; C has no
    layer 4), 8 laminar populations per area after the Potjans-Diesmann
    microcircuit, 5,105 neurons; see docs/multi_area.md."""
    res = importlib.resources.files("brainsim.generation").joinpath("data", "three_areas.json")
    return load_spec(json.loads(res.read_text()))


def read_spec_file(path):
    """The raw specification (dict) in a JSON (``.json``) or YAML (``.yaml``,
    ``.yml``; needs PyYAML, safe loader) file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ParameterError(f"specification file {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    with open(path, encoding="utf-8") as f:
        if ext == ".json":
            return json.load(f)
        if ext in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise ParameterError("reading YAML specifications needs PyYAML "
                                     "(pip install pyyaml)") from None
            return yaml.safe_load(f)
    raise ParameterError(f"specification file must end in .json, .yaml or .yml, got {path!r}")


def load_spec(source):
    """Validate a multi-area specification.

    Parameters
    ----------
    source : str or os.PathLike or dict or MultiAreaSpec
        A JSON / YAML file, its content as a dict, or a spec (returned as is).
        Schema: docs/multi_area.md.

    Returns
    -------
    MultiAreaSpec
    """
    if isinstance(source, MultiAreaSpec):
        return source
    d = source if isinstance(source, dict) else read_spec_file(source)
    if not isinstance(d, dict):
        raise ParameterError(f"a specification must be a mapping, got {type(d).__name__}")
    unknown = sorted(set(d) - set(TOP_KEYS))
    if unknown:
        raise UnknownNameError(f"unknown key {unknown[0]!r} in the specification; allowed: "
                               f"{list(TOP_KEYS)}")
    if d.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise ParameterError(f"schema_version must be {SCHEMA_VERSION}, got "
                             f"{d['schema_version']!r}")
    areas, pop_area, pop_local = _parse_structure(d)
    layout = (areas, pop_area, pop_local)
    kinds = _parse_kinds(d, pop_local)
    n = np.array([_positive(_key("populations", areas[a], p), d["populations"][areas[a]][p])
                  for a, p in zip(pop_area, pop_local)])
    k, k_ext = _parse_connectivity(d, layout, n)
    return _assemble(d, layout, kinds, n, k, k_ext)


def _assemble(d, layout, kinds, n, k, k_ext):
    areas, pop_area, pop_local = layout
    nrn, syn = _section(d, "neuron"), _section(d, "synapse")
    dly, ext = _section(d, "delay"), _section(d, "external")
    neuron, v0_mean, v0_sd = _parse_neuron(nrn, kinds)
    w, w_ext = _parse_weights(syn, layout, kinds, neuron)
    rule = d.get("rule", "fixed_total_number")
    if rule not in RULES:
        raise ParameterError(f"rule must be one of {list(RULES)}, got {rule!r}")
    _choice("synapse['bounds']", syn["bounds"], BOUNDS)
    _choice("delay['distribution']", dly["distribution"], DELAY_DISTRIBUTIONS)
    _choice("delay['bounds']", dly["bounds"], BOUNDS)
    rates = None
    if d.get("rates") is not None:
        rates = _pop_vector("rates", d["rates"], layout)
    if isinstance(ext["rate"], (dict, list, tuple, np.ndarray)):
        rate = ext["rate"].tolist() if isinstance(ext["rate"], np.ndarray) else ext["rate"]
        rate_ext = _pop_vector("external['rate']", rate, layout)
    else:
        rate_ext = np.full(len(kinds), _nonneg("external['rate']", ext["rate"]))
    return MultiAreaSpec(
        name=str(d.get("name", "multi_area")), areas=areas, pop_area=pop_area,
        pop_local=pop_local, kinds=kinds, n=n, indegree=k, indegree_ext=k_ext, weight=w,
        weight_ext=w_ext, distances=_parse_distances(d, areas), neuron=neuron,
        V0_mean=v0_mean, V0_sd=v0_sd, rel_sd_weight=_nonneg("synapse['rel_sd']", syn["rel_sd"]),
        chi=_nonneg("synapse['chi']", syn["chi"]), chi_I=_nonneg("synapse['chi_I']", syn["chi_I"]),
        delay_e=_positive("delay['e']", dly["e"]), delay_i=_positive("delay['i']", dly["i"]),
        delay_rel_sd=_nonneg("delay['rel_sd']", dly["rel_sd"]),
        speed=_positive("delay['speed']", dly["speed"]), rate_ext=rate_ext, rule=rule,
        rates=rates, weight_bounds=syn["bounds"], delay_distribution=dly["distribution"],
        delay_bounds=dly["bounds"])


def _choice(name, value, allowed):
    if not isinstance(value, str) or value not in allowed:
        raise ParameterError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def _parse_structure(d):
    for key in ("areas", "populations"):
        if key not in d:
            raise ParameterError(f"the specification lacks the required key {key!r}")
    areas = d["areas"]
    if (not isinstance(areas, list) or not areas or
            not all(isinstance(a, str) and a for a in areas) or len(set(areas)) != len(areas)):
        raise ParameterError(f"areas must be a non-empty list of distinct names, got {areas!r}")
    if EXTERNAL in areas:
        raise ParameterError(f"{EXTERNAL!r} is reserved and cannot name an area")
    pops = d["populations"]
    if not isinstance(pops, dict):
        raise ParameterError(f"populations must map area -> {{population: neurons}}, got {pops!r}")
    for area in pops:
        if area not in areas:
            raise UnknownNameError(f"populations[{area!r}]: unknown area; areas: {areas}")
    pop_area, pop_local = [], []
    for a, area in enumerate(areas):
        if area not in pops or not isinstance(pops[area], dict) or not pops[area]:
            raise ParameterError(f"populations[{area!r}] must map population names to neuron "
                                 f"numbers (area {area!r} is listed in areas)")
        for p in pops[area]:
            pop_area.append(a)
            pop_local.append(str(p))
    return tuple(areas), np.array(pop_area, np.int64), tuple(pop_local)


def _parse_kinds(d, pop_local):
    given = d.get("kinds") or {}
    if not isinstance(given, dict):
        raise ParameterError(f"kinds must map population name -> 'E' or 'I', got {given!r}")
    kinds = []
    for p in pop_local:
        kind = given.get(p, p[-1])
        if kind not in ("E", "I"):
            raise ParameterError(f"kind of population {p!r} must be 'E' or 'I' (give it in "
                                 f"kinds, or end the name in E or I), got {kind!r}")
        kinds.append(kind)
    return tuple(kinds)


def _number(key, value):
    if isinstance(value, dict) and set(value) == {EXTERNAL}:  # MAM's {"external": x}
        value = value[EXTERNAL]
    return number(key, value, low=0)


def _pop_index(layout):
    areas, pop_area, pop_local = layout
    return {(areas[a], p): i for i, (a, p) in enumerate(zip(pop_area, pop_local))}


def _parse_connectivity(d, layout, n):
    given = [k for k in ("indegrees", "indegree_matrix", "synapses", "synapse_matrix") if k in d]
    if len(given) != 1:
        raise ParameterError("give exactly one of indegrees, indegree_matrix, synapses, "
                             f"synapse_matrix; got {given}")
    key = given[0]
    if key.endswith("_matrix"):
        m = _matrix(key, d[key], (len(n), len(n) + 1))
        table, ext = m[:, :-1], m[:, -1]
    else:
        table, ext = _nested_table(key, d[key], layout, required=True)
    if key.startswith("synapses") or key == "synapse_matrix":
        table, ext = table / n[:, None], ext / n
    return table, ext


def _matrix(key, value, shape):
    try:
        m = np.array(value, dtype=float)
    except (TypeError, ValueError):
        raise ParameterError(f"{key} must be a matrix of numbers, got {value!r}") from None
    if m.shape != shape:
        raise ParameterError(f"{key} must have shape {shape} (target populations x source "
                             f"populations{', plus external' if shape[1] > shape[0] else ''}), "
                             f"got shape {m.shape}")
    if not np.all(np.isfinite(m)) or np.any(m < 0):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(m) | (m < 0))[0])
        raise ParameterError(f"{key}{list(bad)} must be a finite number >= 0, got "
                             f"{float(m[bad])!r}")
    return m


def _nested_table(key, table, layout, required):
    """[target area][target pop][source area][source pop] (+ [..][..]["external"])
    -> matrix (P, P) and external vector (P,); absent sources are 0."""
    areas = layout[0]
    index = _pop_index(layout)
    p = len(index)
    m, ext = np.zeros((p, p)), np.zeros(p)
    if not isinstance(table, dict):
        raise ParameterError(f"{key} must be a nested mapping target area -> target population "
                             f"-> source area -> source population, got {type(table).__name__}")
    for (ta, tp), t in index.items():
        row = table.get(ta, {}).get(tp) if isinstance(table.get(ta), dict) else None
        if row is None:
            if required:
                raise ParameterError(f"{key} lacks target population {_key(key, ta, tp)} "
                                     f"(listed in populations)")
            continue
        _fill_row(key, row, (ta, tp), index, areas, m[t], ext, t)
    _check_no_extra(key, table, index, areas)
    return m, ext


def _fill_row(key, row, target, index, areas, m_row, ext, t):
    ta, tp = target
    if not isinstance(row, dict):
        raise ParameterError(f"{_key(key, ta, tp)} must map source area -> source population "
                             f"-> value, got {row!r}")
    for sa, sources in row.items():
        if sa == EXTERNAL:
            ext[t] = _number(_key(key, ta, tp, sa), sources)
            continue
        if sa not in areas:
            raise UnknownNameError(f"{_key(key, ta, tp, sa)}: unknown area {sa!r}; areas: "
                                   f"{list(areas)}")
        if not isinstance(sources, dict):
            raise ParameterError(f"{_key(key, ta, tp, sa)} must map source population -> value, "
                                 f"got {sources!r}")
        for sp, value in sources.items():
            if (sa, sp) not in index:
                raise UnknownNameError(f"{_key(key, ta, tp, sa, sp)}: area {sa!r} has no "
                                       f"population {sp!r}")
            m_row[index[(sa, sp)]] = _number(_key(key, ta, tp, sa, sp), value)


def _check_no_extra(key, table, index, areas):
    for ta, rows in table.items():
        if ta not in areas:
            raise UnknownNameError(f"{_key(key, ta)}: unknown area {ta!r}; areas: {list(areas)}")
        for tp in rows:
            if (ta, tp) not in index:
                raise UnknownNameError(f"{_key(key, ta, tp)}: area {ta!r} has no population "
                                       f"{tp!r}")


def _pop_vector(key, value, layout, required=None):
    """{area: {population: x}} or a list (P,) -> array (P,). Populations
    not in ``required`` (boolean (P,), default all) may be absent (NaN)."""
    index = _pop_index(layout)
    if isinstance(value, (list, tuple)):
        return _matrix(key, [value], (1, len(index)))[0]
    if not isinstance(value, dict):
        raise ParameterError(f"{key} must map area -> population -> value, got {value!r}")
    for a, pops in value.items():
        if not isinstance(pops, dict):
            raise ParameterError(f"{_key(key, a)} must map population -> value, got {pops!r}")
        for p in pops:
            if (a, p) not in index:
                raise UnknownNameError(f"{_key(key, a, p)}: no such population in the "
                                       f"specification")
    out = np.full(len(index), np.nan)
    for (a, p), i in index.items():
        if p in value.get(a, {}):
            out[i] = _number(_key(key, a, p), value[a][p])
        elif required is None or required[i]:
            raise ParameterError(f"{key} lacks {_key(key, a, p)}")
    return out


def _parse_distances(d, areas):
    if "distances" not in d:
        if len(areas) > 1:
            raise ParameterError("the specification lacks the required key 'distances' (mm)")
        return np.zeros((1, 1))
    value, n = d["distances"], len(areas)
    if isinstance(value, list):
        m = _matrix("distances", value, (n, n))
    else:
        m = np.full((n, n), np.nan)
        if not isinstance(value, dict):
            raise ParameterError(f"distances must map target area -> source area -> mm, "
                                 f"got {value!r}")
        for ta, row in value.items():
            if not isinstance(row, dict):
                raise ParameterError(f"{_key('distances', ta)} must map source area -> mm, "
                                     f"got {row!r}")
            for sa, x in row.items():
                if ta not in areas or sa not in areas:
                    bad = ta if ta not in areas else sa
                    raise UnknownNameError(f"{_key('distances', ta, sa)}: unknown area {bad!r}; "
                                           f"areas: {list(areas)}")
                m[areas.index(ta), areas.index(sa)] = _number(_key("distances", ta, sa), x)
        m = np.where(np.isnan(m), m.T, m)  # one direction given: symmetric
        np.fill_diagonal(m, 0.0)
        missing = np.argwhere(np.isnan(m))
        if missing.size:
            a, b = missing[0]
            raise ParameterError(f"distances lacks {_key('distances', areas[a], areas[b])} "
                                 f"(mm, either direction)")
    off = m[~np.eye(n, dtype=bool)]
    if np.any(off <= 0):
        raise ParameterError(f"distances between different areas must be > 0 mm, got "
                             f"{off.min()!r}")
    return m


def _parse_neuron(nrn, kinds):
    if not isinstance(nrn["params"], dict):
        raise ParameterError(f"neuron['params'] must be a mapping, got {nrn['params']!r}")
    base = {**SECTION_DEFAULTS["neuron"]["params"], **nrn["params"]}
    out = {}
    for kind in ("E", "I"):
        extra = nrn[f"params_{kind}"]
        if not isinstance(extra, dict):
            raise ParameterError(f"neuron['params_{kind}'] must be a mapping, got {extra!r}")
        out[kind] = full_params("iaf_psc_exp", {**base, **extra})
    neuron = tuple(out[k] for k in kinds)
    e_l = np.array([p["E_L"] for p in neuron])
    mean = e_l if nrn["V0_mean"] is None else np.full(len(kinds), float(
        _finite("neuron['V0_mean']", nrn["V0_mean"])))
    sd = np.full(len(kinds), _nonneg("neuron['V0_sd']", nrn["V0_sd"]))
    return neuron, mean, sd


def _finite(name, value):
    return number(name, value)


def psc_from_psp(psp, C_m, tau_m, tau_syn):
    """Amplitude (pA) of the exponential PSC whose PSP peaks at ``psp`` (mV)
    in an iaf_psc_exp neuron (C_m pF, tau_m and tau_syn ms): with
    eps = tau_syn / tau_m the peak is PSC tau_m / C_m eps^(1 / (1 - eps))."""
    psp, C_m, tau_m, tau_syn = (np.asarray(x, float) for x in (psp, C_m, tau_m, tau_syn))
    eps = tau_syn / tau_m
    if np.any(eps == 1.0):
        raise ParameterError("psc_from_psp needs tau_syn != tau_m")
    return psp * C_m / tau_m * eps ** (-1.0 / (1.0 - eps))


def _parse_weights(syn, layout, kinds, neuron):
    is_e = np.array([k == "E" for k in kinds])
    g = _finite("synapse['g']", syn["g"])
    if syn["psp_e"] is not None:  # PSC per target from its membrane and synapse
        psp = _finite("synapse['psp_e']", syn["psp_e"])
        psc_e = psc_from_psp(psp, *(np.array([p[k] for p in neuron]) for k in
                                    ("C_m", "tau_m", "tau_syn_ex")))
    else:
        psc_e = np.full(len(kinds), float(_finite("synapse['psc_e']", syn["psc_e"])))
    if np.any(psc_e < 0) or g > 0:
        raise ParameterError(f"synapse psc_e (or psp_e) must be >= 0 and g <= 0, got "
                             f"{syn['psp_e'] if syn['psp_e'] is not None else syn['psc_e']!r}, "
                             f"{g!r}")
    w = np.where(is_e[None, :], psc_e[:, None], g * psc_e[:, None])
    if syn["psp_ext"] is not None:
        w_ext = psc_from_psp(_finite("synapse['psp_ext']", syn["psp_ext"]), *(
            np.array([p[k] for p in neuron]) for k in ("C_m", "tau_m", "tau_syn_ex")))
    else:
        w_ext = np.full(len(kinds), float(_finite("synapse['psc_ext']", syn["psc_ext"])))
    _apply_intra_factors(syn["intra_factors"], layout, w)
    _apply_ext_factors(syn["ext_factors"], layout, w_ext)
    if syn["weights"] is not None:
        table, ext = _signed_table("synapse['weights']", syn["weights"], layout)
        w = np.where(np.isnan(table), w, table)
        w_ext = np.where(np.isnan(ext), w_ext, ext)
    bad = np.argwhere(np.where(is_e[None, :], w < 0, w > 0))
    if bad.size:
        t, s = bad[0]
        raise ParameterError(f"synapse weights from {kinds[s]} populations must be "
                             f"{'>= 0' if kinds[s] == 'E' else '<= 0'} pA, got {w[t, s]!r} "
                             f"(target {t}, source {s})")
    return w, w_ext


def _factor_items(name, factors, keys, layout):
    """Check a list of ``{keys..., factor}`` entries (``synapse[name]``) and
    yield, per entry, a boolean mask over the populations for each name
    key (by local population name) and the factor (>= 0)."""
    pop_local = layout[2]
    if not isinstance(factors, list):
        raise ParameterError(f"synapse[{name!r}] must be a list of "
                             f"{{{', '.join(keys)}, factor}}, got {factors!r}")
    for k, item in enumerate(factors):
        key = f"synapse[{name!r}][{k}]"
        if not isinstance(item, dict) or set(item) != {*keys, "factor"}:
            raise ParameterError(f"{key} must have exactly the keys {', '.join(keys)}, factor; "
                                 f"got {item!r}")
        masks = []
        for role in keys:
            mask = np.array([p == item[role] for p in pop_local])
            if not mask.any():
                raise UnknownNameError(f"{key}: no population named {item[role]!r}")
            masks.append(mask)
        yield masks, _nonneg(f"{key}['factor']", item["factor"])


def _apply_ext_factors(factors, layout, w_ext):
    for (tgt,), factor in _factor_items("ext_factors", factors, ("target",), layout):
        w_ext[tgt] *= factor


def _apply_intra_factors(factors, layout, w):
    pop_area = layout[1]
    same_area = pop_area[:, None] == pop_area[None, :]
    for (tgt, src), factor in _factor_items("intra_factors", factors, ("target", "source"),
                                            layout):
        w[tgt[:, None] & src[None, :] & same_area] *= factor


def _signed_table(key, table, layout):
    """Like _nested_table for weights (signed, pA); absent entries NaN."""
    index = _pop_index(layout)
    p = len(index)
    m, ext = np.full((p, p), np.nan), np.full(p, np.nan)
    if not isinstance(table, dict):
        raise ParameterError(f"{key} must be a nested mapping, got {type(table).__name__}")
    _check_no_extra(key, table, index, layout[0])
    for (ta, tp), t in index.items():
        row = table.get(ta, {}).get(tp, {})
        for sa, sources in row.items():
            if sa == EXTERNAL:
                value = sources[EXTERNAL] if isinstance(sources, dict) else sources
                ext[t] = _finite(_key(key, ta, tp, sa), value)
                continue
            for sp, value in sources.items():
                if (sa, sp) not in index:
                    raise UnknownNameError(f"{_key(key, ta, tp, sa, sp)}: no such population")
                m[t, index[(sa, sp)]] = _finite(_key(key, ta, tp, sa, sp), value)
    return m, ext


# ============================================================ scaling and subset
@dataclass(frozen=True)
class Plan:
    """A specification at the chosen scale and area subset, ready to build.

    Arrays run over the S simulated populations (``sim``, indices into the
    specification's populations); matrices are [target, source].

    Attributes
    ----------
    spec : MultiAreaSpec
    sim : ndarray (S,) int
    n : ndarray (S,) int, neurons
    n_syn : ndarray (S, S) int, synapses per projection
    indegree : ndarray (S, S), realised mean in-degree (n_syn / n_target)
    weight : ndarray (S, S), pA, mean PSC (chi applied, / sqrt(k_scale))
    delay : ndarray (S, S), ms, mean delay
    poisson_rate : ndarray (S,), Hz, Poisson events per neuron
    poisson_weight, poisson_weight2 : ndarray (S,), pA and pA^2, mean and
        second moment of their weight (moment-matched, see ``_merge_poisson``)
    dc : ndarray (S,), pA, constant current added to I_e
    """

    spec: MultiAreaSpec
    sim: np.ndarray
    n: np.ndarray
    n_syn: np.ndarray
    indegree: np.ndarray
    weight: np.ndarray
    delay: np.ndarray
    poisson_rate: np.ndarray
    poisson_weight: np.ndarray
    poisson_weight2: np.ndarray
    dc: np.ndarray
    options: dict


def _fraction(name, value):
    return number(name, value, low=0, high=1, low_open=True)


def _simulated(spec, areas):
    if areas is None:
        return np.arange(len(spec.n))
    names = [areas] if isinstance(areas, str) else list(areas)
    if not names:
        raise ParameterError("areas must name at least one area to simulate")
    for a in names:
        if a not in spec.areas:
            raise UnknownNameError(f"areas: unknown area {a!r}; the specification has "
                                   f"{list(spec.areas)}")
    keep = [spec.areas.index(a) for a in names]
    return np.flatnonzero(np.isin(spec.pop_area, keep))


def _rate_vector(spec, name, value, required):
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return _pop_vector(name, value, (spec.areas, spec.pop_area, spec.pop_local), required)


def make_plan(spec, n_scale=1.0, k_scale=1.0, areas=None, replacement_rates=None, chi=None,
              chi_I=None, input="poisson"):
    """Scale a specification and choose the simulated areas (see :func:`multi_area`)."""
    spec = load_spec(spec)
    n_scale, k_scale = _fraction("n_scale", n_scale), _fraction("k_scale", k_scale)
    if input not in ("poisson", "dc"):
        raise ParameterError(f"input must be 'poisson' or 'dc', got {input!r}")
    sim = _simulated(spec, areas)
    other = np.setdiff1d(np.arange(len(spec.n)), sim)
    if k_scale != 1.0 and spec.rates is None:
        raise ParameterError("k_scale < 1 needs full-scale rates for the DC compensation: give "
                             "'rates' in the specification")
    not_simulated = ~np.isin(np.arange(len(spec.n)), sim)
    repl = _rate_vector(spec, "replacement_rates", replacement_rates, not_simulated)
    repl = spec.rates if repl is None else repl
    if other.size and np.any(spec.indegree[np.ix_(sim, other)] > 0) and repl is None:
        raise ParameterError("replacing non-simulated areas by Poisson sources needs their "
                             "rates: give replacement_rates or 'rates' in the specification")
    n = np.maximum(np.round(spec.n[sim] * n_scale), 1).astype(np.int64)
    k_full = spec.indegree[np.ix_(sim, sim)]
    if spec.rule == "fixed_indegree":
        n_syn = np.round(k_full * k_scale).astype(np.int64) * n[:, None]
    else:
        n_syn = np.round(k_full * k_scale * n[:, None]).astype(np.int64)
    w_full = spec.weights(chi, chi_I)
    poisson = _poisson_parts(spec, sim, other, w_full, k_scale, repl, input)
    dc = _compensation(spec, sim, other, w_full, n_syn / n[:, None], k_scale, repl, input)
    return Plan(spec=spec, sim=sim, n=n, n_syn=n_syn, indegree=n_syn / n[:, None],
                weight=w_full[np.ix_(sim, sim)] / math.sqrt(k_scale),
                delay=spec.mean_delays()[np.ix_(sim, sim)], poisson_rate=poisson[0],
                poisson_weight=poisson[1], poisson_weight2=poisson[2], dc=dc,
                options={"n_scale": n_scale, "k_scale": k_scale, "input": input,
                         "areas": [spec.areas[a] for a in np.unique(spec.pop_area[sim])],
                         "chi": spec.chi if chi is None else float(chi),
                         "chi_I": spec.chi_I if chi_I is None else float(chi_I)})


def _poisson_parts(spec, sim, other, w_full, k_scale, repl, input):
    """Per simulated target: the external drive and the replaced areas'
    input as Poisson events (rate Hz, weight pA), merged into one input."""
    sq = math.sqrt(k_scale)
    lam = np.zeros((len(sim), 1 + len(other)))
    w = np.zeros_like(lam)
    if input == "poisson":
        lam[:, 0] = spec.indegree_ext[sim] * k_scale * spec.rate_ext[sim]
        w[:, 0] = spec.weight_ext[sim] / sq
    if other.size:
        lam[:, 1:] = spec.indegree[np.ix_(sim, other)] * k_scale * repl[other][None, :]
        w[:, 1:] = w_full[np.ix_(sim, other)] / sq
    out = [_merge_poisson(spec.names[t], lam[i], w[i]) for i, t in enumerate(sim)]
    return tuple(np.array(x) for x in zip(*out))


def _merge_poisson(name, lam, w):
    """One Poisson input with the same first two cumulants as independent
    inputs (rates ``lam`` Hz, weights ``w`` pA): rate (sum lam w)^2 /
    sum lam w^2 and weight sum lam w^2 / sum lam w. The mean and variance of
    the input current, and so the diffusion approximation and the mean-field
    rates, are those of the separate inputs; equal weights give them exactly.
    A brainsim neuron has one Poisson input, so the weights must share a sign.
    Returns (rate, weight, second moment of the weight)."""
    on = lam > 0
    if not on.any():
        return 0.0, 0.0, 0.0
    if np.any(w[on] > 0) and np.any(w[on] < 0):
        raise ParameterError(f"Poisson inputs of population {name!r} (external drive and "
                             f"replaced areas) mix excitatory and inhibitory weights; one "
                             f"Poisson input per neuron carries one sign")
    m1, m2 = float(np.sum(lam * w)), float(np.sum(lam * w * w))
    if m2 == 0.0:
        return 0.0, 0.0, 0.0
    return m1 * m1 / m2, m2 / m1, (m2 / m1) ** 2


def _compensation(spec, sim, other, w_full, k_real, k_scale, repl, input):
    """DC (pA) restoring the full-scale mean input: tau_s x (full-scale mean
    rate of charge - realised one). Recurrent terms use the full-scale rates
    (none given and k_scale = 1: no recurrent term), replaced areas their
    replacement rates, the external drive rate_ext."""
    nu = np.zeros(len(spec.n)) if spec.rates is None else spec.rates.copy()
    if other.size:
        nu[other] = repl[other]
    tau = _tau_matrix(spec, sim)  # ms, channel of each source onto each target
    full = (w_full[sim] * spec.indegree[sim] * tau) @ nu
    w_sim = w_full[np.ix_(sim, sim)] / math.sqrt(k_scale)
    real = (w_sim * k_real * tau[:, sim]) @ nu[sim]
    if other.size:
        real += (w_full[np.ix_(sim, other)] / math.sqrt(k_scale) * spec.indegree[np.ix_(sim, other)]
                 * k_scale * tau[:, other]) @ nu[other]
    tau_ext = np.array([spec.neuron[t]["tau_syn_ex" if spec.weight_ext[t] >= 0 else "tau_syn_in"]
                        for t in sim])
    ext_full = spec.indegree_ext[sim] * spec.rate_ext[sim] * spec.weight_ext[sim] * tau_ext
    ext_real = ext_full * math.sqrt(k_scale) if input == "poisson" else 0.0
    return 1e-3 * (full - real + ext_full - ext_real)


def _tau_matrix(spec, sim):
    is_e = np.array([k == "E" for k in spec.kinds])[None, :]
    tau_ex = np.array([spec.neuron[t]["tau_syn_ex"] for t in sim])[:, None]
    tau_in = np.array([spec.neuron[t]["tau_syn_in"] for t in sim])[:, None]
    return np.where(is_e, tau_ex, tau_in)


# ================================================================= building
def multi_area(spec, n_scale=1.0, k_scale=1.0, areas=None, replacement_rates=None, chi=None,
               chi_I=None, input="poisson", seed=0, dt=0.1, store=None, overwrite=False,
               meta=None):
    """Build a multi-area network (iaf_psc_exp) from a specification.

    Parameters
    ----------
    spec : MultiAreaSpec, dict or path
        See :func:`load_spec`; :func:`example_spec` gives a small one.
    n_scale : float in (0, 1]
        Fraction of the neurons of every population (at least one neuron).
    k_scale : float in (0, 1]
        Fraction of the in-degrees (internal and external); weights are
        divided by sqrt(k_scale) and a DC current restores the full-scale
        mean input computed from the specification's full-scale ``rates``
        (required when k_scale < 1). The DC also absorbs the rounding of
        synapse numbers when rates are given.
    areas : str or list of str, optional
        Areas to simulate (default: all). The input of the others becomes
        Poisson input: in-degree x k_scale x rate events of the (chi-scaled,
        / sqrt(k_scale)) weight, merged with the external drive into one
        Poisson input per neuron with the same mean and variance (delay:
        the spec's ``delay['e']``; stationary input does not depend on it).
    replacement_rates : dict {area: {population: Hz}} or array (P,), optional
        Rates of the populations of the areas not simulated (default: the
        spec's ``rates``); a dict needs only those.
    chi, chi_I : float, optional
        Cortico-cortical weight factor and extra factor onto inhibitory
        targets (default: the specification's).
    input : {"poisson", "dc"}
        External drive as Poisson events (in-degree x rate_ext) or as its
        mean current.
    seed : int
        Network seed (connectivity, weights, delays, initial V).
    dt : float, ms
    store : str or os.PathLike, optional
        Stream the network into this network store instead, one partition
        per simulated area, generating the synapses of one area at a time
        (peak memory: the largest area's synapses, about 18 bytes each);
        the store holds exactly the network that ``build(n_areas)`` of the
        in-memory one saves.
    overwrite : bool
        Replace an existing network store at ``store``.
    meta : dict, optional
        More entries for ``net.meta`` (JSON-compatible; written to the store).

    Returns
    -------
    Network
        Not built; one region per area, populations named "<area>/<pop>",
        ``net.meta`` records the model, scaling and simulated areas. With
        ``store``: the stored network, built, its synapses read lazily.
    """
    plan = make_plan(spec, n_scale, k_scale, areas, replacement_rates, chi, chi_I, input)
    if meta is not None and not isinstance(meta, dict):
        raise ParameterError(f"meta must be a dict, got {type(meta).__name__}")
    if store is not None:
        return _stream(plan, dt, seed, store, overwrite, meta or {})
    net = _neurons(plan, dt, seed, meta or {})
    _connect(net, plan)
    return net


def _neurons(plan, dt, seed, meta):
    """The network's populations, initial V_m, Poisson inputs and meta; no synapses."""
    spec = plan.spec
    net = Network(dt=dt, seed=seed)
    rng = np.random.default_rng([seed, 7])
    for i, p in enumerate(plan.sim):
        params = dict(spec.neuron[p])
        params["I_e"] += float(plan.dc[i])
        pop = net.add_population(spec.names[p], int(plan.n[i]), "iaf_psc_exp", params=params,
                                 region=spec.areas[spec.pop_area[p]], kind=spec.kinds[p])
        net.set_property(pop.name, "V_m", rng.normal(spec.V0_mean[p], spec.V0_sd[p], pop.n))
    for i, p in enumerate(plan.sim):
        if plan.poisson_rate[i] > 0:
            net.add_poisson(spec.names[p], rate=float(plan.poisson_rate[i]),
                            weight=float(plan.poisson_weight[i]), indegree=1, delay=spec.delay_e)
    net.meta.update(model="multi_area", spec=spec.name, **plan.options)
    net.meta.update(meta)
    return net


def _stream(plan, dt, seed, path, overwrite, meta):
    """Write the network of ``plan`` into a network store area by area."""
    from brainsim.network_format import create_network_store, write_partition
    from brainsim.store import load_network
    from brainsim.synapses import local_dtype

    spec = plan.spec
    base = _neurons(plan, dt, seed, meta)
    area_of = spec.pop_area[plan.sim]
    starts = np.concatenate([[0], np.cumsum(plan.n)])
    cuts = [0] + [int(starts[i]) for i in range(1, len(area_of)) if area_of[i] != area_of[i - 1]]
    bounds = np.array(cuts + [base.n_neurons], np.int64)
    pairs = np.column_stack([bounds[:-1], bounds[1:]])
    local = local_dtype(pairs.tolist())  # the dtype the whole network's partitions get
    g = create_network_store(base, path, pairs, int(plan.n_syn.sum()), overwrite)
    for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        net = Network(dt=dt, seed=seed)
        for pop in base.populations.values():
            net.add_population(pop.name, pop.n, pop.model, params=pop.params,
                               region=pop.region, kind=pop.kind)
        targets = {t for t in range(len(plan.sim)) if lo <= starts[t] < hi}
        _connect(net, plan, targets)
        cut = [0, *(b for b in (lo, hi) if 0 < b < net.n_neurons), net.n_neurons]
        net.build(bounds=np.array(cut, np.int64))
        j = cut.index(lo) if lo in cut else 0
        part = net.partitions[j]
        syn = net.synapses
        write_partition(g, k, part.sources, part.indptr, syn.local_of(j).astype(local),
                        syn.weights_of(j), syn.delays_of(j))
        del net, syn, part
    return load_network(path, lazy=True)


def _draw(mean, rel_sd, distribution="normal", bounds="redraw"):
    mean = float(mean)
    if rel_sd == 0:
        return mean
    out = {"distribution": distribution, "mean": mean, "sd": abs(mean) * rel_sd}
    if bounds != "redraw":
        out["bounds"] = bounds
    return out


def _connect(net, plan, targets=None):
    """Connect every projection of ``plan``, or only those onto the target
    populations ``targets`` (indices into plan.sim), skipping the random
    streams of the others so that each projection draws what it draws in
    the whole network."""
    spec = plan.spec
    names = [spec.names[p] for p in plan.sim]
    for t, tgt in enumerate(names):
        for s, src in enumerate(names):
            if plan.n_syn[t, s] == 0:
                continue
            if targets is not None and t not in targets:
                net.skip_draws(1)
                continue
            weight = _draw(plan.weight[t, s], spec.rel_sd_weight, bounds=spec.weight_bounds)
            delay = _draw(plan.delay[t, s], spec.delay_rel_sd, spec.delay_distribution,
                          spec.delay_bounds)
            if spec.rule == "fixed_indegree":
                net.connect(src, tgt, rule="fixed_indegree",
                            indegree=int(plan.n_syn[t, s] // plan.n[t]), weight=weight,
                            delay=delay)
            else:
                net.connect(src, tgt, rule="fixed_total_number", n=int(plan.n_syn[t, s]),
                            weight=weight, delay=delay)


def population_model(spec, n_scale=1.0, k_scale=1.0, areas=None, replacement_rates=None,
                     chi=None, chi_I=None, input="poisson"):
    """The mean-field model (``mean_field_model.PopulationModel``, solved by
    ``brainsim.analysis.meanfield``) of the network :func:`multi_area`
    builds with the same arguments: realised in-degrees, weights (second
    moment including their relative sd), merged Poisson input and DC
    compensation."""
    plan = make_plan(spec, n_scale, k_scale, areas, replacement_rates, chi, chi_I, input)
    spec = plan.spec
    neuron = {k: np.array([spec.neuron[p][k] for p in plan.sim]) for k in NEURON_KEYS}
    i_e = np.array([spec.neuron[p]["I_e"] for p in plan.sim]) + plan.dc
    return PopulationModel(
        names=[spec.names[p] for p in plan.sim], K=plan.indegree, J=plan.weight,
        J2=plan.weight ** 2 * (1.0 + spec.rel_sd_weight ** 2),
        kinds=[spec.kinds[p] for p in plan.sim], neuron=neuron, ext_rate=plan.poisson_rate,
        ext_weight=plan.poisson_weight, ext_weight2=plan.poisson_weight2, I_e=i_e,
        meta={"source": "multi_area", "spec": spec.name, **plan.options})



def scaling_tables(spec, n_scale=1.0, k_scale=1.0, chi=None, chi_I=None, input="poisson"):
    """In-degrees, weights and input moments before and after down-scaling.

    The scaling of :func:`multi_area` (van Albada et al. 2015) multiplies
    in-degrees by ``k_scale``, divides weights by sqrt(k_scale) and adds a
    DC current, so that at the full-scale rates (the specification's
    ``rates``) every population's mean input mu and its fluctuation sigma
    stay as at full scale. This table shows it: ``*_full`` at full scale,
    ``*_scaled`` with the exact scaled in-degrees (K x k_scale) and
    ``*_realised`` with the integer synapse numbers a network of
    ``n_scale`` gets (round(K k_scale N_target) per projection; the DC is
    computed from those, so mu is kept there too and sigma up to rounding).
    With ``input="dc"`` the external drive's fluctuations are gone by
    design, so sigma is smaller than at full scale.

    Returns
    -------
    xarray.Dataset
        ``indegree_full``, ``indegree_scaled``, ``indegree_realised``
        (population, source), ``weight_full``, ``weight_scaled`` (pA),
        ``indegree_external_full``, ``indegree_external_scaled``, ``dc``
        (pA, exact scaling), ``dc_realised`` (pA), and ``mu_*``,
        ``sigma_*`` (mV) for full / scaled / realised.
    """
    import xarray as xr

    from . import siegert as meanfield

    spec = load_spec(spec)
    if spec.rates is None:
        raise ParameterError("scaling_tables needs the specification's full-scale 'rates'")
    plan = make_plan(spec, n_scale, k_scale, None, None, chi, chi_I, input)
    k_scale = plan.options["k_scale"]
    sim = plan.sim
    w_full = spec.weights(chi, chi_I)
    k_exact = spec.indegree * k_scale
    dc_exact = _compensation(spec, sim, sim[:0], w_full, k_exact, k_scale, None, input)

    def model(k, w, dc, k_ext, poisson=input == "poisson"):
        neuron = {key: np.array([spec.neuron[p][key] for p in sim]) for key in NEURON_KEYS}
        i_e = np.array([spec.neuron[p]["I_e"] for p in sim]) + dc
        rate = spec.indegree_ext * k_ext * spec.rate_ext if poisson else np.zeros(len(sim))
        wext = spec.weight_ext / math.sqrt(k_ext)
        return PopulationModel(
            names=list(spec.names), K=k, J=w, J2=w ** 2 * (1.0 + spec.rel_sd_weight ** 2),
            kinds=list(spec.kinds), neuron=neuron, ext_rate=rate, ext_weight=wext,
            ext_weight2=wext ** 2, I_e=i_e)

    zero = np.zeros(len(sim))
    full = model(spec.indegree, w_full, zero, 1.0, poisson=True)
    scaled = model(k_exact, w_full / math.sqrt(k_scale), dc_exact, k_scale)
    realised = spec.population_model(n_scale=n_scale, k_scale=k_scale, chi=chi, chi_I=chi_I,
                                     input=input)
    moments = {name: meanfield.input_moments(m, spec.rates)[:2]
               for name, m in (("full", full), ("scaled", scaled), ("realised", realised))}
    pops = list(spec.names)
    pair = ("population", "source")
    data = {
        "indegree_full": (pair, spec.indegree, {"units": "1"}),
        "indegree_scaled": (pair, k_exact, {"units": "1"}),
        "indegree_realised": (pair, plan.indegree, {"units": "1"}),
        "weight_full": (pair, w_full, {"units": "pA"}),
        "weight_scaled": (pair, w_full / math.sqrt(k_scale), {"units": "pA"}),
        "indegree_external_full": ("population", spec.indegree_ext, {"units": "1"}),
        "indegree_external_scaled": ("population", spec.indegree_ext * k_scale, {"units": "1"}),
        "dc": ("population", dc_exact, {"units": "pA"}),
        "dc_realised": ("population", plan.dc, {"units": "pA"}),
    }
    for name, (mu, sigma) in moments.items():
        data[f"mu_{name}"] = ("population", mu, {"units": "mV", "long_name": "mean input"})
        data[f"sigma_{name}"] = ("population", sigma, {"units": "mV",
                                                       "long_name": "input fluctuation"})
    return xr.Dataset(data, coords={"population": pops, "source": pops},
                      attrs={"n_scale": float(n_scale), "k_scale": float(k_scale),
                             "input": input, "rates": "the specification's full-scale rates"})
