"""Dask backend: partitions held by Dask workers, spikes exchanged in windows.

    sim = brainsim.Simulation("net.zarr", backend="dask", client=client,
                              store="run.zarr", seed=1)
    ds = sim.run(1000.0)                                  # ms
    sim = brainsim.Simulation.resume("run.zarr")          # after a crash

The Simulation holds a :class:`DaskEngine`, which owns the run loop. Each
worker holds a contiguous range of partitions in a
:class:`~brainsim.backends.dask_worker.PartitionSet` actor, loaded straight
from the network store (an in-memory Network is saved first, into the
results store's ``network/`` group or a temporary folder) and stepped by a
:class:`~brainsim.backends.cpu.CpuEngine` on the worker. Workers advance
windows of W steps, W = the smallest delay of a synapse whose source is on
another worker, and exchange the window's spikes directly over TCP with the
workers that hold targets of them (dask_worker.py). Spikes are bit-identical
to the CPU engine for any number of workers. Neuron models registered in
this process but not built in are shipped to the workers and registered
there.

Results. The engine gathers each chunk's recorded spikes, rate counts and
V_m from the workers, merges them in (step, id) order and appends them
through the Simulation's Recorder (``brainsim.recording``), the CPU
engine's path; ``run`` returns the same interval Dataset. Workers write
their own partitions' state into the checkpoints (disjoint groups
``checkpoints/<step>/p<k>``).

Checkpoints and failures. Every ``checkpoint_ms`` of simulated time and at
the end of every ``run``, the state (the state array X of every neuron
model, OU currents, the spikes of the last max_delay steps, the step; the
noise is counter-based) goes to ``checkpoints/<step>`` of the results store
(of a temporary folder without one); the last two complete ones are kept.
If a worker dies during ``run``, the run goes back to the last complete
checkpoint on the workers then present (a nanny restarts killed workers),
cutting the kept results back to that step (``Recorder.rewind``), and
continues without user action, up to ``max_recoveries`` times per run;
then, or without a checkpoint, it raises :class:`WorkerLostError` naming
the checkpoint to resume from with ``Simulation.resume(store)``.
"""
import asyncio
import os
import secrets
import shutil
import tempfile
import time
import weakref

import numpy as np
import zarr

from brainsim.kernels.neurons import BUILTIN

from ..errors import BrainsimError, CheckpointError, ParameterError, StoreError
from ..validation import integer, number
from ..network import Network
from ..integrity import get_checked, put_array
from ..results import SCHEMA as RESULTS_SCHEMA
from ..results import check_schema, checked_lengths, plain_json
from .dask_worker import PartitionSet
from .flatten import KernelNetwork

BYTES_PER_SYNAPSE = 20  # loaded arrays (10) + the synapse table built from them (8) + segments
BYTES_PER_NEURON = 256  # global-length state, parameter and input arrays per worker
BYTES_PER_ROW = 16  # dense row index and segment pointer, per partition and neuron
MEMORY_FRACTION = 0.8  # of a worker's memory_limit (distributed pauses there)
_KEEP_CHECKPOINTS = 2
#: the backend options (keyword arguments of Simulation with backend="dask")
OPTIONS = ("client", "workers", "window", "checkpoint_ms", "timeout", "link_timeout",
           "max_recoveries")


class DaskBackendError(BrainsimError, RuntimeError):
    """The Dask cluster cannot run the simulation (unreachable scheduler, no
    workers, a worker without memory for its partitions)."""


class WorkerLostError(DaskBackendError):
    """A worker died during ``run`` and the run could not go on by itself;
    ``checkpoint`` is the step of the checkpoint to resume from (None if
    none) and ``store`` the results store holding it."""

    def __init__(self, message, store=None, checkpoint=None):
        super().__init__(message)
        self.store, self.checkpoint = store, checkpoint


class _WorkerFailure(Exception):
    """Internal: an actor call failed (worker lost or spike link broken)."""


