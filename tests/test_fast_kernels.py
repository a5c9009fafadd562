"""The split, vectorisable chunk loops of the CPU engine (``fast`` of
``brainsim.kernels.loops.model_loops``) against its per-neuron reference loop
(``reference``, also the CUDA engine's):
identical spikes and bit-identical state for both models, both state dtypes and every
input combination, including chunks that must fall back to the reference loop."""
import numpy as np
import pytest

import brainsim
from brainsim.generation import microcircuit


def _net(seed=3):
    """Every chunk kind: Poisson excitatory and inhibitory, with and without OU, no
    input, per-neuron parameters (fast loop gathering each neuron's row; lif_dtb
    with per-neuron g_AMPA and OU too), a population where only some neurons
    get Poisson input (fallback), a large mean (> 12 events per step: PTRS, fallback)
    and lif_dtb with OU; chunks of 2048 make the big populations span several."""
    net = brainsim.Network(dt=0.1, seed=seed)
    net.add_population("Epe", 2500, params={"I_e": 200.0})
    net.add_population("Ipi", 600, kind="I", params={"I_e": 420.0})
    net.add_population("Eou", 300, params={"I_e": 100.0})
    net.add_population("Edc", 200, params={"I_e": 390.0})
    net.add_population("Evar", 300)
    net.add_population("Epart", 300, params={"I_e": 250.0})
    net.add_population("Ebig", 100, params={"I_e": -400.0})
    net.add_population("D", 400, model="lif_dtb", kind="E", params={"I_e": 200.0})
    g = np.random.default_rng(0)
    net.set_property("Evar", "I_e", value=g.uniform(300.0, 450.0, 300))
    net.set_property("D", "g_AMPA", multiplier=g.uniform(0.5, 1.5, 400))
    names = list(net.populations)
    net.connect([n for n in names if n != "Ipi" and n != "D"], names[:-1], rule="fixed_indegree",
                indegree=20, weight={"distribution": "normal", "mean": 40.0, "sd": 10.0},
                delay={"distribution": "normal", "mean": 1.5, "sd": 0.5})
    net.connect("Ipi", names[:-1], rule="fixed_indegree", indegree=20, weight=-120.0, delay=0.8)
    net.connect("Epe", "D", rule="fixed_indegree", indegree=20, weight=0.3, delay=1.0)
    net.add_poisson(["Epe", "Eou"], rate=8.0, indegree=300, weight=60.0, delay=1.5)
    net.add_poisson("Ipi", rate=5.0, indegree=200, weight=-30.0, delay=0.5)
    net.add_poisson(net.select("Epart")[::2], rate=8.0, indegree=400, weight=50.0, delay=1.5)
    net.add_poisson("Ebig", rate=8.0, indegree=20000, weight=3.0, delay=0.1)
    net.add_ou(["Eou", "D"], mean=150.0, sigma=60.0, tau=5.0)
    return net


def _run(net, fast, dtype, parts):
    sim = brainsim.Simulation(net, seed=7, dtype=dtype, n_partitions=parts,
                              record={"spikes": True, "rates": True})
    sim.engine.fast = fast
    ds = [sim.run(60.0), sim.run(40.0)]  # state carries over between calls
    return sim, ds


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fast_chunks_equal_reference(dtype):
    net = _net()
    sim_f, ds_f = _run(net, True, dtype, 2)
    sim_r, ds_r = _run(net, False, dtype, 2)
    plan, _ = sim_f.engine.plan()
    # the test covers fast chunks of each kind (Poisson x OU), fast chunks with
    # per-neuron parameter rows (plan[:, 0] == -1) and reference chunks
    fast = plan[:, 1] >= 0
    assert (~fast).sum() >= 2 and fast.sum() >= 5
    assert ((plan[:, 0] == -1) & fast).sum() >= 2
    # variants (loops.FAST_VARIANTS): no Poisson / excitatory / inhibitory x no OU / OU
    assert set(plan[fast][:, 1]) == {0, 1, 2, 3, 4}
    for a, b in zip(ds_f, ds_r):
        assert a.spike_neuron.size > 1000
        np.testing.assert_array_equal(a.spike_neuron.values, b.spike_neuron.values)
        np.testing.assert_array_equal(a.spike_time.values, b.spike_time.values)
        np.testing.assert_array_equal(a.rate.values, b.rate.values)
    for name in ("X", "I_ou", "inp"):  # the whole state, bit for bit
        np.testing.assert_array_equal(getattr(sim_f.engine, name), getattr(sim_r.engine, name),
                                      err_msg=name)
    # every population spiked: each kind of chunk was exercised
    pops = net.pop_index()[ds_f[1].spike_neuron.values]
    assert set(np.unique(pops)) == set(range(len(net.populations)))


def test_fast_microcircuit_equals_reference_and_partitions():
    net = microcircuit(scale=0.03, input="poisson", seed=2)
    got = {}
    for fast, parts in ((True, 1), (True, 3), (False, 2)):
        sim = brainsim.Simulation(net, seed=5, dtype="float32", n_partitions=parts)
        sim.engine.fast = fast
        got[fast, parts] = sim.run(80.0).spike_neuron.values
    assert got[True, 1].size > 100
    np.testing.assert_array_equal(got[True, 1], got[False, 2])
    np.testing.assert_array_equal(got[True, 3], got[False, 2])
