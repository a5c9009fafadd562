"""Worker side of the Dask backend: the partitions one worker holds.

A :class:`PartitionSet` (a Dask actor on its worker) loads a contiguous range
of partitions straight from the network store and steps them with a
:class:`~brainsim.backends.cpu.CpuEngine` built for those partitions (the
same compiled loops as ``backend="cpu"``, whatever the neuron models).
Neuron-indexed arrays keep the global length N (ids are global: the
counter-based noise is keyed by them), only the local range is updated.

Models. The network's models are looked up by name in this process's
registry. Models a user registered in the client process (a notebook, a
script) are unknown to a worker process, so the driver ships their
NeuronModel objects in the actor's spec and they are registered here
before the network is loaded.

Exchange. A spike of a local neuron reaches another worker's partitions at
the earliest after the minimum cut delay W (steps). So a worker advances a
window of at most W steps alone, then sends the window's spikes of the
sources each peer needs (routing table) and merges the spikes it receives
into its history in (step, id) order, with each spike's cursor at its first
row segment not yet due (``insert_spikes``). Every target then sums its
input in the CPU engine's order (delay, source id, creation order): spikes
are bit-identical to the CPU engine for any assignment of partitions.

Transport. Spikes travel worker to worker over plain TCP connections opened
between the actors (:class:`SpikeMesh`), one message per linked pair and
window, sent and received by the stepping thread itself: on localhost a
window costs tens of microseconds, against milliseconds for a Dask RPC.
A closed or silent link raises, and the failing worker closes its own links,
so a lost worker stops all others promptly.

Trust. Each run has a secret (32 random bytes) that the driver sends to its
actors through the Dask scheduler, never over the spike links. On a Dask
cluster configured with TLS (``distributed.Security``), the links are TLS
with the cluster's own certificates, verified both ways, under the same
hello; otherwise they are plain TCP, authenticated but not encrypted. A link opens
with the sender's hello: its index, a fresh nonce and HMAC-SHA256(secret,
sender, receiver, nonce). A connection that says nothing in time, signs
wrongly, replays a nonce, claims an index that is not an expected upstream
peer or one already linked is closed and setup goes on; the
listening socket is closed once every expected peer is linked, so nobody
can connect afterwards. Every message is checked before its ids reach the
Numba history: the window's start step, a spike count within what the
sender can send (the ids it owns that this worker needs, once per step),
ids among exactly those, step offsets within the window. A message that
fails is a LinkError that stops the run, never a crash or a silent merge.
"""
import hashlib
import hmac
import os
import secrets
import selectors
import socket
import ssl
import struct
import threading
import time

import numpy as np
import zarr
from numba import njit

from brainsim.kernels.loops import grow_history, new_history

from ..errors import CheckpointError, LinkError, StoreError
from ..network import Partition
from ..integrity import get_checked, put_array
from ..synapses import SynapseTable, local_dtype
from . import cpu
from .flatten import KernelNetwork

#: state arrays of a checkpoint: X (n_state, n) every state variable of the
#: models (brainsim.kernels.codegen.state_rows), I_ou (n,) OU currents (pA)
_STATE = ("X", "I_ou")


# ------------------------------------------------------------------ kernels
@njit(cache=True)
def history_spikes(h_spk, h_n, t0, n_steps, lo, hi):
    """Spikes of neurons lo .. hi - 1 held in the history for steps
    t0 .. t0 + n_steps - 1 (steps >= 0 only): (steps int64, ids int32) in
    (step, id) order."""
    R = h_n.size
    total = 0
    for t in range(max(t0, 0), t0 + n_steps):
        total += h_n[t % R]
    steps = np.empty(total, np.int64)
    gids = np.empty(total, np.int32)
    k = 0
    for t in range(max(t0, 0), t0 + n_steps):
        slot = t % R
        for j in range(h_n[slot]):
            s = h_spk[slot, j]
            if lo <= s < hi:
                steps[k] = t
                gids[k] = s
                k += 1
    return steps[:k], gids[:k]


