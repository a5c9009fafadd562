"""Issue 19: bad input never reaches a kernel, stores do not lie, blow-ups
are reported. Each test names the failure it guards against."""
import itertools

import numpy as np
import pytest

import brainsim
from brainsim.errors import ParameterError
from brainsim.validation import boolean, integer, number

from test_network import pairs

RULE_ARGS = {"fixed_indegree": ("indegree", (0, 1, 2, 3)),
             "fixed_total_number": ("n", (0, 1, 2, 5)),
             "pairwise_bernoulli": ("p", (0.0, 0.5, 1.0)),
             "one_to_one": (None, (None,)),
             "all_to_all": (None, (None,))}


def _cases():
    for rule, (arg, values) in RULE_ARGS.items():
        for value, n_a, n_b, same, aut, mult in itertools.product(
                values, (1, 2, 3), (1, 2), (True, False), (True, False), (True, False)):
            if same and n_b != 1:
                continue  # 'same' uses A alone: one case per n_a is enough
            yield rule, arg, value, n_a, n_b, same, aut, mult


@pytest.mark.parametrize("rule", list(RULE_ARGS))
def test_every_rule_on_tiny_populations_wires_only_existing_neurons(rule):
    """connect(A, A, 'fixed_total_number', allow_autapses=False) on a
    one-neuron A drew source id 1: an out-of-bounds write in the CSR build,
    or, with a population after A, synapses silently taken from it. Every
    rule on populations of 1-3 neurons (onto itself or another, autapses and
    multapses on and off) either refuses clearly or wires exactly within
    the populations named, without autapses where excluded."""
    seen = {"refused": 0, "wired": 0}
    for _, arg, value, n_a, n_b, same, aut, mult in (c for c in _cases() if c[0] == rule):
        net = brainsim.Network(dt=0.1, seed=1)
        a = net.add_population("A", n_a)
        net.add_population("B", n_b)  # always present: a stray id would land here
        post = "A" if same else "B"
        kw = {} if arg is None else {arg: value}
        try:
            made = net.connect("A", post, rule, weight=1.0, allow_autapses=aut,
                               allow_multapses=mult, **kw)
        except ParameterError as err:
            assert arg is None or arg in str(err) or "rule" in str(err) or "one_to_one" in str(err)
            seen["refused"] += 1
            continue
        net.build(n_partitions=2 if net.n_neurons > 1 else 1)
        src, tgt, _, _ = pairs(net)
        assert src.size == made
        assert np.all((src >= a.start) & (src < a.stop)), (rule, kw, n_a, n_b, same, aut, mult)
        lo, hi = (a.start, a.stop) if same else (a.stop, net.n_neurons)
        assert np.all((tgt >= lo) & (tgt < hi))
        if same and not aut:
            assert not np.any(src == tgt)
        if not mult and src.size:
            assert np.unique(src.astype(np.int64) * net.n_neurons + tgt).size == src.size
        seen["wired"] += 1
    assert seen["wired"] > 0


def test_fixed_total_number_without_any_allowed_source_is_refused():
    net = brainsim.Network(dt=0.1, seed=1)
    net.add_population("A", 1)
    net.add_population("B", 5)
    with pytest.raises(ParameterError, match="n 3 needs sources"):
        net.connect("A", "A", "fixed_total_number", n=3, allow_autapses=False)


@pytest.mark.parametrize("bad", [True, "3", 2.5, float("nan"), float("inf"), -1, None, [3]])
def test_counts_refuse_bools_strings_fractions_and_non_finite(bad):
    net = brainsim.Network(dt=0.1, seed=1)
    net.add_population("A", 4)
    for rule, arg in (("fixed_indegree", "indegree"), ("fixed_total_number", "n")):
        with pytest.raises(ParameterError, match=arg):
            net.connect("A", "A", rule, **{arg: bad})


