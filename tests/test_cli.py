"""The ``brainsim`` command line, run in-process through ``brainsim.cli.main``
and once as the installed console script."""
import os
import pathlib
import re
import runpy
import shutil
import subprocess
import sys
import sysconfig

import numpy as np
import pytest
import zarr

import brainsim
import brainsim.assimilation
import brainsim.backends
import brainsim.cli
import brainsim.generation
import brainsim.kernels
from brainsim.cli import main


@pytest.fixture(scope="module")
def net_store(tmp_path_factory):
    net = brainsim.Network(dt=0.1, seed=5)
    net.add_population("exc", 80, params={"I_e": 380.0})
    net.add_population("inh", 20, kind="I", params={"I_e": 380.0}, region="other")
    net.connect("exc", ["exc", "inh"], rule="fixed_indegree", indegree=8, weight=25.0, delay=1.0)
    net.connect("inh", ["exc", "inh"], rule="fixed_indegree", indegree=4, weight=-80.0)
    net.add_poisson("exc", rate=200.0, weight=50.0)
    net.build(2)
    path = tmp_path_factory.mktemp("cli") / "net.zarr"
    net.save(path)
    return path, net


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def table_rates(out, names):
    """Rates printed in the population table, in ``names`` order."""
    rates = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] in names:
            rates[parts[0]] = float(parts[2])
    return [rates[n] for n in names]


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"brainsim {brainsim.__version__}"


def test_no_command_is_a_usage_error(capsys):
    code, _, err = run(capsys)
    assert code == 2 and "usage" in err


def test_simulate(capsys, net_store, tmp_path):
    path, net = net_store
    out_path = tmp_path / "res.zarr"
    code, out, err = run(capsys, "simulate", path, "--t-ms", 30, "--seed", 9, "--out", out_path,
                         "--no-progress", "--threads", 1, "--dtype", "float32")
    assert code == 0, err
    ds = brainsim.open_results(out_path)
    assert ds.attrs["seed"] == 9 and ds.attrs["dtype"] == "float32"
    assert ds.attrs["t_stop"] == pytest.approx(30.0)
    assert ds.attrs["command"].startswith("brainsim simulate")
    assert ds.attrs["network_store"] == os.path.abspath(path)
    assert ds.sizes["spike"] > 0 and f"spikes: {ds.sizes['spike']:,}" in out
    expected = ds.rate.mean("time").values
    np.testing.assert_allclose(table_rates(out, ["exc", "inh"]), expected, atol=5e-4)
    assert f"{net.n_synapses:,} synapses" in out


def test_simulate_is_deterministic(capsys, net_store, tmp_path):
    path, _ = net_store
    for name in ("a.zarr", "b.zarr"):
        assert run(capsys, "simulate", path, "--t-ms", 10, "--out", tmp_path / name,
                   "--no-progress")[0] == 0
    a, b = (brainsim.open_results(tmp_path / n) for n in ("a.zarr", "b.zarr"))
    np.testing.assert_array_equal(a.spike_neuron.values, b.spike_neuron.values)


def test_simulate_refuses_existing_output(capsys, net_store, tmp_path):
    path, _ = net_store
    out_path = tmp_path / "res.zarr"
    assert run(capsys, "simulate", path, "--t-ms", 5, "--out", out_path, "--no-progress")[0] == 0
    code, out, err = run(capsys, "simulate", path, "--t-ms", 5, "--out", out_path,
                         "--no-progress")
    assert code == 2 and "--overwrite" in err and "Traceback" not in err and out == ""
    code, _, err = run(capsys, "simulate", path, "--t-ms", 10, "--out", out_path,
                       "--no-progress", "--overwrite")
    assert code == 0, err
    assert brainsim.open_results(out_path).attrs["t_stop"] == pytest.approx(10.0)


