"""The human multi-area model's construction (Pronold et al. 2024, doi
10.1093/cercor/bhae409) against its published numbers: 3,468,839 neurons in
254 non-empty populations, 4.278e10 internal and 1.80e10 external synapses,
80 % of internal synapses within areas, and every area receiving
rho_syn x its total thickness synapses."""
import csv
import importlib.resources
import math

import numpy as np
import pytest

from brainsim.errors import ParameterError
from brainsim.generation.human_multi_area_tables import construct

#: Layers von Economo & Koskinas do not describe in the area (no layer IV in
#: agranular cortex; parahippocampal has none in HC/HD either).
ATLAS_LACKS = [("caudalanteriorcingulate", "4"), ("entorhinal", "4"),
               ("parahippocampal", "4"), ("precentral", "4"),
               ("rostralanteriorcingulate", "4")]
#: Layers dropped for having fewer than 5000 neurons per mm^2.
DROPPED = [("caudalmiddlefrontal", "4"), ("lateraloccipital", "4"),
           ("parsorbitalis", "4"), ("parahippocampal", "6")]
LAYER_NAME = {"4": "IV", "6": "VI"}


def _names(pairs):
    return {f"{area}/{tag}{kind}" for area, tag in pairs for kind in "EI"}


def _table(name):
    path = importlib.resources.files("brainsim.generation").joinpath(
        "data", "human_multi_area", name)
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _blocks(ds):
    """Synapses as (target area, source area, target pop, source pop)."""
    n = ds.sizes["area"]
    return ds.synapses.values.reshape(n, 8, n, 8).transpose(0, 2, 1, 3)


@pytest.fixture(scope="module")
def ds():
    return construct()


# ------------------------------------------------------------------ neurons
def test_published_neuron_total(ds):
    assert ds.neurons.dtype == np.int64
    assert int(ds.neurons.sum()) == 3_468_839
    assert int((ds.neurons > 0).sum()) == 254


def test_empty_populations_are_exactly_the_published_18(ds):
    empty = set(ds.population.values[ds.neurons.values == 0].tolist())
    assert empty == _names(ATLAS_LACKS) | _names(DROPPED)
    assert len(empty) == 18


def test_dropped_layers_lose_their_thickness(ds):
    dropped = {(a, layer) for a in ds.area.values for layer in ds.cortical_layer.values
               if ds.layer_dropped.sel(area=a, cortical_layer=layer)}
    assert dropped == {(a, LAYER_NAME[t]) for a, t in DROPPED}
    for area, tag in DROPPED + ATLAS_LACKS:
        assert ds.thickness.sel(area=area, cortical_layer=LAYER_NAME[tag]) == 0.0
    # the published per-area thicknesses (the type I table's column) are those
    # after dropping: e.g. parahippocampal 1.58 mm, not 1.86 mm
    published = {r["area"]: float(r["total_thickness_mm"]) for r in _table("type_I_fraction.csv")}
    np.testing.assert_allclose(ds.total_thickness.sel(area=list(published)).values,
                               list(published.values()), rtol=0, atol=1e-12)
    assert ds.total_thickness.sel(area="parahippocampal") == pytest.approx(1.58)
    assert ds.total_thickness.sel(area="precentral") == pytest.approx(3.71)


def test_areas_and_population_layout(ds):
    areas = [r["row_area"] for r in _table("hcp_dti_C_R.csv")]
    assert ds.area.values.tolist() == areas and len(areas) == 34
    assert ds.sizes["population"] == ds.sizes["source"] == 272
    assert ds.population.values[:8].tolist() == [
        "bankssts/23E", "bankssts/23I", "bankssts/4E", "bankssts/4I",
        "bankssts/5E", "bankssts/5I", "bankssts/6E", "bankssts/6I"]
    assert ds.layer.values[:8].tolist() == ["II/III", "II/III", "IV", "IV", "V", "V", "VI", "VI"]
    assert ds.kind.values[:8].tolist() == list("EIEIEIEI")
    assert (ds.area_of.values == np.repeat(areas, 8)).all()
    assert (ds.source.values == ds.population.values).all()
    assert ds.cortical_layer.values.tolist() == ["I", "II/III", "IV", "V", "VI"]
    for name, var in ds.data_vars.items():
        assert var.attrs.get("units") and var.attrs.get("long_name"), name
    assert ds.neurons.attrs["units"] == "neurons per mm^2"
    assert ds.thickness.attrs["units"] == "mm"
    assert ds.attrs["rho_syn"] == 6.6e8 and ds.attrs["fraction_E"] == "lichtman"
    assert "10.1093/cercor/bhae409" in ds.attrs["source"]