@njit(cache=True)
def insert_spikes(h_spk, h_n, h_cur, seg_ptr, seg_delay, t_next, steps, gids):
    """Merge spikes (sorted by step, then id; none already held) into the
    history slots of their steps, keeping each slot in id order. The cursor
    of a new spike in partition ``blk`` is its row's first segment of delay
    >= t_next - step (the first delivery still due at step ``t_next``),
    counted from the row's first segment (``loops.new_history``).
    Returns (h_spk, h_cur), reallocated when a slot outgrows them."""
    R = h_n.size
    n_blocks = seg_ptr.shape[0]
    i = 0
    while i < steps.size:
        t = steps[i]
        j = i
        while j < steps.size and steps[j] == t:
            j += 1
        slot = t % R
        n_old = h_n[slot]
        need = n_old + j - i
        if need > h_spk.shape[1]:
            h_spk, h_cur = grow_history(h_spk, h_cur, need)
        a, b, k = n_old - 1, j - 1, need - 1
        age = t_next - t
        while b >= i:  # merge from the back, in place
            if a >= 0 and h_spk[slot, a] > gids[b]:
                h_spk[slot, k] = h_spk[slot, a]
                for blk in range(n_blocks):
                    h_cur[blk, slot, k] = h_cur[blk, slot, a]
                a -= 1
            else:
                s = gids[b]
                h_spk[slot, k] = s
                for blk in range(n_blocks):
                    c = seg_ptr[blk, s]
                    while c < seg_ptr[blk, s + 1] and seg_delay[c] < age:
                        c += 1
                    h_cur[blk, slot, k] = c - seg_ptr[blk, s]  # from the row's first
                b -= 1
            k -= 1
        h_n[slot] = need
        i = j
    return h_spk, h_cur


