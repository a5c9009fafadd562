"""Simulation: the run loop, recording and provenance around an engine.

    sim = brainsim.Simulation(net, backend="cpu", seed=1, store="run.zarr")
    ds = sim.run(1000.0, progress=True)      # ms; returns this interval
    ds2 = sim.run(500.0)                     # continues
    all_ = brainsim.open_results("run.zarr")  # the whole run

A Simulation holds an engine (``brainsim.backends``: cpu, cuda or dask)
behind one interface; the engine owns the state, the Simulation the time,
the recording and the results.
"""
import os
import time

import numba
import numpy as np
from tqdm.auto import tqdm

from ._version import __version__
from .backends import check_backend, engine_class
from .errors import ParameterError
from .network import Network
from .recording import Recorder, RecordSpec, RunRecord
from .results import SCHEMA as RESULTS_SCHEMA
from .results import check_path
from .validation import integer, number, positive_number

_DTYPES = {"float64": np.float64, "float32": np.float32}


class Simulation:
    """Simulate a Network (built on construction if needed).

    Parameters
    ----------
    net : Network or str
        The network, or the path of a network store (loaded; the dask
        backend reads it on the workers without loading it here).
    backend : {"cpu", "cuda", "dask"}
        "cpu": Numba threads in this process. "cuda": Numba CUDA kernels on a
        GPU (``pip install brainsim[cuda]``). "dask": partitions held by Dask
        workers (``client=``). Backend options are keyword arguments (see
        ``docs/cuda.md``, ``docs/dask.md``).
    seed : int
        Seed of the simulation noise (Poisson input, OU current, models'
        own noise); draws are counter-based, so spikes do not depend on
        partitions or threads.
    record : dict, optional
        ``"spikes"``: True (all, default), False, or a selector (population
        name(s), ``{"region": r}``, id array); ``"rates"``: True (default) or
        False, binned per population and region every ``rate_bin`` ms;
        ``"V_m"``: a selector of neurons whose membrane potential (mV) is
        sampled every step.
    store : str, optional
        Path of the Zarr v3 results store every run is appended to.
        ``overwrite=True`` replaces an existing results store.
    keep : {"store", "memory", "aggregate"}, optional
        What is kept of the runs: "store" (the default with ``store=``)
        appends them to the store; "memory" (the default without) keeps them
        in memory, ``results()`` returns them all; "aggregate" keeps only
        spike counts per neuron and mean rates (for loops that call ``run``
        many times, e.g. assimilation). ``run`` always returns its interval.
    dtype : {"float64", "float32"}
        Precision of state and parameters (synaptic weights are float32).
    threads : int, optional
        Numba threads (default: all). Each thread steps whole partitions, so
        threads beyond the network's number of partitions stay idle: build
        (or save) the network with ``n_partitions >= threads``.
    rate_bin : float, ms
        Width of the rate bins, a multiple of dt. Default: 1 ms rounded to
        whole steps (at least one step); the width used is in the attrs
        (``rate_bin_ms``).
    n_partitions : int, optional
        Partitions if the network is built here (default: one per thread).
    flush_s : float, s
        With a results store, a run's records are appended and committed
        whenever this much wall-clock time has passed (at the end of a 100
        ms chunk) and at the end of ``run``: a killed process loses at most
        that much, and the store opens as of its last commit. A commit also
        holds a snapshot of the state (cpu engine) if the last one is at
        least ``flush_s`` old, and the commit at the end of ``run`` always
        does; ``Simulation.resume`` continues from the last snapshot (a
        finished run, or a killed one from its last snapshot). 0: commit and
        snapshot after every chunk. (The dask engine
        commits every chunk and resumes from its checkpoints.)
    **options
        Backend options: cuda ``device``, ``threads_per_block``, ``mode``,
        ``blocks``; dask ``client``, ``workers``, ``window``,
        ``checkpoint_ms``, ``timeout``, ``link_timeout``, ``max_recoveries``.

    Attributes
    ----------
    engine : the backend's engine (``sim.engine``); engine-specific
        attributes (e.g. cuda's ``fixed_bits``, dask's ``stats``) are also
        reachable as ``sim.<name>``.
    """

    def __init__(self, net, backend="cpu", seed=1, record=None, store=None, dtype="float64",
                 threads=None, rate_bin=None, n_partitions=None, overwrite=False, keep=None,
                 flush_s=10.0, **options):
        self.backend = check_backend(backend)
        if dtype not in _DTYPES:
            raise ParameterError(f"dtype must be one of {list(_DTYPES)}, got {dtype!r}")
        seed = integer("seed", seed, low=0, high=2 ** 63 - 1, strict=True)  # int64 in kernels
        cls = engine_class(self.backend)
        # threads of an engine that steps elsewhere (dask workers) are not this process's
        max_threads = (numba.config.NUMBA_NUM_THREADS
                       if getattr(cls, "threads_in_process", True) else None)
        if threads is not None and (not isinstance(threads, (int, np.integer)) or isinstance(
                threads, bool) or threads < 1 or (max_threads and threads > max_threads)):
            allowed = (f"in [1, {max_threads}] (NUMBA_NUM_THREADS)" if max_threads
                       else ">= 1 (per worker)")
            raise ParameterError(f"threads must be an integer {allowed}, got {threads!r}")
        self.seed = int(seed)
        self.dtype = _DTYPES[dtype]
        self.threads = threads
        self.step = 0
        self._extra_attrs = {}
        self._state_log_seen = 0
        self.net = _network(net, cls)
        self.bin_steps = self._bin_steps(rate_bin)
        self.spec = RecordSpec(self.net, record)
        if store is not None:  # fail now, not after a long build; create at the first run
            check_path(store, RESULTS_SCHEMA, overwrite, "results store")
        self._store = (store, overwrite)
        self._keep = keep
        self.flush_s = number("flush_s", flush_s, low=0.0, unit="s")
        self._snapshot_at = time.perf_counter()
        self.engine = cls.for_simulation(self, net, n_partitions, **options)
        try:
            self.recorder = Recorder(self._meta(), store, overwrite, keep,
                                     len(self.net.populations), len(self.net.regions),
                                     self.spec.vm_ids, self._pop_n(), self._reg_n(),
                                     self.net.n_neurons)
        except BaseException:
            self.engine.close()  # e.g. a cluster the dask engine started
            raise
        self._state_log_seen = len(self.net._state_log)

    @classmethod
    def resume(cls, store, network=None, **kwargs):
        """Continue the run stored in results store ``store``.

        A dask run continues from its last complete checkpoint
        (``checkpoint=step`` for an earlier one); keywords: client, workers,
        threads, window, checkpoint_ms, timeout, link_timeout,
        max_recoveries (docs/dask.md). A cpu run continues from its last
        commit (see ``flush_s``): ``network`` is the Network it simulated
        (the same object rebuilt, or its network store's path; default the
        ``network_store`` attribute, which ``brainsim simulate`` sets);
        keywords: threads, flush_s. Spikes continue bit-identically.
        """
        from .results import open_results_group
        path = os.path.abspath(os.fspath(store))
        attrs = dict(open_results_group(path).attrs)
        dask_only = sorted(set(kwargs) - {"threads", "flush_s"})
        if attrs.get("backend") != "dask" and dask_only:
            from .errors import StoreError
            raise StoreError(f"{path!r} was not written by the dask backend (backend "
                             f"{attrs.get('backend')!r}), so {dask_only} do not apply; a cpu "
                             f"run resumes with Simulation.resume(store, network=...)")
        if attrs.get("backend") == "dask":
            if network is not None:
                raise ParameterError("a dask run resumes with the network store it was "
                                     "started from; network= is for cpu runs")
            from .backends.dask import resume
            return resume(cls, path, **kwargs)
        return _resume_from_commit(cls, path, attrs, network, **kwargs)

    # --------------------------------------------------------------- setup
    def _bin_steps(self, rate_bin):
        dt = self.net.dt
        if rate_bin is None:
            return max(1, int(round(1.0 / dt)))
        rate_bin = positive_number("rate_bin", rate_bin, "ms")
        k = int(round(rate_bin / dt))
        if k < 1 or abs(k * dt - rate_bin) > 1e-9 * rate_bin:
            raise ParameterError(f"rate_bin must be a multiple of dt ({dt} ms), got {rate_bin!r}")
        return k

    def _pop_n(self):
        return np.array([p.n for p in self.net.populations.values()], float)

    def _reg_n(self):
        return np.bincount(self.net.region_index(), minlength=len(self.net.regions)).astype(float)

    def _meta(self):
        net = self.net
        return {
            "dt": net.dt, "seed": self.seed, "network_seed": net.seed, "backend": self.backend,
            "brainsim_version": __version__, "dtype": np.dtype(self.dtype).name,
            "populations": list(net.populations), "regions": net.regions,
            "population_sizes": [p.n for p in net.populations.values()],
            "population_regions": [p.region for p in net.populations.values()],
            "population_models": [p.model for p in net.populations.values()],
            "rate_bin_ms": self.bin_steps * net.dt, "n_partitions": self.engine.n_partitions,
            "time_units": "ms",
        }

    # the recording settings, as the engines read them
    @property
    def rec_mode(self):
        return self.spec.mode

    @property
    def rec_mask(self):
        return self.spec.mask

    @property
    def rec_rates(self):
        return self.spec.rates

    @property
    def vm_ids(self):
        return self.spec.vm_ids

    def annotate(self, **attrs):
        """Add JSON attributes (provenance, notes) to the results store."""
        self._extra_attrs.update(attrs)
        self.recorder.update_attrs(**attrs)

    def __getattr__(self, name):
        # engine-specific attributes (cuda's fixed_bits, dask's stats, ...)
        if name.startswith("__") or "engine" not in self.__dict__:
            raise AttributeError(name)
        try:
            return getattr(self.__dict__["engine"], name)
        except AttributeError:
            raise AttributeError(f"{type(self).__name__} (backend {self.backend!r}) has no "
                                 f"attribute {name!r}") from None

    # ---------------------------------------------------------------- state
    @property
    def t(self):
        """Biological time simulated so far (ms)."""
        return self.step * self.net.dt

    def get_state(self, name, selector=None):
        """Current values of state variable ``name`` (float64; e.g. "V_m",
        "I_syn_ex", "w") of the selected neurons (default all); NaN for
        neurons whose model has no such variable."""
        self._check_state_name(name)
        ids = None if selector is None else self.net.select(selector)
        return self.engine.get_state(name, ids)

    def set_state(self, selector, name, value):
        """Set state variable ``name`` of the selected neurons now (NEST's
        SetStatus on a state variable, e.g. V_m); ``value`` a scalar or one
        per selected neuron."""
        from .validation import check_finite
        self._check_state_name(name)
        ids = self.net.select(selector)
        check_finite(name, value)
        value = np.asarray(value, float)
        if value.ndim not in (0, 1) or (value.ndim == 1 and value.shape != ids.shape):
            raise ParameterError(f"value must be a scalar or have shape {ids.shape} (one per "
                                 f"selected neuron), got shape {value.shape}")
        self.engine.set_state(name, ids, value)

    def _check_state_name(self, name):
        names = self.state_names
        if name not in names:
            raise ParameterError(f"state variable must be one of {names}, got {name!r}")

    @property
    def state_names(self):
        """State variables of the models in the network."""
        from .backends.flatten import KernelNetwork
        flat = getattr(self.engine, "flat", None) or KernelNetwork(self.net, self.dtype)
        return flat.state_names()

    # compatibility views of the state (copies on the cuda backend)
    @property
    def V(self):
        """Membrane potentials (mV), row 0 of the state array."""
        return self.engine.X[0]

    @property
    def S(self):
        """State rows other than the membrane potential (X[1:]): the synaptic
        currents or traces first, in each model's declaration order."""
        return self.engine.X[1:]

    @property
    def I_ou(self):
        """Ornstein-Uhlenbeck currents (pA)."""
        return self.engine.I_ou

    @property
    def inp(self):
        """Synaptic input pending for the next step (2, N)."""
        return self.engine.inp

    def set_property(self, selector, name, value=None, multiplier=None):
        """``Network.set_property`` on the simulated network; applies from the
        next step. For a parameter that is also the initial value of a state
        variable (V_m), the state of the selected neurons is set too, as
        NEST's SetStatus does."""
        self.net.set_property(selector, name, value=value, multiplier=multiplier)

    def _apply_state_log(self):
        """State writes recorded by ``Network.set_property`` (initial values,
        e.g. V_m) since this simulation last looked."""
        log = self.net._state_log
        for ids, name, values in log[self._state_log_seen:]:
            self.engine.set_state(name, ids, values)
        self._state_log_seen = len(log)

    # ----------------------------------------------------------------- run
    def _n_steps(self, t_ms):
        dt = self.net.dt
        t_ms = positive_number("t_ms", t_ms, "ms")
        n = int(round(t_ms / dt))
        if n < 1 or abs(n * dt - t_ms) > 1e-9 * t_ms:
            raise ParameterError(f"t_ms must be a multiple of dt ({dt} ms), got {t_ms!r}")
        if self.spec.rates and n % self.bin_steps:
            raise ParameterError(
                f"t_ms must be a multiple of the rate bin ({self.bin_steps * dt} ms) when rates "
                f"are recorded, got {t_ms!r}")
        return n

    def run(self, t_ms, progress=False):
        """Advance by ``t_ms`` (ms) and return that interval as an xarray.Dataset.

        The Dataset has ``spike_time`` (ms) and ``spike_neuron`` along
        ``spike``, ``rate`` (Hz) on (time, population), ``rate_region`` (Hz)
        on (time, region) and ``V_m`` (mV) on (time_vm, neuron). What is kept
        across runs follows ``keep``.
        """
        n = self._n_steps(t_ms)
        self._check_record_memory(n, t_ms)
        self.recorder.open(self._extra_attrs)
        self.engine.sync()
        self._apply_state_log()
        t_base = self.step
        run = self.new_run(t_base, n)
        with tqdm(total=n, unit="step", disable=not progress, desc="brainsim") as bar:
            own_loop = hasattr(self.engine, "run")
            if own_loop:  # fills `run` and appends to the recorder chunk by chunk itself
                self.engine.run(self, run, n, bar)
            else:
                chunk = self.engine.chunk_steps(self.net.dt)
                done = 0
                flushed_at = time.perf_counter()
                while done < n:
                    k = self.engine.advance(self.step, min(chunk, n - done), run)
                    run.take_spikes()
                    done += k
                    self.step += k
                    bar.update(k)
                    self.engine.check_state(self.t)
                    if (self.recorder.keep == "store" and done < n and done % self.bin_steps == 0
                            and time.perf_counter() - flushed_at >= self.flush_s):
                        self.recorder.flush(run, self.net.dt, done, self._snapshot())
                        flushed_at = time.perf_counter()
        meta = {**self._meta(), "t_start": t_base * self.net.dt, "t_stop": self.t}
        return self.recorder.finish(run, self.net.dt, meta, appended=own_loop,
                                    state=None if own_loop else self._snapshot(final=True))

    def _snapshot(self, final=False):
        """The engine's state now, for the results store's commit: during a
        run at most one every ``flush_s`` seconds of wall-clock time (a
        snapshot costs tens of ms), and always at the end of a run
        (``final``), so that every finished run can be continued; None when
        none is due, for engines without snapshots, or without a store to
        write it to."""
        if self.recorder.keep != "store" or not hasattr(self.engine, "snapshot"):
            return None
        now = time.perf_counter()
        if not final and now - self._snapshot_at < self.flush_s:
            return None
        self._snapshot_at = now
        spec = self.spec
        arrays = self.engine.snapshot()
        if spec.mode == 2:
            arrays["rec_ids"] = np.flatnonzero(spec.mask).astype(np.int64)
        return {"step": self.step, "arrays": arrays,
                "attrs": {"step": self.step, "rec_mode": int(spec.mode),
                          "rates": bool(spec.rates), "n_partitions": self.engine.n_partitions,
                          "n_synapses": int(self.net.n_synapses),
                          "dtype": np.dtype(self.dtype).name}}

    def _check_record_memory(self, n, t_ms):
        """Refuse a run whose records (rate bins, V_m samples: held for the
        whole interval, which ``run`` returns) would not fit in half the
        memory available now, instead of failing in an allocation."""
        import psutil
        spec = self.spec
        n_bins = n // self.bin_steps if spec.rates else 0
        need = (n_bins * (len(self.net.populations) + len(self.net.regions)) * 8
                + (n if spec.vm_ids.size else 0) * spec.vm_ids.size * np.dtype(self.dtype).itemsize)
        avail = psutil.virtual_memory().available
        if need > avail // 2:
            raise ParameterError(
                f"t_ms={t_ms!r} would need {need / 2**30:.3g} GiB for its records (rates every "
                f"{self.bin_steps * self.net.dt:g} ms, V_m of {spec.vm_ids.size} neurons every "
                f"step) and {avail / 2**30:.3g} GiB are available: call run() several times "
                f"for shorter intervals (keep='store' or 'aggregate' keeps the earlier ones "
                f"out of memory)")

    def new_run(self, t_base, n):
        """Empty RunRecord of ``n`` steps from ``t_base``."""
        return RunRecord(self.spec, t_base, n, self.bin_steps, len(self.net.populations),
                         len(self.net.regions), self.dtype, self.engine.spike_capacity)

    def results(self):
        """Everything kept so far (see ``keep``): the whole run as a Dataset,
        or the totals with ``keep="aggregate"``."""
        return self.recorder.results({**self._meta(), "t_stop": self.t}, self.net.dt,
                                     self.net)

    def close(self):
        """Release the engine's resources (dask: actors and a cluster it started)."""
        self.engine.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _network(net, engine_cls):
    """The Network of ``net`` (a Network or a network store path)."""
    if isinstance(net, Network):
        return net
    if isinstance(net, (str, os.PathLike)):
        from .store import load_network
        return load_network(net, lazy=True)
    raise ParameterError(f"net must be a brainsim Network or the path of a network store, got "
                         f"{type(net).__name__} {net!r}")


