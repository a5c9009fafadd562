"""The synapse table: 6 bytes per synapse, delays as segments, local targets."""
import numpy as np
import pytest
import zarr

import brainsim
from brainsim.synapses import SynapseTable, local_dtype


def encoded(n_a, n_b, seed=2):
    """A -> B all_to_all whose weight encodes (source, target) and whose delay
    is 1 + (source + target) % 9 steps: every synapse can be checked alone."""
    net = brainsim.Network(dt=0.1, seed=seed)
    net.add_population("A", n_a, params={"I_e": 600.0})  # spikes every few ms
    net.add_population("B", n_b, params={"tau_m": 5.0})
    tgt, src = np.divmod(np.arange(n_a * n_b), n_a)  # all_to_all order
    net.connect("A", "B", rule="all_to_all", weight=src + 10.0 * tgt,
                delay=0.1 * (1 + (src + tgt) % 9))
    return net


def check_encoding(net, n_a):
    syn = net.synapses
    for k, p in enumerate(net.partitions):
        src = np.repeat(p.sources, np.diff(p.indptr))
        tgt, w, d = syn.targets_of(k), syn.weights_of(k), syn.delays_of(k)
        assert tgt.dtype == np.int32 and d.dtype == np.uint16
        np.testing.assert_array_equal(w, src + 10.0 * (tgt - n_a))
        np.testing.assert_array_equal(d, 1 + (src + tgt - n_a) % 9)
        assert np.all((tgt >= p.lo) & (tgt < p.hi))
    whole = dict(syn.items())
    np.testing.assert_array_equal(
        whole["targets"], np.concatenate([syn.targets_of(k) for k in range(len(net.partitions))]))
    np.testing.assert_array_equal(
        whole["delays"], np.concatenate([syn.delays_of(k) for k in range(len(net.partitions))]))


@pytest.mark.parametrize("n_parts", [1, 3])
def test_targets_and_delays_expand_exactly(n_parts):
    net = encoded(40, 300).build(n_parts)
    assert net.synapses.local.dtype == np.uint16
    check_encoding(net, 40)
    # each (row, partition) holds 9 delays at most: 9 segments, not one delay per synapse
    rows = sum(p.sources.size for p in net.partitions)
    assert rows < net.synapses.n_segments <= 9 * rows


def test_six_bytes_per_synapse_plus_segments():
    """Per synapse only a 2-byte local target and a 4-byte weight are held;
    delays and rows cost per segment and per row."""
    net = brainsim.Network(dt=0.1, seed=1)
    net.add_population("E", 2000)
    net.connect("E", "E", rule="fixed_indegree", indegree=1000,
                delay={"distribution": "normal", "mean": 1.5, "sd": 0.3})
    net.build(2)
    syn = net.synapses
    assert syn.local.itemsize + syn.weights.itemsize == 6
    assert not any(a.size == net.n_synapses for a in (syn.seg_start, syn.seg_delay))
    segs = syn.seg_start.nbytes + syn.seg_delay.nbytes + sum(r.nbytes for r in syn.seg_rows)
    rows = sum(p.sources.nbytes + p.indptr.nbytes for p in net.partitions)
    assert net.bytes_per_synapse() == pytest.approx(6 + (segs + rows) / net.n_synapses)
    # ~500 synapses per row and partition in ~12 delay segments: 6.2 bytes
    assert net.bytes_per_synapse() < 6.3


def test_wide_partitions_use_int32_and_simulate_identically():
    """A partition of more than 65,536 neurons stores int32 local targets; the
    spikes are the same as with uint16 partitions (2 partitions)."""
    assert local_dtype([(0, 65536)]) == np.uint16
    assert local_dtype([(0, 65537)]) == np.int32
    out = {}
    for n_parts in (1, 2):
        net = encoded(4, 66000).build(n_parts)
        want = np.int32 if n_parts == 1 else np.uint16
        assert net.synapses.local.dtype == want
        if n_parts == 1:
            check_encoding(net, 4)
        ds = brainsim.Simulation(net, seed=3, record={"V_m": [5, 30000, 65999]}).run(20.0)
        out[n_parts] = ds
    # A spikes; B neurons with large encoded weights fire, the first ones only move
    assert np.count_nonzero(out[1].spike_neuron.values >= 4) > 60000
    assert np.ptp(out[1].V_m.values[:, 0]) > 1e-3
    np.testing.assert_array_equal(out[1].spike_neuron.values, out[2].spike_neuron.values)
    np.testing.assert_array_equal(out[1].spike_time.values, out[2].spike_time.values)
    np.testing.assert_array_equal(out[1].V_m.values, out[2].V_m.values)


