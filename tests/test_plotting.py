"""brainsim.plotting: every function returns a Figure with the expected
axes, unit labels and data (Agg backend, nothing shown)."""
import os
import re
import subprocess
import sys

import matplotlib
import numpy as np
import pytest
import xarray as xr

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from brainsim import plotting
from brainsim.errors import ParameterError, UnknownNameError


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def results(seed=0, sizes=(30, 10, 20), t_stop=500.0):
    """Synthetic results: random spikes on a 0.1 ms grid, rates per region."""
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    steps = rng.integers(0, int(t_stop * 10), 3000)
    times = (steps + 1) * 0.1
    ids = rng.integers(0, n, 3000)
    t_bins = np.arange(0, t_stop, 5.0)
    rate_region = rng.uniform(0, 20, (t_bins.size, 2))
    return xr.Dataset(
        {"spike_time": ("spike", times), "spike_neuron": ("spike", ids),
         "rate_region": (("time", "region"), rate_region, {"units": "Hz"})},
        coords={"time": xr.Variable("time", t_bins, {"units": "ms"}), "region": ["R0", "R1"]},
        attrs={"dt": 0.1, "populations": ["E", "I", "X"], "population_sizes": list(sizes),
               "regions": ["R0", "R1"], "t_start": 0.0, "t_stop": t_stop})


def test_raster_plots_exactly_the_spikes_in_the_window():
    ds = results()
    fig = plotting.raster(ds, fraction=1.0, t_window=(100.0, 300.0))
    assert isinstance(fig, matplotlib.figure.Figure)
    ax = fig.axes[0]
    got = np.concatenate([line.get_xydata() for line in ax.get_lines()])
    t, i = ds.spike_time.values, ds.spike_neuron.values
    keep = (t > 100.0 + 1e-9) & (t <= 300.0 + 1e-9)  # stamps in (t0, t1]
    want = np.column_stack([t[keep], i[keep]])  # fraction 1: row = neuron id
    assert sorted(map(tuple, got)) == sorted(map(tuple, want))
    assert [line.get_label() for line in ax.get_lines()] == ["E", "I", "X"]
    assert len({line.get_color() for line in ax.get_lines()}) == 3
    assert ax.get_xlabel() == "time (ms)" and ax.get_xlim() == (100.0, 300.0)
    # populations from top to bottom, each spike drawn in its population's colour
    for line, lo, hi in zip(ax.get_lines(), (0, 30, 40), (30, 40, 60)):
        y = line.get_ydata()
        assert y.min() >= lo and y.max() < hi


def test_raster_fraction_draws_a_seeded_subset():
    ds = results()
    fig = plotting.raster(ds, fraction=0.5, seed=3)
    rows = np.concatenate([line.get_ydata() for line in fig.axes[0].get_lines()])
    assert rows.max() < 30  # round(0.5 * (30, 10, 20)) = 30 rows
    again = plotting.raster(ds, fraction=0.5, seed=3)
    np.testing.assert_array_equal(
        rows, np.concatenate([line.get_ydata() for line in again.axes[0].get_lines()]))
    n_spikes = rows.size
    assert 0.3 * ds.spike_time.size < n_spikes < 0.7 * ds.spike_time.size
    only = plotting.raster(ds, populations="I")
    assert [line.get_label() for line in only.axes[0].get_lines()] == ["I"]


def test_raster_draws_into_a_given_axes():
    fig, ax = plt.subplots()
    assert plotting.raster(results(), ax=ax) is fig
    assert len(ax.get_lines()) == 3


