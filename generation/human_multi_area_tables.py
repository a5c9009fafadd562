"""Neuron and synapse numbers of the human multi-area model (Pronold et al. 2024).

Pronold J, van Meegen A, Shimoura RO, Vollenbroeker H, Senden M, Hilgetag CC,
Bakker R, van Albada SJ (2024). Multi-scale spiking network model of human
cerebral cortex. Cerebral Cortex 34:bhae409, doi 10.1093/cercor/bhae409.

:func:`construct` derives, for 1 mm^2 of cortex under each of the 34
Desikan-Killiany (DK) areas of the right hemisphere, the neuron number of each
of the 8 populations (layers II/III, IV, V, VI x E/I) and the synapse numbers
between all 272 populations, from the anatomical tables in
``data/human_multi_area`` (see its README for sources and licences). The
procedure follows the published description; the code is our own.

Where the published description leaves a choice, it is read as follows. The
first three readings reproduce the published totals exactly (tests); the others
do not change any total and are our choice:

- von Economo-Koskinas (vEK) sheet: a sub-layer row counts when its column
  "Layer thickness overall [mm]" holds a value; its density is the sheet's
  "mean cell content per layer [cells/mm³]" of that row (the mean over the
  sub-sub-layers the thickness covers). "-" reads as 0, "60.000 (?)" as 60000,
  and a thickness row without a mean cell content (VIb of OA, OB, HA, HB, HC)
  has density 0. Labels map to layers by their leading numeral: "I", "Ia",
  "Ib" -> I; "II", "III...", "II+III" -> II/III; "IV..." -> IV; "V...",
  "V+VI" -> V; "VI..." -> VI.
- N_E = rint(density x thickness x fraction_E), N_I = rint(density x
  thickness x (1 - fraction_E)) in float64, halves to even (see
  :func:`_neurons`).
- A layer is dropped when its E + I neuron numbers sum to fewer than
  ``min_layer_size``; its thickness becomes 0, so it no longer counts in the
  area's total thickness (the published total thicknesses in
  ``type_I_fraction.csv`` are those after dropping) nor as a target layer (a
  feedforward projection into an area whose layer IV was dropped goes to
  II/III).
- The mean neuron density rho(A) of the SLN formula is the area's neurons
  under 1 mm^2 (layer I included, dropped layers excluded) over its total
  thickness, from unrounded densities x thicknesses.
- 5E and 6E share 1 - SLN in proportion to their (rounded) neuron numbers.
- Layer -> target population ("mohan"): E population i takes Mohan[i, v] x
  (sum of the Binzegger E rows of column v); the I population of layer L takes
  Binzegger[L-I, L] from layer L only (columns then sum to 1). The feedback
  rescaling (93 % on E) applies to the whole projection, after the split over
  target layers.
- Area-level synapse numbers are rounded; the type I / type II and the
  inter-area blocks are then rounded per population pair (or per target), so
  each area receives rho_syn x total thickness synapses up to rounding.
- With ``synapse_cellbody="binzegger"`` the Binzegger table (E and I rows)
  is used as the layer -> target population probability instead.
"""
import csv
import functools
import importlib.resources
import json
import math
import re
from collections.abc import Mapping

import numpy as np
import xarray as xr
from scipy import special

from brainsim.errors import ParameterError, StoreError
from brainsim.validation import is_number, number

#: Layers with populations, and all cortical layers (layer I has no neurons
#: in the model but counts for thickness and synapses).
LAYERS = ("II/III", "IV", "V", "VI")
CORTICAL_LAYERS = ("I",) + LAYERS
KINDS = ("E", "I")
#: Short layer tags used in population names, e.g. "bankssts/23E".
LAYER_TAGS = {"II/III": "23", "IV": "4", "V": "5", "VI": "6"}
PROJECTION_TYPES = ("feedforward", "lateral", "feedback")
SOURCE = ("Pronold et al. (2024) Cereb. Cortex 34:bhae409, doi 10.1093/cercor/bhae409; "
          "data tables in brainsim/generation/data/human_multi_area")

