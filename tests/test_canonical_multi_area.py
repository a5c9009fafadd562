"""The macaque (Schmidt et al. 2018) and human (Pronold et al. 2024)
multi-area models: published totals and weights, the down-scaling that keeps
every population's input, the spec options they need (PSP-defined weights,
lognormal delays, clipped bounds, per-population external rates)."""
import math

import numpy as np
import pytest

from brainsim.errors import ParameterError, UnknownNameError
from brainsim.generation import (human_spec, macaque_multi_area, macaque_rates,
                                 macaque_spec, macaque_tables)
from brainsim.generation.multi_area_spec import (load_spec, make_plan, psc_from_psp,
                                                 scaling_tables)
from brainsim import connect as _connect


# ------------------------------------------------------------ shared pieces
def test_psc_from_psp_gives_the_published_amplitudes():
    # MAM: PSP 0.15 mV, C_m 250 pF, tau_m 10 ms, tau_syn 0.5 ms -> 87.8085 pA
    assert psc_from_psp(0.15, 250.0, 10.0, 0.5) == pytest.approx(87.8085, abs=5e-5)
    # HuMAM: PSP 0.1 mV, tau_syn 2 ms; E targets 220 pF, I targets 100 pF
    assert psc_from_psp(0.1, 220.0, 10.0, 2.0) == pytest.approx(16.4488, abs=5e-5)
    assert psc_from_psp(0.1, 100.0, 10.0, 2.0) == pytest.approx(7.4767, abs=5e-5)
    # the peak of the PSP of that current, integrated in closed form
    j, c, tm, ts = psc_from_psp(0.2, 250.0, 10.0, 0.5), 250.0, 10.0, 0.5
    t = np.linspace(0, 20, 200001)
    v = j / c * tm * ts / (tm - ts) * (np.exp(-t / tm) - np.exp(-t / ts))
    assert v.max() == pytest.approx(0.2, rel=1e-6)


def test_lognormal_draws_have_the_requested_mean_and_sd():
    rng = np.random.default_rng(3)
    d = _connect.draw_values(rng, {"distribution": "lognormal", "mean": 4.0, "sd": 2.0},
                             200000, 0.1, np.inf, "delay")
    assert d.min() >= 0.1
    assert d.mean() == pytest.approx(4.0, rel=0.01)
    assert d.std() == pytest.approx(2.0, rel=0.02)
    # the log of a lognormal is normal: skewness of log(d) near 0
    ld = np.log(d)
    assert abs(((ld - ld.mean()) ** 3).mean() / ld.std() ** 3) < 0.02


def test_clip_bounds_set_draws_to_the_bound_redraw_redraws():
    rng = np.random.default_rng(4)
    spec = {"distribution": "normal", "mean": 1.0, "sd": 1.0, "bounds": "clip"}
    w = _connect.draw_values(rng, spec, 100000, 0.0, np.inf, "weight")
    # P(N(1, 1) < 0) = 0.1587: that share sits exactly on the bound
    assert np.mean(w == 0.0) == pytest.approx(0.1587, abs=0.005)
    spec["bounds"] = "redraw"
    w = _connect.draw_values(rng, spec, 100000, 0.0, np.inf, "weight")
    assert w.min() > 0.0
    lw = _connect.draw_values(rng, {"distribution": "lognormal", "mean": -5.0, "sd": 1.0},
                              1000, -np.inf, 0.0, "weight")
    assert lw.max() < 0 and lw.mean() == pytest.approx(-5.0, rel=0.05)


