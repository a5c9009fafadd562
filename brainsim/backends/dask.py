"""Dask backend: partitions held by Dask workers, spikes exchanged in windows.

    sim = brainsim.Simulation("net.zarr", backend="dask", client=client,
                              store="run.zarr", seed=1)
    ds = sim.run(1000.0)                                  # ms
    sim = brainsim.Simulation.resume("run.zarr")          # after a crash

Each worker holds a contiguous range of partitions in a
:class:`~brainsim.backends.dask_worker.PartitionSet` actor, loaded straight
from the network store (an in-memory Network is saved first, into the
results store's ``network/`` group or a temporary folder). Workers advance
windows of W steps, W = the smallest delay of a synapse whose source is on
another worker, and exchange the window's spikes directly over TCP with the
workers that hold targets of them (dask_worker.py). Spikes are bit-identical
to the CPU backend for any number of workers.

Results. The driver gathers each chunk's recorded spikes, rate counts and
V_m from the workers, merges them in (step, id) order and appends them to
the results store: the CPU backend's layout and order, read with
``open_results``. Workers write their own partitions' state into the
checkpoints (disjoint groups ``checkpoints/<step>/p<k>``).

Checkpoints and failures. Every ``checkpoint_ms`` of simulated time and at
the end of every ``run``, the state (V, synaptic traces, refractory counts,
OU current, the spikes of the last max_delay steps, the step; the noise is
counter-based) goes to ``checkpoints/<step>`` of the results store; the last
two complete ones are kept. If a worker dies during ``run``, the run goes
back to the last complete checkpoint on the workers then present (a nanny
restarts killed workers) and continues without user action, up to
``max_recoveries`` times per run; then, or without a checkpoint, it raises
:class:`WorkerLostError` naming the checkpoint to resume from with
``Simulation.resume(store)``.
"""
import asyncio
import os
import shutil
import tempfile
import time
import weakref

import numpy as np
import zarr
from tqdm.auto import tqdm

from .._version import __version__
from ..errors import BrainsimError, ParameterError, StoreError
from ..network import Network
from ..results import SCHEMA as RESULTS_SCHEMA
from ..results import ResultsWriter, check_path, check_schema, make_dataset, plain_json
from ..simulation import _DTYPES, Simulation
from . import check_backend
from .dask_worker import PartitionSet

BYTES_PER_SYNAPSE = 20  # loaded arrays (10) + the synapse table built from them (8) + segments
BYTES_PER_NEURON = 256  # global-length state, parameter and input arrays per worker
BYTES_PER_ROW = 16  # dense row index and segment pointer, per partition and neuron
MEMORY_FRACTION = 0.8  # of a worker's memory_limit (distributed pauses there)
_KEEP_CHECKPOINTS = 2
# results arrays, all appended along their first dimension (spike, time, time_vm)
_RESULT_ARRAYS = ("spike_step", "spike_neuron", "time", "rate", "rate_region", "time_vm", "V_m")


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