# ---------------------------------------------------------------- transport
class SpikeMesh:
    """TCP links between workers: out-links to the peers that need this
    worker's spikes, in-links from the peers whose spikes it needs.

    A message is a header (window start step, spike count n) and n int32
    neuron ids followed by n int32 step offsets within the window. Links
    are authenticated with the run's ``secret`` (module docstring, Trust).
    """

    _HEAD = struct.Struct("<qq")
    _HELLO = struct.Struct("<q")
    _NONCE = 16
    _TAG = b"brainsim spike link v1\0"

    def __init__(self, host, timeout, secret, tls=None):
        if not isinstance(secret, (bytes, bytearray)) or len(secret) < 16:
            raise LinkError("a spike mesh needs the run's secret (>= 16 bytes)")
        self.timeout = float(timeout)
        self.secret = bytes(secret)
        #: (server, client) ssl.SSLContext of the Dask cluster's TLS, or None
        self.tls = tls
        self.server = socket.create_server((host, 0), backlog=128)
        self.address = (host, self.server.getsockname()[1])
        self.out, self.inc, self._buf = {}, {}, {}
        self.expect = {}  # peer -> (sorted ids it may send, as int64)
        self.refused = 0  # connections refused during setup
        self._nonces = set()
        self.index = None
        self._rbuf = memoryview(bytearray(1 << 18))
        self.sel = selectors.DefaultSelector()

    def _mac(self, src, dst, nonce):
        return hmac.new(self.secret, self._TAG + struct.pack("<qq", src, dst) + nonce,
                        hashlib.sha256).digest()

    def connect(self, index, addresses, downstream, upstream, expect=None):
        """Open links to ``downstream`` peers and accept ``upstream`` ones
        (peer index -> (host, port) in ``addresses``); ``expect``: peer ->
        sorted ids that peer may send (default: any id, for tests only).
        A link opens with the sender's hello: its index, a fresh nonce and
        HMAC-SHA256(secret, sender, receiver, nonce); nothing is awaited
        from the receiver, so workers that connect to each other at the
        same time cannot wait on each other. With TLS (``tls``: the Dask
        cluster's contexts) the handshake does need the receiver, so the
        links are dialled from a thread while this one accepts."""
        self.index = int(index)
        errors = []

        def dial():
            try:
                for d in downstream:
                    sock = socket.create_connection(tuple(addresses[d]), timeout=self.timeout)
                    if self.tls is not None:  # the cluster's certificates, verified both ways
                        sock = self.tls[1].wrap_socket(sock, server_side=False)
                    nonce = secrets.token_bytes(self._NONCE)
                    sock.sendall(self._HELLO.pack(index) + nonce + self._mac(index, d, nonce))
                    self.out[d] = self._tune(sock)
            except Exception as err:  # raised below, in this thread
                errors.append(err)
        # a TLS handshake needs the peer to accept: dial while accepting, or two
        # workers that link to each other would each wait for the other
        dialer = threading.Thread(target=dial, daemon=True) if self.tls is not None else None
        if dialer is None:
            dial()
        else:
            dialer.start()
        try:
            self._accept(upstream)
        finally:
            if dialer is not None:
                dialer.join(self.timeout)
        if dialer is not None and dialer.is_alive():
            raise TimeoutError(f"spike links: the TLS links to peers {sorted(downstream)} did "
                               f"not open within {self.timeout} s")
        if errors:
            raise errors[0]
        if expect is not None:
            self.expect = {int(p): np.asarray(ids, np.int64) for p, ids in expect.items()}

    def _accept(self, upstream):
        """Accept the authenticated ``upstream`` peers, refusing others."""
        upstream = {int(u) for u in upstream}
        deadline = time.monotonic() + self.timeout
        while len(self.inc) < len(upstream):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"spike links: peers {sorted(upstream - set(self.inc))} did "
                                   f"not connect within {self.timeout} s ({self.refused} "
                                   f"connections refused)")
            self.server.settimeout(left)
            sock, _ = self.server.accept()
            sock = self._secure(sock)
            peer = None if sock is None else self._handshake(sock, upstream)
            if peer is None:
                self.refused += 1
                if sock is not None:
                    sock.close()
                continue
            sock.settimeout(self.timeout)
            self.inc[peer] = self._tune(sock)
            self._buf[peer] = bytearray()
            self.sel.register(sock, selectors.EVENT_READ, peer)
        self.server.close()  # every expected peer is linked: nobody else may connect

    def _secure(self, sock):
        """The accepted ``sock`` after the TLS handshake (a peer without a
        certificate of the cluster fails it: None), or as is without TLS."""
        if self.tls is None:
            return sock
        sock.settimeout(min(self.timeout / 4, 10.0))
        try:
            return self.tls[0].wrap_socket(sock, server_side=True)
        except (OSError, ValueError):  # ssl.SSLError is an OSError
            sock.close()
            return None

    def _handshake(self, sock, upstream):
        """The index of an authenticated expected peer on ``sock``, or None."""
        size = self._HELLO.size + self._NONCE + hashlib.sha256().digest_size
        try:
            sock.settimeout(min(self.timeout / 4, 10.0))  # a silent stranger stalls briefly
            hello = _recv_exact(sock, size)
        except (OSError, ConnectionError):
            return None
        peer = self._HELLO.unpack_from(hello)[0]
        nonce = hello[self._HELLO.size:self._HELLO.size + self._NONCE]
        mac = hello[self._HELLO.size + self._NONCE:]
        if not hmac.compare_digest(mac, self._mac(peer, self.index, nonce)):
            return None
        if peer not in upstream or peer in self.inc or nonce in self._nonces:
            return None
        self._nonces.add(nonce)
        return peer

    @staticmethod
    def _tune(sock):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        return sock

    def exchange(self, t0, payloads, n_steps):
        """Send ``payloads`` (peer -> (ids, offsets)) for the window of
        ``n_steps`` steps starting at step ``t0`` and return what every
        in-link sent for it (peer -> (ids int32, offsets int32)), checked;
        full duplex, so large windows cannot deadlock."""
        self._window = int(n_steps)
        pending = {}
        for d, sock in self.out.items():
            ids, offs = payloads[d]
            msg = self._HEAD.pack(t0, ids.size) + ids.tobytes() + offs.tobytes()
            view = memoryview(msg)
            sent = _send_some(sock, view, d)
            if sent < len(view):
                pending[sock] = view[sent:]
                self.sel.register(sock, selectors.EVENT_WRITE, d)
        got = {}
        for peer in self.inc:
            self._take(peer, t0, got)
        while pending or len(got) < len(self.inc):
            events = self.sel.select(self.timeout)
            if not events:
                raise TimeoutError(f"no spikes from peer workers for {self.timeout} s in the "
                                   f"window at step {t0} (a worker is lost or stalled)")
            for key, mask in events:
                peer = key.data
                if mask & selectors.EVENT_WRITE:
                    view = pending[key.fileobj]
                    sent = _send_some(key.fileobj, view, peer)
                    if sent == len(view):
                        self.sel.unregister(key.fileobj)
                        del pending[key.fileobj]
                    else:
                        pending[key.fileobj] = view[sent:]
                else:
                    self._read(peer)
                    if peer not in got:
                        self._take(peer, t0, got)
        return got

    def _read(self, peer):
        sock = self.inc[peer]
        while True:
            try:
                n = sock.recv_into(self._rbuf)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except OSError as err:
                raise ConnectionError(f"spike link from worker {peer} failed: {err}") from err
            if not n:
                raise ConnectionError(f"spike link from worker {peer} closed (worker lost?)")
            self._buf[peer] += self._rbuf[:n]
            # TLS: decrypted bytes left in the SSL object do not wake the selector
            if not isinstance(sock, ssl.SSLSocket) or not sock.pending():
                return

    def _take(self, peer, t0, got):
        """Move one complete message of ``peer`` from its buffer into ``got``."""
        buf = self._buf[peer]
        if len(buf) < self._HEAD.size:
            return
        t, n = self._HEAD.unpack_from(buf)
        if t != t0:
            raise LinkError(f"worker {peer} sent the window at step {t}, expected {t0}")
        allowed = self.expect.get(peer)
        limit = (len(allowed) if allowed is not None else 1 << 24) * self._window
        if not 0 <= n <= limit:
            raise LinkError(f"worker {peer} announced {n} spikes in a window of {self._window} "
                            f"steps; at most {limit} are possible")
        end = self._HEAD.size + 8 * n
        if len(buf) < end:
            return
        arr = np.frombuffer(bytes(buf[self._HEAD.size:end]), np.int32)
        ids, offs = arr[:n], arr[n:]
        if n and (offs.min() < 0 or offs.max() >= self._window):
            raise LinkError(f"worker {peer} sent step offsets outside the window "
                            f"[0, {self._window})")
        if n and allowed is not None:  # n > 0 implies len(allowed) > 0 (limit above)
            pos = np.minimum(np.searchsorted(allowed, ids), len(allowed) - 1)
            wrong = allowed[pos] != ids
            if wrong.any():
                bad = ids[wrong][0]
                raise LinkError(f"worker {peer} sent neuron id {int(bad)}, which is not among "
                                f"the ids it owns that this worker needs")
        got[peer] = (ids, offs)
        del buf[:end]

    def close(self):
        for sock in (*self.out.values(), *self.inc.values(), self.server):
            try:
                sock.close()
            except OSError:
                pass
        self.sel.close()
        self.out, self.inc = {}, {}