class DaskEngine:
    """The engine of ``Simulation(net_or_store, backend="dask", ...)``.

    Built by :meth:`for_simulation` from the Simulation (its network, seed,
    dtype, ``threads``, recording and store) and the options below, all
    keyword arguments of ``Simulation``:

    client : distributed.Client, str or None
        The cluster: a Client (LocalCluster, dask-jobqueue's SLURMCluster,
        ...), a scheduler address (``"tcp://host:8786"``), or None for a
        LocalCluster with one single-threaded worker process per core (up
        to the number of partitions), closed by ``close()``.
    workers : int or list of str, optional
        Use only the first ``workers`` workers (sorted by address) or these
        addresses; default all, at most one per partition.
    window : int, optional
        Steps per exchange window, at most (and by default) the smallest
        delay (steps) of the synapses between workers.
    checkpoint_ms : float or None, ms
        Simulated time between checkpoints (default 1000 ms, rounded up to
        whole 100 ms chunks); None disables them (a lost worker then stops
        the run with WorkerLostError).
    timeout : float, s
        Limit for reaching the scheduler and for workers to appear.
    link_timeout : float, s
        Longest wait for a peer's spikes in a window before the run fails.
    max_recoveries : int
        Automatic restarts from a checkpoint per ``run`` (default 3).

    The Simulation's ``threads`` are Numba threads per worker (default: the
    worker's Dask threads); its ``n_partitions`` builds an unbuilt Network
    (default: one partition per worker thread, as a worker steps one
    partition per Numba thread) and must equal the partition count of a
    store or a built network (a mismatch raises).

    Attributes
    ----------
    stats : dict
        Timings of the last ``run`` (per window and per chunk, docs/dask.md).
    window, max_window : int
        Steps per exchange window used, and the largest allowed.
    client : distributed.Client
    """

    name = "dask"
    #: the RunRecord's spike buffer is not used: spikes arrive per chunk
    spike_capacity = 0
    #: ``threads`` are per worker process, not limited by this process's Numba
    threads_in_process = False

    @classmethod
    def for_simulation(cls, sim, net, n_partitions, **options):
        """The engine of Simulation ``sim``; ``net`` is what the Simulation
        was given (a Network or the path of a network store)."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ParameterError(f"backend 'dask' options must be among {list(OPTIONS)}, got "
                                 f"unknown {unknown}")
        return cls(sim, net, n_partitions, **options)

    def __init__(self, sim, net, n_partitions, client=None, workers=None, window=None,
                 checkpoint_ms=1000.0, timeout=30.0, link_timeout=600.0, max_recoveries=3):
        _check_options(window, checkpoint_ms, max_recoveries)
        self.seed, self.dtype, self.threads = sim.seed, sim.dtype, sim.threads
        self.rec, self.bin_steps = sim.spec, sim.bin_steps
        self._store = sim._store[0]
        self._timeout = _positive("timeout", timeout, "s")
        self._link_timeout = _positive("link_timeout", link_timeout, "s")
        self._max_recoveries = int(max_recoveries)
        self._window_arg, self._checkpoint_ms = window, checkpoint_ms
        self._worker_arg = workers
        self._cleanup = _Cleanup()
        self._finalizer = weakref.finalize(self, self._cleanup.run)
        try:
            self.client = self._connect(client, timeout, _known_partitions(net, n_partitions))
            self._open_network(sim.net, net, n_partitions)
            self._init_chunks(sim.spec.rates, sim.net.dt)
            self._plan()  # fail now: workers, memory
            self.flat = KernelNetwork(self.net, self.dtype)
        except BaseException:
            self._finalizer()  # a cluster started here does not outlive the error
            raise
        # models the workers may not know: registered in this process, not built in
        self._models = [m for m in self.flat.models if m not in BUILTIN]
        self._root = None
        self._actors, self._futures = [], []
        self._restore_step = None  # None: start from the initial state
        self._checkpoints, self._marks = [], {}
        # state writes (step, name, ids, values) since the last checkpoint, and how
        # many of them the actors have; the step the actors are at (= sim.step)
        self._pending, self._n_applied, self._step = [], 0, 0
        self._lost = self._broken = None
        self._closed = False
        self.stats = {}

    @property
    def n_partitions(self):
        """Partitions of the simulated network."""
        return len(self._part_info)

    def chunk_steps(self, dt):
        """Steps per chunk (results gathered and appended after each)."""
        return self._chunk

    # ------------------------------------------------------------ cluster
    def _connect(self, client, timeout, n_parts):
        from distributed import Client
        if isinstance(client, Client):
            return client
        if client is None:
            from distributed import LocalCluster
            n = max(1, min(os.cpu_count() or 1, n_parts or os.cpu_count() or 1))
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=":0")
            own = Client(cluster)
            self._cleanup.add(own.close)
            self._cleanup.add(cluster.close)
            return own
        if not isinstance(client, str):
            raise ParameterError(f"client must be a distributed.Client, a scheduler address "
                                 f"(str) or None, got {type(client).__name__} {client!r}")
        try:
            own = Client(client, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as err:
            raise DaskBackendError(f"cannot reach the Dask scheduler at {client!r} within "
                                   f"{timeout} s: {err}") from None
        self._cleanup.add(own.close)
        return own

    def _workers(self, recovering=False):
        """(address, info) of the workers to use, sorted by address; when
        recovering, named workers that are gone are left out (all workers
        if none is left)."""
        try:
            self.client.wait_for_workers(1, timeout=self._timeout)
        except (TimeoutError, OSError) as err:
            raise DaskBackendError(f"the Dask cluster has no worker after {self._timeout} s "
                                   f"({err})") from None
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        addrs = sorted(info)
        sel = self._worker_arg
        if sel is None:
            chosen = addrs
        elif isinstance(sel, (int, np.integer)) and not isinstance(sel, bool):
            if recovering:
                sel = min(sel, len(addrs))
            elif not 1 <= sel <= len(addrs):
                raise ParameterError(f"workers must be in [1, {len(addrs)}] (workers in the "
                                     f"cluster), got {sel!r}")
            chosen = addrs[:sel]
        elif not isinstance(sel, (list, tuple)):
            raise ParameterError(f"workers must be None, a count or a list of worker "
                                 f"addresses, got {sel!r}")
        elif recovering:
            chosen = sorted(a for a in sel if a in info) or addrs
        else:
            missing = [a for a in sel if a not in info]
            if missing or not sel:
                raise ParameterError(f"workers must name workers of the cluster {addrs}, got "
                                     f"{sel!r}")
            chosen = sorted(sel)
        return [(a, info[a]) for a in chosen]

    # ------------------------------------------------------------ network
    def _open_network(self, loaded, given, n_partitions):
        """``loaded``: the Simulation's Network; ``given``: what it was
        given (a store path, whose synapses only the workers load, or a
        Network, built here if needed)."""
        if isinstance(given, (str, os.PathLike)):
            self._net_path, self._net_pending = os.path.abspath(os.fspath(given)), None
        else:
            if not loaded.is_built:
                loaded.build(n_partitions if n_partitions is not None else
                             self._default_parts())
            lazy = loaded._lazy_store if loaded._partitions is None else None  # on disk
            self._net_path = os.path.abspath(lazy) if lazy else None
            self._net_pending = None if lazy else loaded
        self.net = loaded
        self._part_info = _partition_sizes(loaded, self._net_path)
        n_parts = len(self._part_info)
        if n_partitions is not None and n_partitions != n_parts:
            where = self._net_path or "the built network"
            raise ParameterError(f"n_partitions={n_partitions!r} does not match the "
                                 f"{n_parts} partitions of {where}; omit n_partitions or "
                                 "rebuild the network with that many partitions")
        self._base_version = loaded.version
        self._pushed_version = loaded.version

    def _default_parts(self):
        """One partition per worker thread: a worker steps its partitions on
        its Numba threads, one partition per thread at a time."""
        return sum(self.threads or int(info.get("nthreads", 1)) for _, info in self._workers())

    def _init_chunks(self, rates, dt):
        """Steps per chunk (100 ms, or ``checkpoint_ms`` if shorter; whole
        rate bins) and between checkpoints (whole chunks)."""
        ms = self._checkpoint_ms
        per = max(1, int(round(min(100.0, ms or 100.0) / dt)))
        if rates:
            per = self.bin_steps * max(1, int(round(per / self.bin_steps)))
        self._chunk = per
        self._ckpt_steps = None if ms is None else max(per, int(np.ceil(ms / dt / per)) * per)

    # --------------------------------------------------------------- plan
    def _plan(self, recovering=False):
        """Assign contiguous partition ranges to workers, balanced by the
        memory estimate, and check every worker's memory limit."""
        workers = self._workers(recovering)
        n_parts = len(self._part_info)
        if sum(a.startswith("inproc://") for a, _ in workers[:n_parts]) > 1:
            raise ParameterError("workers must be separate processes (LocalCluster("
                                 "processes=True)): Numba kernels of several in-process workers "
                                 "would run in one process at once")
        need = np.array([_partition_bytes(self.net.n_neurons, n_syn, n_src)
                         for _, _, n_syn, n_src in self._part_info], float)
        ranges = assign_partitions(need, min(len(workers), n_parts))
        fixed = BYTES_PER_NEURON * self.net.n_neurons
        for (addr, info), (a, b) in zip(workers, ranges):
            limit = info.get("memory_limit") or 0
            total = fixed + need[a:b].sum()
            if limit and total > MEMORY_FRACTION * limit:
                raise DaskBackendError(
                    f"worker {addr} lacks memory for partitions {a}..{b - 1}: estimated "
                    f"{total / 2**30:.3g} GiB (largest partition {need[a:b].max() / 2**30:.3g} "
                    f"GiB) > {MEMORY_FRACTION:g} x memory_limit {limit / 2**30:.3g} GiB; use "
                    f"more workers, workers with more memory, or more partitions")
        self._assignment = [(addr, info, a, b) for (addr, info), (a, b) in zip(workers, ranges)]

    def _bounds(self):
        """[lo, hi) neuron range of every worker of the assignment."""
        return [(self._part_info[a][0], self._part_info[b - 1][1])
                for _, _, a, b in self._assignment]

    def _spec(self, index, a, b, info):
        lo, hi = self._bounds()[index]
        rec = self.rec
        rec_ids = np.flatnonzero(rec.mask[lo:hi]) + lo if rec.mode == 2 else []
        return {"network": self._net_path, "parts": list(range(a, b)), "index": index,
                "owners": self._bounds(), "seed": self.seed,
                "dtype": np.dtype(self.dtype).name, "bin_steps": self.bin_steps,
                "rec_mode": rec.mode, "rec_ids": rec_ids, "vm_ids": rec.vm_ids,
                "timeout": self._link_timeout, "models": self._models,
                "link_secret": self._link_secret,
                "part_bounds": [[int(lo), int(hi)] for lo, hi, *_ in self._part_info],
                "threads": self.threads or int(info.get("nthreads", 1))}

    def _start(self):
        """Actors on their workers, routes, links, state (fresh or restored),
        then the state writes made since that state."""
        self._link_secret = secrets.token_hex(32)  # fresh for every set of actors
        futs = [self.client.submit(PartitionSet, self._spec(i, a, b, info), actor=True,
                                   workers=[addr], allow_other_workers=False, pure=False)
                for i, (addr, info, a, b) in enumerate(self._assignment)]
        self._futures = futs
        addrs = [addr for addr, *_ in self._assignment]
        self._actors = self.client.sync(_wait_all, self.client, futs, addrs, self._timeout)
        desc = self._call_all("describe")
        self._set_window(desc)
        n_slots = max(d["max_delay"] for d in desc) + 1
        routes = [{} for _ in desc]
        for dest, d in enumerate(desc):
            for owner, ids in d["needs"].items():
                routes[owner][dest] = ids
        self._call_all("configure", [(n_slots, r) for r in routes])
        links = "none (one worker)"
        if len(desc) > 1:
            addrs = dict(enumerate(self._call_all("open_port")))
            self._call_all("connect", [(addrs, list(d["needs"])) for d in desc])
            links = ", ".join(sorted(set(self._call_all("link_security"))))
        self._routes = {"messages_per_window": sum(len(r) for r in routes),
                        "routed_sources": int(sum(ids.size for r in routes for ids in r.values())),
                        "link_security": links}
        if self.net.version != self._base_version:
            self._push_params(force=True)
        if self._restore_step is not None:
            path = self._checkpoint_path(self._restore_step)
            try:
                self._call_all("restore", [(path, self._restore_step, len(self._part_info))] *
                               len(desc))
            except CheckpointError as err:
                earlier = [c for c in self._checkpoints if c < self._restore_step]
                raise CheckpointError(f"{err}. Earlier complete checkpoints (steps): "
                                      f"{earlier or 'none (checkpoint=0 starts over)'}") from None
        self._n_applied = 0
        self._apply_pending()  # those made at the restored step; later ones when due

    def _set_window(self, desc):
        cut = [d["min_foreign_delay"] for d in desc if d["min_foreign_delay"] is not None]
        self.max_window = min(cut) if cut else None
        w = self._window_arg
        if w is not None and self.max_window is not None and w > self.max_window:
            raise ParameterError(f"window must be <= {self.max_window} steps (the smallest "
                                 f"delay between workers), got {w!r}")
        self.window = w if w is not None else (self.max_window or self._chunk)

    def _push_params(self, force=False):
        if not force and self.net.version == self._pushed_version:
            return
        net = self.net
        pops = {name: p.params for name, p in net.populations.items()}
        self._call_all("set_params", [(net.columns, net.inputs, pops)] * len(self._actors))
        self._pushed_version = net.version

    def _call_all(self, method, args=None):
        """Call ``method`` on every actor (with ``args[i]``), wait for all;
        raise _WorkerFailure if any fails."""
        args = args if args is not None else [()] * len(self._actors)
        futs = []
        for a, x in zip(self._actors, args):
            try:
                futs.append(getattr(a, method)(*x))
            except RuntimeError as err:  # "Worker holding Actor was lost"
                futs.append(_raise(err))
        addrs = [addr for addr, *_ in self._assignment]
        return self.client.sync(_wait_all, self.client, futs, addrs, self._link_timeout)

    def _release(self):
        """Close the actors' spike links, then let Dask drop the actors."""
        if self._actors:
            try:
                self._call_all("close")
            except (_WorkerFailure, BrainsimError):
                pass  # a lost worker's actor is gone already
        if self._futures:
            self.client.cancel(self._futures)
        self._actors, self._futures = [], []

    def close(self):
        """Release the actors, and the LocalCluster / Client this engine
        started; remove temporary folders."""
        self._release()
        self._finalizer()
        self._closed = True

    # ---------------------------------------------------------------- state
    def sync(self):
        """Parameter changes reach the workers in the run loop (where a lost
        worker is recovered from); here only a lost simulation is refused."""
        self._check_usable()

    def _check_usable(self):
        if self._closed:
            raise DaskBackendError("this simulation is closed")
        if self._lost is not None:
            raise DaskBackendError(f"this simulation lost a worker ({self._lost}); continue "
                                   "with brainsim.Simulation.resume(store)")

    def set_state(self, name, ids, values):
        """Write state variable ``name`` of neurons ``ids`` (between runs).
        Kept, with its step, until the next checkpoint (due at the start of
        the next run): a recovery to an earlier state applies it again when
        the replay reaches that step."""
        self._check_usable()
        ids = np.asarray(ids, np.int64)
        values = np.broadcast_to(np.asarray(values, float), ids.shape).copy()
        self._pending.append((self._step, name, ids, values))
        if self._actors:
            try:
                self._apply_pending()
            except _WorkerFailure as err:
                self._broken = err  # the next run recovers
                self._release()

    def _apply_pending(self):
        """Send the actors the state writes made at their current step (or
        before) that they have not received yet."""
        todo = []
        while (self._n_applied < len(self._pending)
               and self._pending[self._n_applied][0] <= self._step):
            todo.append(self._pending[self._n_applied])
            self._n_applied += 1
        bounds = self._bounds()
        for _, name, ids, values in todo:
            args = []
            for lo, hi in bounds:
                sel = (ids >= lo) & (ids < hi)
                args.append((name, ids[sel], values[sel]))
            self._call_all("set_state", args)
        if not self._ckpt_steps:  # no checkpoint, no recovery: nothing to apply again
            self._pending, self._n_applied = [], 0

    def get_state(self, name, ids=None):
        """State variable ``name`` (float64 per neuron; NaN where a
        neuron's model has no such variable), gathered from the workers."""
        if not self._actors and self._restore_step is None and self._broken is None:
            X = self._initial_state()[0]
            return self.flat.read_state(X, name, ids)
        out = np.empty(self.net.n_neurons)
        for lo, hi, values in self._gather("get_state", name):
            out[lo:hi] = values
        return out if ids is None else out[np.asarray(ids)]

    def _state(self):
        """(X, I_ou, inp) of all neurons (copies)."""
        if not self._actors and self._restore_step is None and self._broken is None:
            return self._initial_state()
        X, I_ou, inp = (np.empty((self.flat.n_state, self.net.n_neurons), self.dtype),
                        np.empty(self.net.n_neurons, self.dtype),
                        np.empty((2, self.net.n_neurons), self.dtype))
        for lo, hi, x, i, p in self._gather("state"):
            X[:, lo:hi], I_ou[lo:hi], inp[:, lo:hi] = x, i, p
        return X, I_ou, inp

    def _initial_state(self):
        """The state before any step (no actor started yet), with the state
        writes made since."""
        X, I_ou, inp = self.flat.initial_state()
        for _, name, ids, values in self._pending:
            rows = self.flat.state_row(name)
            mod = self.flat.model_of[ids]
            for k, r in enumerate(rows):
                if r is not None:
                    X[r, ids[mod == k]] = values[mod == k]
        return X, I_ou, inp

    def _gather(self, method, *args):
        """``method(*args)`` of every actor (started if needed)."""
        self._check_usable()
        try:
            if self._broken is not None:
                raise self._broken
            if not self._actors:
                self._start()
            return self._call_all(method, [args] * len(self._actors))
        except _WorkerFailure as err:
            self._broken = err  # the next run recovers
            self._release()
            raise DaskBackendError(f"a Dask worker was lost ({err}); the next run() continues "
                                   "from the last checkpoint") from None

    @property
    def X(self):
        """State array (n_state, N) gathered from the workers (a copy)."""
        return self._state()[0]

    @property
    def I_ou(self):
        return self._state()[1]

    @property
    def inp(self):
        return self._state()[2]

    # ----------------------------------------------------------------- run
    def run(self, sim, run, n, bar):
        """Simulate ``n`` steps from ``sim.step``: each chunk is appended to
        ``sim.recorder`` as it arrives (so checkpoints can name the results'
        lengths), the whole interval is filled into the RunRecord ``run``
        at the end; checkpoints and recovery from lost workers on the way."""
        self._check_usable()
        if self._root is None:
            self._open_results(sim)
        t_base, recoveries = sim.step, 0
        chunks, stats = [], _Stats()
        while sim.step < t_base + n or self._checkpoint_due(sim.step, t_base + n):
            try:
                if self._broken is not None:
                    err, self._broken = self._broken, None
                    raise err
                if not self._actors:
                    self._start()
                self._apply_pending()
                self._push_params()
                if self._checkpoint_due(sim.step, t_base + n):
                    self._checkpoint(sim)
                    continue
                end = t_base if sim.step < t_base else t_base + n
                k = min(self._chunk, end - sim.step)
                rec = self._run_chunk(sim.step, k, stats)
            except _WorkerFailure as err:
                recoveries += 1
                stats.recoveries = recoveries
                self._recover(sim, err, recoveries)
                chunks = [c for c in chunks if c["t0"] < sim.step]
                bar.n = max(0, sim.step - t_base)
                bar.refresh()
                continue
            sim.recorder.append(sim.net.dt, rec["t0"], k, rec["spike_step"],
                                rec["spike_neuron"], rec["rate_pop"], rec["rate_reg"],
                                rec["vm"], self.bin_steps)
            sim.step = self._step = sim.step + k
            if rec["t0"] >= t_base:
                chunks.append(rec)
                bar.update(k)
        self.stats = stats.summary(self)
        _fill(run, chunks)

    def _checkpoint_due(self, step, run_end):
        """A checkpoint is due every ``checkpoint_ms``, at the end of a run,
        and before stepping on from state written between runs."""
        if not self._ckpt_steps:
            return False
        if any(at == step for at, *_ in self._pending):
            return True
        last = self._last_checkpoint()
        if last == step:
            return False
        return step == run_end or step - (last or 0) >= self._ckpt_steps

    def _run_chunk(self, t0, k, stats):
        """Steps t0 .. t0 + k - 1 on all workers; their records merged."""
        c0 = time.perf_counter()
        out = self._call_all("run_chunk", [(t0, k, self.window, self.rec.rates)] *
                             len(self._actors))
        stats.add(out, time.perf_counter() - c0)
        steps = np.concatenate([o["spike_step"] for o in out])
        gids = np.concatenate([o["spike_neuron"] for o in out])
        order = np.lexsort((gids, steps))
        vm_ids = self.rec.vm_ids
        vm = np.zeros((k if vm_ids.size else 0, vm_ids.size), self.dtype)
        for o in out:
            vm[:, o["vm_cols"]] = o["vm"]
        return {"t0": t0, "n": k, "spike_step": steps[order], "spike_neuron": gids[order],
                "rate_pop": sum(o["rate_pop"] for o in out),
                "rate_reg": sum(o["rate_reg"] for o in out), "vm": vm}

    # --------------------------------------------------------- the store
    def _open_results(self, sim):
        """At the first run (the Recorder has opened the results): the
        folder of the checkpoints (the results store, else a temporary one)
        and the network store the workers read."""
        store = self._store
        if store is None:
            self._root = tempfile.mkdtemp(prefix="brainsim-dask-")
            self._cleanup.add(shutil.rmtree, self._root, True)
        else:
            self._root = os.path.abspath(os.fspath(store))
        in_results = False
        if self._net_path is None:
            self._net_path = os.path.join(self._root, "network")
            self._net_pending.save(self._net_path, overwrite=True)
            self._net_pending, in_results = None, store is not None
        ck = zarr.open_group(os.path.join(self._root, "checkpoints"), mode="w", zarr_format=3)
        ck.attrs["complete"] = []
        if self.rec.mode == 2:
            ck.create_array("rec_ids", data=np.flatnonzero(self.rec.mask))
        sim.recorder.update_attrs(dask=plain_json({
            "network_store": "network" if in_results else self._net_path,
            "checkpoint_ms": self._checkpoint_ms, "rec_mode": self.rec.mode,
            "rates": self.rec.rates, "window": self._window_arg, "threads": self.threads,
            "n_workers": len(self._assignment)}, "dask attrs"))

    def _checkpoint_path(self, step):
        return os.path.join(self._root, "checkpoints", str(int(step)))

    def _last_checkpoint(self):
        return self._checkpoints[-1] if self._checkpoints else None

    def _mark_complete(self):
        ck = zarr.open_group(os.path.join(self._root, "checkpoints"), mode="r+")
        ck.attrs["complete"] = list(self._checkpoints)

    def _checkpoint(self, sim):
        """Write a checkpoint at the current step (results kept so far end
        there): workers their partitions, the engine the Recorder's position
        and the parameters; marked complete last."""
        step, path = sim.step, self._checkpoint_path(sim.step)
        if step in self._checkpoints:  # written again (state changed): not complete meanwhile
            self._checkpoints.remove(step)
            self._mark_complete()
        g = zarr.open_group(path, mode="w", zarr_format=3)
        self._write_params(g)
        self._call_all("checkpoint", [(path, step)] * len(self._actors))
        position = sim.recorder.position()
        attrs = {"step": step, "t_ms": step * self.net.dt, "complete": True,
                 "n_partitions": len(self._part_info),
                 "bounds": [[lo, hi] for lo, hi, *_ in self._part_info]}
        if "lengths" in position:
            attrs["lengths"] = position["lengths"]
        g.update_attributes(plain_json(attrs))
        self._marks[step] = position
        self._checkpoints.append(step)
        for old in self._checkpoints[:-_KEEP_CHECKPOINTS]:
            shutil.rmtree(self._checkpoint_path(old), ignore_errors=True)
            self._marks.pop(old, None)
        self._checkpoints = self._checkpoints[-_KEEP_CHECKPOINTS:]
        self._pending = [p for p in self._pending if p[0] > step]  # none: in the checkpoint
        self._n_applied = 0
        self._mark_complete()

    def _write_params(self, g):
        net = self.net
        modified = net.version != self._base_version
        g.attrs["params"] = plain_json(
            {name: p.params for name, p in net.populations.items()} if modified else None)
        if modified:
            for sub, arrays in (("columns", net.columns), ("inputs", net.inputs)):
                grp = g.create_group(sub)
                for name, arr in arrays.items():
                    put_array(grp, name, np.asarray(arr, np.float64))

    # ------------------------------------------------------------ failures
    def _recover(self, sim, err, attempt):
        """Go back to the last checkpoint on the workers present (new actors
        start in the run loop), or raise WorkerLostError."""
        self._release()
        ckpt = self._last_checkpoint()
        if not self._ckpt_steps or attempt > self._max_recoveries:
            where = self._store if self._store is not None else "(in memory)"
            if not self._ckpt_steps:
                hint, ckpt = "no checkpoint to resume from (checkpoint_ms=None)", None
            else:
                ckpt = ckpt or 0
                hint = (f"gave up after {self._max_recoveries} recoveries; resume from "
                        f"checkpoint step {ckpt} ({ckpt * self.net.dt:g} ms) with "
                        f"brainsim.Simulation.resume({where!r})")
            self._lost = err
            raise WorkerLostError(f"a Dask worker was lost at step {sim.step} ({err}); {hint}",
                                  store=self._store, checkpoint=ckpt) from None
        try:
            self.client.wait_for_workers(len(self._assignment), timeout=self._timeout)
        except (TimeoutError, OSError):
            pass  # go on with the workers present
        self._plan(recovering=True)
        self._rewind(sim, ckpt)

    def _rewind(self, sim, step):
        """Cut the kept results back to checkpoint ``step`` (None: to the
        start) and restart the actors from it (in the run loop)."""
        sim.recorder.rewind(self._marks.get(step), (step or 0) * self.net.dt)
        sim.step = self._step = step or 0
        self._restore_step = step

    # -------------------------------------------------------------- resume
    def _attach(self, sim, path, group, step):
        """Continue the run of results store ``path`` from its checkpoint at
        ``step`` (0 without one): results after it are cut off."""
        steps = _complete_checkpoints(path)
        kept = [s for s in steps if s <= step]
        if step in kept:
            self._check_checkpoint(path, step)
        sim._store = (path, False)
        sim.recorder.attach(path)
        self._store = self._root = path
        self._checkpoints = kept
        for later in (s for s in steps if s > step):  # their results are cut off
            shutil.rmtree(self._checkpoint_path(later), ignore_errors=True)
        self._mark_complete()
        stored = sim.recorder.writer.lengths()
        for s in kept:
            ck = zarr.open_group(self._checkpoint_path(s), mode="r")
            self._marks[s] = {"lengths": checked_lengths(dict(ck.attrs).get("lengths"), stored,
                                                         f"checkpoint step {s} in {path!r}")}
        self._rewind(sim, step if step in kept else None)

    def _check_checkpoint(self, path, step):
        ck = dict(zarr.open_group(os.path.join(path, "checkpoints", str(step)), mode="r").attrs)
        bounds = [[lo, hi] for lo, hi, *_ in self._part_info]
        if ck["bounds"] != bounds:
            raise StoreError(f"checkpoint step {step} in {path!r} has {len(ck['bounds'])} "
                             f"partitions {ck['bounds']}, but the network store has "
                             f"{len(bounds)} partitions {bounds}; resume needs the same "
                             "network store")
        if ck.get("params"):
            self._load_params(os.path.join(path, "checkpoints", str(step)), ck["params"])

    def _load_params(self, ck_path, pop_params):
        from ..neurons import full_params
        from ..store import check_loaded_values
        g = zarr.open_group(ck_path, mode="r")
        net = self.net
        where = f"checkpoint {ck_path!r}"
        columns, inputs = {}, {}
        for sub, out in (("columns", columns), ("inputs", inputs)):
            for name in sorted(g[sub].array_keys()):
                out[name] = get_checked(g[sub], name, where, np.float64, (net.n_neurons,))
        if set(pop_params) != set(net.populations):
            raise CheckpointError(f"{where}: parameters of populations {sorted(pop_params)}, "
                                  f"the network has {sorted(net.populations)}")
        params = {name: full_params(net.populations[name].model, p)
                  for name, p in pop_params.items()}
        old = (net.columns, net.inputs, {n: q.params for n, q in net.populations.items()})
        net.columns, net.inputs = columns, inputs
        for name, p in params.items():
            net.populations[name].params = p
        try:
            check_loaded_values(net, ck_path)
        except StoreError as err:
            net.columns, net.inputs = old[0], old[1]
            for name, p in old[2].items():
                net.populations[name].params = p
            raise CheckpointError(str(err)) from None
        net.version += 1


