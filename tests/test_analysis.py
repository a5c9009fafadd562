"""brainsim.analysis against hand-computed values, closed forms, slow
reference loops and the simulator's own binned rates."""
import sys

import numpy as np
import pytest
import xarray as xr
from scipy import integrate, stats

import brainsim
from brainsim import analysis as A
from brainsim.errors import BrainsimError, ParameterError, UnknownNameError


def spike_ds(times, ids, sizes, names=None, t_stop=1000.0, t_start=0.0, regions=None,
             population_regions=None):
    """A results-like Dataset holding only spikes (times ms, global ids)."""
    names = names or [f"P{k}" for k in range(len(sizes))]
    attrs = {"dt": 0.1, "populations": names, "population_sizes": list(sizes),
             "regions": regions or ["default"], "t_start": t_start, "t_stop": t_stop}
    if population_regions is not None:
        attrs["population_regions"] = population_regions
    return xr.Dataset({"spike_time": ("spike", np.asarray(times, float)),
                       "spike_neuron": ("spike", np.asarray(ids, np.int64))}, attrs=attrs)


def trains_ds(trains, t_stop, names=None, sizes=None):
    """Dataset of one spike train (ms) per neuron."""
    times = np.concatenate(trains)
    ids = np.concatenate([np.full(len(t), k) for k, t in enumerate(trains)])
    return spike_ds(times, ids, sizes or [len(trains)], names=names, t_stop=t_stop)


def poisson_train(rng, rate_hz, t_stop, dead_ms=0.0):
    """Renewal train with ISI = dead_ms + exponential (mean 1/rate - dead_ms)."""
    n = int(rate_hz * t_stop * 1e-3 * 1.5) + 50
    isi = dead_ms + rng.exponential(1e3 / rate_hz - dead_ms, n)
    t = np.cumsum(isi)
    return t[t <= t_stop]


# ------------------------------------------------------------------ rates
def known_spikes():
    # population A: neurons 0, 1; population B: neurons 2, 3, 4 (region X, Y)
    times = [0.0, 100.0, 250.0, 500.0, 999.9, 1000.0, 300.0, 300.0, 700.0, 20.0, 640.0]
    ids = [2, 0, 0, 1, 1, 3, 2, 4, 4, 0, 3]
    return spike_ds(times, ids, [2, 3], names=["A", "B"], regions=["X", "Y"],
                    population_regions=["X", "Y"])


def test_mean_rate_of_known_spike_lists():
    ds = known_spikes()
    # window (0, 1000]: A has 5 spikes on 2 neurons, B 5 (the stamp at 0 is outside)
    r = A.mean_rate(ds)
    np.testing.assert_allclose(r.values, [5 / 2, 5 / 3])
    assert r.attrs["units"] == "Hz" and r.dims == ("population",)
    assert list(r.population.values) == ["A", "B"]
    # window (250, 700]: A: 500 (1 spike); B: 300, 300, 700, 640 (4 spikes); 0.45 s
    r = A.mean_rate(ds, t_window=(250.0, 700.0))
    np.testing.assert_allclose(r.values, [1 / (2 * 0.45), 4 / (3 * 0.45)])
    reg = A.mean_rate(ds, by="region", t_window=(250.0, 700.0))
    assert list(reg.region.values) == ["X", "Y"]
    np.testing.assert_allclose(reg.values, r.values)


def test_rate_histogram_hand_computed_bins():
    # bins of 250 ms over (0, 1000]: stamps counted in (k w, (k + 1) w]
    r = A.rate_histogram(known_spikes(), bin_ms=250.0)
    counts_a = [3, 1, 0, 1]  # (0,250]: 20, 100, 250; (250,500]: 500; (750,1000]: 999.9
    counts_b = [0, 2, 2, 1]  # 300 300 | 640 700 | 1000
    np.testing.assert_allclose(r.sel(population="A").values, np.array(counts_a) / (2 * 0.25))
    np.testing.assert_allclose(r.sel(population="B").values, np.array(counts_b) / (3 * 0.25))
    np.testing.assert_allclose(r.time.values, [0, 250, 500, 750])
    assert r.attrs["units"] == "Hz" and r.time.attrs["units"] == "ms"


