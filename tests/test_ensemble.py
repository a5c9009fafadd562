"""Ensembles as one network: members side by side, no synapse between them,
member 0 reproducing the base network exactly."""
import numpy as np
import pytest

import brainsim
from brainsim.ensemble import member_ids, member_name, replicate


def base_network():
    net = brainsim.Network(dt=0.1, seed=3)
    net.add_population("E", 80, params={"I_e": 300.0}, region="A")
    net.add_population("I", 20, kind="I", region="A")
    net.add_population("E2", 50, params={"I_e": 300.0}, region="B")
    net.connect(["E", "E2"], ["E", "I", "E2"], rule="fixed_indegree", indegree=10, weight=30.0,
                delay={"distribution": "normal", "mean": 1.5, "sd": 0.5})
    net.connect("I", ["E", "I", "E2"], rule="fixed_indegree", indegree=5, weight=-120.0)
    net.add_poisson(["E", "I", "E2"], rate=8.0, weight=40.0, indegree=100)
    net.add_ou("E2", mean=20.0, sigma=30.0, tau=5.0)
    net.set_property("E", "V_m", np.linspace(-70.0, -55.0, 80))
    return net.build(2)


def test_structure():
    base = base_network()
    ens = replicate(base, 3)
    n = base.n_neurons
    assert ens.n_neurons == 3 * n and ens.n_synapses == 3 * base.n_synapses
    assert len(ens.partitions) == 3 * len(base.partitions)
    assert ens.regions == [member_name(k, r) for k in range(3) for r in ("A", "B")]
    src = np.concatenate([np.repeat(p.sources, np.diff(p.indptr)) for p in ens.partitions])
    tgt = ens.synapses["targets"]
    assert np.all(src // n == tgt // n)  # no synapse crosses members
    for k in range(3):
        ids = member_ids(ens, k)
        np.testing.assert_array_equal(np.bincount(tgt[tgt // n == k] - k * n, minlength=n),
                                      np.bincount(base.synapses["targets"], minlength=n))
        np.testing.assert_array_equal(ens.neuron_param("V_m")[ids], base.neuron_param("V_m"))


def test_member_zero_reproduces_the_base_network():
    base = base_network()
    ref = brainsim.Simulation(base, seed=5).run(300.0, progress=False)
    ens = replicate(base_network(), 2)
    ds = brainsim.Simulation(ens, seed=5).run(300.0, progress=False)
    n = base.n_neurons
    zero = ds.spike_neuron.values < n
    assert ref.sizes["spike"] > 20
    np.testing.assert_array_equal(ds.spike_neuron.values[zero], ref.spike_neuron.values)
    np.testing.assert_array_equal(ds.spike_time.values[zero], ref.spike_time.values)
    # member 1 has its own noise: different spikes, similar rate
    one = ds.spike_neuron.values[~zero] - n
    assert not np.array_equal(one[:50], ref.spike_neuron.values[:50])
    assert abs(one.size - zero.sum()) < 0.3 * zero.sum()


def test_members_take_their_own_parameters():
    ens = replicate(base_network(), 2)
    ens.set_property({"region": member_name(1, "A")}, "I_e", multiplier=1.5)
    i_e = ens.neuron_param("I_e")
    e1 = ens.population(member_name(1, "E"))
    e0 = ens.population(member_name(0, "E"))
    assert np.all(i_e[e1.start:e1.stop] == 450.0) and np.all(i_e[e0.start:e0.stop] == 300.0)


@pytest.mark.parametrize("bad", [0, -1, 1.5, 2.0, True, np.bool_(True), "2", None])
def test_bad_member_count(bad):
    with pytest.raises(brainsim.ParameterError, match="n_members must be an integer >= 1"):
        replicate(base_network(), bad)


def test_member_ids_errors():
    ens = replicate(base_network(), 2)
    for k in (2, -1, True, "1", 1.0):
        with pytest.raises(brainsim.ParameterError,
                           match=r"member k must be an integer in \[0, 1\], got " + repr(k)):
            member_ids(ens, k)
    with pytest.raises(brainsim.ParameterError, match="made by brainsim.ensemble.replicate"):
        member_ids(base_network(), 0)