@pytest.mark.parametrize("bad", [["--t-ms", "0.05"], ["--seed", "-1"], ["--threads", "0"]])
def test_overwrite_with_a_bad_argument_keeps_the_old_store(capsys, net_store, tmp_path, bad):
    """Issue 19: 'simulate ... --overwrite' with an invalid argument deleted
    the old results store and wrote nothing."""
    path, _ = net_store
    out_path = tmp_path / "res.zarr"
    assert run(capsys, "simulate", path, "--t-ms", 5, "--out", out_path, "--no-progress")[0] == 0
    before = brainsim.open_results(out_path)
    args = {"--t-ms": "5", **dict(zip(bad[::2], bad[1::2]))}
    code, _, err = run(capsys, "simulate", path, "--out", out_path, "--no-progress",
                       "--overwrite", *[x for kv in args.items() for x in kv])
    assert code == 2 and bad[0].lstrip("-").replace("-", "_")[:4] in err.replace("-", "_")
    after = brainsim.open_results(out_path)
    assert after.attrs["t_stop"] == pytest.approx(5.0)
    assert np.array_equal(after.spike_neuron.values, before.spike_neuron.values)


@pytest.mark.parametrize("argv, words", [
    (["--t-ms", "0.05"], ["t_ms", "0.05"]),
    (["--t-ms", "-3"], ["t_ms", "-3"]),
    (["--threads", "0"], ["--threads", "0"]),
    (["--seed", "-1"], ["seed", "-1"]),
])
def test_simulate_bad_values(capsys, net_store, tmp_path, argv, words):
    path, _ = net_store
    code, _, err = run(capsys, "simulate", path, "--out", tmp_path / "r.zarr", "--no-progress",
                       *(["--t-ms", "5"] if "--t-ms" not in argv else []), *argv)
    assert code == 2 and "Traceback" not in err
    for word in words:
        assert word in err
    assert not (tmp_path / "r.zarr").exists()  # a corrected rerun needs no --overwrite


def test_simulate_missing_store(capsys, tmp_path):
    code, _, err = run(capsys, "simulate", tmp_path / "none.zarr", "--t-ms", 5,
                       "--out", tmp_path / "r.zarr")
    assert code == 2 and "not found" in err and "none.zarr" in err
    assert not (tmp_path / "r.zarr").exists()


def test_info_network(capsys, net_store):
    path, net = net_store
    code, out, err = run(capsys, "info", path)
    assert code == 0, err
    assert re.search(r"^neurons: 100$", out, re.M)
    assert re.search(rf"^synapses: {net.n_synapses}$", out, re.M)
    assert re.search(r"^\s+exc\s+80\s+iaf_psc_exp\s+default\s+E$", out, re.M)
    assert re.search(r"^\s+inh\s+20\s+iaf_psc_exp\s+other\s+I$", out, re.M)
    for k, p in enumerate(net.partitions):
        assert f"{k}: neurons {p.lo}..{p.hi - 1}, {p.n_synapses} synapses" in out
    bps = float(re.search(r"bytes per synapse on disk: ([\d.]+)", out).group(1))
    assert 0 < bps < 20
    assert "dt: 0.1 ms" in out and "seed: 5" in out


def test_info_results(capsys, net_store, tmp_path):
    path, _ = net_store
    out_path = tmp_path / "res.zarr"
    assert run(capsys, "simulate", path, "--t-ms", 20, "--seed", 4, "--out", out_path,
               "--no-progress")[0] == 0
    n_spikes = brainsim.open_results(out_path).sizes["spike"]
    code, out, err = run(capsys, "info", out_path)
    assert code == 0, err
    assert f"spikes: {n_spikes}\n" in out
    assert "time: 0 .. 20 ms" in out
    assert "exc (80)" in out and "inh (20)" in out
    assert re.search(r"^\s+seed: 4$", out, re.M) and re.search(r"^\s+backend: cpu$", out, re.M)
    assert f"brainsim_version: {brainsim.__version__}" in out