def test_rates_by_area_marks_absent_populations():
    rates = xr.DataArray([1.0, 2.0, 3.0, 4.0, 5.0], dims="population",
                         coords={"population": ["V1_4E", "V1_4I", "V1_5E", "TH_5E", "V2/4E"]},
                         attrs={"units": "Hz"})
    table = A.rates_by_area(rates, population_regions=["V1", "V1", "V1", "TH", "V2"])
    assert table.dims == ("population", "region")
    assert list(table.population.values) == ["4E", "4I", "5E"]
    assert list(table.region.values) == ["V1", "TH", "V2"]
    expected = np.array([[1, np.nan, 5], [2, np.nan, np.nan], [3, 4, np.nan]])
    np.testing.assert_array_equal(table.values, expected)
    assert table.attrs["units"] == "Hz"


@pytest.fixture(scope="module")
def simulated():
    """A two-region network run for 150 ms, then 100 ms more (t_start 150)."""
    net = brainsim.Network(dt=0.1, seed=3)
    for r in ("R0", "R1"):
        net.add_population(f"E{r}", 40, region=r, params={"I_e": 300.0})
        net.add_population(f"I{r}", 10, region=r, kind="I", params={"I_e": 300.0})
    names = list(net.populations)
    net.connect([n for n in names if n[0] == "E"], names, rule="fixed_indegree", indegree=5,
                weight=30.0, delay=1.0)
    net.connect([n for n in names if n[0] == "I"], names, rule="fixed_indegree", indegree=3,
                weight=-60.0, delay=1.0)
    net.add_poisson(names, rate=10.0, indegree=100, weight=87.8)
    sim = brainsim.Simulation(net, seed=1, rate_bin=2.0)
    sim.run(150.0)
    return net, sim.run(100.0)


def test_rates_from_spikes_equal_the_simulators_binned_rates(simulated):
    net, ds = simulated
    assert ds.spike_time.size > 500  # the network fires: the comparison means something
    hist = A.rate_histogram(ds, bin_ms=2.0)
    np.testing.assert_allclose(hist.values, ds.rate.values, rtol=1e-12, atol=0)
    np.testing.assert_allclose(hist.time.values, ds.time.values)
    hist_r = A.rate_histogram(ds, bin_ms=2.0, by="region", network=net)
    np.testing.assert_allclose(hist_r.values, ds.rate_region.values, rtol=1e-12, atol=0)
    for by, kw in (("population", {}), ("region", {"network": net})):
        a = A.mean_rate(ds, by=by, t_window=(160.0, 230.0), **kw)
        b = A.mean_rate(ds, by=by, t_window=(160.0, 230.0), source="rates")
        np.testing.assert_allclose(a.values, b.values, rtol=1e-12)


def test_region_needs_the_population_map():
    ds = known_spikes()
    del ds.attrs["population_regions"]
    with pytest.raises(ParameterError, match="network="):
        A.mean_rate(ds, by="region")


# ------------------------------------------------------------ irregularity
def cv_reference(trains, min_spikes=3):
    out = {}
    for k, t in enumerate(trains):
        if len(t) >= min_spikes:
            isi = np.diff(np.sort(t))
            out[k] = np.std(isi) / np.mean(isi)
    return out


def lvr_reference(trains, R, min_spikes=3):
    out = {}
    for k, t in enumerate(trains):
        if len(t) < min_spikes:
            continue
        isi = np.diff(np.sort(t))
        total = 0.0
        for i in range(len(isi) - 1):
            s = isi[i] + isi[i + 1]
            total += (1 - 4 * isi[i] * isi[i + 1] / s ** 2) * (1 + 4 * R / s)
        out[k] = 3 * total / (len(isi) - 1)
    return out


