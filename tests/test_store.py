"""Network and results stores (Zarr v3): exact round trips, per-partition
loading, JSON-only attributes, results appended across runs."""
import json
import os
import pathlib

import numpy as np
import pytest
import zarr

import brainsim
import brainsim.assimilation
import brainsim.generation
import brainsim.kernels
from brainsim.integrity import checksum
from brainsim.store import network_info

N_PRE, N_POST = 30, 20


def rich_net(n_partitions=3):
    """Two regions, two models, per-neuron columns, every input kind, drawn
    weights and delays, and an all_to_all projection whose weights encode
    (source, target) so that any misplaced synapse is visible."""
    net = brainsim.Network(dt=0.1, seed=7)
    net.add_population("A", N_PRE, params={"I_e": 300.0, "tau_m": 12.0}, region="r1")
    net.add_population("B", N_POST, kind="I", params={"V_th": -52.0}, region="r1")
    net.add_population("D", 25, model="lif_dtb", region="r2")
    net.connect("A", "A", rule="fixed_indegree", indegree=6,
                weight={"distribution": "normal", "mean": 30.0, "sd": 10.0},
                delay={"distribution": "normal", "mean": 1.5, "sd": 0.7})
    tgt, src = np.divmod(np.arange(N_PRE * N_POST), N_PRE)  # all_to_all order
    net.connect("A", "B", rule="all_to_all", weight=1000.0 * tgt + src + 1.0,
                delay=0.1 * (1 + (src + tgt) % 7))
    net.connect("B", "A", rule="pairwise_bernoulli", p=0.3, weight=-40.0, delay=0.8)
    net.connect(["A", "B"], "D", rule="fixed_total_number", n=200, weight=0.02, delay=2.0)
    net.set_property("A", "V_m", np.linspace(-70.0, -55.0, N_PRE))  # per-neuron column
    net.set_property("B", "tau_m", multiplier=np.linspace(0.8, 1.2, N_POST))
    net.add_poisson("A", rate=50.0, weight=40.0, indegree=4, delay=1.0)
    net.add_dc("B", 250.0)
    net.add_ou("D", mean=0.1, sigma=0.05, tau=5.0)
    net.meta["note"] = "test network"
    return net.build(n_partitions)


@pytest.fixture
def saved(tmp_path):
    net = rich_net()
    path = tmp_path / "net.zarr"
    net.save(path)
    return net, path


def test_round_trip_is_exact(saved):
    net, path = saved
    back = brainsim.load_network(path)
    assert (back.dt, back.seed, back.n_neurons, back.meta) == (net.dt, net.seed, net.n_neurons,
                                                               net.meta)
    assert list(back.populations) == list(net.populations)
    for name, pop in net.populations.items():
        assert back.populations[name] == pop  # name, n, model, params, region, kind, start
    assert back.regions == net.regions == ["r1", "r2"]
    assert set(back.columns) == set(net.columns) and "V_m" in net.columns
    for name, col in net.columns.items():
        np.testing.assert_array_equal(back.columns[name], col, strict=True)
    assert set(back.inputs) == set(net.inputs)
    for name, arr in net.inputs.items():
        np.testing.assert_array_equal(back.inputs[name], arr)
    assert len(back.partitions) == len(net.partitions) == 3
    for a, b in zip(net.partitions, back.partitions):
        assert (a.lo, a.hi, a.offset) == (b.lo, b.hi, b.offset)
        np.testing.assert_array_equal(a.sources, b.sources)
        np.testing.assert_array_equal(a.indptr, b.indptr)
    for name, arr in net.synapses.items():
        np.testing.assert_array_equal(back.synapses[name], arr, strict=True)
    for name in ("V_m", "tau_m", "I_e", "V_th"):
        np.testing.assert_array_equal(back.neuron_param(name), net.neuron_param(name))
    assert back.n_synapses == net.n_synapses > 1000


def test_loaded_network_simulates_identically(saved):
    net, path = saved
    record = {"V_m": [0, 31, 60]}
    ds_a = brainsim.Simulation(net, seed=11, record=record).run(40.0)
    ds_b = brainsim.Simulation(brainsim.load_network(path), seed=11, record=record).run(40.0)
    assert ds_a.sizes["spike"] > 20  # the comparison is not vacuous
    for name in ("spike_time", "spike_neuron", "rate", "rate_region", "V_m"):
        np.testing.assert_array_equal(ds_b[name].values, ds_a[name].values)