def test_rate_heatmap_marks_absent_populations():
    rates = xr.DataArray([[1.0, 2.0, 3.0], [4.0, np.nan, 6.0]], dims=("population", "region"),
                         coords={"population": ["4E", "4I"], "region": ["V1", "TH", "V2"]},
                         attrs={"units": "Hz"})
    fig = plotting.rate_heatmap(rates.transpose())  # population goes on y whatever the order
    ax = fig.axes[0]
    image = ax.get_images()[0].get_array()
    assert image.shape == (2, 3) and image.mask.tolist() == [[0, 0, 0], [0, 1, 0]]
    hatched = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch()]
    assert [(p.get_x(), p.get_y()) for p in hatched] == [(0.5, 0.5)]  # cell (row 1, col 1)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["absent population"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["V1", "TH", "V2"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["4E", "4I"]
    assert fig.axes[1].get_ylabel() == "mean rate (Hz)"  # the colour bar


def test_rate_heatmap_without_absent_cells_has_no_legend():
    rates = xr.DataArray(np.ones((2, 2)), dims=("population", "region"))
    ax = plotting.rate_heatmap(rates).axes[0]
    assert ax.get_legend() is None and not ax.patches


def test_region_rate_heatmap_shows_rate_region():
    ds = results()
    fig = plotting.region_rate_heatmap(ds)
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.get_images()[0].get_array(), ds.rate_region.values.T)
    assert ax.get_images()[0].get_extent()[:2] == [0.0, 500.0]
    assert ax.get_xlabel() == "time (ms)" and ax.get_ylabel() == "region"
    assert fig.axes[1].get_ylabel() == "rate (Hz)"
    part = plotting.region_rate_heatmap(ds, regions=["R1"], t_window=(100.0, 200.0))
    np.testing.assert_array_equal(part.axes[0].get_images()[0].get_array(),
                                  ds.rate_region.values[20:40, 1][None, :])


def bold(values, tr=0.8):
    values = np.asarray(values, float)
    time = xr.Variable("time", tr * np.arange(1, values.shape[0] + 1), {"units": "s"})
    return xr.DataArray(values, dims=("time", "region"),
                        coords={"time": time, "region": [f"r{k}" for k in range(values.shape[1])]},
                        attrs={"units": "1"})


def test_bold_traces_simulated_vs_observed():
    rng = np.random.default_rng(1)
    sim = bold(rng.normal(size=(50, 3)))
    obs = bold(np.column_stack([sim.values[:, 0], -sim.values[:, 1], rng.normal(size=50)]))
    fig = plotting.bold_traces(sim, obs, regions=["r0", "r1"])
    assert len(fig.axes) == 2
    assert fig.axes[-1].get_xlabel() == "time (s)"
    assert fig.axes[0].get_title(loc="left") == "r0 (r = 1.00)"
    assert fig.axes[1].get_title(loc="left") == "r1 (r = -1.00)"
    sim_line, obs_line = fig.axes[1].get_lines()
    np.testing.assert_allclose(sim_line.get_xdata(), 0.8 * np.arange(1, 51))
    np.testing.assert_allclose(obs_line.get_ydata(), -sim.values[:, 1])
    assert fig.get_supylabel() == "BOLD (fractional change)"
    assert len(plotting.bold_traces(sim).axes) == 3  # no observation: all (<= 6) regions
    with pytest.raises(UnknownNameError, match="r9"):
        plotting.bold_traces(sim, regions=["r9"])


def test_fc_matrices_side_by_side_with_fc_correlation():
    rng = np.random.default_rng(2)
    fc = np.corrcoef(rng.normal(size=(4, 30)))
    fig = plotting.fc_matrices(fc, fc, titles=("model", "data"))
    images = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in images] == ["model", "data"]
    assert all(ax.get_images()[0].get_clim() == (-1.0, 1.0) for ax in images)
    assert len(fig.axes) == 3  # two matrices and one shared colour bar
    assert fig.get_suptitle() == "FC correlation r = 1.000"
    assert "Pearson r" in fig.axes[2].get_ylabel()
    with pytest.raises(ParameterError, match="fc_a and fc_b"):
        plotting.fc_matrices(fc, fc[:3, :3])