def test_cv_and_lvr_of_a_regular_train_are_zero():
    trains = [np.arange(1, 200) * 5.0, 0.3 + np.arange(0, 90) * 11.1]
    ds = trains_ds(trains, t_stop=1000.0)
    np.testing.assert_allclose(A.cv_isi(ds).values, 0.0, atol=1e-9)
    np.testing.assert_allclose(A.lvr(ds).values, 0.0, atol=1e-9)


def test_cv_of_poisson_is_one():
    rng = np.random.default_rng(1)
    t_stop = 1e6
    ds = trains_ds([poisson_train(rng, 10.0, t_stop)], t_stop)
    n_isi = int(ds.spike_time.size) - 1
    cv = float(A.cv_isi(ds).values[0])
    assert abs(cv - 1.0) < 5 / np.sqrt(n_isi)  # sd of the CV estimate: 1 / sqrt(n)


def lvr_expected(rate_hz, dead_ms, R):
    """E[LvR] of ISIs dead + Exp: given S = X1 + X2 ~ Gamma(2), X1 is uniform
    on [0, S], so E[(X1 - X2)^2 | S] = S^2 / 3 and
    E[LvR] = E[S^2 (2d + S + 4R) / (2d + S)^3]."""
    theta = 1e3 / rate_hz - dead_ms

    def f(s):
        return s ** 2 * (2 * dead_ms + s + 4 * R) / (2 * dead_ms + s) ** 3 * \
            stats.gamma.pdf(s, 2, scale=theta)
    return integrate.quad(f, 0, np.inf)[0]


@pytest.mark.parametrize("dead, R", [(0.0, 0.0), (2.0, 2.0)])
def test_lvr_of_poisson_matches_its_expectation(dead, R):
    rng = np.random.default_rng(2)
    t_stop = 20000.0
    ds = trains_ds([poisson_train(rng, 20.0, t_stop, dead) for _ in range(100)], t_stop)
    values = A.lvr(ds, R=R).values
    se = values.std() / np.sqrt(values.size)
    expected = lvr_expected(20.0, dead, R)
    assert abs(expected - 1.0) < 0.03  # ~1 for Poisson (with refractoriness)
    assert abs(values.mean() - expected) < 5 * se
    if dead == 0.0:
        assert expected == pytest.approx(1.0, abs=1e-9)


def test_cv_lvr_match_slow_reference_and_filter_neurons():
    rng = np.random.default_rng(3)
    trains = [np.sort(rng.uniform(0, 500, rng.integers(0, 30))) for _ in range(12)]
    trains[4] = np.array([10.0, 20.0])  # too few spikes
    ds = trains_ds(trains, t_stop=500.0, names=["a", "b"], sizes=[5, 7])
    cv, lv = A.cv_isi(ds), A.lvr(ds, R=1.5)
    ref_cv, ref_lv = cv_reference(trains), lvr_reference(trains, 1.5)
    assert list(cv.neuron.values) == sorted(ref_cv) and 4 not in cv.neuron.values
    np.testing.assert_allclose(cv.values, [ref_cv[k] for k in sorted(ref_cv)], rtol=1e-12)
    np.testing.assert_allclose(lv.values, [ref_lv[k] for k in sorted(ref_lv)], rtol=1e-12)
    assert list(cv.population.values) == ["a" if k < 5 else "b" for k in sorted(ref_cv)]
    # a window keeps the stamps in (t0, t1] only
    win = A.cv_isi(ds, t_window=(100.0, 300.0), neurons="b")
    cut = [t[(t > 100) & (t <= 300)] if k >= 5 else np.array([]) for k, t in enumerate(trains)]
    ref = cv_reference(cut)
    np.testing.assert_allclose(win.values, [ref[k] for k in sorted(ref)], rtol=1e-12)
    summary = A.summarize(cv)
    a_vals = [ref_cv[k] for k in sorted(ref_cv) if k < 5]
    assert summary.sel(population="a") == pytest.approx(np.mean(a_vals))
    assert int(summary.n_neurons.sel(population="a")) == len(a_vals)