@pytest.mark.parametrize("spec, match", [
    ({"distribution": "gamma", "mean": 1.0, "sd": 1.0}, "distribution must be one of"),
    ({"distribution": "lognormal", "mean": 1.0, "sd": 1.0, "bounds": "wrap"},
     "bounds must be one of"),
    ({"distribution": "lognormal", "mean": 0.0, "sd": 1.0}, "lognormal mean must be != 0"),
    ({"distribution": "normal", "mean": 1.0, "sd": -1.0}, "sd must be a finite number >= 0"),
    ({"distribution": "normal", "mean": "1", "sd": 1.0}, "mean must be a finite number"),
])
def test_bad_distributions_are_named(spec, match):
    with pytest.raises((ParameterError, UnknownNameError), match=match):
        _connect.draw_values(np.random.default_rng(0), spec, 10, 0.0, np.inf, "weight")


def _tiny_spec(**synapse):
    d = {"areas": ["A"], "populations": {"A": {"23E": 10, "23I": 5, "5E": 10}},
         "indegree_matrix": [[1, 1, 0, 10], [1, 1, 0, 10], [1, 1, 0, 20]],
         "neuron": {"params": {"tau_syn_ex": 2.0, "tau_syn_in": 2.0},
                    "params_I": {"C_m": 100.0}},
         "synapse": synapse, "external": {"rate": [5.0, 6.0, 7.0]}}
    return load_spec(d)


def test_psp_weights_ext_factors_and_per_population_rates():
    spec = _tiny_spec(psp_e=0.1, psp_ext=0.2, g=-5.0,
                      ext_factors=[{"target": "5E", "factor": 1.15}])
    w_e = psc_from_psp(0.1, 250.0, 10.0, 2.0)
    w_i = psc_from_psp(0.1, 100.0, 10.0, 2.0)
    np.testing.assert_allclose(spec.weight[:, 0], [w_e, w_i, w_e])  # by target C_m
    np.testing.assert_allclose(spec.weight[:, 1], [-5 * w_e, -5 * w_i, -5 * w_e])
    ext = psc_from_psp(0.2, np.array([250.0, 100.0, 250.0]), 10.0, 2.0) * [1, 1, 1.15]
    np.testing.assert_allclose(spec.weight_ext, ext)
    np.testing.assert_array_equal(spec.rate_ext, [5.0, 6.0, 7.0])
    plan = make_plan(spec)
    np.testing.assert_allclose(plan.poisson_rate, [50.0, 60.0, 140.0])
    with pytest.raises(ParameterError, match=r"external\['rate'\]"):
        load_spec({**_tiny_spec_dict(), "external": {"rate": [1.0, 2.0]}})
    with pytest.raises(UnknownNameError, match=r"ext_factors'\]\[0\]: no population named '4E'"):
        _tiny_spec(ext_factors=[{"target": "4E", "factor": 2.0}])
    with pytest.raises(ParameterError, match=r"delay\['distribution'\] must be one of"):
        load_spec({**_tiny_spec_dict(), "delay": {"distribution": "gamma"}})


def test_intra_factors_scale_only_that_pair_within_an_area_and_bad_ones_are_named():
    base = _tiny_spec(psp_e=0.1, g=-5.0)
    spec = _tiny_spec(psp_e=0.1, g=-5.0,
                      intra_factors=[{"target": "23E", "source": "23E", "factor": 2.0}])
    expect = base.weight.copy()
    expect[0, 0] *= 2.0
    np.testing.assert_allclose(spec.weight, expect)
    for bad, err, match in [
            ({"target": "23E", "source": "4E", "factor": 2.0}, UnknownNameError,
             r"intra_factors'\]\[0\]: no population named '4E'"),
            ({"target": "23E", "factor": 2.0}, ParameterError,
             r"must have exactly the keys target, source, factor"),
            ({"target": "23E", "source": "5E", "factor": -1.0}, ParameterError,
             r"intra_factors'\]\[0\]\['factor'\]")]:
        with pytest.raises(err, match=match):
            _tiny_spec(intra_factors=[bad])
    with pytest.raises(ParameterError, match=r"must be a list of \{target, factor\}"):
        _tiny_spec(ext_factors={"target": "5E", "factor": 1.0})