def test_hyperparameters_mean_and_spread_band():
    t = 0.8 * np.arange(1, 11)
    mean = np.stack([np.linspace(1, 2, 10), np.full(10, 0.5)], 1)[:, :, None] * [1.0, 3.0]
    ds = xr.Dataset(
        {"hp_mean": (("time", "region", "hyperparameter"), mean, {"units": "1"}),
         "hp_spread": (("time", "region", "hyperparameter"), np.full(mean.shape, 0.1)),
         "hp_true": (("region", "hyperparameter"), [[1.5, 4.5], [0.5, 1.5]])},
        coords={"time": xr.Variable("time", t, {"units": "s"}), "region": ["a", "b"],
                "hyperparameter": ["g_AMPA", "I_ext"]})
    fig = plotting.hyperparameters(ds)
    assert len(fig.axes) == 2 and fig.axes[-1].get_xlabel() == "time (s)"
    assert fig.axes[0].get_ylabel() == "g_AMPA (dimensionless)"
    assert fig.axes[1].get_ylabel() == "I_ext (dimensionless)"
    ax = fig.axes[1]
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].max() == pytest.approx(6.0 + 0.1)  # mean 3 * 2 at the end, + sd
    assert band[:, 1].min() == pytest.approx(3.0 - 0.1)
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert sorted(line.get_ydata()[0] for line in dashed) == [1.5, 4.5]
    only = plotting.hyperparameters(ds, regions=["b"], hyperparameters="I_ext")
    assert len(only.axes) == 1 and len(only.axes[0].collections) == 1


def test_tracking_scores_boxes_and_forecast_against_persistence():
    regions = ["a", "b", "c", "d"]
    ds = xr.Dataset({"r_forecast": ("region", [0.6, 0.4, 0.8, 0.2]),
                     "r_persistence": ("region", [0.5, 0.5, 0.5, 0.5]),
                     "r_replay": ("region", [0.1, np.nan, 0.0, 0.3])},
                    coords={"region": regions})
    fig = plotting.tracking_scores(ds)
    left, right = fig.axes
    assert [t.get_text() for t in left.get_xticklabels()] == [
        "one-step forecast", "persistence", "replay"]
    medians = sorted(t.get_text() for t in left.texts)
    assert medians == ["0.10", "0.50", "0.50"]  # NaN left out of the replay's median
    assert right.get_title() == "forecast beats persistence in 50 % of regions"
    x, y = right.get_lines()[0].get_data()
    np.testing.assert_array_equal(y, ds.r_forecast.values)
    with pytest.raises(ParameterError, match="'r_forecast' and 'r_persistence'"):
        plotting.tracking_scores(ds[["r_replay"]])


def test_bad_plot_input():
    ds = results()
    for bad in (0.0, 1.5, True, "0.5", float("nan")):
        with pytest.raises(ParameterError, match=r"fraction must be a finite number in \(0, 1\], "
                                                 r"got " + re.escape(repr(bad))):
            plotting.raster(ds, fraction=bad)
    with pytest.raises(UnknownNameError, match="'Z'"):
        plotting.raster(ds, populations=["Z"])
    with pytest.raises(ParameterError, match="rates"):
        plotting.rate_heatmap(xr.DataArray(np.ones(3), dims="population"))
    with pytest.raises(ParameterError, match="t_window"):
        plotting.region_rate_heatmap(ds, t_window=(600.0, 700.0))
    with pytest.raises(ParameterError, match="hp_mean"):
        plotting.hyperparameters(xr.Dataset())


def test_import_does_not_load_matplotlib():
    code = ("import sys, brainsim, brainsim.analysis, brainsim.plotting; "
            "sys.exit('matplotlib' in sys.modules)")
    # start in tests/: from the repository root `python -c` would import the source
    # folder brainsim/ (without kernels/, mapped in on install) instead of the package
    here = os.path.dirname(os.path.abspath(__file__))
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=120,
                          cwd=here).returncode == 0
