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


def test_an_unsupported_delay_distribution_is_named():
    net = brainsim.Network(dt=0.1, seed=1)
    net.add_population("A", 4)
    with pytest.raises(brainsim.errors.UnknownNameError, match=r"delay distribution must be one of "
                                                               r"\['normal', 'lognormal'\], "
                                                               r"got 'uniform'"):
        net.connect("A", "A", delay={"distribution": "uniform", "low": 0.5, "high": 3.0})


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
        with pytest.raises(ParameterError, match=r"x must be a finite number >= 0 mV"):
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
    from brainsim.integrity import checksum
    path = tmp_path / "net.zarr"
    _saved_network(path)
    arr = zarr.open_array(path / column, mode="r+")
    data = arr[:]
    data[0] = value
    arr[:] = data
    arr.attrs["crc32"] = checksum(data)
    with pytest.raises(brainsim.StoreError, match=expect):
        brainsim.load_network(path)


# ------------------------------------------------------------ spike links
SECRET = bytes(range(32))


def _linked(expect=(3, 5, 7), strangers=(), timeout=4.0, tls=None):
    """Worker 0 (mesh a) linked to worker 1 (mesh b), which may receive ids
    ``expect`` from it; ``strangers`` are callables that connect to b's port
    before worker 0 does; ``tls``: the cluster's (server, client) SSL
    contexts. Returns (a, b)."""
    import threading
    from brainsim.backends.dask_worker import SpikeMesh
    a = SpikeMesh("127.0.0.1", timeout, SECRET, tls=tls)
    b = SpikeMesh("127.0.0.1", timeout, SECRET, tls=tls)
    errors = []

    def accept():
        try:
            b.connect(1, {}, [], [0], expect={0: list(expect)})
        except Exception as err:  # reported below
            errors.append(err)
    thread = threading.Thread(target=accept)
    thread.start()
    held = [stranger(b.address) for stranger in strangers]
    a.connect(0, {1: b.address}, [1], [])
    thread.join(10)
    for sock in held:
        if sock is not None:
            sock.close()
    assert not errors, errors
    return a, b


def _garbage(address):
    import socket
    sock = socket.create_connection(address)
    sock.sendall(b"\x00" * 8 + b"garbage, not a message authentication code")
    return sock


def _wrong_key(address):
    """A hello of the right shape from worker 0, signed with another key."""
    import hashlib
    import hmac
    import socket
    import struct
    sock = socket.create_connection(address)
    nonce = bytes(16)
    tag = b"brainsim spike link v1\0" + struct.pack("<qq", 0, 1) + nonce
    sock.sendall(struct.pack("<q", 0) + nonce + hmac.new(b"not the secret", tag,
                                                         hashlib.sha256).digest())
    return sock


def _replayed(hello):
    """A stranger replaying worker 0's own hello (seen on the wire)."""
    def connect(address):
        import socket
        sock = socket.create_connection(address)
        sock.sendall(hello)
        return sock
    return connect


def _silent(address):
    import socket
    return socket.create_connection(address)


def test_spike_links_refuse_strangers_before_during_and_after_setup():
    """A worker accepted any connection claiming a peer index and merged
    whatever ids it sent. Strangers that send garbage, sign with another
    key or say nothing are refused, the real peer is linked, spikes flow,
    and after setup the port is closed."""
    import socket
    a, b = _linked(strangers=(_garbage, _wrong_key, _silent))
    try:
        assert b.refused == 3 and set(b.inc) == {0}
        with pytest.raises(OSError):  # after setup: nobody can connect
            socket.create_connection(b.address, timeout=2).close()
        ids, offs = np.array([3, 7], np.int32), np.array([0, 3], np.int32)
        a.exchange(40, {1: (ids, offs)}, 4)
        got = b.exchange(40, {}, 4)
        assert np.array_equal(got[0][0], ids) and np.array_equal(got[0][1], offs)
    finally:
        a.close()
        b.close()


def _cluster_tls():
    """(server, client) SSL contexts of a Dask cluster with temporary
    certificates (its own CA), as a worker of ``LocalCluster(security=True)``
    gets them."""
    from distributed.security import Security
    sec = Security.temporary()
    return (sec.get_listen_args("worker")["ssl_context"],
            sec.get_connection_args("worker")["ssl_context"])


def _other_cluster(address):
    """A TLS client with a certificate of another cluster (another CA)."""
    import socket
    import ssl
    sock = socket.create_connection(address, timeout=4)
    try:
        return _cluster_tls()[1].wrap_socket(sock)
    except (ssl.SSLError, OSError):  # refused by the worker, or the worker's cert is foreign
        return sock