_THICKNESS_COLUMN = "Layer thickness overall [mm]"
_DENSITY_COLUMN = "mean cell content per layer [cells/mm³]"
_FRACTION_E_TABLES = {"lichtman": "fraction_E_lichtman.csv",
                      "binzegger": "fraction_E_binzegger.csv"}
_CELLBODY = ("mohan", "binzegger")
_SLN_FEEDFORWARD, _SLN_FEEDBACK = 0.65, 0.35


# --------------------------------------------------------------------- data
def _data_dir():
    """The folder of the data tables (package data)."""
    return importlib.resources.files("brainsim.generation").joinpath("data", "human_multi_area")


def _read_table(name):
    """Rows of a CSV file of ``data/human_multi_area`` as a list of dicts;
    every cell that reads as a number must be finite and >= 0 (all the
    tables' numbers are counts, densities, thicknesses, fractions, lengths
    or rates), else a StoreError names the file, row and column."""
    with _data_dir().joinpath(name).open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for k, row in enumerate(rows):
        for column, text in row.items():
            try:
                x = float(text)
            except (TypeError, ValueError):
                continue
            if not (math.isfinite(x) and x >= 0):
                raise StoreError(f"human multi-area data {name}, row {k + 2}, column "
                                 f"{column!r}: {text!r} is not a finite number >= 0 (the "
                                 f"package data is damaged: reinstall brainsim)")
    return rows


def _pop_matrix(rows, columns):
    """A table with ``layer``/``population`` (or ``target_*``) key columns as
    an (8, len(columns)) float array in population order 23E 23I ... 6I."""
    def key(r):
        return (r.get("layer", r.get("target_layer")),
                r.get("population", r.get("target_population")))
    by_key = {key(r): r for r in rows}
    return np.array([[float(by_key[(layer, kind)][c]) for c in columns]
                     for layer in LAYERS for kind in KINDS])


def _sheet_number(text):
    """A value of the vEK sheet in mm or cells/mm^3; None where empty.

    "-" reads as 0 and "60.000 (?)" (German thousands separator, marked
    uncertain) as 60000, as in the published model.
    """
    text = (text or "").strip()
    if not text:
        return None
    if text == "-":
        return 0.0
    uncertain = re.fullmatch(r"(\d{1,3}(?:\.\d{3})+)\s*\(\?\)", text)
    if uncertain:
        return float(uncertain.group(1).replace(".", ""))
    return float(text)


def _layer_of(label):
    """The model layer ("I", "II/III", "IV", "V", "VI") of a vEK sub-layer."""
    for prefix, layer in (("VI", "VI"), ("IV", "IV"), ("V", "V"), ("II", "II/III"),
                          ("I", "I")):
        if label.startswith(prefix):
            return layer
    raise ValueError(f"unknown cortical layer label {label!r} in the vEK sheet")


def _vek_layers():
    """Per vEK area: thickness (mm) and cells under 1 mm^2 of each of the five
    cortical layers, summed over the sub-layers that carry a thickness.

    Returns
    -------
    dict
        vEK area symbol -> (thickness, cells), each a float array over
        :data:`CORTICAL_LAYERS` (mm; neurons per mm^2).
    """
    out = {}
    for row in _read_table("vonEconomoKoskinas_Sheet1.csv"):
        thickness = _sheet_number(row[_THICKNESS_COLUMN])
        if thickness is None:
            continue
        density = _sheet_number(row[_DENSITY_COLUMN]) or 0.0
        k = CORTICAL_LAYERS.index(_layer_of(row["cortical_layer_ffill"]))
        thick, cells = out.setdefault(row["area_symbol_ffill"], (np.zeros(5), np.zeros(5)))
        thick[k] += thickness
        cells[k] += thickness * density
    return out