def test_loaded_network_accepts_parameter_changes(saved):
    _, path = saved
    back = brainsim.load_network(path)
    back.set_property("B", "I_e", 0.0)
    assert np.all(back.neuron_param("I_e")[N_PRE:N_PRE + N_POST] == 0.0)
    with pytest.raises(brainsim.BuildError):
        back.connect("A", "B")


def _expand(part):
    """(source, global target, weight, delay) per synapse of a loaded partition."""
    src = np.repeat(part["sources"], np.diff(part["indptr"]))
    return src, part["targets"].astype(np.int64) + part["lo"], part["weights"], part["delays"]


def test_load_partition_matches_the_whole(saved):
    net, path = saved
    pieces = []
    for k, p in enumerate(net.partitions):
        part = brainsim.load_partition(path, k)
        assert (part["lo"], part["hi"]) == (p.lo, p.hi)
        # partitions of <= 65,536 neurons store their local targets in 2 bytes
        assert part["targets"].dtype == np.uint16 and part["weights"].dtype == np.float32
        assert part["delays"].dtype == np.uint16 and part["indptr"][-1] == p.n_synapses
        assert np.all(np.diff(part["sources"]) > 0)  # sorted, unique: a routing table
        assert part["targets"].min() >= 0 and part["targets"].max() < p.hi - p.lo
        src, tgt, w, d = _expand(part)
        sl = slice(p.offset, p.offset + p.n_synapses)
        np.testing.assert_array_equal(tgt, net.synapses["targets"][sl])
        np.testing.assert_array_equal(w, net.synapses["weights"][sl])
        np.testing.assert_array_equal(d, net.synapses["delays"][sl])
        pieces.append((src, tgt, w, d))
    src, tgt, w, d = (np.concatenate(x) for x in zip(*pieces))
    assert src.size == net.n_synapses
    # the all_to_all A -> B projection: every (source, target) once, with its own weight
    a2b = (src < N_PRE) & (tgt >= N_PRE) & (tgt < N_PRE + N_POST)
    s, t = src[a2b], tgt[a2b] - N_PRE
    assert a2b.sum() == N_PRE * N_POST
    assert np.unique(t * N_PRE + s).size == N_PRE * N_POST
    np.testing.assert_array_equal(w[a2b], 1000.0 * t + s + 1.0)
    np.testing.assert_array_equal(d[a2b], 1 + (s + t) % 7)


def test_partition_count_does_not_change_the_synapses(tmp_path):
    """Same network in 1 and 4 partitions: the same multiset of synapses."""
    rows = []
    for k in (1, 4):
        rich_net(k).save(tmp_path / f"net{k}.zarr")
        net = brainsim.load_network(tmp_path / f"net{k}.zarr")
        parts = [brainsim.load_partition(tmp_path / f"net{k}.zarr", j)
                 for j in range(len(net.partitions))]
        src, tgt, w, d = (np.concatenate(x) for x in zip(*map(_expand, parts)))
        rows.append(np.sort(np.rec.fromarrays([src, tgt, w, d])))
    np.testing.assert_array_equal(rows[0], rows[1])


def _zarr_json_files(path):
    return sorted(pathlib.Path(path).rglob("zarr.json"))


def _is_plain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(map(_is_plain, value))
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def test_network_store_is_plain_json_and_numeric_arrays(saved):
    _, path = saved
    files = _zarr_json_files(path)
    assert len(files) > 10
    for f in files:
        meta = json.loads(f.read_text())  # strict JSON: would fail on pickled bytes
        assert meta["zarr_format"] == 3
        assert _is_plain(meta.get("attributes", {}))
        if meta["node_type"] == "array":
            assert np.dtype(meta["data_type"]).kind in "iufb", f
    attrs = json.loads((path / "zarr.json").read_text())["attributes"]
    assert attrs["schema"] == "brainsim-network" and attrs["schema_version"] == 1
    assert attrs["units"]["time"] == "ms" and attrs["units"]["current"] == "pA"
    assert attrs["meta"] == {"note": "test network"}


