"""Connection rules, value draws, partitioning and the CSR layout."""
import re

import numpy as np
import pytest
from scipy import stats

import brainsim


def pairs(net):
    """(src, tgt, w, d) of every synapse, read back from the partitions' CSR."""
    src, tgt, w, d = [], [], [], []
    syn = net.synapses
    for p in net.partitions:
        counts = np.diff(p.indptr)
        sl = slice(p.offset, p.offset + p.n_synapses)
        src.append(np.repeat(p.sources, counts))
        tgt.append(syn["targets"][sl])
        w.append(syn["weights"][sl])
        d.append(syn["delays"][sl])
    return tuple(np.concatenate(x) for x in (src, tgt, w, d))


def two_pops(n_a=60, n_b=40, seed=3, kind_a="E"):
    net = brainsim.Network(dt=0.1, seed=seed)
    net.add_population("A", n_a, kind=kind_a)
    net.add_population("B", n_b)
    return net


def test_fixed_indegree_exact_counts_no_autapses_no_multapses():
    net = two_pops()
    net.connect("A", "A", rule="fixed_indegree", indegree=25, allow_autapses=False,
                allow_multapses=False)
    net.build(1)
    src, tgt, _, _ = pairs(net)
    assert np.all(np.bincount(tgt, minlength=60) == 25)
    assert not np.any(src == tgt)
    assert np.unique(tgt * 1000 + src).size == src.size
    # sources uniform over the other neurons: chi-square on source counts
    counts = np.bincount(src, minlength=60)
    assert stats.chisquare(counts).pvalue > 1e-4


def test_fixed_indegree_with_multapses_has_repeats_and_right_mean():
    net = two_pops(n_a=10)
    net.connect("A", "B", rule="fixed_indegree", indegree=8)
    net.build(1)
    src, tgt, _, _ = pairs(net)
    assert np.all(np.bincount(tgt - 10, minlength=40) == 8)
    assert np.all((src >= 0) & (src < 10))
    # 8 draws from 10 with replacement almost surely repeat somewhere over 40 targets
    assert np.unique((tgt - 10) * 100 + src).size < src.size


def test_fixed_total_number_count_and_range():
    net = two_pops()
    net.connect("A", "B", rule="fixed_total_number", n=1234)
    net.build(2)
    src, tgt, _, _ = pairs(net)
    assert src.size == 1234
    assert src.min() >= 0 and src.max() < 60 and tgt.min() >= 60 and tgt.max() < 100


def test_fixed_total_number_without_multapses_is_unique():
    net = two_pops(n_a=10, n_b=10)
    net.connect("A", "B", rule="fixed_total_number", n=90, allow_multapses=False)
    net.build(1)
    src, tgt, _, _ = pairs(net)
    assert src.size == 90 and np.unique(tgt * 100 + src).size == 90


def test_pairwise_bernoulli_count_matches_binomial():
    net = two_pops(n_a=200, n_b=150)
    p = 0.1
    net.connect("A", "A", rule="pairwise_bernoulli", p=p, allow_autapses=False)
    net.build(1)
    src, tgt, _, _ = pairs(net)
    n_pairs = 200 * 199
    sd = np.sqrt(n_pairs * p * (1 - p))
    assert abs(src.size - n_pairs * p) < 5 * sd
    assert not np.any(src == tgt)


def test_one_to_one_and_all_to_all():
    net = two_pops(n_a=7, n_b=7)
    net.connect("A", "B", rule="one_to_one")
    net.connect("B", "B", rule="all_to_all", allow_autapses=False)
    net.build(1)
    src, tgt, _, _ = pairs(net)
    o2o = src < 7
    assert np.array_equal(np.sort(tgt[o2o] - 7), np.arange(7))
    assert np.all(tgt[o2o] - 7 == src[o2o])
    assert (~o2o).sum() == 7 * 6


def test_normal_weights_keep_sign_and_delays_round_to_steps():
    net = two_pops(kind_a="I")
    net.connect("A", "B", rule="fixed_indegree", indegree=30,
                weight={"distribution": "normal", "mean": -10.0, "sd": 8.0},
                delay={"distribution": "normal", "mean": 0.3, "sd": 0.3})
    net.build(1)
    _, _, w, d = pairs(net)
    assert w.max() <= 0.0
    # redrawing is sampling the normal truncated at 0: compare with its closed-form mean
    expected = stats.truncnorm.mean(-np.inf, (0.0 + 10.0) / 8.0, loc=-10.0, scale=8.0)
    sem = stats.truncnorm.std(-np.inf, 1.25, loc=-10.0, scale=8.0) / np.sqrt(w.size)
    assert abs(w.mean() - expected) < 4 * sem
    assert d.min() >= 1  # delay >= dt = 1 step
    assert d.dtype == np.uint16
    # rounding: 0.3 ms -> 3 steps is the most frequent value
    assert np.bincount(d).argmax() == 3


def test_constant_delay_rounds_to_nearest_step():
    net = two_pops()
    net.connect("A", "B", rule="all_to_all", delay=1.26)
    net.build(1)
    assert np.all(net.synapses["delays"] == 13)