def _send_some(sock, view, peer):
    try:
        return sock.send(view)
    except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
        return 0
    except OSError as err:
        raise ConnectionError(f"spike link to worker {peer} failed: {err}") from err


def _recv_exact(sock, n):
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            raise ConnectionError("spike link closed during the handshake")
        data += part
    return data


def _worker_host():
    """Host of the Dask worker this runs on (127.0.0.1 outside a worker or
    for in-process workers)."""
    try:
        from distributed import get_worker
        from distributed.comm.addressing import get_address_host
        host = get_address_host(get_worker().address)
    except (ValueError, ImportError):
        return "127.0.0.1"
    return host if host and not host.startswith("inproc") else "127.0.0.1"


def _worker_tls():
    """(server, client) SSL contexts of the Dask cluster this worker belongs
    to when it is configured with TLS (``distributed.Security``: the
    worker's certificate and the cluster's CA, verified both ways), else
    None: the spike links then use the same protection as the cluster."""
    try:
        from distributed import get_worker
        security = get_worker().security
    except (ValueError, ImportError):
        return None
    server = security.get_listen_args("worker").get("ssl_context")
    client = security.get_connection_args("worker").get("ssl_context")
    return (server, client) if server is not None and client is not None else None


# --------------------------------------------------------------- partitions
def register_models(models):
    """Register ``models`` (NeuronModels shipped from the client process) in
    this process, so that a network using them can be loaded here; a user
    model registered before under the same name is replaced."""
    from ..errors import UnknownNameError
    from ..neurons import get_model, register
    for model in models:
        try:
            old = get_model(model.name)
        except UnknownNameError:
            old = None
        if old is not model:
            register(model, replace=True)


