"""The Dask engine: bit-identical to the CPU engine for 1, 2, 3 worker
processes (built-in models and a model defined here), exchange windows
longer than one step, the CPU engine's Dataset and results layout, recovery
from a killed worker, resume, bad input."""
import importlib.util
import os
import pathlib
import signal
import threading
import time

import numpy as np
import pytest
import xarray as xr
import zarr

import brainsim
from brainsim.errors import ParameterError, StoreError
from brainsim.neurons import NeuronModel, Parameter, Receptor, StateVar, register

distributed = pytest.importorskip("distributed")
from brainsim.backends.dask import (
    DaskBackendError,
    DaskEngine,
    WorkerLostError,
    assign_partitions,
)

INTER_DELAY = 1.0  # ms between regions: 10 steps, the exchange window


def region_net(seed=3):
    """Four regions (three iaf_psc_exp E/I, one lif_dtb), delays 0.1-0.4 ms
    inside regions and 1.0 ms between them, Poisson and OU input."""
    net = brainsim.Network(dt=0.1, seed=seed)
    for r in range(3):
        net.add_population(f"E{r}", 40, region=f"R{r}", params={"I_e": 300.0})
        net.add_population(f"I{r}", 12, region=f"R{r}", kind="I", params={"I_e": 250.0})
    net.add_population("D", 30, model="lif_dtb", region="R3", params={"I_e": 300.0})
    for r in range(3):
        pops = [f"E{r}", f"I{r}"]
        net.connect(f"E{r}", pops, rule="fixed_indegree", indegree=8,
                    weight={"distribution": "normal", "mean": 60.0, "sd": 20.0},
                    delay={"distribution": "normal", "mean": 0.25, "sd": 0.1})
        net.connect(f"I{r}", pops, rule="pairwise_bernoulli", p=0.3, weight=-90.0, delay=0.1)
        other = [f"E{q}" for q in range(3) if q != r]
        net.connect(f"E{r}", other, rule="fixed_indegree", indegree=4, weight=50.0,
                    delay=INTER_DELAY)
    net.connect(["E0", "E1", "E2"], "D", rule="fixed_total_number", n=300, weight=0.5,
                delay=INTER_DELAY)
    net.add_poisson(["E0", "E1", "E2"], rate=8.0, indegree=100, weight=40.0, delay=0.2)
    net.add_ou("D", mean=100.0, sigma=60.0, tau=5.0)
    return net


SEED, T_MS, VM_IDS = 11, 200.0, [3, 60, 120, 170]


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=3, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as c:
        yield c


@pytest.fixture
def cl(client):
    client.wait_for_workers(3, timeout=60)  # a killed worker is back
    return client