def _area_layers(areas):
    """Thickness (mm) and density (neurons per mm^3) of each DK area's five
    layers: the mean of its vEK areas' thicknesses (equal surfaces) and their
    thickness-weighted mean density; (34, 5) arrays each."""
    vek = _vek_layers()
    mapping = {}
    for row in _read_table("mapping_DK_vEK.csv"):
        mapping.setdefault(row["area"], []).append(row["vek_area"])
    thickness, density = np.zeros((len(areas), 5)), np.zeros((len(areas), 5))
    for a, area in enumerate(areas):
        thick = np.array([vek[v][0] for v in mapping[area]])
        cells = np.array([vek[v][1] for v in mapping[area]])
        thickness[a] = thick.mean(axis=0)
        summed = thick.sum(axis=0)
        density[a] = np.divide(cells.sum(axis=0), summed, out=np.zeros(5), where=summed > 0)
    return thickness, density


# --------------------------------------------------------------- validation
def _fraction_e(value):
    """The E fraction per layer (array over :data:`LAYERS`) and its label."""
    if isinstance(value, str):
        if value not in _FRACTION_E_TABLES:
            raise ParameterError(f"fraction_E must be 'lichtman', 'binzegger' or a mapping "
                                 f"{{layer: fraction}}, got {value!r}")
        rows = {r["layer"]: float(r["ratio"]) for r in _read_table(_FRACTION_E_TABLES[value])}
        return np.array([rows[layer] for layer in LAYERS]), value
    if not isinstance(value, Mapping) or set(value) != set(LAYERS):
        raise ParameterError(f"fraction_E must be 'lichtman', 'binzegger' or a mapping with "
                             f"exactly the keys {list(LAYERS)} to fractions in (0, 1], "
                             f"got {value!r}")
    fractions = np.array([number(f"fraction_E[{layer!r}]", value[layer], low=0, high=1,
                                 low_open=True)
                          for layer in LAYERS])
    return fractions, json.dumps(dict(zip(LAYERS, fractions.tolist())))


def _choice(name, value, allowed):
    if not isinstance(value, str) or value not in allowed:
        raise ParameterError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def _type_i_fraction(value, areas):
    """f_I per area: the published table (None) or one number for all."""
    if value is None:
        rows = {r["area"]: float(r["fraction_type_I"]) for r in _read_table("type_I_fraction.csv")}
        return np.array([rows[a] for a in areas])
    if not is_number(value):
        raise ParameterError(f"type_I_fraction must be None (the published table) or a "
                             f"number in (0, 1], got {value!r}")
    return np.full(len(areas), number("type_I_fraction", value, low=0, high=1, low_open=True))


# ------------------------------------------------------------------ neurons
def _neurons(thickness, density, fraction_e, min_layer_size):
    """Neurons per population and the thickness after dropping thin layers.

    Returns
    -------
    neurons : (34, 8) int64 array, neurons per mm^2 (23E 23I ... 6I)
    thickness : (34, 5) float array, mm, dropped layers set to 0
    dropped : (34, 5) bool array, layers with neurons dropped as too small
    """
    # Float64 in this order, rounded half to even (np.rint): 51 of the products
    # are (or are within 1e-12 of) x.5, and the published 3,468,839 neurons come
    # out of exactly this arithmetic (exact rationals would give 3,468,847,
    # rounding halves up 3,468,852).
    cells = density[:, 1:] * thickness[:, 1:]  # (34, 4), neurons per mm^2
    n_e = np.rint(cells * fraction_e).astype(np.int64)
    n_i = np.rint(cells * (1.0 - fraction_e)).astype(np.int64)
    small = (n_e + n_i < min_layer_size) & (thickness[:, 1:] > 0)
    dropped = np.zeros(thickness.shape, bool)
    dropped[:, 1:] = small
    thickness = np.where(dropped, 0.0, thickness)
    n_e[small], n_i[small] = 0, 0
    return np.stack([n_e, n_i], axis=2).reshape(len(thickness), 8), thickness, dropped


# ---------------------------------------------------------------- synapses
def _area_synapses(total_thickness, streamlines, rho_syn, fln):
    """Synapses under 1 mm^2 of target area A from area B, (34, 34) rounded:
    FLN x rho_syn x thickness(A) on the diagonal, the rest split over the
    other areas by the row-normalised streamline counts."""
    total = rho_syn * total_thickness
    shares = streamlines / streamlines.sum(axis=1, keepdims=True)
    area = (1.0 - fln) * total[:, None] * shares
    np.fill_diagonal(area, fln * total)
    return np.rint(area)