# ------------------------------------------------------- synchrony, correlation
def test_synchrony_of_independent_and_identical_trains():
    rng = np.random.default_rng(4)
    t_stop, n = 10000.0, 50
    indep = [np.sort(rng.uniform(0, t_stop, rng.poisson(10.0 * t_stop * 1e-3)))
             for _ in range(n)]
    s = float(A.synchrony(trains_ds(indep, t_stop), bin_ms=1.0).values[0])
    # counts per bin ~ Poisson: var/mean = 1, sd of the estimate ~ sqrt(2 / n_bins)
    assert abs(s - 1.0) < 5 * np.sqrt(2 / 10000)
    single = float(A.synchrony(trains_ds([indep[0]], t_stop), bin_ms=1.0).values[0])
    same = float(A.synchrony(trains_ds([indep[0]] * n, t_stop), bin_ms=1.0).values[0])
    assert same == pytest.approx(n * single, rel=1e-12)  # var(n c) / mean(n c) = n var/mean


def test_spike_count_correlation_identical_independent_and_hand_computed():
    rng = np.random.default_rng(5)
    t_stop = 20000.0
    base = np.sort(rng.uniform(0, t_stop, 400))
    indep = [np.sort(rng.uniform(0, t_stop, 400)) for _ in range(10)]
    ds = trains_ds([base] * 10 + indep + [np.array([])], t_stop, names=["same", "indep"],
                   sizes=[10, 11])
    r = A.spike_count_correlation(ds, n_neurons=11, bin_ms=10.0, rng=1)
    assert r.sel(population="same") == pytest.approx(1.0)
    assert int(r.n_pairs.sel(population="indep")) == 45  # the silent neuron is dropped
    assert abs(float(r.sel(population="indep"))) < 5 / np.sqrt(2000 * 45)  # mean of 45 r's
    # all neurons drawn: the mean of np.corrcoef's upper triangle of hand-binned counts
    counts = np.array([np.histogram(t, bins=np.arange(0, t_stop + 1, 10.0))[0] for t in indep])
    iu = np.triu_indices(10, 1)
    assert float(r.sel(population="indep")) == pytest.approx(np.corrcoef(counts)[iu].mean(),
                                                             abs=1e-12)


def test_spike_count_correlation_sample_is_seeded():
    rng = np.random.default_rng(6)
    trains = [np.sort(rng.uniform(0, 1000, 30)) for _ in range(40)]
    ds = trains_ds(trains, 1000.0)
    a = A.spike_count_correlation(ds, n_neurons=5, bin_ms=20.0, rng=7)
    b = A.spike_count_correlation(ds, n_neurons=5, bin_ms=20.0, rng=np.random.default_rng(7))
    c = A.spike_count_correlation(ds, n_neurons=5, bin_ms=20.0, rng=8)
    assert a.values[0] == b.values[0] and a.values[0] != c.values[0]
    assert a.n_pairs.values[0] == 10


# --------------------------------------------------------------- signals
def region_signal(values, dt_s=0.8, regions=None):
    values = np.asarray(values, float)
    regions = regions or [f"r{k}" for k in range(values.shape[1])]
    time = xr.Variable("time", dt_s * np.arange(values.shape[0]), {"units": "s"})
    return xr.DataArray(values, dims=("time", "region"),
                        coords={"time": time, "region": regions}, attrs={"units": "1"})


def test_fc_of_identical_and_negated_signals():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=200), rng.normal(size=200)
    sig = region_signal(np.column_stack([x, x, -x, y, 3 * y + 1]))
    fc = A.functional_connectivity(sig)
    assert fc.dims == ("region_a", "region_b") and fc.attrs["units"] == "1"
    assert fc.sel(region_a="r0", region_b="r1") == pytest.approx(1.0)
    assert fc.sel(region_a="r0", region_b="r2") == pytest.approx(-1.0)
    assert fc.sel(region_a="r3", region_b="r4") == pytest.approx(1.0)
    np.testing.assert_allclose(fc.values, np.corrcoef(sig.values.T), atol=1e-12)
    assert A.fc_correlation(fc, fc) == pytest.approx(1.0)
    assert A.fc_correlation(fc.values, -fc.values) == pytest.approx(-1.0)