def _tiny_spec_dict():
    return {"areas": ["A"], "populations": {"A": {"23E": 10, "23I": 5, "5E": 10}},
            "indegree_matrix": [[1, 1, 0, 10], [1, 1, 0, 10], [1, 1, 0, 20]]}


# ------------------------------------------------------------------ macaque
def test_macaque_tables_give_the_published_totals():
    ds = macaque_tables()
    assert ds.sizes["population"] == 254 and ds.sizes["area"] == 32
    assert round(float(ds.neurons.sum())) == 4_130_057
    # TH is the only area without layer 4
    th = [str(p) for p in ds.population.values if p.startswith("TH/")]
    assert th == ["TH/23E", "TH/23I", "TH/5E", "TH/5I", "TH/6E", "TH/6I"]
    # V1 as published (reference/mam.md): 197,936 neurons
    v1 = ds.neurons.sel(population=[f"V1/{p}" for p in
                                    ("23E", "23I", "4E", "4I", "5E", "5I", "6E", "6I")])
    np.testing.assert_array_equal(np.round(v1.values),
                                  [47387, 13366, 70387, 17598, 20741, 4554, 19840, 4063])
    internal = float((ds.indegree * ds.neurons).sum())
    assert internal == pytest.approx(2.413e10, rel=2e-4)
    d = ds.distance.values
    np.testing.assert_allclose(d, d.T)
    assert d[~np.eye(32, dtype=bool)].min() > 0


@pytest.fixture(scope="module")
def ground_rates():
    return macaque_rates()


def test_macaque_ground_state_mean_field_is_the_published_one(ground_rates):
    # Schmidt et al. 2018: mean-field ground state about 3.7 spikes/s on average
    assert ground_rates.attrs["converged"]
    assert float(ground_rates.mean()) == pytest.approx(3.7, abs=0.05)
    assert 0 < float(ground_rates.min()) and float(ground_rates.max()) < 30


def test_macaque_spec_weights_and_states(ground_rates):
    spec = macaque_spec("metastable", rates=ground_rates.values)
    w = spec.weights()
    names = spec.names
    i = {n: k for k, n in enumerate(names)}
    assert w[i["V1/23E"], i["V1/4E"]] == pytest.approx(2 * 87.8085, abs=1e-3)
    assert w[i["V1/23E"], i["V1/23I"]] == pytest.approx(-11 * 87.8085, abs=1e-3)
    assert w[i["V2/23E"], i["V1/23E"]] == pytest.approx(1.9 * 87.8085, abs=1e-3)
    assert w[i["V2/23I"], i["V1/23E"]] == pytest.approx(1.9 * 2 * 87.8085, abs=1e-3)
    assert spec.chi == 1.9 and spec.chi_I == 2.0
    assert macaque_rates("metastable").attrs["from"].startswith("ground state")
    with pytest.raises(ParameterError, match="state must be one of"):
        macaque_spec("awake")
    with pytest.raises(ParameterError, match="rates must have one entry per population"):
        macaque_spec(rates=[1.0, 2.0])


@pytest.mark.parametrize("scale", [0.01, 0.2])
def test_down_scaling_keeps_the_input_mean_and_variance(ground_rates, scale):
    spec = macaque_spec(rates=ground_rates.values)
    t = scaling_tables(spec, scale, scale)
    np.testing.assert_allclose(t.indegree_scaled, t.indegree_full * scale, rtol=1e-15)
    np.testing.assert_allclose(t.weight_scaled, t.weight_full / math.sqrt(scale), rtol=1e-15)
    for v in ("mu", "sigma"):
        full = t[f"{v}_full"].values
        np.testing.assert_allclose(t[f"{v}_scaled"], full, rtol=1e-12)
    # the integer synapse numbers of a real network: mean exact (the DC
    # absorbs the rounding), the fluctuation up to the rounding
    np.testing.assert_allclose(t.mu_realised, t.mu_full, rtol=1e-12)
    assert np.max(np.abs(t.sigma_realised / t.sigma_full - 1)) < (0.01 if scale < 0.1 else 1e-3)
    # a wrong recipe (weights / k instead of / sqrt(k)) would not keep sigma
    assert not np.allclose(t.sigma_full * math.sqrt(scale), t.sigma_full, rtol=0.1)