def _intra_area(intra, fraction_i, neurons, p, k_ext):
    """Type I blocks (34, 8, 8) [target, source] and type II numbers (34, 8).

    Type I synapses, f_I x intra, go to population pairs in proportion to
    p[i, j] N_i N_j; type II, (1 - f_I) x intra, to targets in proportion to
    K_ext[i] N_i; each rounded per pair or target.
    """
    n = neurons.astype(float)
    weight = p[None] * n[:, :, None] * n[:, None, :]
    weight /= weight.sum(axis=(1, 2), keepdims=True)
    type_i = np.rint((fraction_i * intra)[:, None, None] * weight)
    ext = k_ext[None] * n
    ext /= ext.sum(axis=1, keepdims=True)
    type_ii = np.rint(((1.0 - fraction_i) * intra)[:, None] * ext)
    return type_i, type_ii


def _sln(rho, a0, a1):
    """SLN[target, source] = Phi(a0 + a1 ln(rho_target / rho_source)); NaN on
    the diagonal."""
    x = a0 + a1 * np.log(rho[:, None] / rho[None, :])
    sln = special.ndtr(x)
    np.fill_diagonal(sln, np.nan)
    return sln


def _layer_to_population(cellbody, neurons):
    """Per target area, the probability (34, 8, 5) that a synapse in cortical
    layer v lands on population i, over non-empty populations only."""
    columns = list(CORTICAL_LAYERS)
    binzegger = _pop_matrix(_read_table("synapse_cellbody_probability_binzegger.csv"), columns)
    if cellbody == "binzegger":
        prob = binzegger
    else:
        e_rows, i_rows = np.arange(0, 8, 2), np.arange(1, 8, 2)
        prob = _pop_matrix(_read_table("synapse_cellbody_probability_mohan.csv"), columns)
        prob = prob * binzegger[e_rows].sum(axis=0)  # E rows x Binzegger E fraction
        prob[i_rows] = 0.0
        for k, row in enumerate(i_rows):  # I of layer L: Binzegger I fraction of L
            prob[row, k + 1] = binzegger[row, k + 1]
    prob = np.where(neurons[:, :, None] > 0, prob[None], 0.0)
    return np.swapaxes(_normalised(np.swapaxes(prob, 1, 2)), 1, 2)


def _projection_types(sln):
    """0 feedforward (SLN > 0.65), 1 lateral, 2 feedback (SLN < 0.35);
    -1 on the diagonal."""
    kind = np.where(sln > _SLN_FEEDFORWARD, 0, np.where(sln < _SLN_FEEDBACK, 2, 1))
    np.fill_diagonal(kind, -1)
    return kind


def _target_probabilities(kind, thickness, layer_pop, feedback_e):
    """Probability over the target area's 8 populations per projection,
    (34, 34, 8) [target area, source area, population]."""
    n_areas = len(thickness)
    has_iv = thickness[:, 2] > 0
    masks = np.zeros((n_areas, n_areas, 5))
    ff = np.zeros((n_areas, 5))
    ff[:, 2] = has_iv
    ff[:, 1] = ~has_iv  # II/III where the target has no layer IV
    masks[kind == 0] = np.broadcast_to(ff[:, None], masks.shape)[kind == 0]
    masks[kind == 1] = 1.0
    masks[kind == 2] = [1.0, 1.0, 0.0, 1.0, 1.0]
    layer_w = masks * thickness[:, None, :]
    total = layer_w.sum(axis=2, keepdims=True)
    layer_w = np.divide(layer_w, total, out=np.zeros_like(layer_w), where=total > 0)
    prob = np.einsum("abv,aiv->abi", layer_w, layer_pop)
    e_sum = prob[:, :, 0::2].sum(axis=2)
    i_sum = prob[:, :, 1::2].sum(axis=2)
    fb = (kind == 2) & (e_sum > 0) & (i_sum > 0)
    prob[:, :, 0::2][fb] *= (feedback_e / e_sum[fb])[:, None]
    prob[:, :, 1::2][fb] *= ((1.0 - feedback_e) / i_sum[fb])[:, None]
    # Sums to 1 already unless a layer with thickness has no non-empty target
    # (only with extreme fraction_E); then the rest of the layers take its share.
    return _normalised(prob)