class PartitionSet:
    """Partitions ``spec["parts"]`` of a network store, held and stepped in
    one process (a Dask actor on its worker).

    ``spec`` (plain values): network (store path), parts (contiguous
    partition indices), index (this worker's number), owners ([lo, hi)
    neuron range of every worker), seed, dtype, bin_steps, rec_mode,
    rec_ids (recorded ids when rec_mode is 2), vm_ids (ids whose V_m is
    sampled), threads (Numba threads), timeout (s, spike links), models
    (NeuronModels to register first: the user models of the network).
    """

    def __init__(self, spec):
        from ..store import load_network, load_partition
        register_models(spec.get("models", ()))
        self.spec = spec
        self.index = int(spec["index"])
        self.net = load_network(spec["network"], lazy=True)
        parts = [load_partition(spec["network"], k) for k in spec["parts"]]
        self.bounds = [(p["lo"], p["hi"]) for p in parts]
        self.lo, self.hi = parts[0]["lo"], parts[-1]["hi"]
        self.owners = np.array(spec["owners"], np.int64)
        self.dtype = np.dtype(spec["dtype"]).type
        self.bin_steps = int(spec["bin_steps"])
        syn, max_delay = self._init_synapses(parts)
        self.flat = KernelNetwork(self.net, self.dtype)
        self.engine = cpu.CpuEngine(self.flat, spec["seed"], spec.get("threads"), syn=syn,
                                    bounds=self.bounds, max_delay=max_delay)
        self.engine.sync()
        self.n_pop, self.n_reg = len(self.net.populations), len(self.net.regions)
        self._init_record(spec)
        self.mesh = None

    # ---------------------------------------------------------------- setup
    def _init_synapses(self, parts):
        """The kernel arrays of the held partitions' synapses and their
        largest delay (steps)."""
        self._foreign_summary([(p["sources"], p["delays"], p["indptr"]) for p in parts])
        offsets = np.concatenate([[0], np.cumsum([p["indptr"][-1] for p in parts])])
        held = [Partition(p["lo"], p["hi"], p["sources"], p["indptr"], int(off))
                for p, off in zip(parts, offsets)]
        dtype = local_dtype((p["lo"], p["hi"]) for p in parts)
        local = np.concatenate([p["targets"].astype(dtype, copy=False) for p in parts])
        weights = np.concatenate([p["weights"] for p in parts])
        delays = np.concatenate([p["delays"] for p in parts])
        for p in parts:  # the table keeps its own copies: free the loaded ones
            p["targets"] = p["weights"] = p["delays"] = None
        table = SynapseTable(held, local, weights, delays)
        del delays
        self.max_delay = table.max_delay
        return table.kernel_arrays(self.net.n_neurons), table.max_delay

    def _foreign_summary(self, parts):
        """Sources outside the local range, by owning worker, and the
        smallest delay of a synapse from another worker."""
        srcs, min_d = [], None
        for sources, delays, indptr in parts:
            out = (sources < self.lo) | (sources >= self.hi)
            srcs.append(sources[out])
            if out.any():
                first = delays[indptr[:-1][out]]  # rows sorted by delay: first is smallest
                d = int(first.min())
                min_d = d if min_d is None else min(min_d, d)
        needed = np.unique(np.concatenate(srcs)) if srcs else np.zeros(0, np.int64)
        owner = np.searchsorted(self.owners[:, 1], needed, side="right")
        self.needs = {int(o): needed[owner == o] for o in np.unique(owner)}
        self.min_foreign_delay = min_d

    def _init_record(self, spec):
        N = self.net.n_neurons
        self.rec_mode = int(spec["rec_mode"])
        self.rec_mask = np.zeros(N if self.rec_mode == 2 else 0, np.bool_)
        if self.rec_mode == 2:
            self.rec_mask[np.asarray(spec["rec_ids"], np.int64)] = True
        vm = np.asarray(spec["vm_ids"], np.int64)
        self.vm_cols = np.flatnonzero((vm >= self.lo) & (vm < self.hi))
        self.vm_ids = vm[self.vm_cols]
        self.spk_cap = N + max(4 * (self.hi - self.lo), 1 << 16)

    # ------------------------------------------------------ driver requests
    def describe(self):
        """What the driver needs to plan windows and routes: max_delay,
        min_foreign_delay (None without cut synapses), needs (owner worker
        -> sorted source ids), lo, hi."""
        return {"max_delay": self.max_delay, "min_foreign_delay": self.min_foreign_delay,
                "needs": self.needs, "lo": self.lo, "hi": self.hi}

    def configure(self, n_slots, routes):
        """Allocate the spike history (``n_slots`` = global max delay + 1)
        and set the routes: peer -> sorted ids of local neurons it needs."""
        n_local = self.hi - self.lo
        self.engine.hist = new_history(int(n_slots), len(self.bounds),
                                       max(64, min(n_local, 4096)))
        self.routes = {}
        for peer, ids in routes.items():
            mask = np.zeros(n_local, np.bool_)
            mask[np.asarray(ids, np.int64) - self.lo] = True
            self.routes[int(peer)] = mask
        return True

    def open_port(self):
        """Start listening for spike links; returns (host, port)."""
        self.mesh = SpikeMesh(_worker_host(), self.spec.get("timeout", 600.0),
                              bytes.fromhex(self.spec["link_secret"]), tls=_worker_tls())
        return self.mesh.address

    def link_security(self):
        """How this worker's spike links are protected: "tls+hmac" or "hmac"."""
        return "tls+hmac" if self.mesh is not None and self.mesh.tls else "hmac"

    def connect(self, addresses, upstream):
        """Link to the peers in the routes and accept those in ``upstream``
        (each may send only the ids this worker needs from it)."""
        addresses = {int(k): v for k, v in addresses.items()}
        self.mesh.connect(self.index, addresses, sorted(self.routes), sorted(upstream),
                          expect={p: self.needs.get(int(p), ()) for p in upstream})
        return True

    def set_params(self, columns, inputs, pop_params):
        """Replace the neuron parameters (``Network.set_property`` on the
        driver): per-neuron columns, input arrays, population params."""
        self.net.columns = {k: np.asarray(v, np.float64) for k, v in columns.items()}
        self.net.inputs = {k: np.asarray(v, np.float64) for k, v in inputs.items()}
        for name, params in pop_params.items():
            self.net.populations[name].params = dict(params)
        self.net.version += 1
        self.engine.sync()
        return True

    def get_state(self, name):
        """(lo, hi, values float64) of state variable ``name`` of the local
        neurons (NaN where a neuron's model has no such variable)."""
        return self.lo, self.hi, self.flat.read_state(self.engine.X, name,
                                                      np.arange(self.lo, self.hi))

    def set_state(self, name, ids, values):
        """Write state variable ``name`` of the neurons ``ids`` (all local)."""
        self.engine.set_state(name, np.asarray(ids, np.int64), np.asarray(values, float))
        return True

    def state(self):
        """(lo, hi, X, I_ou, inp) of the local neurons (copies)."""
        e, a, b = self.engine, self.lo, self.hi
        return a, b, e.X[:, a:b].copy(), e.I_ou[a:b].copy(), e.inp[:, a:b].copy()

    def close(self):
        if self.mesh is not None:
            self.mesh.close()
            self.mesh = None
        return True

    # ------------------------------------------------------------- stepping
    def run_chunk(self, t0, n_steps, window, rates):
        """Advance steps t0 .. t0 + n_steps - 1 in windows of at most
        ``window`` steps, exchanging spikes after each. Returns the
        recorded spikes (step, id), rate counts per bin (population and
        region, if ``rates``), V_m samples (time x local recorded ids) and
        timings (s)."""
        try:
            return self._run_chunk(t0, n_steps, window, rates)
        except BaseException:
            self.close()  # peers waiting on this worker fail at once
            raise

    def _run_chunk(self, t0, n_steps, window, rates):
        rec = _Records(self, t0, n_steps, rates)
        self._link_time = 0.0
        wall0 = time.perf_counter()
        busy = exch = 0.0
        n_windows = 0
        t, end = t0, t0 + n_steps
        while t < end:
            k = min(window, end - t)
            c0 = time.perf_counter()
            self._advance(t, k, rec)
            c1 = time.perf_counter()
            if self.mesh is not None and (self.mesh.out or self.mesh.inc):
                self._exchange(t, k)
            exch += time.perf_counter() - c1
            busy += c1 - c0
            n_windows += 1
            t += k
        self.flat.check_membrane(self.engine.X[0, self.lo:self.hi], end * self.net.dt, self.lo)
        out = rec.result()
        out["timing"] = {"wall": time.perf_counter() - wall0, "advance": busy,
                         "exchange": exch, "links": self._link_time, "windows": n_windows}
        return out

    def _advance(self, t, k, rec):
        done = 0
        while done < k:
            done += self.engine.advance(t + done, k - done, rec)
            if done < k:
                rec.flush()

    def _exchange(self, t, k):
        h_spk, h_n, _ = self.engine.hist
        steps, gids = history_spikes(h_spk, h_n, t, k, self.lo, self.hi)
        offs = (steps - t).astype(np.int32)
        payloads = {}
        for peer, mask in self.routes.items():
            sel = mask[gids - self.lo]
            payloads[peer] = (np.ascontiguousarray(gids[sel]), np.ascontiguousarray(offs[sel]))
        m0 = time.perf_counter()
        got = self.mesh.exchange(t, payloads, k)
        self._link_time += time.perf_counter() - m0
        if got:
            gids = np.concatenate([g for g, _ in got.values()])
            steps = np.concatenate([o for _, o in got.values()]).astype(np.int64) + t
            order = np.lexsort((gids, steps))
            self._insert(t + k, steps[order], gids[order])

    def _insert(self, t_next, steps, gids):
        h_spk, h_n, h_cur = self.engine.hist
        syn = self.engine.syn  # (seg_ptr, seg_start, seg_delay, ...)
        h_spk, h_cur = insert_spikes(h_spk, h_n, h_cur, syn[0], syn[2], t_next, steps, gids)
        self.engine.hist = (h_spk, h_n, h_cur)

    # ---------------------------------------------------------- checkpoints
    def checkpoint(self, path, step):
        """Write the state of every local partition at ``step`` (before it
        is simulated) into ``path``/p<k>: X (every state variable), I_ou
        and the partition's spikes of the last R - 1 steps."""
        h_spk, h_n, _ = self.engine.hist
        R = h_n.size
        for k, (lo, hi) in zip(self.spec["parts"], self.bounds):
            g = zarr.open_group(os.path.join(path, f"p{k}"), mode="w", zarr_format=3)
            for name in _STATE:
                put_array(g, name, getattr(self.engine, name)[..., lo:hi])
            steps, gids = history_spikes(h_spk, h_n, step - (R - 1), R - 1, lo, hi)
            put_array(g, "hist_step", steps.astype(np.int64))
            put_array(g, "hist_gid", gids.astype(np.int32))
            g.update_attributes({"step": int(step), "lo": int(lo), "hi": int(hi)})
        return True

    def _read_part(self, path, k, step, lo, hi, state=True):
        """Checked contents of partition ``k``'s folder in the checkpoint at
        ``path``: its state arrays (``state``) and spike history, with
        dtypes, shapes and checksums as written and every history spike a
        neuron of the partition at a step of the last R - 1 before ``step``;
        a CheckpointError naming the checkpoint otherwise."""
        where = f"checkpoint {path!r} partition {k}"
        try:
            g = zarr.open_group(os.path.join(path, f"p{k}"), mode="r")
            attrs = dict(g.attrs)
            if (attrs.get("step"), attrs.get("lo"), attrs.get("hi")) != (step, lo, hi):
                raise StoreError(f"{where}: it says step {attrs.get('step')!r}, neurons "
                                 f"[{attrs.get('lo')!r}, {attrs.get('hi')!r}); expected "
                                 f"step {step}, [{lo}, {hi})")
            out = {}
            if state:
                for name in _STATE:
                    ref = getattr(self.engine, name)[..., lo:hi]
                    out[name] = get_checked(g, name, where, ref.dtype, ref.shape)
            n = g["hist_step"].shape[0] if "hist_step" in g else 0
            s_ = get_checked(g, "hist_step", where, np.int64, (n,))
            i_ = get_checked(g, "hist_gid", where, np.int32, (n,))
        except StoreError as err:
            raise CheckpointError(f"{err}; resume from an earlier checkpoint "
                                  f"(brainsim.Simulation.resume(store, checkpoint=STEP))") from None
        except Exception as err:  # zarr's own errors on a damaged folder
            raise CheckpointError(f"{where} cannot be read ({type(err).__name__}: {err}); "
                                  f"resume from an earlier checkpoint") from None
        R = self.engine.hist[1].size
        if n and (i_.min() < lo or i_.max() >= hi or s_.min() < step - (R - 1) or
                  s_.max() >= step):
            raise CheckpointError(f"{where}: its spike history holds ids outside [{lo}, {hi}) "
                                  f"or steps outside [{step - (R - 1)}, {step}); resume from "
                                  f"an earlier checkpoint")
        out["hist_step"], out["hist_gid"] = s_, i_
        return out

    def restore(self, path, step, n_parts):
        """Load the state of the local partitions at ``step`` from the
        checkpoint at ``path`` (written by ``checkpoint``, any assignment of
        partitions to workers) and the spike history of all ``n_parts``
        partitions that this worker's synapses need."""
        own = dict(zip(self.spec["parts"], self.bounds))
        got = {}
        for k, (lo, hi) in own.items():
            got[k] = self._read_part(path, k, step, lo, hi)
        for k, (lo, hi) in own.items():  # all read and checked: now write
            for name in _STATE:
                getattr(self.engine, name)[..., lo:hi] = got[k][name]
        needed = np.concatenate([np.arange(self.lo, self.hi), *self.needs.values()])
        steps, gids = [], []
        part_bounds = self.spec["part_bounds"]
        for k in range(n_parts):
            part = got.get(k) or self._read_part(path, k, step, *part_bounds[k], state=False)
            s, i = part["hist_step"], part["hist_gid"]
            keep = np.isin(i, needed)
            steps.append(s[keep])
            gids.append(i[keep])
        steps, gids = np.concatenate(steps), np.concatenate(gids)
        order = np.lexsort((gids, steps))
        self._insert(int(step), steps[order].astype(np.int64), gids[order].astype(np.int32))
        return True