@pytest.fixture(scope="module")
def reference():
    sim = brainsim.Simulation(region_net(), seed=SEED, n_partitions=1,
                              record={"V_m": VM_IDS})
    ds = sim.run(T_MS)
    assert ds.sizes["spike"] > 300  # active: the comparison means something
    assert set(ds.spike_neuron.values // 52) == {0, 1, 2, 3}  # every region spikes
    return ds


def assert_same(got, ref):
    for name in ("spike_time", "spike_neuron", "rate", "rate_region", "V_m"):
        np.testing.assert_array_equal(got[name].values, ref[name].values, err_msg=name)


def assert_same_attrs(got, ref, differ=("backend", "n_partitions", "dask")):
    drop = lambda attrs: {k: v for k, v in attrs.items() if k not in differ}  # noqa: E731
    assert drop(got.attrs) == drop(ref.attrs)


@pytest.mark.parametrize("workers, window", [(1, None), (2, None), (3, None), (3, 1)])
def test_bit_identical_to_cpu(cl, reference, workers, window):
    with brainsim.Simulation(region_net(), backend="dask", client=cl, workers=workers,
                             window=window, seed=SEED, n_partitions=4,
                             record={"V_m": VM_IDS}) as sim:
        assert type(sim) is brainsim.Simulation and isinstance(sim.engine, DaskEngine)
        ds = sim.run(T_MS)
        assert_same(ds, reference)
        xr.testing.assert_equal(ds, reference)  # the same Dataset, coordinates included
        assert_same_attrs(ds, reference)
        st = sim.stats
        assert st["n_workers"] == workers
        if workers > 1:  # cut synapses are the 1 ms inter-region ones: 10-step windows
            assert sim.max_window == 10
            assert sim.window == (window or 10)
            assert st["windows"] == T_MS / 0.1 / sim.window
            assert st["routed_sources"] > 0 and st["messages_per_window"] >= workers - 1
        assert ds.attrs["backend"] == "dask"


def _delta_model():
    """A LIF neuron with voltage-jump synapses and spontaneous spikes (a
    draw of ``u`` per step), built in a function so that it exists only in
    this process: Dask pickles it by value, no worker can import it."""
    def derived(p, dt):
        return {"P22": np.exp(-dt / p["tau_m"]), "n_ref": np.rint(p["t_ref"] / dt),
                "p_spont": p["rate_spont"] * dt * 1e-3}

    def step(s, p, in_ex, in_in, i_ext, u):
        v, r = s.V_m, s.r
        if r > 0:
            r -= 1
        else:
            v = (p.E_L + (v - p.E_L) * p.P22 + (p.I_e + i_ext) * p.tau_m / p.C_m * (1.0 - p.P22)
                 + in_ex + in_in)
        spiked = v >= p.V_th or u < p.p_spont
        if spiked:
            v = p.V_reset
            r = p.n_ref
        return (v, r), spiked

    return NeuronModel(
        "test_dask_delta_lif",
        [Parameter("tau_m", 10.0, "ms", "> 0"), Parameter("C_m", 250.0, "pF", "> 0"),
         Parameter("t_ref", 2.0, "ms", ">= 0"), Parameter("E_L", -70.0, "mV"),
         Parameter("V_reset", -70.0, "mV"), Parameter("V_th", -55.0, "mV"),
         Parameter("I_e", 0.0, "pA"), Parameter("rate_spont", 2.0, "Hz", ">= 0"),
         Parameter("V_m", -70.0, "mV")],
        [StateVar("V_m", "mV", "V_m"), StateVar("r", "1", 0.0)],
        {"E": Receptor("ex", "mV", +1), "I": Receptor("in", "mV", -1)}, step, derived,
        noise=True)


DELTA = register(_delta_model(), replace=True)


def delta_net():
    """Three regions of the model above, 1 ms between regions."""
    net = brainsim.Network(dt=0.1, seed=5)
    for r in range(3):
        net.add_population(f"E{r}", 40, model=DELTA.name, region=f"R{r}", params={"I_e": 300.0})
        net.add_population(f"I{r}", 10, model=DELTA.name, region=f"R{r}", kind="I")
        net.connect(f"E{r}", [f"E{r}", f"I{r}"], rule="fixed_indegree", indegree=8, weight=1.5,
                    delay=0.2)
        net.connect(f"I{r}", [f"E{r}", f"I{r}"], rule="fixed_indegree", indegree=4,
                    weight=-3.0, delay=0.1)
    for r in range(3):
        net.connect(f"E{r}", [f"E{q}" for q in range(3) if q != r], rule="fixed_indegree",
                    indegree=4, weight=1.0, delay=INTER_DELAY)
    net.add_poisson(["E0", "E1", "E2"], rate=10.0, indegree=50, weight=0.5)
    return net


def test_user_model_registered_here_runs_on_workers(cl):
    available = brainsim.neurons.available
    assert not any(DELTA.name in names for names in cl.run(available).values())
    rec = {"V_m": [0, 55, 120]}
    ref = brainsim.Simulation(delta_net(), seed=SEED, n_partitions=3, record=rec).run(100.0)
    assert ref.sizes["spike"] > 300 and set(ref.spike_neuron.values // 50) == {0, 1, 2}
    with brainsim.Simulation(delta_net(), backend="dask", client=cl, workers=2, seed=SEED,
                             n_partitions=3, record=rec) as sim:
        ds = sim.run(100.0)
        assert sim.max_window == 10 and sim.stats["routed_sources"] > 0
        used = [addr for addr, *_ in sim.engine._assignment]
    xr.testing.assert_equal(ds, ref)
    assert all(DELTA.name in names for names in cl.run(available, workers=used).values())


def test_store_layout_and_continued_runs(cl, reference, tmp_path):
    cpu_store, dask_store = tmp_path / "cpu.zarr", tmp_path / "dask.zarr"
    brainsim.Simulation(region_net(), seed=SEED, n_partitions=4, record={"V_m": VM_IDS},
                        store=cpu_store).run(T_MS)
    with brainsim.Simulation(region_net(), backend="dask", client=cl, workers=2, seed=SEED,
                             n_partitions=4, record={"V_m": VM_IDS}, store=dask_store,
                             checkpoint_ms=50.0) as sim:
        parts = [sim.run(60.0), sim.run(T_MS - 60.0)]
    assert parts[1].attrs["t_start"] == 60.0
    np.testing.assert_array_equal(
        np.concatenate([p.spike_neuron.values for p in parts]), reference.spike_neuron.values)
    a, b = brainsim.open_results(cpu_store), brainsim.open_results(dask_store)
    assert dict(a.sizes) == dict(b.sizes) and list(a.data_vars) == list(b.data_vars)
    assert_same(b.load(), a.load())
    assert b.attrs["t_stop"] == T_MS and b.attrs["n_partitions"] == 4
    # the provenance attrs of the cpu engine, population_regions among them
    assert_same_attrs(b, a, differ=("backend", "dask"))
    assert b.attrs["population_regions"] == ["R0", "R0", "R1", "R1", "R2", "R2", "R3"]
    assert b.attrs["population_models"] == ["iaf_psc_exp"] * 6 + ["lif_dtb"]
    steps = zarr.open_group(str(dask_store / "checkpoints"), mode="r").attrs["complete"]
    assert steps == [1600, 2000]  # every 50 ms and at the end of each run; last two kept


def test_selected_spikes_and_no_rates(cl):
    rec = {"spikes": ["E1", "D"], "rates": False}
    cpu = brainsim.Simulation(region_net(), seed=SEED, n_partitions=4, record=rec,
                              keep="aggregate")
    ref = cpu.run(50.0)
    with brainsim.Simulation(region_net(), backend="dask", client=cl, workers=3, seed=SEED,
                             n_partitions=4, record=rec, keep="aggregate") as sim:
        ds = sim.run(50.0)
        total = sim.results()
    assert ds.sizes["time"] == 0 and ref.sizes["spike"] > 0
    np.testing.assert_array_equal(ds.spike_neuron.values, ref.spike_neuron.values)
    np.testing.assert_array_equal(total.spike_count.values, cpu.results().spike_count.values)
    assert total.spike_count.values.sum() == ref.sizes["spike"]


def test_set_property_and_state_between_runs_reach_workers(cl):
    def run(backend, **kw):
        sim = brainsim.Simulation(region_net(), backend=backend, seed=SEED, n_partitions=4, **kw)
        sim.set_state("I0", "V_m", -60.0)  # before any actor exists
        v0 = sim.get_state("V_m")
        a = sim.run(30.0)
        sim.set_property("E1", "I_e", 450.0)
        sim.set_property("E2", "V_m", -56.0)  # an initial value: sets the state too
        sim.set_state("D", "V_m", np.linspace(-60.0, -51.0, 30))
        state = [sim.get_state(name) for name in ("V_m", "I_syn_ex", "J_AMPA")]
        b = sim.run(30.0)
        state += [sim.get_state("V_m"), sim.I_ou, sim.V]
        sim.close()
        return np.concatenate([a.spike_neuron.values, b.spike_neuron.values]), v0, state
    spikes, v0, state = run("dask", client=cl, workers=2)
    ref_spikes, ref_v0, ref_state = run("cpu")
    assert spikes.size > 100
    np.testing.assert_array_equal(spikes, ref_spikes)
    np.testing.assert_array_equal(v0, ref_v0)
    assert np.all(v0[40:52] == -60.0)
    for got, ref in zip(state, ref_state):
        np.testing.assert_array_equal(got, ref)


def _kill_after_checkpoint(client, store, address, min_step):
    """Kill the process of worker ``address`` once the store has a complete
    checkpoint past ``min_step`` (so, while the run goes on)."""
    pid = client.run(os.getpid)[address]

    def wait_and_kill():
        path = os.path.join(store, "checkpoints")
        while True:
            try:
                if max(zarr.open_group(path, mode="r").attrs["complete"], default=0) > min_step:
                    break
            except (FileNotFoundError, KeyError, ValueError):
                pass
            time.sleep(0.002)
        os.kill(pid, signal.SIGKILL)
    th = threading.Thread(target=wait_and_kill, daemon=True)
    th.start()
    return th


def test_worker_killed_mid_run_recovers(cl, reference, tmp_path):
    store = str(tmp_path / "run.zarr")
    with brainsim.Simulation(region_net(), backend="dask", client=cl, seed=SEED, n_partitions=4,
                             record={"V_m": VM_IDS}, store=store, checkpoint_ms=20.0) as sim:
        victim = sim.engine._assignment[1][0]
        th = _kill_after_checkpoint(cl, store, victim, 0)
        ds = sim.run(T_MS)
        th.join(5)
        assert not th.is_alive() and sim.stats["recoveries"] == 1
        assert victim not in cl.scheduler_info(n_workers=-1)["workers"]  # it did die
    assert_same(ds, reference)
    assert_same(brainsim.open_results(store).load(), reference)


def test_state_written_then_worker_killed_between_runs(cl, tmp_path):
    """The checkpoint taken after set_state fails: the run goes back to an
    earlier one and applies the written state when the replay reaches it."""
    def run(backend, kill=False, **kw):
        sim = brainsim.Simulation(region_net(), backend=backend, seed=SEED, n_partitions=4,
                                  **kw)
        a = sim.run(40.0)
        sim.set_state("E0", "V_m", -52.0)  # above threshold: E0 fires at once
        if kill:
            victim = sim.engine._assignment[0][0]
            os.kill(cl.run(os.getpid)[victim], signal.SIGKILL)
            deadline = time.time() + 60
            while victim in cl.scheduler_info(n_workers=-1)["workers"]:
                assert time.time() < deadline, "the killed worker is still in the cluster"
                time.sleep(0.05)
        b = sim.run(40.0)
        sim.close()
        return a, b, sim
    store = str(tmp_path / "run.zarr")
    a, b, sim = run("dask", kill=True, client=cl, store=store, checkpoint_ms=20.0)
    ref_a, ref_b, _ = run("cpu")
    assert sim.stats["recoveries"] >= 1, sim.stats  # 1, unless a restart fails too
    assert set(range(40)) <= set(ref_b.spike_neuron.values[ref_b.spike_time.values < 40.2])
    for got, ref in ((a, ref_a), (b, ref_b)):
        xr.testing.assert_equal(got, ref)
    whole = brainsim.open_results(store).load()
    np.testing.assert_array_equal(whole.spike_neuron.values, np.concatenate(
        [ref_a.spike_neuron.values, ref_b.spike_neuron.values]))
    np.testing.assert_array_equal(whole.rate.values,
                                  np.concatenate([ref_a.rate.values, ref_b.rate.values]))
    steps = zarr.open_group(os.path.join(store, "checkpoints"), mode="r").attrs["complete"]
    assert steps == [600, 800], steps


def test_lost_worker_error_names_checkpoint_then_resume(cl, reference, tmp_path):
    store = str(tmp_path / "run.zarr")
    sim = brainsim.Simulation(region_net(), backend="dask", client=cl, seed=SEED, n_partitions=4,
                              record={"V_m": VM_IDS}, store=store, checkpoint_ms=20.0,
                              max_recoveries=0)
    first = sim.run(40.0)
    th = _kill_after_checkpoint(cl, store, sim.engine._assignment[0][0], 400)
    with pytest.raises(WorkerLostError, match=r"resume from checkpoint step \d+") as err:
        sim.run(T_MS - 40.0)
    th.join(5)
    with pytest.raises(DaskBackendError, match="resume"):
        sim.run(10.0)
    sim.close()
    ckpt = err.value.checkpoint
    assert ckpt >= 600 and err.value.store == store
    partial = brainsim.open_results(store)  # the interrupted store is readable
    assert partial.attrs["t_stop"] >= ckpt * 0.1
    n_ok = int(np.searchsorted(reference.spike_time.values, ckpt * 0.1, side="right"))
    np.testing.assert_array_equal(partial.spike_neuron.values[:n_ok],
                                  reference.spike_neuron.values[:n_ok])
    cl.wait_for_workers(3, timeout=60)
    with pytest.raises(ParameterError, match=r"\['seed'\] cannot be changed"):
        brainsim.Simulation.resume(store, client=cl, seed=2)
    with brainsim.Simulation.resume(store, client=cl) as resumed:
        assert resumed.step == ckpt
        rest = resumed.run(T_MS - ckpt * 0.1)
    assert rest.attrs["t_start"] == ckpt * 0.1
    assert_same(brainsim.open_results(store).load(), reference)
    np.testing.assert_array_equal(first.spike_neuron.values,
                                  reference.spike_neuron.values[:first.sizes["spike"]])


def test_network_store_input_and_partition_mismatch(cl, tmp_path):
    path = tmp_path / "net.zarr"
    region_net().build(3).save(path)
    with pytest.raises(ParameterError, match="n_partitions=2 does not match the 3 partitions"):
        brainsim.Simulation(str(path), backend="dask", client=cl, n_partitions=2)
    ref = brainsim.Simulation(brainsim.load_network(path), seed=SEED).run(60.0)
    assert ref.sizes["spike"] > 50
    with brainsim.Simulation(str(path), backend="dask", client=cl, seed=SEED) as sim:
        assert sim.net._partitions is None  # the driver never loaded the synapses
        assert sim.n_partitions == 3 and sim.stats == {}
        np.testing.assert_array_equal(sim.run(60.0).spike_neuron.values,
                                      ref.spike_neuron.values)
        assert sim.net._partitions is None


def test_bad_input(cl, tmp_path):
    with pytest.raises(DaskBackendError, match=r"cannot reach the Dask scheduler at "
                                               r"'tcp://127.0.0.1:1' within 1"):
        brainsim.Simulation(region_net(), backend="dask", client="tcp://127.0.0.1:1", timeout=1)
    with pytest.raises(ParameterError, match="client must be"):
        brainsim.Simulation(region_net(), backend="dask", client=3)
    with pytest.raises(ParameterError, match="workers must be in"):
        brainsim.Simulation(region_net(), backend="dask", client=cl, workers=9)
    with pytest.raises(ParameterError, match="window must be <= 10 steps"):
        with brainsim.Simulation(region_net(), backend="dask", client=cl, workers=2,
                                 window=11, n_partitions=4) as sim:
            sim.run(1.0)
    cpu_store = tmp_path / "cpu.zarr"
    brainsim.Simulation(region_net(), n_partitions=1, store=cpu_store).run(1.0)
    with pytest.raises(StoreError, match="not written by the dask backend"):
        brainsim.Simulation.resume(cpu_store, client=cl)
    with pytest.raises(ParameterError, match=r"options must be among \['client', 'workers', "
                                             r"'window'.*got unknown \['windw'\]"):
        brainsim.Simulation(region_net(), backend="dask", client=cl, windw=3)


def test_worker_memory_checked_first(tmp_path):
    import dask
    from distributed import Client, LocalCluster
    off = {f"distributed.worker.memory.{k}": False for k in ("target", "spill", "pause",
                                                             "terminate")}
    store = tmp_path / "never.zarr"
    with dask.config.set(off), LocalCluster(n_workers=1, processes=False, memory_limit=50_000,
                                            dashboard_address=":0") as cluster, \
            Client(cluster) as c:
        with pytest.raises(DaskBackendError, match=r"lacks memory for partitions 0\.\.1: "
                                                   r"estimated .* memory_limit"):
            brainsim.Simulation(region_net(), backend="dask", client=c, n_partitions=2,
                                store=store)
    assert not store.exists()  # nothing written


def test_in_process_workers_refused():
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as c:
        with pytest.raises(ParameterError, match="separate processes"):
            brainsim.Simulation(region_net(), backend="dask", client=c, n_partitions=2)


def test_multi_area_model_streamed_one_area_per_worker_partition(cl, tmp_path):
    """Issue 17: a canonical multi-area model streamed into a network store,
    one partition per area, on 2 workers: the spikes of the cpu backend."""
    from brainsim.generation import macaque_multi_area

    store = tmp_path / "mam.zarr"
    macaque_multi_area(scale=0.003, k_scale=0.1, areas=["V1", "V2", "TH"], seed=4, store=store)
    ref = brainsim.Simulation(brainsim.load_network(store), seed=SEED).run(100.0)
    assert ref.sizes["spike"] > 100 and set(np.unique(ref.spike_time.values // 50)) == {0, 1}
    with brainsim.Simulation(str(store), backend="dask", client=cl, workers=2,
                             seed=SEED) as sim:
        assert sim.n_partitions == 3
        ds = sim.run(100.0)
    for name in ("spike_time", "spike_neuron", "rate", "rate_region"):
        np.testing.assert_array_equal(ds[name].values, ref[name].values, err_msg=name)


def test_tls_cluster_gives_tls_spike_links_and_the_same_spikes(reference):
    """Issue 19: on a Dask cluster configured with TLS (temporary
    certificates) the spike links use the cluster's certificates too, and
    the spikes are the cpu backend's."""
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, security=True,
                      dashboard_address=":0") as cluster, Client(cluster) as c:
        assert cluster.scheduler_address.startswith("tls://")
        with brainsim.Simulation(region_net(), backend="dask", client=c, workers=2, seed=SEED,
                                 n_partitions=4, record={"V_m": VM_IDS}) as sim:
            ds = sim.run(T_MS)
            assert sim.engine.stats["link_security"] == "tls+hmac"
    assert_same(ds, reference)


def test_plain_cluster_links_are_hmac_only(cl):
    with brainsim.Simulation(region_net(), backend="dask", client=cl, workers=2, seed=SEED,
                             n_partitions=4) as sim:
        sim.run(5.0)
        assert sim.engine.stats["link_security"] == "hmac"


@pytest.mark.parametrize("kwargs, message", [
    ({"window": 0}, r"window \(steps per exchange, or None\) must be an integer >= 1, got 0"),
    ({"window": True}, r"window .* must be an integer >= 1, got True"),
    ({"window": "5"}, r"window .* must be an integer >= 1, got '5'"),
    ({"window": 5.0}, r"window .* must be an integer >= 1, got 5.0"),
    ({"max_recoveries": -1}, r"max_recoveries must be an integer >= 0, got -1"),
    ({"max_recoveries": False}, r"max_recoveries must be an integer >= 0, got False"),
    ({"max_recoveries": "3"}, r"max_recoveries must be an integer >= 0, got '3'"),
    ({"checkpoint_ms": True}, r"checkpoint_ms must be a finite number > 0 ms, got True"),
])
def test_bad_options_refused_before_the_cluster(kwargs, message):
    """The engine's options are checked before it looks for a cluster
    (no client is given here)."""
    from brainsim.backends.dask import _check_options
    args = {"window": None, "checkpoint_ms": 1000.0, "max_recoveries": 3, **kwargs}
    with pytest.raises(ParameterError, match=message):
        _check_options(**args)
    with pytest.raises(ParameterError, match=message):
        brainsim.Simulation(region_net(), backend="dask", **kwargs)


def test_assign_partitions_contiguous_and_balanced():
    assert assign_partitions([1, 1, 1, 1], 2) == [(0, 2), (2, 4)]
    assert assign_partitions([5, 1, 1, 1, 1, 1], 2) == [(0, 1), (1, 6)]
    assert assign_partitions([1, 1, 1], 3) == [(0, 1), (1, 2), (2, 3)]


def test_slurm_job_script():
    pytest.importorskip("dask_jobqueue")
    path = pathlib.Path(__file__).parents[1] / "examples" / "slurm_cluster.py"
    spec = importlib.util.spec_from_file_location("slurm_cluster", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cluster = mod.make_cluster(cores=8, memory="32GiB", walltime="01:30:00", queue="normal",
                               account="brain", scheduler_options={"dashboard_address": ":0"})
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p normal", "#SBATCH -A brain", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --mem=32G", "#SBATCH -t 01:30:00", "export NUMBA_NUM_THREADS=8"):
        assert line in script
    assert "distributed.cli.dask_worker" in script and "--nthreads 8" in script
    assert "--nanny" in script  # killed workers come back; the run resumes


def test_cli_scheduler_option(client, tmp_path):
    from brainsim import cli
    if "--scheduler" not in cli.build_parser()._subparsers._group_actions[0].choices[
            "simulate"].format_help():
        pytest.skip("brainsim simulate --scheduler is not wired yet")
    path = tmp_path / "net.zarr"
    region_net().build(2).save(path)
    out = tmp_path / "out.zarr"
    addr = client.scheduler_info()["address"]
    assert cli.main(["simulate", str(path), "--t-ms", "60", "--out", str(out),
                     "--scheduler", addr, "--no-progress"]) == 0
    ds = brainsim.open_results(out)
    assert ds.attrs["backend"] == "dask"
    ref = brainsim.Simulation(brainsim.load_network(path), seed=1).run(60.0)
    assert ref.sizes["spike"] > 50
    np.testing.assert_array_equal(ds.spike_neuron.values, ref.spike_neuron.values)
    assert cli.main(["simulate", str(path), "--t-ms", "20", "--out", str(tmp_path / "x.zarr"),
                     "--scheduler", "tcp://127.0.0.1:1", "--scheduler-timeout", "1"]) == 2


def test_a_diverging_membrane_on_a_worker_is_reported_not_retried(cl):
    """Issue 19: a blow-up on a worker raises the same DivergenceError as on
    cpu (naming the population), not a lost worker."""
    from test_reliability import _runaway
    sim = _runaway("dask", client=cl, workers=2, n_partitions=2)
    try:
        with pytest.raises(brainsim.errors.DivergenceError, match="'runaway'"):
            sim.run(200.0)
    finally:
        sim.close()


def test_damaged_or_forged_checkpoints_are_named_and_an_earlier_one_offered(cl, reference,
                                                                          tmp_path):
    """Issue 19: resume trusted a checkpoint's lengths (a forged one made the
    store unreadable), silently dropped forged history ids, and reported a
    corrupt checkpoint as a lost worker three times over."""
    import json
    import shutil
    from brainsim.errors import CheckpointError
    from brainsim.integrity import checksum
    clean = tmp_path / "clean.zarr"
    with brainsim.Simulation(region_net(), backend="dask", client=cl, seed=SEED, n_partitions=4,
                             record={"V_m": VM_IDS}, store=str(clean),
                             checkpoint_ms=20.0) as sim:
        sim.run(60.0)
    ck = zarr.open_group(str(clean / "checkpoints"), mode="r").attrs["complete"]
    last = ck[-1]
    assert len(ck) >= 2

    def damaged(name, edit):
        path = tmp_path / f"{name}.zarr"
        shutil.copytree(clean, path)
        edit(path / "checkpoints" / str(last))
        return str(path)

    def forge_lengths(folder):
        meta = json.loads((folder / "zarr.json").read_text())
        meta["attributes"]["lengths"]["spike_step"] = 10 ** 9
        (folder / "zarr.json").write_text(json.dumps(meta))

    def forge_history(folder):
        arr = zarr.open_array(str(folder / "p1" / "hist_gid"), mode="r+")
        ids = arr[:]
        assert ids.size, "the checkpoint holds recent spikes"
        ids[0] = 2_000_000_000
        arr[:] = ids
        arr.attrs["crc32"] = checksum(ids)

    def delete_state_chunk(folder):
        os.remove(folder / "p2" / "X" / "c" / "0" / "0")

    with pytest.raises(CheckpointError, match=r"results length of 'spike_step' must be an integer in \[0, \d+\], "
                                              r"got 1000000000"):
        brainsim.Simulation.resume(damaged("lengths", forge_lengths), client=cl)
    for name, edit, match in (("history", forge_history, "spike history holds ids outside"),
                              ("state", delete_state_chunk, "'X' does not match the checksum")):
        path = damaged(name, edit)
        with brainsim.Simulation.resume(path, client=cl) as sim:
            with pytest.raises(CheckpointError, match=match) as err:
                sim.run(10.0)
        assert f"Earlier complete checkpoints (steps): {ck[:-1]}" in str(err.value)
        assert sim.stats.get("recoveries", 0) == 0
    with brainsim.Simulation.resume(path, client=cl, checkpoint=ck[-2]) as sim:
        sim.run(T_MS - ck[-2] * 0.1)
    assert_same(brainsim.open_results(path).load(), reference)