@pytest.mark.parametrize("bad", ["yes", 1, 0, None, "False"])
def test_autapse_switches_take_booleans_only(bad):
    """bool("False") is True: a string was silently read as a switch."""
    net = brainsim.Network(dt=0.1, seed=1)
    net.add_population("A", 4)
    with pytest.raises(ParameterError, match="allow_autapses must be True or False"):
        net.connect("A", "A", "all_to_all", allow_autapses=bad)
    with pytest.raises(ParameterError, match="allow_multapses must be True or False"):
        net.connect("A", "A", "all_to_all", allow_multapses=bad)


def test_validators_bounds_types_and_messages():
    assert number("x", np.float32(2.5), low=0) == 2.5
    assert number("x", np.array(3.0), high=3.0) == 3.0
    assert integer("k", 4.0, low=0) == 4 and isinstance(integer("k", np.int16(4)), int)
    assert boolean("s", np.bool_(True)) is True
    for bad in (True, "1", None, float("nan"), [1.0], np.array([1.0])):
        with pytest.raises(ParameterError, match=r"x must be a finite number in \[0, inf\] mV"):
            number("x", bad, low=0, unit="mV")
    with pytest.raises(ParameterError, match=r"in \(0, 1\]"):
        number("x", 0.0, low=0, low_open=True, high=1)
    with pytest.raises(ParameterError, match=r"k must be an integer in \[1, 3\], got 4"):
        integer("k", 4, low=1, high=3)
    with pytest.raises(ParameterError, match="got 2.5"):
        integer("k", 2.5)


def _runaway(backend="cpu", **kw):
    """One neuron that never reaches threshold, driven to I_e tau_m / C_m =
    4e10 mV (closed form), and a quiet population beside it."""
    net = brainsim.Network(dt=0.1, seed=1)
    net.add_population("quiet", 3)
    net.add_population("runaway", 2, params={"I_e": 1e12, "V_th": 1e300}, region="R2")
    return brainsim.Simulation(net, backend=backend, **kw)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_diverging_membrane_stops_the_run_naming_time_population_and_causes(dtype):
    """Thirteen divergent settings gave V_m of 1e298 mV or NaN with no
    error. V_m beyond 1e6 mV or not finite raises at the end of the chunk
    (100 ms) in which it happens."""
    sim = _runaway(dtype=dtype)
    with pytest.raises(brainsim.errors.DivergenceError) as err:
        sim.run(300.0)
    msg = str(err.value)
    assert "t = 100 ms" in msg and "'runaway'" in msg and "'R2'" in msg
    assert "neuron 3" in msg and "2 neurons" in msg and "weights" in msg
    # the state is kept for inspection: the closed-form value is reached
    assert sim.get_state("V_m", "runaway")[0] == pytest.approx(4e10 - 70.0, rel=1e-3)


def test_a_nan_membrane_is_reported_at_the_next_chunk():
    net = brainsim.Network(dt=0.1, seed=1)
    net.add_population("A", 4)
    sim = brainsim.Simulation(net)
    sim.run(10.0)
    with pytest.raises(ParameterError, match="V_m must be finite"):
        sim.set_state([2], "V_m", np.nan)  # the API refuses it ...
    sim.V[2] = np.nan  # ... so write the engine's state directly
    with pytest.raises(brainsim.errors.DivergenceError, match="neuron 2.* is nan mV"):
        sim.run(10.0)



# ------------------------------------------------------------ network stores
def _saved_network(path):
    net = brainsim.Network(dt=0.1, seed=2)
    net.add_population("E", 6, params={"I_e": 100.0})
    net.add_population("I", 3, kind="I")
    net.connect("E", ["E", "I"], "fixed_indegree", indegree=3, weight=20.0, delay=0.5)
    net.connect("I", "E", "all_to_all", weight=-40.0, delay=0.2)
    net.set_property("E", "tau_m", value=np.linspace(8.0, 12.0, 6))  # a per-neuron column
    net.add_poisson("E", rate=8.0, weight=30.0, indegree=10)
    net.add_ou("I", mean=50.0, sigma=5.0, tau=3.0)
    net.build(2)
    net.save(path)
    return net