def test_no_pickle_in_the_package():
    sources = []
    for module in (brainsim, brainsim.kernels, brainsim.generation, brainsim.assimilation):
        sources += pathlib.Path(module.__file__).parent.rglob("*.py")
    assert len(sources) > 5
    for f in sources:
        text = f.read_text()
        for bad in ("import pickle", "cPickle", "allow_pickle=True", "object_codec", "dill"):
            assert bad not in text, f"{bad!r} in {f}"


def test_network_info(saved):
    net, path = saved
    info = network_info(path)
    assert info["n_neurons"] == net.n_neurons and info["n_synapses"] == net.n_synapses
    assert [p["name"] for p in info["populations"]] == ["A", "B", "D"]
    assert info["populations"][2] == {"name": "D", "n": 25, "model": "lif_dtb", "region": "r2",
                                      "kind": "E"}
    assert [(p["lo"], p["hi"], p["n_synapses"]) for p in info["partitions"]] == [
        (p.lo, p.hi, p.n_synapses) for p in net.partitions]
    on_disk = sum(os.path.getsize(f) for f in (path / "partitions").rglob("*")
                  if f.is_file() and f.name != "zarr.json")
    assert info["bytes_per_synapse_disk"] == pytest.approx(on_disk / net.n_synapses, rel=1e-12)
    # raw: uint16 local target + float32 weight + uint16 delay per synapse, plus row pointers
    assert 8.0 <= info["bytes_per_synapse_raw"] < 8.0 + 16.0 * 3 * net.n_neurons / net.n_synapses
    assert (info["dt"], info["seed"]) == (0.1, 7)


def test_save_overwrite(tmp_path):
    path = tmp_path / "net.zarr"
    rich_net().save(path)
    small = brainsim.Network(dt=0.1, seed=2)
    small.add_population("X", 3)
    small.save(path, overwrite=True)
    back = brainsim.load_network(path)
    assert list(back.populations) == ["X"] and back.n_synapses == 0
    assert not (path / "partitions" / "2").exists()


# ---------------------------------------------------------------- results
def small_sim_net():
    net = brainsim.Network(dt=0.1, seed=3)
    net.add_population("E", 40, params={"I_e": 360.0}, region="left")
    net.add_population("I", 10, kind="I", params={"I_e": 360.0}, region="right")
    net.connect("E", ["E", "I"], rule="fixed_indegree", indegree=5, weight=30.0, delay=1.0)
    net.connect("I", ["E", "I"], rule="fixed_indegree", indegree=2, weight=-60.0, delay=0.5)
    net.add_poisson(["E", "I"], rate=300.0, weight=60.0)
    return net


def test_open_results_concatenates_runs(tmp_path):
    path = tmp_path / "run.zarr"
    sim = brainsim.Simulation(small_sim_net(), seed=4, store=path, record={"V_m": "I"},
                              rate_bin=0.5)
    first, second = sim.run(30.0), sim.run(20.0)
    assert first.sizes["spike"] > 0 and second.sizes["spike"] > 0
    ds = brainsim.open_results(path)
    both = {name: np.concatenate([first[name].values, second[name].values])
            for name in ("spike_time", "spike_neuron", "rate", "rate_region", "V_m",
                         "time", "time_vm")}
    for name, expected in both.items():
        np.testing.assert_array_equal(ds[name].values, expected, err_msg=name)
    assert second.spike_time.values.min() > 30.0 >= first.spike_time.values.max()
    np.testing.assert_allclose(ds.time.values, np.arange(100) * 0.5, rtol=0, atol=1e-9)
    assert list(ds.population.values) == ["E", "I"]
    assert list(ds.region.values) == ["left", "right"]
    np.testing.assert_array_equal(ds.neuron.values, np.arange(40, 50))
    assert ds.rate.dims == ("time", "population") and ds.V_m.dims == ("time_vm", "neuron")
    # rates agree with the spikes
    counts = np.bincount((ds.spike_neuron.values >= 40).astype(int), minlength=2)
    np.testing.assert_allclose(ds.rate.mean("time").values, counts / (np.array([40, 10]) * 0.05))