def test_info_errors(capsys, net_store, tmp_path):
    code, out, err = run(capsys, "info", tmp_path / "missing.zarr")
    assert code == 2 and "not found" in err and "Traceback" not in err and out == ""
    code, _, err = run(capsys, "info", tmp_path)
    assert code == 2 and "not a brainsim" in err
    old = tmp_path / "old.zarr"
    shutil.copytree(net_store[0], old)
    zarr.open_group(old, mode="r+").attrs["schema_version"] = 99
    code, _, err = run(capsys, "info", old)
    assert code == 2 and "schema version 99" in err and "Traceback" not in err


def test_microcircuit(capsys, tmp_path):
    out_path, net_path = tmp_path / "mc.zarr", tmp_path / "mc_net.zarr"
    code, out, err = run(capsys, "microcircuit", "--scale", 0.01, "--t-ms", 20, "--warmup-ms",
                         10, "--seed", 2, "--out", out_path, "--network-out", net_path,
                         "--no-progress")
    assert code == 0, err
    from brainsim.generation.potjans_diesmann import FULL_RATES, N_FULL, POPULATIONS
    sizes = np.round(N_FULL * 0.01).astype(int)
    for name, n, ref in zip(POPULATIONS, sizes, FULL_RATES):
        assert re.search(rf"^{name}\s+{n:,}\s+\d+\.\d{{3}}\s+{ref:.3f}$", out, re.M), name
    assert "real-time factor" in out and re.search(r"build: [\d.]+ s", out)
    ds = brainsim.open_results(out_path)
    assert ds.attrs["t_stop"] == pytest.approx(30.0) and ds.attrs["warmup_ms"] == 10.0
    assert ds.attrs["network_meta"]["model"] == "potjans_diesmann_2014"
    measured = ds.rate.sel(time=slice(10.0, None)).mean("time").values
    np.testing.assert_allclose(table_rates(out, list(POPULATIONS)), measured, atol=5e-4)
    net = brainsim.load_network(net_path)
    assert list(net.populations) == list(POPULATIONS) and net.n_neurons == sizes.sum()


@pytest.mark.parametrize("argv, words", [
    (["--scale", "2"], ["scale", "2.0"]),
    (["--k-scale", "0"], ["k_scale", "0.0"]),
    (["--t-ms", "10.5"], ["--t-ms", "10.5"]),
    (["--warmup-ms", "-1"], ["--warmup-ms", "-1"]),
    (["--input", "noise"], ["--input", "noise"]),
])
def test_microcircuit_bad_values(capsys, tmp_path, argv, words):
    code, _, err = run(capsys, "microcircuit", "--scale", "0.01", "--out", tmp_path / "r.zarr",
                       "--no-progress", *argv)
    assert code == 2 and "Traceback" not in err
    for word in words:
        assert word in err
    assert not (tmp_path / "r.zarr").exists()


def test_multi_area(capsys, tmp_path):
    out_path = tmp_path / "ma.zarr"
    code, out, err = run(capsys, "multi-area", "macaque", "--scale", 0.002, "--areas", "V1,V2",
                         "--t-ms", 20, "--warmup-ms", 10, "--seed", 2, "--out", out_path,
                         "--no-progress")
    assert code == 0, err
    assert "macaque multi-area model (Schmidt et al. 2018), state ground, scale 0.002" in out
    assert "2 areas" in out and "2 partitions" in out
    ds = brainsim.open_results(out_path)
    assert ds.attrs["network_meta"]["model"] == "macaque_multi_area"
    assert list(ds.region.values) == ["V1", "V2"]
    # the area table: neurons and the measured rate per area
    measured = ds.rate_region.sel(time=slice(10.0, None)).mean("time").values
    for area, rate in zip(("V1", "V2"), measured):
        m = re.search(rf"^{area}\s+([\d,]+)\s+(\d+\.\d{{3}})\s+(\d+\.\d{{3}})$", out, re.M)
        assert m, area
        assert float(m.group(2)) == pytest.approx(rate, abs=5e-4)