def _array_dirs(path):
    """Every array folder of a Zarr v3 store (relative paths)."""
    import json
    import os
    out = []
    for root, _, files in os.walk(path):
        if "zarr.json" in files:
            with open(os.path.join(root, "zarr.json")) as fh:
                if json.load(fh)["node_type"] == "array":
                    out.append(os.path.relpath(root, path))
    return sorted(out)


_SAME_SIZE = {"float64": "int64", "int64": "float64", "float32": "int32", "int32": "float32",
              "uint16": "int16"}


def _corrupt(path, array, how):
    import json
    import os
    folder = os.path.join(path, array)
    meta_path = os.path.join(folder, "zarr.json")
    with open(meta_path) as fh:
        meta = json.load(fh)
    chunk = os.path.join(folder, "c", "0")
    if how == "deleted chunk":
        os.remove(chunk)
    elif how == "garbage chunk":
        size = os.path.getsize(chunk)
        with open(chunk, "wb") as fh:
            fh.write(np.random.default_rng(0).bytes(max(size, 16)))
    elif how == "edited dtype":
        meta["data_type"] = _SAME_SIZE[meta["data_type"]]
    elif how == "edited shape":
        meta["shape"] = [meta["shape"][0] + 1]
        meta["chunk_grid"]["configuration"]["chunk_shape"] = [meta["shape"][0]]
    with open(meta_path, "w") as fh:
        json.dump(meta, fh)


@pytest.mark.parametrize("how", ["deleted chunk", "garbage chunk", "edited dtype",
                                 "edited shape"])
def test_every_network_store_array_corrupted_any_way_is_a_clear_store_error(tmp_path, how):
    """A deleted chunk loaded as zeros (all weights 0, tau_m 0, Poisson input
    gone) and the simulation ran; an edited dtype was trusted. Now each of
    these, on every array of a network store, is a StoreError naming the
    array, from load_network and from the lazy load at the first run."""
    import shutil
    clean = tmp_path / "clean.zarr"
    _saved_network(clean)
    arrays = _array_dirs(clean)
    assert len(arrays) == 2 * 5 + 1 + 7  # partitions, tau_m, Poisson and OU inputs
    for array in arrays:
        path = tmp_path / f"{array.replace('/', '_')}.zarr"
        shutil.copytree(clean, path)
        _corrupt(path, array, how)
        name = array.rsplit("/", 1)[-1]
        with pytest.raises(brainsim.StoreError, match=f"'{name}'") as err:
            net = brainsim.load_network(path, lazy=True)
            net.synapses  # the partitions are read at their first use
        assert str(path) in str(err.value), (array, how, err.value)
    brainsim.load_network(clean)  # the untouched copy still loads


@pytest.mark.parametrize("column, value, expect", [
    ("neurons/tau_m", 0.0, "tau_m must be > 0"),
    ("neurons/tau_m", np.nan, "tau_m"),
    ("inputs/poisson_rate", -5.0, "'poisson_rate' of neuron 0 must be >= 0 Hz"),
    ("inputs/ou_tau", 0.0, "'ou_tau' of neuron 0 must be > 0 ms"),
    ("inputs/poisson_delay", 0.5, "whole steps"),
])
def test_loaded_columns_and_inputs_are_validated_like_the_api(tmp_path, column, value, expect):
    """tau_m = 0 or NaN, negative rates loaded and ran. A store edited with
    its checksum forged still fails the API's own value checks."""
    import zarr
    from brainsim.network_format import checksum
    path = tmp_path / "net.zarr"
    _saved_network(path)
    arr = zarr.open_array(path / column, mode="r+")
    data = arr[:]
    data[0] = value
    arr[:] = data
    arr.attrs["crc32"] = checksum(data)
    with pytest.raises(brainsim.StoreError, match=expect):
        brainsim.load_network(path)