class _Records:
    """What one chunk records on one worker (counts, not rates: the driver
    sums workers exactly); ``kernel_args``, ``t_base`` and ``n_spk`` as the
    CPU engine reads them from a RunRecord."""

    def __init__(self, ps, t0, n_steps, rates):
        self.t_base = t0
        self.ps = ps
        self.spk_step = np.empty(ps.spk_cap if ps.rec_mode else 0, np.int64)
        self.spk_gid = np.empty(ps.spk_cap if ps.rec_mode else 0, np.int32)
        self.n_spk = 0
        n_bins = n_steps // ps.bin_steps if rates else 0
        self.rate_pop = np.zeros((n_bins, ps.n_pop), np.int64)
        self.rate_reg = np.zeros((n_bins, ps.n_reg), np.int64)
        self.vm = np.zeros((n_steps if ps.vm_ids.size else 0, ps.vm_ids.size), ps.dtype)
        self.parts = []

    def kernel_args(self, pop_of, reg_of):
        ps = self.ps
        return (ps.rec_mode, ps.rec_mask, self.spk_step, self.spk_gid, pop_of, self.rate_pop,
                reg_of, self.rate_reg, ps.bin_steps, ps.vm_ids, self.vm)

    def flush(self):
        self.parts.append((self.spk_step[:self.n_spk].copy(), self.spk_gid[:self.n_spk].copy()))
        self.n_spk = 0

    def result(self):
        self.flush()
        return {"spike_step": np.concatenate([p[0] for p in self.parts]),
                "spike_neuron": np.concatenate([p[1] for p in self.parts]),
                "rate_pop": self.rate_pop, "rate_reg": self.rate_reg, "vm": self.vm,
                "vm_cols": self.ps.vm_cols}