def test_int32_targets_on_disk_load_the_same(tmp_path):
    """Stores written with int32 local targets (streamed generation, earlier
    versions) load into the same table."""
    net = encoded(30, 200).build(2)
    path = tmp_path / "net.zarr"
    net.save(path)
    root = zarr.open_group(path, mode="r+")  # as an earlier version wrote it: no checksums
    del root.attrs["checksums"]
    for k in range(2):
        arr = zarr.open_array(path / "partitions" / str(k) / "targets", mode="r")
        assert arr.dtype == np.uint16
        t = arr[:].astype(np.int32)
        zarr.create_array(path / "partitions" / str(k), name="targets", data=t, overwrite=True)
    back = brainsim.load_network(path)
    assert back.synapses.local.dtype == np.uint16
    for key in ("targets", "weights", "delays"):
        np.testing.assert_array_equal(back.synapses[key], net.synapses[key], strict=True)
    arr = zarr.open_array(path / "partitions" / "1" / "targets", mode="r")
    zarr.create_array(path / "partitions" / "1", name="targets", data=arr[:].astype(float),
                      overwrite=True)
    with pytest.raises(brainsim.StoreError, match="targets"):
        brainsim.load_network(path)


def test_table_rejects_inconsistent_parts():
    net = encoded(5, 20).build(2)
    syn, parts = net.synapses, net.partitions
    d = syn["delays"]
    with pytest.raises(ValueError, match="uint16"):
        SynapseTable(parts, syn.local.astype(np.int32), syn.weights, d)
    with pytest.raises(ValueError, match="one length"):
        SynapseTable(parts, syn.local, syn.weights[1:], d)
    with pytest.raises(ValueError, match="tile"):
        SynapseTable(parts[::-1], syn.local, syn.weights, d)
    with pytest.raises(KeyError, match="sources"):
        syn["sources"]
    with pytest.raises(TypeError, match="SynapseTable"):
        net.synapses = {"targets": syn["targets"]}


@pytest.mark.parametrize("n_parts", [1, 3])
def test_one_pass_and_three_pass_csr_sort_agree(monkeypatch, n_parts):
    """The one-pass counting sort on (partition, source, delay) and the
    three-pass fallback for large key spaces give the same synapse order."""
    from brainsim.kernels import csr

    def build():
        net = brainsim.Network(dt=0.1, seed=5)
        for r in range(3):
            net.add_population(f"E{r}", 50, region=f"R{r}")
        net.connect(list(net.populations), list(net.populations), rule="fixed_indegree",
                    indegree=30, weight={"distribution": "normal", "mean": 1.0, "sd": 0.5},
                    delay={"distribution": "normal", "mean": 1.0, "sd": 0.5})
        return net.build(n_parts)

    one = build()
    monkeypatch.setattr(csr, "HIST_BUDGET", 0)
    three = build()
    for a, b in zip(one.partitions, three.partitions):
        np.testing.assert_array_equal(a.sources, b.sources)
        np.testing.assert_array_equal(a.indptr, b.indptr)
    for key in ("targets", "weights", "delays"):
        np.testing.assert_array_equal(one.synapses[key], three.synapses[key], strict=True)
    # every row sorted by delay
    d = one.synapses["delays"]
    for p in one.partitions:
        for r in range(p.sources.size):
            seg = d[p.offset + p.indptr[r]:p.offset + p.indptr[r + 1]]
            assert np.all(np.diff(seg.astype(int)) >= 0)