def test_macaque_network_subset_and_scaling(ground_rates):
    scale = 0.002
    net = macaque_multi_area(scale=scale, areas=["V1", "V2"], rates=ground_rates.values,
                             seed=2)
    pops = [p.name for p in net.populations.values()]
    assert pops[:8] == [f"V1/{p}" for p in ("23E", "23I", "4E", "4I", "5E", "5I", "6E", "6I")]
    assert len(pops) == 16 and {p.region for p in net.populations.values()} == {"V1", "V2"}
    tab = macaque_tables()
    for p in net.populations.values():
        assert p.n == max(round(float(tab.neurons.sel(population=p.name)) * scale), 1)
    net.build()
    # V2/23E's input from V1/23E: round(K x scale x N) synapses
    spec = macaque_spec(rates=ground_rates.values)
    plan = make_plan(spec, scale, scale, areas=["V1", "V2"])
    assert net.n_synapses == int(plan.n_syn.sum())
    # the other 30 areas arrive as Poisson input on top of the external drive:
    # in the ground state their weights equal the external one, so the merged
    # input's rate is the sum of K x scale x rate over the replaced populations
    alone = make_plan(spec, scale, scale).poisson_rate[plan.sim]
    other = np.setdiff1d(np.arange(254), plan.sim)
    extra = (spec.indegree[np.ix_(plan.sim, other)] * scale) @ ground_rates.values[other]
    assert extra.min() > 0
    np.testing.assert_allclose(plan.poisson_rate, alone + extra, rtol=1e-12)
    with pytest.raises(ParameterError, match="scale must be a finite number"):
        macaque_multi_area(scale=0)
    with pytest.raises(UnknownNameError, match="unknown area 'V9'"):
        macaque_multi_area(scale=0.001, areas=["V9"], rates=ground_rates.values)


# -------------------------------------------------------------------- human
@pytest.fixture(scope="module")
def human():
    return human_spec()


def test_human_spec_weights_drive_and_delays(human):
    from brainsim.analysis import meanfield

    spec = human
    assert len(spec.n) == 254 and int(spec.n.sum()) == 3_468_839
    i = {n: k for k, n in enumerate(spec.names)}
    w = spec.weights()
    # published PSCs (reference/multi_area.md); cortico-cortical E->E x 1, E->I x 2
    assert w[i["bankssts/23E"], i["bankssts/5E"]] == pytest.approx(16.4488, abs=1e-4)
    assert w[i["bankssts/23I"], i["bankssts/5E"]] == pytest.approx(7.4767, abs=1e-4)
    assert w[i["bankssts/23E"], i["bankssts/23I"]] == pytest.approx(-82.2442, abs=1e-4)
    assert w[i["bankssts/23I"], i["bankssts/23I"]] == pytest.approx(-37.3837, abs=1e-4)
    assert w[i["bankssts/23E"], i["bankssts/4E"]] == pytest.approx(2 * 16.4488, abs=1e-4)
    assert w[i["fusiform/23E"], i["bankssts/23E"]] == pytest.approx(16.4488, abs=1e-4)
    assert w[i["fusiform/23I"], i["bankssts/23E"]] == pytest.approx(2 * 7.4767, abs=1e-4)
    best = human_spec("best_fit", rates=None)
    # the best fit has no stationary mean field: its DC uses the base version's rates
    np.testing.assert_array_equal(human_spec("best_fit").rates, spec.rates)
    assert best.weights()[i["fusiform/23I"], i["bankssts/23E"]] == pytest.approx(5 * 7.4767,
                                                                               abs=5e-4)
    # with every population silent the external drive alone lifts the mean
    # input eta_ext x (V_th - E_L) = 27.5 mV above rest; x 1.05 onto 5E, x 1.15 onto 6E
    mu, _, _ = meanfield.input_moments(spec.population_model(), np.zeros(254))
    factor = np.array([1.05 if n.endswith("/5E") else 1.15 if n.endswith("/6E") else 1.0
                       for n in spec.names])
    np.testing.assert_allclose(mu - (-70.0), 27.5 * factor, rtol=1e-12)
    assert spec.delay_distribution == "lognormal" and spec.delay_bounds == "clip"
    assert spec.weight_bounds == "clip"
    d = spec.mean_delays()
    assert d[i["bankssts/23E"], i["bankssts/23E"]] == 1.5
    assert d[i["bankssts/23E"], i["bankssts/23I"]] == 0.75
    assert 1.0 < d[i["fusiform/23E"], i["bankssts/23E"]] < 60.0