def test_partitions_cover_neurons_and_split_synapses():
    net = brainsim.Network(dt=0.1, seed=1)
    for r in range(4):
        net.add_population(f"E{r}", 30, region=f"R{r}")
        net.add_population(f"I{r}", 10, region=f"R{r}", kind="I")
    names = list(net.populations)
    net.connect([n for n in names if n[0] == "E"], names, rule="fixed_indegree", indegree=5)
    net.connect([n for n in names if n[0] == "I"], names, rule="fixed_indegree", indegree=3,
                weight=-2.0)
    net.build(3)
    parts = net.partitions
    assert parts[0].lo == 0 and parts[-1].hi == net.n_neurons
    assert all(a.hi == b.lo for a, b in zip(parts, parts[1:]))
    region_starts = {q.start for q in net.populations.values() if q.name[0] == "E"}
    assert all(p.lo in region_starts for p in parts)  # partitions follow regions
    syn = net.synapses
    for p in parts:
        sl = slice(p.offset, p.offset + p.n_synapses)
        assert np.all((syn["targets"][sl] >= p.lo) & (syn["targets"][sl] < p.hi))
        assert np.all(np.diff(p.sources) > 0)
    assert sum(p.n_synapses for p in parts) == net.n_synapses == 160 * (4 * 5 + 4 * 3)
    assert 8 < net.bytes_per_synapse() < 40


@pytest.mark.parametrize("sizes", [(200, 3, 3, 3, 3), (3, 3, 3, 3, 200), (5, 300, 5, 5, 300)])
def test_one_partition_per_region_even_when_regions_are_unequal(sizes):
    """As many partitions as regions: one region each, however unequal their
    sizes (the greedy cut search once ran out of cuts: the human multi-area
    model's 34 areas in 34 partitions raised)."""
    net = brainsim.Network(dt=0.1, seed=1)
    for r, n in enumerate(sizes):
        net.add_population(f"P{r}", n, region=f"R{r}")
    net.connect(list(net.populations), list(net.populations), rule="fixed_indegree",
                indegree=2)
    net.build(len(sizes))
    starts = [q.start for q in net.populations.values()]
    assert [p.lo for p in net.partitions] == starts


@pytest.mark.parametrize("bounds", [[0, 50], [0, 60, 40, 100], [1, 100], [0, 100.0], [[0, 100]],
                                    [0, 50, 50, 100]])
def test_explicit_bounds_are_checked(bounds):
    net = two_pops()
    with pytest.raises(brainsim.ParameterError, match="bounds must be increasing integers"):
        net.build(bounds=np.array(bounds))


def test_set_property_value_multiplier_and_columns():
    net = two_pops()
    net.set_property("A", "I_e", 5.0)
    assert net.populations["A"].params["I_e"] == 5.0 and "I_e" not in net.columns
    net.set_property(np.arange(10), "I_e", multiplier=3.0)
    col = net.neuron_param("I_e")
    assert np.all(col[:10] == 15.0) and np.all(col[10:60] == 5.0) and np.all(col[60:] == 0.0)
    net.set_property("B", "tau_m", np.linspace(5, 15, 40))
    assert np.allclose(net.neuron_param("tau_m")[60:], np.linspace(5, 15, 40))


def test_dtb_aliases_and_defaults():
    net = brainsim.Network(dt=1.0)
    pop = net.add_population("X", 5, model="lif_dtb", params={"I_ext": 20.0, "C": 500.0})
    assert pop.params["I_e"] == 20.0 and pop.params["C_m"] == 500.0
    assert pop.params["V_m"] == 0.5 * (pop.params["V_th"] + pop.params["V_reset"])


def test_structure_fixed_after_build():
    net = two_pops()
    net.build(1)
    with pytest.raises(brainsim.BuildError, match="built"):
        net.add_population("C", 3)
    with pytest.raises(brainsim.BuildError, match="built"):
        net.connect("A", "B")


def test_set_property_between_runs_applies_from_next_step():
    from brainsim.kernels.neurons.iaf_psc_exp import first_spike_time_dc
    net = brainsim.Network(dt=0.1, seed=1)
    net.add_population("A", 3, params={"E_L": -70.0, "V_m": -70.0})
    sim = brainsim.Simulation(net, seed=1, n_partitions=1)
    assert sim.run(10.0).spike_time.size == 0
    sim.set_property(np.array([1]), "I_e", value=600.0)  # pA, only neuron 1
    ds = sim.run(40.0)
    assert set(ds.spike_neuron.values) == {1}
    p = dict(net.populations["A"].params, I_e=0.0)
    t_first = 10.0 + first_spike_time_dc(p, 600.0)
    first = ds.spike_time.values[0]
    assert t_first <= first < t_first + net.dt  # first step whose end reaches the crossing
    sim.set_property("A", "I_e", multiplier=0.0)
    assert sim.run(20.0).spike_time.size == 0  # no current: V only decays from below V_th