class DaskSimulation(Simulation):
    """``Simulation(net_or_store, backend="dask", client=...)``.

    Parameters are those of :class:`brainsim.Simulation` (``net`` may also be
    the path of a network store, which is then never loaded whole in this
    process), plus:

    client : distributed.Client, str or None
        The cluster: a Client (LocalCluster, dask-jobqueue's SLURMCluster,
        ...), a scheduler address (``"tcp://host:8786"``), or None for a
        LocalCluster with one single-threaded worker process per core (up
        to the number of partitions), closed by ``close()``.
    workers : int or list of str, optional
        Use only the first ``workers`` workers (sorted by address) or these
        addresses; default all, at most one per partition.
    threads : int, optional
        Numba threads per worker (default: the worker's Dask threads).
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
    n_partitions : int, optional
        For an unbuilt Network: partitions to build (default: one per
        worker thread, as a worker steps one partition per Numba thread).
        For a store or a built network: must equal its partition count (a
        mismatch raises).
    """

    def __init__(self, net, backend="dask", seed=1, record=None, store=None, dtype="float64",
                 threads=None, rate_bin=None, n_partitions=None, overwrite=False, *,
                 client=None, workers=None, window=None, checkpoint_ms=1000.0, timeout=30.0,
                 link_timeout=600.0, max_recoveries=3):
        check_backend(backend)
        _check_common(dtype, seed, threads, window, checkpoint_ms, max_recoveries)
        self.backend = "dask"
        self.seed, self.dtype, self.threads = int(seed), _DTYPES[dtype], threads
        self._timeout = _positive("timeout", timeout, "s")
        self._link_timeout = _positive("link_timeout", link_timeout, "s")
        self._max_recoveries = int(max_recoveries)
        self._window_arg, self._checkpoint_ms = window, checkpoint_ms
        self._cleanup = _Cleanup()
        self._finalizer = weakref.finalize(self, self._cleanup.run)
        self._worker_arg = workers
        try:
            self.client = self._connect(client, timeout, _known_partitions(net, n_partitions))
            self._open_network(net, n_partitions)
            self.step = 0
            self.bin_steps = self._bin_steps(rate_bin)
            self._init_record(record)
            self._init_static_header()
            self._plan()  # fail now: workers, memory
            if store is not None:
                check_path(store, RESULTS_SCHEMA, overwrite, "results store")
        except BaseException:
            self._finalizer()  # a cluster started here does not outlive the error
            raise
        self._store = (store, overwrite)
        self._extra_attrs = {}
        self.writer = None
        self._actors = []
        self._restore_step = None
        self._checkpoints = []
        self._lost = None
        self.stats = {}

    @property
    def n_partitions(self):
        """Partitions of the simulated network."""
        return len(self._part_info)

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
    def _open_network(self, net, n_partitions):
        from ..store import load_network
        if isinstance(net, (str, os.PathLike)):
            self.net = load_network(net, lazy=True)
            self._net_path, self._net_pending = os.path.abspath(os.fspath(net)), None
        elif isinstance(net, Network):
            if not net.is_built:
                net.build(n_partitions if n_partitions is not None else self._default_parts())
            self.net = net
            lazy = net._lazy_store if net._partitions is None else None  # synapses on disk
            self._net_path = os.path.abspath(lazy) if lazy else None
            self._net_pending = None if lazy else net
        else:
            raise ParameterError(f"net must be a Network or the path of a network store, got "
                                 f"{type(net).__name__} {net!r}")
        self._part_info = _partition_sizes(self.net, self._net_path)
        n_parts = len(self._part_info)
        if n_partitions is not None and n_partitions != n_parts:
            where = self._net_path or "the built network"
            raise ParameterError(f"n_partitions={n_partitions!r} does not match the "
                                 f"{n_parts} partitions of {where}; omit n_partitions or "
                                 "rebuild the network with that many partitions")
        self._base_version = self.net.version
        self._pushed_version = self.net.version

    def _default_parts(self):
        """One partition per worker thread: a worker steps its partitions on
        its Numba threads, one partition per thread at a time."""
        return sum(self.threads or int(info.get("nthreads", 1)) for _, info in self._workers())

    def _init_static_header(self):
        net = self.net
        self.pop_n = np.array([p.n for p in net.populations.values()], float)
        self.reg_n = np.bincount(net.region_index(), minlength=len(net.regions)).astype(float)
        dt = net.dt
        ms = self._checkpoint_ms
        per = max(1, int(round(min(100.0, ms or 100.0) / dt)))
        if self.rec_rates:
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

    def _spec(self, index, a, b, info):
        bounds = [(self._part_info[a][0], self._part_info[b - 1][1])
                  for _, _, a, b in self._assignment]
        lo, hi = bounds[index]
        rec_ids = np.flatnonzero(self.rec_mask[lo:hi]) + lo if self.rec_mode == 2 else []
        return {"network": self._net_path, "parts": list(range(a, b)), "index": index,
                "owners": bounds, "seed": self.seed, "dtype": np.dtype(self.dtype).name,
                "bin_steps": self.bin_steps, "rec_mode": self.rec_mode, "rec_ids": rec_ids,
                "vm_ids": self.vm_ids, "timeout": self._link_timeout,
                "threads": self.threads or int(info.get("nthreads", 1))}

    def _start(self):
        """Actors on their workers, routes, links, state (fresh or restored)."""
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
        if len(desc) > 1:
            addrs = dict(enumerate(self._call_all("open_port")))
            self._call_all("connect", [(addrs, list(d["needs"])) for d in desc])
        self._routes = {"messages_per_window": sum(len(r) for r in routes),
                        "routed_sources": int(sum(ids.size for r in routes for ids in r.values()))}
        if self.net.version != self._base_version:
            self._push_params(force=True)
        if self._restore_step:
            path = self._checkpoint_path(self._restore_step)
            self._call_all("restore", [(path, self._restore_step, len(self._part_info))] *
                           len(desc))

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
        if getattr(self, "_futures", None):
            self.client.cancel(self._futures)
        self._actors, self._futures = [], []

    def close(self):
        """Release the actors, and the LocalCluster / Client this
        simulation started; remove temporary stores."""
        self._release()
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ----------------------------------------------------------------- run
    def _meta(self):
        net = self.net
        return {
            "dt": net.dt, "seed": self.seed, "network_seed": net.seed, "backend": "dask",
            "brainsim_version": __version__, "dtype": np.dtype(self.dtype).name,
            "populations": list(net.populations), "regions": net.regions,
            "population_sizes": [p.n for p in net.populations.values()],
            "rate_bin_ms": self.bin_steps * net.dt, "n_partitions": len(self._part_info),
            "time_units": "ms",
        }

    def _refresh_params(self):
        self._push_params()

    def run(self, t_ms, progress=False):
        """Advance by ``t_ms`` (ms); same Dataset and results store as the
        CPU backend (see :meth:`brainsim.Simulation.run`)."""
        n = self._n_steps(t_ms)
        if self._lost is not None:
            raise DaskBackendError(f"this simulation lost a worker ({self._lost}); continue with "
                                   "brainsim.Simulation.resume(store)")
        if self.writer is None:
            self._open_results()
        t_base, recoveries = self.step, 0
        chunks, stats = [], _Stats()
        with tqdm(total=n, unit="step", disable=not progress, desc="brainsim") as bar:
            while self.step < t_base + n or self._checkpoint_due(t_base + n):
                try:
                    if not self._actors:
                        self._start()
                    self._push_params()
                    if self._checkpoint_due(t_base + n):
                        self._checkpoint()
                        continue
                    end = t_base if self.step < t_base else t_base + n
                    k = min(self._chunk, end - self.step)
                    rec = self._run_chunk(k, stats)
                except _WorkerFailure as err:
                    recoveries += 1
                    stats.recoveries = recoveries
                    self._recover(err, recoveries)
                    chunks = [c for c in chunks if c["t0"] < self.step]
                    bar.n = max(0, self.step - t_base)
                    continue
                self.step += k
                if rec["t0"] >= t_base:
                    chunks.append(rec)
                    bar.update(k)
        self.stats = stats.summary(self)
        return self._dataset(t_base, n, chunks)

    def _checkpoint_due(self, run_end):
        """A checkpoint is due every ``checkpoint_ms`` and at the end of a run."""
        if not self._ckpt_steps or self._last_checkpoint() == self.step:
            return False
        return self.step == run_end or self.step - self._last_checkpoint() >= self._ckpt_steps

    def _run_chunk(self, k, stats):
        t0 = self.step
        c0 = time.perf_counter()
        out = self._call_all("run_chunk", [(t0, k, self.window, self.rec_rates)] *
                             len(self._actors))
        stats.add(out, time.perf_counter() - c0)
        steps = np.concatenate([o["spike_step"] for o in out])
        gids = np.concatenate([o["spike_neuron"] for o in out])
        order = np.lexsort((gids, steps))
        vm = np.zeros((k if self.vm_ids.size else 0, self.vm_ids.size), self.dtype)
        for o in out:
            vm[:, o["vm_cols"]] = o["vm"]
        rec = {"t0": t0, "n": k, "spike_step": steps[order], "spike_neuron": gids[order],
               "rate_pop": sum(o["rate_pop"] for o in out),
               "rate_reg": sum(o["rate_reg"] for o in out), "vm": vm}
        self._write_chunk(rec)
        return rec

    def _rates(self, rec):
        bin_s = self.bin_steps * self.net.dt * 1e-3
        rate = rec["rate_pop"] / (self.pop_n * bin_s)
        rate_r = rec["rate_reg"] / (self.reg_n * bin_s)
        t_bins = (rec["t0"] + np.arange(rate.shape[0]) * self.bin_steps) * self.net.dt
        return t_bins, rate, rate_r

    def _write_chunk(self, rec):
        dt = self.net.dt
        t_bins, rate, rate_r = self._rates(rec)
        t_vm = (rec["t0"] + 1 + np.arange(rec["vm"].shape[0])) * dt
        self.writer.append(spike_step=rec["spike_step"], spike_neuron=rec["spike_neuron"],
                           time=t_bins, rate=rate, rate_region=rate_r, time_vm=t_vm,
                           V_m=rec["vm"].astype(np.float64))
        self.writer.update_attrs(t_stop=(rec["t0"] + rec["n"]) * dt)

    def _dataset(self, t_base, n, chunks):
        dt = self.net.dt
        cat = (lambda key, shape: np.concatenate([c[key] for c in chunks]) if chunks
               else np.zeros(shape))
        parts = [self._rates(c) for c in chunks]
        n_pop, n_reg = len(self.pop_n), len(self.reg_n)
        t_bins = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
        rate = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, n_pop))
        rate_r = np.concatenate([p[2] for p in parts]) if parts else np.zeros((0, n_reg))
        vm = cat("vm", (0, self.vm_ids.size)).astype(np.float64)
        t_vm = (t_base + 1 + np.arange(vm.shape[0])) * dt
        meta = {**self._meta(), "t_start": t_base * dt, "t_stop": self.t}
        return make_dataset(meta, cat("spike_step", 0).astype(np.int64),
                            cat("spike_neuron", 0).astype(np.int32), t_bins, rate, rate_r, t_vm,
                            vm, self.vm_ids)

    # --------------------------------------------------------- the store
    def _open_results(self):
        store, overwrite = self._store
        meta = {**self._meta(), **self._extra_attrs}
        self.writer = ResultsWriter(store, meta, len(self.pop_n), len(self.reg_n),
                                    self.vm_ids, overwrite=overwrite)
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
        if self.rec_mode == 2:
            ck.create_array("rec_ids", data=np.flatnonzero(self.rec_mask))
        self.writer.update_attrs(dask=plain_json({
            "network_store": "network" if in_results else self._net_path,
            "checkpoint_ms": self._checkpoint_ms, "rec_mode": self.rec_mode,
            "rates": self.rec_rates, "window": self._window_arg, "threads": self.threads,
            "n_workers": len(self._assignment)}, "dask attrs"))

    def _checkpoint_path(self, step):
        return os.path.join(self._root, "checkpoints", str(int(step)))

    def _last_checkpoint(self):
        return self._checkpoints[-1] if self._checkpoints else 0

    def _checkpoint(self):
        """Write a checkpoint at the current step (results written so far
        end there): workers their partitions, the driver lengths and
        parameters; marked complete last."""
        step, path = self.step, self._checkpoint_path(self.step)
        g = zarr.open_group(path, mode="w", zarr_format=3)
        self._write_params(g)
        self._call_all("checkpoint", [(path, step)] * len(self._actors))
        lengths = {name: int(self.writer.group[name].shape[0]) for name in _RESULT_ARRAYS}
        g.attrs.update(plain_json({"step": step, "t_ms": step * self.net.dt,
                                   "lengths": lengths, "complete": True,
                                   "n_partitions": len(self._part_info),
                                   "bounds": [[lo, hi] for lo, hi, *_ in self._part_info]}))
        self._checkpoints.append(step)
        for old in self._checkpoints[:-_KEEP_CHECKPOINTS]:
            shutil.rmtree(self._checkpoint_path(old), ignore_errors=True)
        self._checkpoints = self._checkpoints[-_KEEP_CHECKPOINTS:]
        ck = zarr.open_group(os.path.join(self._root, "checkpoints"), mode="r+")
        ck.attrs["complete"] = list(self._checkpoints)

    def _write_params(self, g):
        net = self.net
        modified = net.version != self._base_version
        g.attrs["params"] = plain_json(
            {name: p.params for name, p in net.populations.items()} if modified else None)
        if modified:
            for sub, arrays in (("columns", net.columns), ("inputs", net.inputs)):
                grp = g.create_group(sub)
                for name, arr in arrays.items():
                    grp.create_array(name, data=np.asarray(arr, np.float64))

    # ------------------------------------------------------------ failures
    def _recover(self, err, attempt):
        """Go back to the last checkpoint on the workers present (new actors
        start in the run loop), or raise WorkerLostError."""
        self._release()
        ckpt = self._last_checkpoint()
        if not self._ckpt_steps or attempt > self._max_recoveries:
            where = self._store[0] if self._store[0] is not None else "(in memory)"
            if not self._ckpt_steps:
                hint, ckpt = "no checkpoint to resume from (checkpoint_ms=None)", None
            else:
                hint = (f"gave up after {self._max_recoveries} recoveries; resume from "
                        f"checkpoint step {ckpt} ({ckpt * self.net.dt:g} ms) with "
                        f"brainsim.Simulation.resume({where!r})")
            self._lost = err
            raise WorkerLostError(f"a Dask worker was lost at step {self.step} ({err}); {hint}",
                                  store=self._store[0], checkpoint=ckpt) from None
        try:
            self.client.wait_for_workers(len(self._assignment), timeout=self._timeout)
        except (TimeoutError, OSError):
            pass  # go on with the workers present
        self._plan(recovering=True)
        self._rewind(ckpt)
        self._restore_step = ckpt  # the run loop starts new actors from there

    def _rewind(self, step):
        """Cut the results store back to checkpoint ``step`` (0: empty)."""
        lengths = {name: 0 for name in _RESULT_ARRAYS}
        if step:
            ck = zarr.open_group(self._checkpoint_path(step), mode="r")
            lengths = dict(ck.attrs)["lengths"]
        self.writer = _AppendWriter(self.writer.group, lengths)
        self.writer.update_attrs(t_stop=step * self.net.dt)
        self.step = step

    # -------------------------------------------------------------- resume
    @classmethod
    def resume(cls, store, client=None, checkpoint=None, **kwargs):
        """A simulation continuing the run of results store ``store`` from
        its last complete checkpoint (or step ``checkpoint``); results after
        the checkpoint are cut off. Keywords (workers, threads, window,
        timeout, ...) as for the constructor."""
        path = os.path.abspath(os.fspath(store))
        group = _open_results_group(path)
        attrs = dict(group.attrs)
        if "dask" not in attrs:
            raise StoreError(f"{path!r} was not written by the dask backend (no checkpoints); "
                             "only dask runs can be resumed")
        info = attrs["dask"]
        step = _pick_checkpoint(path, checkpoint)
        net_path = info["network_store"]
        if not os.path.isabs(net_path):
            net_path = os.path.join(path, net_path)
        record = _record_of(group, path, info)
        fixed = {"seed", "record", "dtype", "rate_bin", "store", "overwrite", "n_partitions"}
        if fixed & set(kwargs):
            raise ParameterError(f"resume continues the stored run; {sorted(fixed & set(kwargs))} "
                                 f"cannot be changed (allowed: client, workers, threads, window, "
                                 f"checkpoint_ms, timeout, link_timeout, max_recoveries)")
        opts = {"threads": info["threads"], "window": info["window"],
                "checkpoint_ms": info["checkpoint_ms"], **kwargs}
        sim = cls(net_path, seed=attrs["seed"], record=record, dtype=attrs["dtype"],
                  rate_bin=attrs["rate_bin_ms"], client=client, **opts)
        try:
            sim._check_checkpoint(path, step)
            sim._attach(path, group, step)
        except BaseException:
            sim.close()
            raise
        return sim

    def _check_checkpoint(self, path, step):
        if not step:
            return
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
        g = zarr.open_group(ck_path, mode="r")
        net = self.net
        net.columns = {k: a[:] for k, a in g["columns"].arrays()}
        net.inputs = {k: a[:] for k, a in g["inputs"].arrays()}
        for name, params in pop_params.items():
            net.populations[name].params = dict(params)
        net.version += 1

    def _attach(self, path, group, step):
        self._store = (path, False)
        self._root = path
        self.writer = _AppendWriter(zarr.open_group(path, mode="r+"),
                                    {name: group[name].shape[0] for name in _RESULT_ARRAYS})
        steps = _complete_checkpoints(path)
        self._checkpoints = [s for s in steps if s <= step]
        for later in (s for s in steps if s > step):  # their results are cut off
            shutil.rmtree(self._checkpoint_path(later), ignore_errors=True)
        zarr.open_group(os.path.join(path, "checkpoints"), mode="r+").attrs["complete"] = \
            self._checkpoints
        self._rewind(step)
        self._restore_step = step