def test_spike_links_use_the_clusters_tls_and_refuse_strangers():
    """Issue 19: with a TLS cluster the links are TLS with the cluster's
    certificates, verified both ways, under the HMAC hello: plain-TCP
    garbage, a silent connection and a client with another cluster's
    certificate are refused, and a large window crosses intact (partial
    writes and decrypted bytes buffered in the SSL object)."""
    import ssl
    a, b = _linked(expect=range(0, 200000, 2), tls=_cluster_tls(),
                   strangers=(_garbage, _silent, _other_cluster))
    try:
        assert b.refused == 3 and set(b.inc) == {0}
        assert isinstance(b.inc[0], ssl.SSLSocket) and isinstance(a.out[1], ssl.SSLSocket)
        assert b.inc[0].version() in ("TLSv1.2", "TLSv1.3")
        assert b.inc[0].getpeercert()  # the peer showed a certificate of this cluster
        rng = np.random.default_rng(0)
        for t0 in (40, 44):
            ids = np.sort(rng.choice(np.arange(0, 200000, 2), 60000, replace=False))
            ids = ids.astype(np.int32)
            offs = rng.integers(0, 4, ids.size).astype(np.int32)
            import threading
            box = {}
            sender = threading.Thread(target=lambda: a.exchange(t0, {1: (ids, offs)}, 4))
            sender.start()
            box["got"] = b.exchange(t0, {}, 4)
            sender.join(10)
            np.testing.assert_array_equal(box["got"][0][0], ids)
            np.testing.assert_array_equal(box["got"][0][1], offs)
    finally:
        a.close()
        b.close()


def test_a_replayed_hello_is_refused():
    """The hello binds sender, receiver and a nonce. At the worker it was
    meant for, a copy is accepted at most once (one slot per peer, nonces
    remembered, the port closed once all peers are linked), so a replay can
    only race the real hello, which takes an attacker on the path (TLS is
    the answer there); at any other worker it is refused."""
    import hashlib
    import hmac
    import struct
    from brainsim.backends.dask_worker import SpikeMesh
    nonce = bytes(range(16))
    tag = b"brainsim spike link v1\0" + struct.pack("<qq", 0, 1) + nonce
    hello = struct.pack("<q", 0) + nonce + hmac.new(SECRET, tag, hashlib.sha256).digest()
    b = SpikeMesh("127.0.0.1", 4.0, SECRET)
    import threading
    t = threading.Thread(target=b.connect, args=(1, {}, [], [0]))
    t.start()
    first = _replayed(hello)(b.address)
    t.join(10)
    assert set(b.inc) == {0} and b.refused == 0  # one copy is taken, then the port closes
    with pytest.raises(OSError):
        _replayed(hello)(b.address)
    b.close()
    first.close()
    c = SpikeMesh("127.0.0.1", 4.0, SECRET)  # ... and worth nothing at worker 2
    errors = []

    def accept():
        try:
            c.connect(2, {}, [], [0])
        except TimeoutError as err:
            errors.append(err)
    c.timeout = 1.0
    t = threading.Thread(target=accept)
    t.start()
    sock = _replayed(hello)(c.address)
    t.join(10)
    sock.close()
    c.close()
    assert c.refused == 1 and not c.inc and errors


@pytest.mark.parametrize("ids, offs, n_steps, match", [
    ([3, 4], [0, 0], 4, "neuron id 4, which is not among"),
    ([3, 2_000_000_000], [0, 1], 4, "neuron id 2000000000"),
    ([5], [4], 4, "step offsets outside the window"),
    ([5], [-1], 4, "step offsets outside the window"),
    ([3, 5, 7] * 5, [0] * 15, 4, "announced 15 spikes in a window of 4 steps; at most 12"),
])
def test_a_linked_peer_sending_ids_or_steps_it_does_not_own_stops_the_run(ids, offs, n_steps,
                                                                         match):
    """Id 2e9 segfaulted the worker, in-range ids became real spikes: every
    message is checked against what the sender owns and this worker needs."""
    from brainsim.errors import LinkError
    a, b = _linked()
    try:
        a.exchange(8, {1: (np.array(ids, np.int32), np.array(offs, np.int32))}, n_steps)
        with pytest.raises(LinkError, match=match):
            b.exchange(8, {}, n_steps)
    finally:
        a.close()
        b.close()