# ----------------------------------------------------------------- synapses
def test_published_synapse_totals(ds):
    internal = int(ds.synapses.sum())
    external = int(ds.synapses_external.sum())
    assert abs(internal - 4.278e10) <= 0.0005 * 4.278e10
    assert abs(external - 1.80e10) <= 0.005e10
    blocks = _blocks(ds)
    intra = sum(int(blocks[a, a].sum()) for a in range(34))
    assert round(intra / internal, 2) == 0.80


def test_each_area_receives_rho_syn_times_thickness(ds):
    """Internal + external synapses onto each area equal rho_syn x its total
    thickness, up to half a synapse per rounded number."""
    blocks = _blocks(ds)
    ext = ds.synapses_external.values.reshape(34, 8)
    target = 6.6e8 * ds.total_thickness.values
    received = blocks.sum(axis=(1, 2, 3)) + ext.sum(axis=1)
    n_rounded = 34 + (blocks != 0).sum(axis=(1, 2, 3)) + 8
    assert np.all(np.abs(received - target) <= 0.5 * n_rounded)
    # the area-level numbers add up to the same, and the blocks to them
    area = ds.area_synapses.values
    assert np.all(np.abs(area.sum(axis=1) - target) <= 17)
    np.testing.assert_allclose(area.diagonal(), 0.86 * target, atol=0.5)
    per_block = blocks.sum(axis=(2, 3)) + np.diag(ext.sum(axis=1))
    assert np.all(np.abs(per_block - area) <= 0.5 * (blocks != 0).sum(axis=(2, 3)) + 4.5)


def test_type_i_share_and_external_input(ds):
    blocks = _blocks(ds)
    ext = ds.synapses_external.values.reshape(34, 8)
    intra = ds.area_synapses.values.diagonal()
    type_i = np.array([blocks[a, a].sum() for a in range(34)])
    f_i = ds.fraction_type_I.values
    assert np.all((f_i > 0.65527) & (f_i < 0.65530))
    assert np.all(np.abs(type_i - f_i * intra) <= 32)
    assert np.all(np.abs(ext.sum(axis=1) - (1 - f_i) * intra) <= 4)
    # empty populations neither send nor receive
    empty = ds.neurons.values == 0
    assert ds.synapses.values[empty].sum() == 0 and ds.synapses.values[:, empty].sum() == 0
    assert ds.synapses_external.values[empty].sum() == 0


def test_inter_area_sources_and_sln(ds):
    blocks = _blocks(ds)
    off = ~np.eye(34, dtype=bool)
    by_source = blocks[off].sum(axis=(0, 1))
    assert np.all(by_source[[1, 2, 3, 5, 7]] == 0)  # only 23E, 5E, 6E project
    # SLN = Phi(a0 + a1 ln(rho_A / rho_B)), recomputed from the mean densities
    rho = ds.mean_density.values
    a, b = 0, 9  # bankssts <- lateraloccipital
    expected = 0.5 * math.erfc(-(-0.152 - 1.534 * math.log(rho[a] / rho[b])) / math.sqrt(2))
    assert ds.sln.values[a, b] == pytest.approx(expected, rel=1e-12)
    rho_check = (ds.density * ds.thickness).sum("cortical_layer") / ds.total_thickness
    np.testing.assert_allclose(rho, rho_check.values, rtol=1e-12)
    # 2/3E carries the SLN share of every sizeable projection
    big = off & (blocks.sum(axis=(2, 3)) > 1e6)
    share_23e = blocks[:, :, :, 0].sum(axis=2)[big] / blocks.sum(axis=(2, 3))[big]
    np.testing.assert_allclose(share_23e, ds.sln.values[big], atol=1e-4)


def test_projection_targets(ds):
    blocks = _blocks(ds)
    kind = ds.projection_type.values
    total = blocks.sum(axis=(2, 3))
    on_e = blocks[:, :, 0::2].sum(axis=(2, 3))
    feedback = (kind == "feedback") & (total > 1e5)
    assert feedback.sum() > 50
    np.testing.assert_allclose(on_e[feedback] / total[feedback], 0.93, atol=1e-4)
    # feedforward into an area without layer IV lands in II/III: 2/3I gets
    # some, 4I none; into an area with layer IV, 4I gets some, 2/3I none
    by_target = blocks.sum(axis=3)
    pre = list(ds.area.values).index("precentral")
    ff_pre = (kind[pre] == "feedforward") & (total[pre] > 0)
    assert ff_pre.any()
    assert np.all(by_target[pre, ff_pre, 1] > 0) and np.all(by_target[pre, ff_pre, 3] == 0)
    cun = list(ds.area.values).index("cuneus")
    ff_cun = (kind[cun] == "feedforward") & (total[cun] > 1e5)
    assert ff_cun.any()
    assert np.all(by_target[cun, ff_cun, 3] > 0) and np.all(by_target[cun, ff_cun, 1] == 0)