def test_human_mean_field_matches_the_published_rates(human):
    from brainsim.generation import human_rates

    nu = human_rates()
    assert nu.attrs["converged"]
    np.testing.assert_array_equal(nu.values, human.rates)  # the spec's default rates
    nu = nu.values
    pub = human_spec(rates="published").rates
    # 254 populations: r = 0.9993; all but medialorbitofrontal's thin layer 4
    # (0.77 against 0.28 spikes/s) within 0.05 spikes/s (docs/multi_area.md)
    assert np.corrcoef(nu, pub)[0, 1] > 0.999
    dev = np.abs(nu - pub)
    assert np.median(dev) < 0.005
    worst = [human.names[k] for k in np.flatnonzero(dev > 0.05)]
    assert set(worst) <= {"medialorbitofrontal/4E", "medialorbitofrontal/4I",
                          "medialorbitofrontal/6I"}
    assert dev.max() < 0.6


def test_human_down_scaling_and_subset(human):
    t = scaling_tables(human, 0.004, 0.004)
    for v in ("mu", "sigma"):
        np.testing.assert_allclose(t[f"{v}_scaled"], t[f"{v}_full"], rtol=1e-12)
    np.testing.assert_allclose(t.mu_realised, t.mu_full, rtol=1e-12)
    from brainsim.generation import human_multi_area

    net = human_multi_area(scale=0.002, areas=["bankssts", "fusiform"], seed=1)
    assert {p.region for p in net.populations.values()} == {"bankssts", "fusiform"}
    net.build()
    assert net.n_synapses == int(make_plan(human, 0.002, 0.002,
                                           areas=["bankssts", "fusiform"]).n_syn.sum())
    with pytest.raises(ParameterError, match="state must be one of"):
        human_spec("asleep")
    with pytest.raises(ParameterError, match="chi_E must be a finite number > 0"):
        human_spec(chi_E=0)