# ---------------------------------------------------------------- helpers
class _AppendWriter(ResultsWriter):
    """A ResultsWriter appending to an existing results group, first cut
    back to ``lengths`` (entries along each array's first dimension)."""

    def __init__(self, group, lengths):  # no super().__init__: the arrays exist
        self.group = group
        self._arrays = {}
        for name in _RESULT_ARRAYS:
            arr = group[name]
            n = int(lengths[name])
            if arr.shape[0] != n:
                arr.resize((n, *arr.shape[1:]))
            self._arrays[name] = arr


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
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ParameterError(f"{name} must be a number > 0 {unit}, got {value!r}")
    return float(value)


def _check_common(dtype, seed, threads, window, checkpoint_ms, max_recoveries):
    if dtype not in _DTYPES:
        raise ParameterError(f"dtype must be one of {list(_DTYPES)}, got {dtype!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ParameterError(f"seed must be an integer >= 0, got {seed!r}")
    for name, v in (("threads", threads), ("window", window)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))
                              or v < 1):
            raise ParameterError(f"{name} must be an integer >= 1 or None, got {v!r}")
    if checkpoint_ms is not None:
        _positive("checkpoint_ms", checkpoint_ms, "ms")
    if isinstance(max_recoveries, bool) or not isinstance(max_recoveries, (int, np.integer)) \
            or max_recoveries < 0:
        raise ParameterError(f"max_recoveries must be an integer >= 0, got {max_recoveries!r}")


def resume(store, **kwargs):
    """``DaskSimulation.resume``: the target of ``Simulation.resume``."""
    return DaskSimulation.resume(store, **kwargs)