def _normalised(x):
    """``x`` divided by its sum over the last axis (0 where that sum is 0)."""
    total = x.sum(axis=-1, keepdims=True)
    return np.divide(x, total, out=np.zeros_like(x), where=total > 0)


def _source_split(sln, neurons):
    """Share of each source population per projection, (34, 34, 8): 23E takes
    SLN, 5E and 6E share 1 - SLN by their neuron numbers; 0 on the diagonal.
    Shares of empty source populations go to the others (never at defaults)."""
    n5, n6 = neurons[:, 4].astype(float), neurons[:, 6].astype(float)
    deep = n5 + n6
    split = np.zeros(sln.shape + (8,))
    split[:, :, 0] = np.nan_to_num(sln)
    split[:, :, 4] = (1.0 - split[:, :, 0]) * np.divide(n5, deep, out=np.zeros_like(n5),
                                                        where=deep > 0)[None, :]
    split[:, :, 6] = (1.0 - split[:, :, 0]) * np.divide(n6, deep, out=np.zeros_like(n6),
                                                        where=deep > 0)[None, :]
    split = np.where(neurons[None, :, :] > 0, split, 0.0)
    split[np.eye(len(sln), dtype=bool)] = 0.0
    return _normalised(split)


def _inter_area(area_syn, target_prob, source_split):
    """Type III blocks (34, 34, 8, 8) [target area, source area, target pop,
    source pop]: round(N_syn[A, B] x outer(target prob, source split))."""
    off = area_syn * (1.0 - np.eye(len(area_syn)))
    return np.rint(off[:, :, None, None] * target_prob[:, :, :, None]
                   * source_split[:, :, None, :])