def _resume_from_commit(cls, path, attrs, network, threads=None, flush_s=10.0):
    """``Simulation.resume`` of a run whose engine wrote state snapshots
    with its commits (the cpu engine)."""
    import zarr

    from .errors import StoreError
    from .integrity import get_checked
    from .results import checked_lengths

    committed = attrs.get("committed") or {}
    step = committed.get("state")
    if step is None:
        raise StoreError(f"{path!r} holds no state to continue from (backend "
                         f"{attrs.get('backend')!r}; cpu runs with a results store write one "
                         f"at the end of every run() and during it at most every flush_s "
                         f"seconds: this one was cut off before its first)")
    if network is None:
        network = attrs.get("network_store")
        if network is None:
            raise ParameterError(f"resuming {path!r} needs network=: the Network it simulated "
                                 f"(rebuilt the same way) or its network store's path")
    group = zarr.open_group(path, mode="r")
    where = f"state snapshot of step {step} in {path!r}"
    try:
        snap = group[f"state/{step}"]
    except KeyError:
        raise StoreError(f"{where} is missing") from None
    s_attrs = dict(snap.attrs)
    if s_attrs.get("rec_mode") == 2:
        n = snap["rec_ids"].shape[0]
        spikes = get_checked(snap, "rec_ids", where, np.int64, (n,))
    else:
        spikes = bool(s_attrs.get("rec_mode", 1))
    vm = group["neuron"][:]
    sim = cls(network, backend=attrs["backend"], seed=attrs["seed"], dtype=attrs["dtype"],
              record={"spikes": spikes, "rates": s_attrs.get("rates", True),
                      "V_m": vm if vm.size else None},
              rate_bin=attrs["rate_bin_ms"], threads=threads, flush_s=flush_s)
    net = sim.net
    same = (list(net.populations) == attrs["populations"] and
            [p.n for p in net.populations.values()] == attrs["population_sizes"] and
            [p.model for p in net.populations.values()] == attrs["population_models"] and
            sim.engine.n_partitions == s_attrs.get("n_partitions") and
            int(net.n_synapses) == s_attrs.get("n_synapses") and net.dt == attrs["dt"])
    if not same:
        raise ParameterError(f"network= is not the network {path!r} was simulated with "
                             f"(populations, sizes, models, partitions, synapse count and dt "
                             f"must all match)")
    if not hasattr(sim.engine, "restore"):
        raise ParameterError(f"backend {attrs['backend']!r} cannot continue a stored run")
    template = sim.engine.snapshot()
    # the spike history's capacity may have grown during the run: its stored shape is
    # taken and checked against the rest below; every other array has the template's
    grown = ("h_spk", "h_cur")
    arrays = {name: get_checked(snap, name, where, ref.dtype,
                                snap[name].shape if name in grown else ref.shape)
              for name, ref in template.items()}
    R = template["h_n"].size
    h = arrays
    if (h["h_spk"].shape[0] != R or h["h_cur"].shape[:2] != template["h_cur"].shape[:2]
            or h["h_cur"].shape[2] != h["h_spk"].shape[1] or h["h_n"].min() < 0
            or h["h_n"].max() > h["h_spk"].shape[1]
            or any((h["h_spk"][r, :h["h_n"][r]] < 0).any() or
                   (h["h_spk"][r, :h["h_n"][r]] >= net.n_neurons).any() for r in range(R))):
        raise StoreError(f"{where}: its spike history is inconsistent")
    sim.recorder.attach(path)
    lengths = checked_lengths(s_attrs.get("lengths"), sim.recorder.writer.lengths(), where)
    if lengths != sim.recorder.writer.lengths():  # records committed after the snapshot
        sim.recorder.writer.truncate(lengths, t_stop=int(step) * net.dt,
                                     crc=s_attrs.get("crc32"))
    sim.engine.restore(arrays)
    sim.step = int(step)
    return sim