# ---------------------------------------------------------------- helpers
def _fill(run, chunks):
    """Put the chunks of this run (in order, tiling it) into the RunRecord."""
    for c in chunks:
        run.add_spikes(c["spike_step"], c["spike_neuron"])
        i = c["t0"] - run.t_base
        if run.rate_pop.shape[0]:
            b = i // run.bin_steps
            run.rate_pop[b:b + c["rate_pop"].shape[0]] = c["rate_pop"]
            run.rate_reg[b:b + c["rate_reg"].shape[0]] = c["rate_reg"]
        if run.vm.size:
            run.vm[i:i + c["n"]] = c["vm"]


class _Stats:
    """Per-window timings gathered from the workers' chunk reports (s)."""

    def __init__(self):
        self.windows = 0
        self.wall = self.advance = self.exchange = self.links = self.driver = 0.0
        self.chunks = self.recoveries = 0

    def add(self, out, driver_wall):
        t = [o["timing"] for o in out]
        self.chunks += 1
        self.windows += t[0]["windows"]
        self.wall += max(x["wall"] for x in t)
        self.advance += float(np.mean([x["advance"] for x in t]))
        self.exchange += float(np.mean([x["exchange"] for x in t]))
        self.links += float(np.mean([x["links"] for x in t]))
        self.driver += driver_wall

    def summary(self, sim):
        w = max(self.windows, 1)
        return {"n_workers": len(sim._assignment), "window_steps": sim.window,
                "max_window_steps": sim.max_window, "windows": self.windows,
                "chunks": self.chunks, "wall_s": self.driver,
                "advance_s_per_window": self.advance / w,
                "overhead_s_per_window": (self.wall - self.advance) / w,
                "exchange_s_per_window": self.exchange / w,
                "links_s_per_window": self.links / w,
                "driver_s_per_chunk": (self.driver - self.wall) / max(self.chunks, 1),
                "recoveries": self.recoveries,
                **sim._routes}