# ------------------------------------------------------------ results stores
def _results_store(path, **kw):
    net = brainsim.Network(dt=0.1, seed=3)
    net.add_population("E", 20, params={"I_e": 400.0})
    net.add_population("I", 5, kind="I", params={"I_e": 400.0}, region="R2")
    net.connect("E", ["E", "I"], "fixed_indegree", indegree=4, weight=30.0)
    sim = brainsim.Simulation(net, seed=4, store=str(path), record={"V_m": [0, 21]}, **kw)
    sim.run(30.0)
    sim.run(20.0)
    return sim


def _first_chunk(path, array):
    import os
    root = os.path.join(path, array, "c")
    for folder, _, files in os.walk(root):
        for f in files:
            return os.path.join(folder, f)


def _corrupt_results(path, array, how):
    import json
    import os
    meta_path = os.path.join(path, array, "zarr.json")
    with open(meta_path) as fh:
        meta = json.load(fh)
    chunk = _first_chunk(path, array)
    if how == "deleted chunk":
        os.remove(chunk)
    elif how == "garbage chunk":
        with open(chunk, "wb") as fh:
            fh.write(np.random.default_rng(1).bytes(max(os.path.getsize(chunk), 16)))
    elif how == "edited dtype":
        meta["data_type"] = _SAME_SIZE[meta["data_type"]]
    elif how == "edited shape":  # fewer entries than committed, or another trailing size
        meta["shape"] = ([meta["shape"][0] - 1] if len(meta["shape"]) == 1 or array == "neuron"
                         else [meta["shape"][0], meta["shape"][1] + 1])
    with open(meta_path, "w") as fh:
        json.dump(meta, fh)


@pytest.mark.parametrize("how", ["deleted chunk", "garbage chunk", "edited dtype",
                                 "edited shape"])
def test_every_results_store_array_corrupted_any_way_is_a_clear_store_error(tmp_path, how):
    """The results store's half of the corruption matrix: spike times of
    0.1 ms, zero rates or a wrong dtype never come back as results."""
    import shutil
    from brainsim.results import LAYOUT
    clean = tmp_path / "clean.zarr"
    _results_store(clean)
    ref = brainsim.open_results(clean).load()
    assert ref.sizes["spike"] > 0 and ref.sizes["time"] == 50 and ref.sizes["time_vm"] == 500
    for array in LAYOUT:
        path = tmp_path / f"{array}.zarr"
        shutil.copytree(clean, path)
        _corrupt_results(path, array, how)
        with pytest.raises(brainsim.StoreError, match=f"'{array}'") as err:
            brainsim.open_results(path).load()
        assert str(path) in str(err.value), (array, how, err.value)
    assert brainsim.open_results(clean).load().identical(ref)


def test_a_store_read_mid_append_shows_the_last_commit(tmp_path):
    """Reading while a run appends gave 'malformed' errors or lagging attrs
    (arrays of one dimension with different lengths). Appended entries
    beyond the commit record are invisible; the attrs and arrays agree."""
    path = tmp_path / "r.zarr"
    sim = _results_store(path)
    before = brainsim.open_results(path).load()
    w = sim.recorder.writer
    w._arrays["spike_step"].append(np.array([10 ** 6], np.int64))  # a half-done append:
    w._arrays["time"].append(np.array([1e9]))  # some arrays grown, no commit yet
    during = brainsim.open_results(path).load()
    assert during.identical(before) and during.attrs["t_stop"] == 50.0
    import zarr
    from brainsim.results import ResultsWriter
    ResultsWriter.reopen(path)  # an appender first cuts back to the commit
    g = zarr.open_group(str(path), mode="r")
    assert g["spike_step"].shape[0] == before.sizes["spike"] and g["time"].shape[0] == 50
    assert brainsim.open_results(path).load().identical(before)


# ------------------------------------------------------------ crashes
def kill_net():
    """A network busy enough that 100 ms chunks take a noticeable time."""
    net = brainsim.Network(dt=0.1, seed=8)
    net.add_population("E", 400, params={"I_e": 360.0})
    net.add_population("I", 100, kind="I", params={"I_e": 360.0}, region="R2")
    net.connect("E", ["E", "I"], "fixed_indegree", indegree=40, weight=20.0,
                delay={"distribution": "normal", "mean": 1.5, "sd": 0.7})
    net.connect("I", ["E", "I"], "fixed_indegree", indegree=10, weight=-60.0, delay=0.8)
    net.add_poisson("E", rate=2000.0, weight=15.0)
    net.build(2)
    return net


KILL_RECORD = {"V_m": [3, 401]}
KILL_T_MS = 3000.0

_CHILD = """
import sys
sys.path.insert(0, {tests!r})
import brainsim
from test_reliability import kill_net, KILL_RECORD, KILL_T_MS
sim = brainsim.Simulation(kill_net(), seed=5, store={store!r}, record=KILL_RECORD, flush_s=0.0,
                          threads=1)
print("started", flush=True)
sim.run(KILL_T_MS)
"""