@pytest.mark.parametrize("argv, words", [
    (["macaque", "--areas", "V1,V9"], ["unknown area 'V9'"]),
    (["human", "--state", "ground"], ["state must be one of", "'ground'"]),
    (["elephant"], ["invalid choice", "elephant"]),
    (["human", "--scale", "0"], ["scale", "0.0"]),
])
def test_multi_area_bad_values(capsys, tmp_path, argv, words):
    code, _, err = run(capsys, "multi-area", *argv, "--out", tmp_path / "r.zarr",
                       "--no-progress")
    assert code == 2 and "Traceback" not in err
    for word in words:
        assert word in err
    assert not (tmp_path / "r.zarr").exists()


def _console_script():
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        exe = os.path.join(folder, "brainsim")
        if os.path.exists(exe):
            return exe
    return shutil.which("brainsim")


def test_console_script(net_store):
    """The installed entry point (one subprocess: importing brainsim takes seconds)."""
    exe = _console_script()
    assert exe, "the brainsim console script is not installed"
    path, net = net_store
    done = subprocess.run([exe, "info", str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"synapses: {net.n_synapses}" in done.stdout


def test_python_dash_m(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["brainsim", "--version"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_module("brainsim", run_name="__main__")
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"brainsim {brainsim.__version__}"


@pytest.mark.skipif(os.environ.get("BRAINSIM_EXPECT_INSTALLED") != "1",
                    reason="set by .ci/run, which installs brainsim non-editable")
def test_tests_import_the_installed_package():
    site = pathlib.Path(sysconfig.get_paths()["purelib"]).resolve()
    for module in (brainsim, brainsim.kernels, brainsim.generation, brainsim.assimilation,
                   brainsim.backends, brainsim.cli):
        where = pathlib.Path(module.__file__).resolve()
        assert site in where.parents, f"{module.__name__} not imported from {site}: {where}"


def test_readme_example(tmp_path, monkeypatch):
    """README.md's Python example runs as written and its network fires."""
    readme = pathlib.Path(__file__).resolve().parents[1] / "README.md"
    code = re.search(r"```python\n(.*?)```", readme.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(code, str(readme), "exec"), scope)
    assert np.all(scope["ds"].rate.mean("time").values > 1.0)
    assert brainsim.open_results(tmp_path / "run.zarr").attrs["t_stop"] == pytest.approx(1000.0)


def test_generate_hcp(capsys, tmp_path):
    out = tmp_path / "hcp.zarr"
    code, text, err = run(capsys, "generate", "--source", "hcp", "--neurons", "20000",
                          "--k-in", "20", "--partitions", "3", "--seed", "4", "--out", out,
                          "--no-progress")
    assert code == 0, err
    assert "94 regions" in text and "20,000 neurons in 188 populations" in text
    assert re.search(r"400,000 synapses", text)
    assert re.search(r"partitions: 3, load balance \(max/mean\) 1\.0\d\d", text)
    net = brainsim.load_network(out)
    assert net.n_neurons == 20000 and len(net.partitions) == 3
    assert np.all(np.bincount(net.synapses["targets"], minlength=net.n_neurons) == 20)
    assert net.seed == 4
    # the same network from the Python API
    from brainsim.datasets import load_hcp
    from brainsim.generation import from_connectome
    ref = from_connectome(load_hcp(), 20000, 20, partitions=3, seed=4)
    np.testing.assert_array_equal(ref.synapses["targets"], net.synapses["targets"])


@pytest.mark.parametrize("argv, words", [
    (["--source", "nowhere"], r"--source must be hcp"),
    (["--source", "tvb77"], r"n_regions must be one of"),
    (["--neurons", "10"], r"n_neurons must be >= the number of populations"),
    (["--source", "hcp:999"], r"subject"),
])
def test_generate_bad_values(capsys, tmp_path, argv, words):
    args = ["generate", "--neurons", "20000", "--out", tmp_path / "x.zarr", *argv]
    code, _, err = run(capsys, *args)
    assert code == 2 and re.search(words, err), err
    assert not (tmp_path / "x.zarr").exists()