class _Cleanup:
    """Callbacks run once, in reverse order (close clients, remove folders)."""

    def __init__(self):
        self.items = []

    def add(self, func, *args):
        self.items.append((func, args))

    def run(self):
        while self.items:
            func, args = self.items.pop()
            try:
                func(*args)
            except Exception:  # best effort at shutdown
                pass


async def _wait_all(client, futs, addrs, timeout):
    """Results of (actor) futures on the workers ``addrs``; _WorkerFailure as
    soon as one fails or one of the workers leaves the cluster. The calls on
    workers still alive are awaited first (up to ``timeout`` s, 30 s at
    most: they stop through their closed spike links), so that no old call
    occupies a worker's actor thread. A BrainsimError raised on a worker
    (bad input, not a lost worker) is re-raised."""
    async def one(f):
        return await f
    tasks = [asyncio.ensure_future(one(f)) for f in futs]
    failure, pending = None, set(tasks)
    while pending and failure is None:
        done, pending = await asyncio.wait(pending, timeout=1.0,
                                           return_when=asyncio.FIRST_EXCEPTION)
        bad = [t.exception() for t in done if t.exception() is not None]
        if bad:
            failure = bad[0]
        elif pending and set(addrs) - await _alive(client):
            failure = OSError(f"worker(s) {sorted(set(addrs) - await _alive(client))} left "
                              "the cluster")
    if failure is None:
        return [t.result() for t in tasks]
    alive = await _alive(client)
    rest = [t for t, a in zip(tasks, addrs) if t in pending and a in alive]
    if rest:
        await asyncio.wait(rest, timeout=min(timeout, 30.0))
    for t in pending:
        t.cancel()
    # a worker that refused bad input (a LinkError, a DivergenceError) closes its links, so
    # its peers fail too: its error, not theirs, says what happened
    errors = [t.exception() for t in tasks if t.done() and not t.cancelled()]
    failure = next((e for e in errors if isinstance(e, BrainsimError)), failure)
    if isinstance(failure, BrainsimError):
        raise failure
    raise _WorkerFailure(f"{type(failure).__name__}: {failure}")