def _committed_step(store):
    import json
    import os
    try:
        with open(os.path.join(store, "zarr.json")) as fh:
            return (json.load(fh)["attributes"].get("committed") or {}).get("state")
    except (OSError, ValueError, KeyError):
        return None


def kill_during_run(store, wait_commits=2, delay_s=0.0, python=None):
    """Start the child run writing ``store``, SIGKILL it ``delay_s`` after
    its ``wait_commits``-th commit; returns the committed step at the kill."""
    import os
    import subprocess
    import sys
    import time
    tests = os.path.dirname(os.path.abspath(__file__))
    # cwd: away from the repository root, whose source folder brainsim/ would shadow the
    # installed package ('' comes first on a -c child's sys.path)
    child = subprocess.Popen([python or sys.executable, "-c",
                              _CHILD.format(tests=tests, store=str(store))],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             cwd=os.path.dirname(str(store)))
    seen, last, deadline = 0, None, time.monotonic() + 120
    while seen < wait_commits and time.monotonic() < deadline and child.poll() is None:
        step = _committed_step(str(store))
        if step is not None and step != last:
            seen, last = seen + 1, step
        time.sleep(0.002)
    time.sleep(delay_s)
    child.kill()
    child.wait()
    assert seen >= wait_commits, child.stderr.read().decode()[-2000:]
    return _committed_step(str(store))


@pytest.mark.parametrize("delay_s", [0.0, 0.037])
def test_a_killed_cpu_run_keeps_every_commit_and_continues_bit_identically(tmp_path, delay_s):
    """A SIGKILL lost a run's whole interval and in 3 of 25 kills left the
    results store unreadable. With flush_s=0 every 100 ms chunk is
    committed: after the kill the store opens as of its last commit, holds
    exactly the reference's records up to there, and resume() finishes the
    run with spikes, rates and V_m identical to an uninterrupted one."""
    store = tmp_path / "killed.zarr"
    step = kill_during_run(store, wait_commits=2, delay_s=delay_s)
    assert step is not None and 0 < step < KILL_T_MS * 10
    ref = brainsim.Simulation(kill_net(), seed=5, record=KILL_RECORD,
                              threads=1).run(KILL_T_MS)
    part = brainsim.open_results(store).load()
    t = step * 0.1
    assert part.attrs["t_stop"] == pytest.approx(t)
    n = int(np.searchsorted(ref.spike_time.values, t + 1e-9))
    assert part.sizes["spike"] == n and n > 0
    np.testing.assert_array_equal(part.spike_neuron.values, ref.spike_neuron.values[:n])
    np.testing.assert_array_equal(part.rate.values, ref.rate.values[:part.sizes["time"]])
    np.testing.assert_array_equal(part.V_m.values, ref.V_m.values[:part.sizes["time_vm"]])
    assert part.sizes["time_vm"] == step
    sim = brainsim.Simulation.resume(store, network=kill_net(), threads=1)
    assert sim.step == step
    sim.run(KILL_T_MS - t)
    whole = brainsim.open_results(store).load()
    for name in ("spike_time", "spike_neuron", "rate", "rate_region", "V_m"):
        np.testing.assert_array_equal(whole[name].values, ref[name].values, err_msg=name)


class _Killed(BaseException):
    pass


def test_a_commit_is_one_write_of_the_store_metadata(tmp_path, monkeypatch):
    """The commit record and t_stop reach the disk together. The process is
    "killed" (an exception from the store) at the second write of the root
    zarr.json after a first run: the store then opens as of one whole commit,
    its t_stop matching its records. (Zarr's attrs.update rewrites zarr.json
    once per key: a run killed under load opened with t_stop 100 ms and
    records to 200 ms.)"""
    import zarr
    store = tmp_path / "r.zarr"
    sim = brainsim.Simulation(kill_net(), seed=5, store=str(store), record=KILL_RECORD,
                              flush_s=0.0, threads=1)
    sim.run(10.0)
    real, writes = zarr.storage.LocalStore.set, []

    async def dying(self, key, value, *args, **kwargs):
        if key == "zarr.json":
            writes.append(key)
            if len(writes) == 2:
                raise _Killed
        return await real(self, key, value, *args, **kwargs)

    monkeypatch.setattr(zarr.storage.LocalStore, "set", dying)
    with pytest.raises(_Killed):
        sim.run(250.0)  # commits after 100 ms chunks: at 110 ms, then (killed) at 210 ms
    monkeypatch.undo()
    part = brainsim.open_results(store).load()
    assert part.attrs["t_stop"] == pytest.approx(110.0)
    assert part.sizes["time"] == 110 and part.sizes["time_vm"] == 1100
    assert float(part.time[-1]) <= part.attrs["t_stop"]