def test_record_selectors():
    net = brainsim.Network(dt=0.1, seed=1)
    net.add_population("A", 6, params={"I_e": 1000.0})
    net.add_population("B", 4, params={"I_e": 1000.0})
    ds = brainsim.Simulation(net, record={"spikes": np.array([1, 2]), "V_m": "B"}).run(20.0)
    assert set(ds.spike_neuron.values) == {1, 2}
    assert ds.V_m.shape == (200, 4) and list(ds.neuron.values) == [6, 7, 8, 9]
    ds = brainsim.Simulation(net, record={"spikes": "B", "rates": False}).run(20.3)
    assert set(ds.spike_neuron.values) == {6, 7, 8, 9} and ds.rate.shape[0] == 0
    ds = brainsim.Simulation(net, record={"spikes": "all"}).run(20.0)
    assert set(ds.spike_neuron.values) == set(range(10))
    assert brainsim.Simulation(net, record={"spikes": False}).run(20.0).spike_time.size == 0


@pytest.mark.parametrize("bad", [0, 11, True, "2", 2.0, np.bool_(True)])
def test_build_refuses_bad_partition_counts(bad):
    net = brainsim.Network(dt=0.1, seed=1)
    net.add_population("A", 10)
    with pytest.raises(brainsim.ParameterError,
                       match=r"n_partitions must be an integer in \[1, 10\], got " + repr(bad)):
        net.build(bad)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_distinct_rows_groups_exactly_like_np_unique(dtype):
    """The hashed deduplication of the kernels' parameter table: the same
    groups as np.unique over the rows' bytes (row order aside), NaN,
    infinities and per-neuron columns included (np.unique(axis=0) would keep
    every NaN row apart)."""
    from brainsim.backends.flatten import distinct_rows
    rng = np.random.default_rng(2)
    base = rng.normal(size=(4, 6))
    base[1, 2], base[2, 4] = np.nan, -np.inf
    a = np.repeat(base, 50, axis=0).astype(dtype)
    a[100:150, 0] *= rng.gamma(5, 0.2, 50).astype(dtype)  # one population heterogeneous
    rows, inverse = distinct_rows(a)
    as_bytes = np.ascontiguousarray(a).view(np.dtype((np.void, a.itemsize * 6))).ravel()
    ref_rows, ref_inverse = np.unique(as_bytes, return_inverse=True)
    assert rows.dtype == a.dtype and rows.shape == (ref_rows.size, 6) == (3 + 50, 6)
    np.testing.assert_array_equal(rows[inverse], a)  # NaN compared as equal by position
    firsts = np.unique(inverse, return_index=True)[1]
    assert np.all(np.diff(firsts) > 0)  # rows in order of first use: read front to back
    same = inverse[:, None] == inverse[None, :]
    np.testing.assert_array_equal(same, ref_inverse.ravel()[:, None] == ref_inverse.ravel())


def test_per_neuron_parameter_tables_skip_deduplication_and_keep_every_value():
    """After a rebuild finds mostly distinct rows (per-neuron heterogeneity),
    the next DENSE_REUSE rebuilds give every neuron its own row without
    hashing; each neuron's row stays bit for bit the one a fresh flattening
    gives, also when the parameters become shared again, and the next check
    deduplicates again."""
    from brainsim.backends.flatten import KernelNetwork
    net = brainsim.Network(dt=0.1, seed=1)
    net.add_population("A", 60)
    net.add_population("B", 40, kind="I")
    ids = np.arange(100)
    rng = np.random.default_rng(3)
    flat = KernelNetwork(net, np.float64)
    sizes = []
    for call in range(KernelNetwork.DENSE_REUSE + 3):
        if call < 3:
            net.set_property(ids, "tau_m", value=rng.uniform(5.0, 20.0, 100))
        else:
            net.set_property(ids, "tau_m", value=10.0 + call)  # shared again
        Q, qrow = flat.parameters()
        Q_ref, qrow_ref = KernelNetwork(net, np.float64).parameters()
        np.testing.assert_array_equal(Q[qrow], Q_ref[qrow_ref])
        sizes.append(Q.shape[0])
    assert sizes[:KernelNetwork.DENSE_REUSE + 1] == [100] * (KernelNetwork.DENSE_REUSE + 1)
    assert sizes[-1] == 1  # re-checked: one shared row


def test_populations_of_a_region_must_be_added_one_after_the_other():
    net = brainsim.Network(dt=0.1, seed=1)
    net.add_population("A_E", 5, region="A")
    net.add_population("A_I", 5, region="A", kind="I")
    net.add_population("B_E", 5, region="B")
    with pytest.raises(brainsim.ParameterError, match=re.escape(
            "populations of region 'A' must be added one after the other (last region "
            "added is 'B')")):
        net.add_population("A_X", 5, region="A")
    net.add_population("B_I", 5, region="B", kind="I")
    net.add_population("C_E", 5)  # the default region
    assert net.regions == ["A", "B", "default"]
    with pytest.raises(brainsim.ParameterError, match="region 'B'"):
        net.add_population("B_X", 5, region="B")