# ------------------------------------------------------------------ options
def test_min_layer_size_zero_keeps_thin_layers(ds):
    kept = construct(min_layer_size=0)
    assert int((kept.neurons > 0).sum()) == 262
    assert int(kept.neurons.sum()) > int(ds.neurons.sum())
    assert set(kept.population.values[kept.neurons.values == 0].tolist()) == _names(ATLAS_LACKS)
    assert not kept.layer_dropped.any()
    assert kept.total_thickness.sel(area="parahippocampal") == pytest.approx(1.86)


def test_fraction_e_options(ds):
    binz = construct(fraction_E="binzegger")
    e = ds.kind.values == "E"
    assert not np.array_equal(binz.neurons.values, ds.neurons.values)
    assert int(binz.neurons.values[e].sum()) > int(ds.neurons.values[e].sum())
    assert abs(int(binz.neurons.sum()) - 3_468_839) <= 136  # same cells, other rounding
    lichtman = {"II/III": 0.65, "IV": 0.79, "V": 0.78, "VI": 0.86}
    same = construct(fraction_E=lichtman)
    assert np.array_equal(same.neurons.values, ds.neurons.values)
    assert np.array_equal(same.synapses.values, ds.synapses.values)


def test_synapse_options(ds):
    binz = construct(synapse_cellbody="binzegger")
    assert not np.array_equal(binz.synapses.values, ds.synapses.values)
    assert np.array_equal(binz.area_synapses.values, ds.area_synapses.values)
    local = construct(fln=1.0)
    blocks = _blocks(local)
    assert blocks[~np.eye(34, dtype=bool)].sum() == 0
    all_type_i = construct(type_I_fraction=1.0)
    assert int(all_type_i.synapses_external.sum()) == 0
    assert np.all(all_type_i.fraction_type_I.values == 1.0)
    half = construct(rho_syn=3.3e8)
    assert int(half.synapses.sum()) == pytest.approx(int(ds.synapses.sum()) / 2, rel=1e-6)


@pytest.mark.parametrize("kwargs, name", [
    ({"fraction_E": "allen"}, "fraction_E"),
    ({"fraction_E": 0.8}, "fraction_E"),
    ({"fraction_E": {"II/III": 0.8}}, "fraction_E"),
    ({"fraction_E": {"II/III": 0.8, "IV": 0.8, "V": True, "VI": 0.8}}, "fraction_E['V']"),
    ({"fraction_E": {"II/III": 0.0, "IV": 0.8, "V": 0.8, "VI": 0.8}}, "fraction_E['II/III']"),
    ({"synapse_cellbody": "potjans"}, "synapse_cellbody"),
    ({"synapse_cellbody": None}, "synapse_cellbody"),
    ({"rho_syn": 0}, "rho_syn"),
    ({"rho_syn": "6.6e8"}, "rho_syn"),
    ({"rho_syn": True}, "rho_syn"),
    ({"fln": 1.5}, "fln"),
    ({"fln": float("nan")}, "fln"),
    ({"min_layer_size": -1}, "min_layer_size"),
    ({"min_layer_size": 1e9}, "min_layer_size"),
    ({"feedback_E_fraction": -0.1}, "feedback_E_fraction"),
    ({"sln_a0": "x"}, "sln_a0"),
    ({"sln_a1": float("inf")}, "sln_a1"),
    ({"type_I_fraction": 0}, "type_I_fraction"),
    ({"type_I_fraction": 1.2}, "type_I_fraction"),
    ({"type_I_fraction": True}, "type_I_fraction"),
    ({"type_I_fraction": "table"}, "type_I_fraction"),
])
def test_bad_input_names_the_parameter(kwargs, name):
    with pytest.raises(ParameterError) as err:
        construct(**kwargs)
    assert str(err.value).startswith(name)
    assert "got" in str(err.value) or "leaves areas without neurons" in str(err.value)