def test_fc_correlation_is_pearson_of_the_upper_triangle():
    a = np.array([[1, 0.2, 0.4], [0.2, 1, 0.6], [0.4, 0.6, 1.0]])  # upper 0.2 (1, 2, 3)
    b = np.array([[1, 0.1, 0.2], [0.1, 1, 0.4], [0.2, 0.4, 1.0]])  # upper 0.1 (1, 2, 4)
    # r((1, 2, 3), (1, 2, 4)) = 3 / (sqrt(2) sqrt(42) / 3) = 9 / sqrt(84); diagonals ignored
    assert A.fc_correlation(a, b) == pytest.approx(9 / np.sqrt(84))
    b[0, 2] = b[2, 0] = np.nan  # pairs with a NaN are left out: r of 2 points = 1
    assert A.fc_correlation(a, b) == pytest.approx(1.0)


def test_pearson_r_per_region_hand_value():
    a = region_signal(np.column_stack([[1, 2, 3], [1, 2, 3], [5, 5, 5]]))
    b = region_signal(np.column_stack([[1, 2, 4], [-1, -2, -3], [1, 2, 3]]))
    r = A.pearson_r(a, b)
    # r([1,2,3], [1,2,4]) = 3 / (sqrt(2) sqrt(42) / 3) = 9 / sqrt(84)
    assert r.sel(region="r0") == pytest.approx(9 / np.sqrt(84))
    assert r.sel(region="r1") == pytest.approx(-1.0)
    assert np.isnan(r.sel(region="r2"))  # constant signal
    assert r.attrs["units"] == "1"


@pytest.mark.parametrize("f_hz, dt, units", [(8.0, 1.0, "ms"), (0.05, 0.8, "s")])
def test_power_spectrum_peak_and_power(f_hz, dt, units):
    n = 8192
    t = dt * np.arange(n)
    scale = 1e-3 if units == "ms" else 1.0
    amp = 5.0
    rate = 10 + amp * np.sin(2 * np.pi * f_hz * t * scale)
    da = xr.DataArray(np.column_stack([rate, np.full(n, 3.0)]), dims=("time", "population"),
                      coords={"time": xr.Variable("time", t, {"units": units}),
                              "population": ["osc", "flat"]}, attrs={"units": "Hz"})
    psd = A.power_spectrum(da, nperseg=1024)
    fs = 1 / (dt * scale)
    peak = float(psd.frequency[psd.sel(population="osc").argmax("frequency")])
    assert abs(peak - f_hz) <= fs / 1024  # within one frequency bin
    df = float(psd.frequency[1] - psd.frequency[0])
    power = float(psd.sel(population="osc").sum()) * df
    assert power == pytest.approx(amp ** 2 / 2, rel=0.05)  # Parseval: variance of A sin
    assert float(psd.sel(population="flat").max()) < 1e-20
    assert psd.frequency.attrs["units"] == "Hz" and psd.attrs["units"] == "Hz^2/Hz"


# ----------------------------------------------------------------- neo
def test_to_neo_spike_trains():
    neo = pytest.importorskip("neo")
    ds = known_spikes()
    trains = A.to_neo(ds, t_window=(0.0, 700.0))
    assert len(trains) == 5 and all(isinstance(s, neo.SpikeTrain) for s in trains)
    assert [s.annotations["neuron"] for s in trains] == [0, 1, 2, 3, 4]
    assert [s.annotations["population"] for s in trains] == ["A", "A", "B", "B", "B"]
    assert trains[3].annotations["region"] == "Y"
    np.testing.assert_allclose(trains[0].rescale("ms").magnitude, [20.0, 100.0, 250.0])
    np.testing.assert_allclose(trains[2].magnitude, [300.0])  # the stamp at 0 is outside
    assert str(trains[0].units.dimensionality) == "ms"
    assert float(trains[0].t_start) == 0.0 and float(trains[0].t_stop) == 700.0
    only_b = A.to_neo(ds, neurons="B")
    assert [s.annotations["neuron"] for s in only_b] == [2, 3, 4]