async def _raise(err):
    raise err


async def _alive(client):
    return set((await client.scheduler.identity(n_workers=-1))["workers"])


def assign_partitions(loads, n_workers):
    """Contiguous ranges [(a, b), ...] of partitions, one per worker, with
    sums of ``loads`` as equal as the cuts allow (each range non-empty)."""
    n = len(loads)
    cum = np.concatenate([[0.0], np.cumsum(loads)])
    cuts, prev = [0], 0
    for j in range(1, n_workers):
        want = cum[-1] * j / n_workers
        cand = np.arange(prev + 1, n - (n_workers - j) + 1)
        c = int(cand[np.argmin(np.abs(cum[cand] - want))])
        cuts.append(c)
        prev = c
    cuts.append(n)
    return list(zip(cuts[:-1], cuts[1:]))


def _partition_bytes(n_neurons, n_syn, n_src):
    """Estimated worker memory (bytes) for one partition."""
    return BYTES_PER_SYNAPSE * n_syn + BYTES_PER_ROW * (n_neurons + 1) + 16 * n_src


def _known_partitions(net, n_partitions):
    """Partitions of ``net`` (a Network or a store path) if known without
    building or loading anything, else ``n_partitions``."""
    if isinstance(net, Network) and net._partitions is not None:
        return len(net._partitions)
    if isinstance(net, Network) and net._lazy_store is not None:
        net = net._lazy_store
    if isinstance(net, (str, os.PathLike)):
        try:
            return len(zarr.open_group(os.fspath(net), mode="r").attrs["partitions"])
        except Exception:  # load_network reports a bad store properly
            return n_partitions
    return n_partitions