def test_resume_continues_from_the_last_snapshot_cutting_later_commits(tmp_path):
    """Snapshots are written at most every flush_s during a run (they cost
    tens of ms); records committed after the last one (a run killed before
    its final snapshot) are cut back when a run resumes, so the continued
    run is still bit-identical. A store with no snapshot says so."""
    store = tmp_path / "r.zarr"
    sim = brainsim.Simulation(kill_net(), seed=5, store=str(store), record=KILL_RECORD,
                              flush_s=0.0, threads=1)
    sim.run(50.0)  # every commit with a snapshot: the last at step 500
    sim._snapshot = lambda final=False: None  # as if killed before each snapshot
    sim.flush_s = 0.0
    sim.run(30.0)  # committed, no snapshot
    assert brainsim.open_results(store).attrs["t_stop"] == pytest.approx(80.0)
    ref = brainsim.Simulation(kill_net(), seed=5, record=KILL_RECORD, threads=1).run(120.0)
    again = brainsim.Simulation.resume(store, network=kill_net(), threads=1)
    assert again.step == 500 and brainsim.open_results(store).attrs["t_stop"] == 50.0
    again.run(70.0)
    whole = brainsim.open_results(store).load()
    for name in ("spike_time", "spike_neuron", "rate", "V_m"):
        np.testing.assert_array_equal(whole[name].values, ref[name].values, err_msg=name)
    none = tmp_path / "none.zarr"
    cut = brainsim.Simulation(kill_net(), seed=5, store=str(none), threads=1)
    cut._snapshot = lambda final=False: None
    cut.run(10.0)
    with pytest.raises(brainsim.StoreError, match="cut off before its first"):
        brainsim.Simulation.resume(none, network=kill_net())


def test_a_short_finished_run_continues_from_its_final_snapshot(tmp_path):
    """A run shorter than flush_s used to leave no snapshot, so a finished
    store could not be continued in a new process; its final commit now
    holds one, and the continued run equals an uninterrupted one."""
    store = tmp_path / "short.zarr"
    brainsim.Simulation(kill_net(), seed=5, store=str(store), record=KILL_RECORD,
                        threads=1).run(20.0)  # flush_s 10 s: no snapshot during the run
    assert _committed_step(str(store)) == 200
    again = brainsim.Simulation.resume(store, network=kill_net(), threads=1)
    assert again.step == 200
    again.run(30.0)
    ref = brainsim.Simulation(kill_net(), seed=5, record=KILL_RECORD, threads=1).run(50.0)
    whole = brainsim.open_results(store).load()
    assert whole.sizes["spike"] > 0
    for name in ("spike_time", "spike_neuron", "rate", "V_m"):
        np.testing.assert_array_equal(whole[name].values, ref[name].values, err_msg=name)


def test_balloon_and_enkf_blow_ups_are_reported():
    """NaN BOLD from extreme input came back without a word; a NaN
    predicted observation is refused before the update."""
    from brainsim.assimilation import Balloon, EnKF
    b = Balloon((2,))
    u = np.zeros((2000, 2))
    u[:, 1] = 1e3  # spikes per neuron per step: far beyond any network's
    with pytest.raises(brainsim.errors.DivergenceError, match="signal 1 .* is nan"):
        b.step(u, 1.0)
    assert np.all(np.isfinite(Balloon((2,)).step(np.full((2000, 2), 0.01), 1.0)))
    ens = np.random.default_rng(0).normal(size=(10, 3))

    def operator(e):
        out = e[:, :2].copy()
        out[4, 1] = np.nan
        return out
    with pytest.raises(brainsim.errors.ParameterError, match="obs_operator.*NaN"):
        EnKF().analysis(ens, np.zeros(2), operator, np.ones(2))


def test_a_run_whose_records_cannot_fit_is_refused_before_allocating():
    """run(1e12) tried to allocate 14.6 TiB and failed in numpy."""
    net = brainsim.Network(dt=0.1, seed=1)
    net.add_population("A", 4)
    sim = brainsim.Simulation(net, record={"V_m": [0, 1]})
    with pytest.raises(ParameterError,
                       match=r"t_ms=1000000000000.0 would need .* GiB for its records"):
        sim.run(1e12)
    assert sim.step == 0 and sim.run(1.0).sizes["time_vm"] == 10