def test_to_neo_without_neo_names_the_install_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "neo", None)  # import neo now raises ImportError
    with pytest.raises(ImportError, match=r"pip install brainsim\[neo\]") as err:
        A.to_neo(known_spikes())
    assert isinstance(err.value, BrainsimError)


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize("call, name", [
    (lambda ds: A.rate_histogram(ds, bin_ms=0.0), "bin_ms"),
    (lambda ds: A.rate_histogram(ds, bin_ms=-1.0), "bin_ms"),
    (lambda ds: A.synchrony(ds, bin_ms=float("nan")), "bin_ms"),
    (lambda ds: A.rate_histogram(ds, bin_ms=2000.0), "bin_ms"),
    (lambda ds: A.mean_rate(ds, t_window=(500.0, 500.0)), "t_window"),
    (lambda ds: A.mean_rate(ds, t_window=(600.0, 100.0)), "t_window"),
    (lambda ds: A.mean_rate(ds, t_window=5.0), "t_window"),
    (lambda ds: A.mean_rate(ds, by="voxel"), "by"),
    (lambda ds: A.mean_rate(ds, source="bold"), "source"),
    (lambda ds: A.mean_rate(ds, source="rates"), "rate"),
    (lambda ds: A.cv_isi(ds, min_spikes=2), "min_spikes"),
    (lambda ds: A.cv_isi(ds, min_spikes=True), r"min_spikes .* >= 3, got True"),
    (lambda ds: A.lvr(ds, min_spikes="3"), r"min_spikes .* >= 3, got '3'"),
    (lambda ds: A.cv_isi(ds, min_spikes=3.0), r"min_spikes .* >= 3, got 3.0"),
    (lambda ds: A.lvr(ds, R=-1.0), "R"),
    (lambda ds: A.spike_count_correlation(ds, n_neurons=1), "n_neurons"),
    (lambda ds: A.spike_count_correlation(ds, n_neurons=True), "n_neurons .* >= 2, got True"),
    (lambda ds: A.spike_count_correlation(ds, n_neurons="5"), "n_neurons .* >= 2, got '5'"),
    (lambda ds: A.cv_isi(ds, neurons=[0, 99]), "spike_neuron|neuron"),
    (lambda ds: A.summarize(A.cv_isi(ds), stat="max"), "stat"),
    (lambda ds: A.mean_rate(ds["spike_time"]), "ds"),
])
def test_bad_input_names_the_parameter(call, name):
    with pytest.raises(ParameterError, match=name):
        call(known_spikes())


def test_bad_signals_raise():
    a = region_signal(np.random.default_rng(0).normal(size=(20, 3)))
    with pytest.raises(ParameterError, match="fc_a and fc_b"):
        A.fc_correlation(np.eye(3), np.eye(4))
    with pytest.raises(ParameterError, match="fc_b"):
        A.fc_correlation(A.functional_connectivity(a),
                         A.functional_connectivity(a.isel(region=[2, 1, 0])))
    with pytest.raises(ParameterError, match="a and b"):
        A.pearson_r(a, a.isel(time=slice(0, 10)))
    for bad in (50, 1, True, "10", 10.0):
        with pytest.raises(ParameterError, match=r"nperseg .* must be an integer in \[2, 20\], "
                                                 r"got " + repr(bad)):
            A.power_spectrum(a, nperseg=bad)
    with pytest.raises(ParameterError, match="time_units"):
        A.power_spectrum(a.assign_coords(time=np.arange(20.0)))
    with pytest.raises(ParameterError, match="dim"):
        A.functional_connectivity(a, dim="t")
    with pytest.raises(UnknownNameError, match="'C'"):
        A.cv_isi(known_spikes(), neurons="C")


# ------------------------------------------------------------------ FCD
def _bold(x, tr=1.0):
    t = np.arange(x.shape[0]) * tr
    return xr.DataArray(x, dims=("time", "region"),
                        coords={"time": ("time", t, {"units": "s"}),
                                "region": [f"R{i}" for i in range(x.shape[1])]})