def _partition_sizes(net, path):
    """[(lo, hi, n_synapses, n_sources)] per partition, from the store's
    metadata (nothing loaded) or from a network in memory."""
    if path is None:
        return [(p.lo, p.hi, p.n_synapses, p.sources.size) for p in net.partitions]
    g = zarr.open_group(path, mode="r")
    out = []
    for k, (lo, hi) in enumerate(g.attrs["partitions"]):
        try:
            sub = g[f"partitions/{k}"]
            out.append((lo, hi, sub["targets"].shape[0], sub["sources"].shape[0]))
        except KeyError:
            raise StoreError(f"{path!r}: partition {k} is missing") from None
    return out


def _open_results_group(path):
    if not os.path.exists(path):
        from ..errors import StoreNotFoundError
        raise StoreNotFoundError(f"results store not found: {path!r}")
    group = zarr.open_group(path, mode="r")
    check_schema(dict(group.attrs), RESULTS_SCHEMA, 1, path)
    return group


def _complete_checkpoints(path):
    try:
        ck = zarr.open_group(os.path.join(path, "checkpoints"), mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return []
    return [int(s) for s in ck.attrs.get("complete", [])]


def _pick_checkpoint(path, checkpoint):
    steps = _complete_checkpoints(path)
    if checkpoint is None:
        return steps[-1] if steps else 0
    if checkpoint not in steps and checkpoint != 0:
        raise ParameterError(f"checkpoint must be one of the complete checkpoints {steps} "
                             f"(steps) of {path!r}, or 0, got {checkpoint!r}")
    return int(checkpoint)


def _record_of(group, path, info):
    if info["rec_mode"] == 2:
        spikes = zarr.open_group(os.path.join(path, "checkpoints"), mode="r")["rec_ids"][:]
    else:
        spikes = info["rec_mode"] == 1
    vm = group["neuron"][:]
    return {"spikes": spikes, "rates": info["rates"], "V_m": vm if vm.size else None}


def _positive(name, value, unit):
    return number(name, value, low=0, low_open=True, unit=unit)


def _check_options(window, checkpoint_ms, max_recoveries):
    if window is not None:
        integer("window (steps per exchange, or None)", window, low=1, strict=True)
    if checkpoint_ms is not None:
        _positive("checkpoint_ms", checkpoint_ms, "ms")
    integer("max_recoveries", max_recoveries, low=0, strict=True)


#: what ``resume`` takes from the stored run and cannot change
_FIXED = ("backend", "seed", "record", "dtype", "rate_bin", "store", "overwrite", "keep",
          "n_partitions")


def resume(simulation, store, client=None, checkpoint=None, **kwargs):
    """The target of ``Simulation.resume``: a ``simulation`` (the Simulation
    class) continuing the dask run of results store ``store`` from its last
    complete checkpoint (or step ``checkpoint``, or 0: from the start);
    results after that step are cut off. Keywords: client, workers, threads,
    window, checkpoint_ms, timeout, link_timeout, max_recoveries (as for
    ``Simulation(..., backend="dask")``). Models of the network that are not
    built in must be registered in this process first."""
    path = os.path.abspath(os.fspath(store))
    group = _open_results_group(path)
    attrs = dict(group.attrs)
    if "dask" not in attrs:
        raise StoreError(f"{path!r} was not written by the dask backend (no checkpoints); "
                         "only dask runs can be resumed")
    info = attrs["dask"]
    step = _pick_checkpoint(path, checkpoint)
    fixed = sorted(set(_FIXED) & set(kwargs))
    if fixed:
        raise ParameterError(f"resume continues the stored run; {fixed} cannot be changed "
                             f"(allowed: threads, {', '.join(OPTIONS)})")
    net_path = info["network_store"]
    if not os.path.isabs(net_path):
        net_path = os.path.join(path, net_path)
    opts = {"threads": info["threads"], "window": info["window"],
            "checkpoint_ms": info["checkpoint_ms"], **kwargs}
    sim = simulation(net_path, backend="dask", seed=attrs["seed"],
                     record=_record_of(group, path, info), dtype=attrs["dtype"],
                     rate_bin=attrs["rate_bin_ms"], client=client, **opts)
    try:
        sim.engine._attach(sim, path, group, step)
    except BaseException:
        sim.close()
        raise
    return sim