def test_streamed_store_is_the_network_built_in_memory(tmp_path, ground_rates):
    """store=...: one area at a time, each projection drawing from its own
    stream, gives the very network (every partition array, neuron column,
    input and attribute) that the in-memory build with one partition per
    area saves, and so the same spikes."""
    import zarr

    import brainsim

    kw = dict(scale=0.003, areas=["V1", "V2", "TH"], rates=ground_rates.values, seed=3)
    mem = macaque_multi_area(**kw)
    mem.build(3)
    mem.save(tmp_path / "mem.zarr")
    streamed = macaque_multi_area(**kw, store=tmp_path / "str.zarr")
    assert streamed.meta["model"] == "macaque_multi_area"
    a = zarr.open_group(tmp_path / "mem.zarr", mode="r")
    b = zarr.open_group(tmp_path / "str.zarr", mode="r")
    assert dict(a.attrs) == dict(b.attrs)
    for k in range(3):
        for name in ("sources", "indptr", "targets", "weights", "delays"):
            x, y = a[f"partitions/{k}/{name}"][:], b[f"partitions/{k}/{name}"][:]
            assert x.dtype == y.dtype and np.array_equal(x, y), (k, name)
    for group in ("neurons", "inputs"):
        for name in a[group].array_keys():
            np.testing.assert_array_equal(a[group][name][:], b[group][name][:])
    r1 = brainsim.Simulation(mem, seed=1).run(30.0)
    r2 = brainsim.Simulation(streamed, seed=1).run(30.0)
    assert r1.sizes["spike"] > 0
    np.testing.assert_array_equal(r1.spike_neuron.values, r2.spike_neuron.values)
    np.testing.assert_array_equal(r1.spike_time.values, r2.spike_time.values)
    with pytest.raises(brainsim.BrainsimError, match="exists"):
        macaque_multi_area(**kw, store=tmp_path / "str.zarr")


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, match", [
    ({"scale": 0}, "scale must be a finite number in \\(0, 1\\]"),
    ({"scale": 1.5}, "scale must be a finite number in \\(0, 1\\]"),
    ({"scale": True}, "scale must be a finite number"),
    ({"scale": 0.01, "k_scale": -0.1}, "k_scale must be a finite number"),
    ({"scale": 0.01, "chi": -1.0}, "chi must be a finite number >= 0"),
    ({"scale": 0.01, "chi_I": float("nan")}, "chi_I must be a finite number"),
    ({"scale": 0.01, "input": "noise"}, "input must be 'poisson' or 'dc'"),
])
def test_bad_macaque_parameters_are_named(kwargs, match, ground_rates):
    with pytest.raises(ParameterError, match=match):
        macaque_multi_area(**kwargs, rates=ground_rates.values)


def _damaged_copy(tmp_path, folder, name, edit):
    import importlib.resources
    import shutil

    src = importlib.resources.files("brainsim.generation").joinpath("data", folder)
    dst = tmp_path / folder
    shutil.copytree(str(src), dst)
    path = dst / name
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    return dst


@pytest.mark.parametrize("name, edit, match", [
    ("hcp_dti_C_R.csv", lambda t: t.replace(",68.89767441860465,", ",-68.9,", 1),
     r"hcp_dti_C_R.csv, row 2, column 'inferiorparietal': '-68.9' is not a finite number"),
    ("mapping_DK_vEK.csv", lambda t: t.replace("bankssts,PH\n", ""),
     r"tables lack 'bankssts'"),
    ("microcircuit_K_ext.csv", lambda t: t.replace("1600.0", "nan"),
     r"microcircuit_K_ext.csv, row 2, column 'K_ext': 'nan'"),
])
def test_damaged_human_tables_are_named(tmp_path, monkeypatch, name, edit, match):
    from brainsim.errors import StoreError
    from brainsim.generation import human_multi_area_tables as T

    folder = _damaged_copy(tmp_path, "human_multi_area", name, edit)
    monkeypatch.setattr(T, "_data_dir", lambda: folder)
    with pytest.raises(StoreError, match=match):
        T.construct()


@pytest.mark.parametrize("name, edit, match", [
    ("indegrees_external.csv", lambda t: t.replace("1246.1017924759685", "-3", 1),
     r"indegrees_external.csv, row 2, column 'K_ext': '-3' is not a finite number >= 0"),
    ("distances.csv", lambda t: "\n".join(l for l in t.splitlines() if not l.startswith("V2,")),
     r"distances.csv lacks area 'V2'"),
    ("neurons.csv", lambda t: t.replace("V1,23I,", "V1,23X,", 1),
     r"indegrees_internal.csv: populations differ from neurons.csv"),
])
def test_damaged_macaque_tables_are_named(tmp_path, monkeypatch, name, edit, match):
    from brainsim.errors import StoreError
    from brainsim.generation import macaque_model as M

    folder = _damaged_copy(tmp_path, "macaque_multi_area", name, edit)
    monkeypatch.setattr(M, "_data_dir", lambda: folder)
    with pytest.raises(StoreError, match=match):
        M._raw.__wrapped__()