def test_results_units_and_provenance(tmp_path):
    path = tmp_path / "run.zarr"
    sim = brainsim.Simulation(small_sim_net(), seed=4, store=path)
    sim.run(5.0)
    sim.run(5.0)
    ds = brainsim.open_results(path)
    assert ds.rate.attrs["units"] == "Hz" and ds.rate_region.attrs["units"] == "Hz"
    assert ds.spike_time.attrs["units"] == "ms" and ds.time.attrs["units"] == "ms"
    assert ds.V_m.attrs["units"] == "mV"
    for name in ("spike_time", "rate", "rate_region", "V_m", "time"):
        assert ds[name].attrs["long_name"]
    assert ds.attrs["seed"] == 4 and ds.attrs["dt"] == 0.1
    assert ds.attrs["backend"] == "cpu"
    assert ds.attrs["brainsim_version"] == brainsim.__version__
    assert ds.attrs["t_stop"] == pytest.approx(10.0)
    for f in _zarr_json_files(path):
        meta = json.loads(f.read_text())
        assert _is_plain(meta.get("attributes", {}))


def test_results_are_lazy(tmp_path):
    path = tmp_path / "run.zarr"
    brainsim.Simulation(small_sim_net(), store=path).run(5.0)
    ds = brainsim.open_results(path)
    assert ds.spike_neuron.chunks is not None and ds.rate.chunks is not None


def test_results_overwrite(tmp_path):
    path = tmp_path / "run.zarr"
    brainsim.Simulation(small_sim_net(), seed=1, store=path).run(10.0)
    brainsim.Simulation(small_sim_net(), seed=2, store=path, overwrite=True).run(3.0)
    ds = brainsim.open_results(path)
    assert ds.attrs["seed"] == 2 and ds.sizes["time"] == 3


def test_writer_attrs_stay_json(tmp_path):
    sim = brainsim.Simulation(small_sim_net(), store=tmp_path / "run.zarr")
    sim.annotate(scale=np.float64(0.5))  # kept until the store is created by run()
    sim.run(1.0)
    sim.annotate(sizes=np.arange(3), note="x")
    attrs = zarr.open_group(tmp_path / "run.zarr", mode="r").attrs
    assert (attrs["scale"], attrs["sizes"], attrs["note"]) == (0.5, [0, 1, 2], "x")
    with pytest.raises(brainsim.StoreError):
        sim.annotate(bad=object())


def test_row_with_decreasing_delays_is_rejected(tmp_path):
    """A hand-made store whose row is not sorted by delay would lose spikes in
    the CPU backend: loading must refuse it."""
    net = brainsim.Network(dt=0.1, seed=1)
    net.add_population("E", 4)
    net.connect("E", "E", rule="all_to_all", delay={"distribution": "normal", "mean": 0.5,
                                                    "sd": 0.3})
    net.build(1)  # one partition: rows of 4 synapses
    path = tmp_path / "net.zarr"
    net.save(path)
    brainsim.load_network(path)  # as written: rows sorted by delay
    arr = zarr.open_array(path / "partitions" / "0" / "delays", mode="r+")
    d = arr[:]
    assert d[0] < d[3]  # first row (4 synapses), sorted by delay
    d[:4] = d[:4][::-1].copy()  # now decreasing
    arr[:] = d
    with pytest.raises(brainsim.StoreError, match="'delays' does not match the checksum"):
        brainsim.load_network(path)
    arr.attrs["crc32"] = checksum(d)  # a forger who fixes the checksum too
    with pytest.raises(brainsim.StoreError, match="non-decreasing within each row"):
        brainsim.load_network(path)


def test_forged_results_lengths_are_refused():
    """A checkpoint's or snapshot's record of the results' lengths holds
    whole numbers within the store: bools, strings and floats are refused."""
    from brainsim.results import checked_lengths
    stored = {"spike_step": 5, "spike_neuron": 5, "time": 2, "rate": 2, "rate_region": 2,
              "time_vm": 0, "V_m": 0}
    assert checked_lengths(dict(stored), stored, "snap") == stored
    for bad in (6, -1, True, "5", 5.0, None):
        with pytest.raises(brainsim.CheckpointError,
                           match=r"snap: results length of 'spike_step' must be an integer in "
                                 r"\[0, 5\], got " + repr(bad)):
            checked_lengths({**stored, "spike_step": bad}, stored, "snap")