# --------------------------------------------------------------- public API
def _data_errors(func):
    """A key missing from the data tables (an area, a layer, a vEK area)
    becomes a StoreError naming it, not a bare KeyError."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except KeyError as err:
            raise StoreError(f"the human multi-area data tables lack {err.args[0]!r} (the "
                             f"package data is damaged: reinstall brainsim)") from None
    return wrapper


@_data_errors
def construct(fraction_E="lichtman", synapse_cellbody="mohan", rho_syn=6.6e8, fln=0.86,
              min_layer_size=5000, feedback_E_fraction=0.93, sln_a0=-0.152, sln_a1=-1.534,
              type_I_fraction=None):
    """Neuron and synapse numbers of the human multi-area model at full scale.

    The published construction of Pronold et al. (2024), doi
    10.1093/cercor/bhae409, for 1 mm^2 of each of the 34 Desikan-Killiany
    areas of the right hemisphere (8 populations per area: layers II/III, IV,
    V, VI x E/I, 272 in all). Defaults reproduce the published model:
    3,468,839 neurons, 254 non-empty populations, 4.28e10 internal and
    1.80e10 external synapses.

    Parameters
    ----------
    fraction_E : {"lichtman", "binzegger"} or mapping, optional
        Fraction of excitatory neurons per layer: Shapson-Coe et al. (2021)
        ("lichtman", default), Binzegger et al. (2004), or a mapping with the
        keys "II/III", "IV", "V", "VI" to fractions in (0, 1].
    synapse_cellbody : {"mohan", "binzegger"}, optional
        Probability that an inter-area synapse in a layer lands on each
        target population: the Mohan et al. (2015) table times the Binzegger
        E fraction of the layer, I populations taking the Binzegger I fraction
        of their own layer ("mohan", default), or the Binzegger table.
    rho_syn : float, synapses per mm^3, optional
        Synapse density; 1 mm^2 of area A receives rho_syn x total thickness
        of A synapses. Must be > 0.
    fln : float in [0, 1], optional
        Fraction of an area's synapses from inside the area.
    min_layer_size : float, neurons per mm^2, optional
        Layers with fewer neurons (E + I) are dropped (thickness 0, no
        neurons). Must be >= 0; 0 keeps every layer the atlas has.
    feedback_E_fraction : float in [0, 1], optional
        Fraction of feedback synapses that land on E populations.
    sln_a0, sln_a1 : float, optional
        SLN = Phi(a0 + a1 ln(rho_target / rho_source)), rho the mean neuron
        density of an area (neurons per mm^3, layer I included).
    type_I_fraction : None or float in (0, 1], optional
        Fraction of intra-area synapses from neurons inside the 1 mm^2 column
        (type I); the rest (type II) become external input. None (default)
        takes the published per-area values (0.65528-0.65530).

    Returns
    -------
    xarray.Dataset
        Dimensions ``area`` (34), ``source_area`` (34), ``population`` (272,
        names "<area>/<tag><E|I>" with tags 23, 4, 5, 6, e.g.
        "bankssts/23E"; coordinates ``area_of``, ``layer``, ``kind``),
        ``source`` (the same 272 populations as sources; coordinate
        ``source_area_of``) and ``cortical_layer`` ("I", "II/III", "IV", "V",
        "VI"). Variables: ``neurons`` (neurons per mm^2), ``synapses``
        [population, source] (type I within and type III between areas),
        ``synapses_external`` (type II), ``area_synapses``
        [area, source_area], ``thickness``, ``density``, ``layer_dropped``,
        ``total_thickness``, ``mean_density``, ``sln``, ``projection_type``
        and ``fraction_type_I``; each with ``units`` and ``long_name``. The
        attributes record the parameters and the source.

    Raises
    ------
    brainsim.errors.ParameterError
        If a parameter is of the wrong type or out of range, or if
        ``min_layer_size`` leaves an area without neurons.
    brainsim.errors.StoreError
        If the package's data tables are damaged (a missing area or layer,
        a negative or non-finite number).
    """
    fraction_e, fraction_label = _fraction_e(fraction_E)
    cellbody = _choice("synapse_cellbody", synapse_cellbody, _CELLBODY)
    rho_syn = number("rho_syn", rho_syn, low=0, low_open=True, unit="synapses per mm^3")
    fln = number("fln", fln, low=0, high=1)
    min_layer_size = number("min_layer_size", min_layer_size, low=0, unit="neurons per mm^2")
    feedback_e = number("feedback_E_fraction", feedback_E_fraction, low=0, high=1)
    sln_a0, sln_a1 = number("sln_a0", sln_a0), number("sln_a1", sln_a1)

    streamline_rows = _read_table("hcp_dti_C_R.csv")
    areas = [r["row_area"] for r in streamline_rows]
    streamlines = np.array([[float(r[a]) for a in areas] for r in streamline_rows])
    fraction_i = _type_i_fraction(type_I_fraction, areas)

    thickness, density = _area_layers(areas)
    neurons, thickness, dropped = _neurons(thickness, density, fraction_e, min_layer_size)
    empty = [a for a, n in zip(areas, neurons) if not n.any()]
    if empty:
        raise ParameterError(f"min_layer_size={min_layer_size!r} neurons per mm^2 leaves "
                             f"areas without neurons ({', '.join(empty)}); use a smaller "
                             f"value (default 5000)")
    total_thickness = thickness.sum(axis=1)
    mean_density = (density * thickness).sum(axis=1) / total_thickness

    area_syn = _area_synapses(total_thickness, streamlines, rho_syn, fln)
    p = _pop_matrix(_read_table("microcircuit_p.csv"),
                    [f"{layer}-{kind}" for layer in LAYERS for kind in KINDS])
    k_ext = _pop_matrix(_read_table("microcircuit_K_ext.csv"), ["K_ext"])[:, 0]
    type_i, type_ii = _intra_area(np.diag(area_syn), fraction_i, neurons, p, k_ext)

    sln = _sln(mean_density, sln_a0, sln_a1)
    kind = _projection_types(sln)
    target_prob = _target_probabilities(kind, thickness,
                                        _layer_to_population(cellbody, neurons), feedback_e)
    blocks = _inter_area(area_syn, target_prob, _source_split(sln, neurons))
    for a in range(len(areas)):
        blocks[a, a] = type_i[a]
    synapses = blocks.transpose(0, 2, 1, 3).reshape(8 * len(areas), 8 * len(areas))

    params = {"fraction_E": fraction_label, "synapse_cellbody": cellbody, "rho_syn": rho_syn,
              "fln": fln, "min_layer_size": min_layer_size,
              "feedback_E_fraction": feedback_e, "sln_a0": sln_a0, "sln_a1": sln_a1,
              "type_I_fraction": "table" if type_I_fraction is None else float(fraction_i[0])}
    return _dataset(areas, neurons, synapses, type_ii, area_syn, thickness, density, dropped,
                    mean_density, sln, kind, fraction_i, params)


def population_names(areas):
    """Population names "<area>/<tag><E|I>" in model order (area-major)."""
    return [f"{a}/{LAYER_TAGS[layer]}{kind}" for a in areas for layer in LAYERS
            for kind in KINDS]


def _var(dims, data, units, long_name, description=None):
    attrs = {"units": units, "long_name": long_name}
    if description:
        attrs["description"] = description
    return (dims, data, attrs)


def _dataset(areas, neurons, synapses, type_ii, area_syn, thickness, density, dropped,
             mean_density, sln, kind, fraction_i, params):
    """Assemble the xarray.Dataset returned by :func:`construct`."""
    names = population_names(areas)
    area_of = [n.split("/")[0] for n in names]
    pop, src = ("population",), ("population", "source")
    data_vars = {
        "neurons": _var(pop, neurons.reshape(-1), "neurons per mm^2",
                        "neurons per population under 1 mm^2 of cortex"),
        "synapses": _var(src, synapses.astype(np.int64), "synapses per mm^2",
                         "internal synapses [target population, source population]",
                         "type I (inside the area's 1 mm^2 column) on the diagonal area "
                         "blocks, type III (from other areas, E sources) elsewhere"),
        "synapses_external": _var(pop, type_ii.reshape(-1).astype(np.int64),
                                  "synapses per mm^2", "external (type II) synapses",
                                  "from the same area outside the 1 mm^2 column; modelled "
                                  "as Poisson input"),
        "area_synapses": _var(("area", "source_area"), area_syn.astype(np.int64),
                              "synapses per mm^2", "synapses onto 1 mm^2 of area by source "
                              "area", "diagonal: intra-area (type I + type II)"),
        "thickness": _var(("area", "cortical_layer"), thickness, "mm", "layer thickness",
                          "0 for layers the atlas lacks and dropped layers"),
        "density": _var(("area", "cortical_layer"), density, "neurons per mm^3",
                        "neuron density", "atlas value, also for dropped layers"),
        "layer_dropped": _var(("area", "cortical_layer"), dropped, "1",
                              "layer dropped for having fewer than min_layer_size neurons"),
        "total_thickness": _var(("area",), thickness.sum(axis=1), "mm",
                                "cortical thickness (layer I included)"),
        "mean_density": _var(("area",), mean_density, "neurons per mm^3",
                             "mean neuron density (layer I included)"),
        "sln": _var(("area", "source_area"), sln, "1",
                    "fraction of supragranular labelled neurons [target, source]"),
        "projection_type": _var(("area", "source_area"),
                                np.array([""] + list(PROJECTION_TYPES))[kind + 1], "1",
                                "feedforward (SLN > 0.65), feedback (SLN < 0.35) or lateral"),
        "fraction_type_I": _var(("area",), fraction_i, "1",
                                "fraction of intra-area synapses that are type I"),
    }
    coords = {"area": areas, "source_area": areas, "cortical_layer": list(CORTICAL_LAYERS),
              "population": names, "source": names,
              "area_of": ("population", area_of),
              "layer": ("population", [layer for _ in areas for layer in LAYERS
                                       for _kind in KINDS]),
              "kind": ("population", list(KINDS) * (4 * len(areas))),
              "source_area_of": ("source", area_of)}
    attrs = dict(params, source=SOURCE,
                 description="human multi-area model: neuron and synapse numbers for 1 mm^2 "
                             "of cortex per area, full scale")
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