def test_fcd_matches_window_fcs_computed_by_hand():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, 4))
    d = A.fcd(_bold(x, tr=0.5), window=3.0, step=1.5)  # 6 samples, step 3
    starts = range(0, 20 - 6 + 1, 3)
    iu = np.triu_indices(4, 1)
    vec = [np.corrcoef(x[a:a + 6].T)[iu] for a in starts]
    expect = np.corrcoef(np.array(vec))
    np.testing.assert_allclose(d.values, expect, atol=1e-12)
    np.testing.assert_allclose(d.window_a.values, [0.0, 1.5, 3.0, 4.5, 6.0])
    assert d.attrs["window_samples"] == 6 and d.attrs["step_samples"] == 3
    assert d.window_a.attrs["units"] == "s" and d.attrs["units"] == "1"


def test_fcd_shows_a_change_of_fc_state_as_two_blocks():
    """Regions 0-2 and 3-5 share a source in the first 300 s, the pairs
    (0, 3), (1, 4), (2, 5) in the last 300 s: windows inside one half have
    nearly the same FC (FCD near 1), windows in different halves opposite
    patterns (for these 0/1 patterns r = -0.32 in the limit)."""
    rng = np.random.default_rng(7)
    n = 600
    x = rng.normal(size=(n, 6))
    a, b, c = rng.normal(size=(3, n))
    x[:300, :3] += 3 * a[:300, None]
    x[:300, 3:] += 3 * b[:300, None]
    for k in range(3):
        x[300:, [k, k + 3]] += 3 * rng.normal(size=300)[:, None]
    d = A.fcd(_bold(x), window=60.0, step=10.0)
    t = d.window_a.values
    first, second = t + 60 <= 300, t >= 300
    within = np.concatenate([d.values[np.ix_(first, first)].ravel(),
                             d.values[np.ix_(second, second)].ravel()])
    across = d.values[np.ix_(first, second)]
    assert within.min() > 0.8
    assert np.all(across < -0.1) and abs(across.mean() + 0.32) < 0.1


def test_fcd_ks_against_hand_computed_and_scipy():
    def fcd_of(upper):
        m = np.eye(3)
        m[np.triu_indices(3, 1)] = upper
        return m
    a, b = fcd_of([0.1, 0.2, 0.3]), fcd_of([0.2, 0.3, 0.4])
    assert A.fcd_ks(a, b) == pytest.approx(1 / 3)
    assert A.fcd_ks(a, a) == 0.0
    assert A.fcd_ks(a, fcd_of([0.5, 0.6, 0.7])) == 1.0
    from scipy.stats import ks_2samp
    rng = np.random.default_rng(1)
    p, q = rng.uniform(-1, 1, (30, 30)), rng.uniform(-0.8, 1, (41, 41))
    iu_p, iu_q = np.triu_indices(30, 1), np.triu_indices(41, 1)
    assert A.fcd_ks(p, q) == pytest.approx(ks_2samp(p[iu_p], q[iu_q]).statistic,
                                                  abs=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    ({"window": 700.0}, r"window must come to between 3 and 600 samples"),
    ({"window": 2.0}, r"window must come to between 3"),
    ({"window": 0.0}, r"window must be a finite number > 0 s"),
    ({"step": 0.2}, r"step must come to at least 1 sample"),
    ({"step": True}, r"step must be a finite number"),
])
def test_fcd_bad_windows_are_named(kwargs, match):
    x = _bold(np.random.default_rng(0).normal(size=(600, 4)))
    with pytest.raises(ParameterError, match=match):
        A.fcd(x, **kwargs)


def test_fcd_ks_bad_input_is_named():
    with pytest.raises(ParameterError, match=r"fcd_b must be a square matrix"):
        A.fcd_ks(np.eye(3), np.ones((2, 3)))
    with pytest.raises(ParameterError, match=r"fcd_a has no finite entry above the diagonal"):
        A.fcd_ks(np.full((3, 3), np.nan), np.eye(3))
