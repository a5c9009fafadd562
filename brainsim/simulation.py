"""Simulation: state, the run loop, recording.

    sim = brainsim.Simulation(net, backend="cpu", seed=1, store="run.zarr")
    ds = sim.run(1000.0, progress=True)      # ms; returns this interval
    ds2 = sim.run(500.0)                     # continues
    all_ = brainsim.open_results("run.zarr")  # the whole run
"""
import numba
import numpy as np
from tqdm.auto import tqdm

from . import backends
from ._version import __version__
from .backends import cpu
from .errors import ParameterError
from .models import positive_number
from .results import SCHEMA as RESULTS_SCHEMA
from .results import ResultsWriter, check_path, make_dataset

_DTYPES = {"float64": np.float64, "float32": np.float32}


class Simulation:
    """Simulate a Network (built on construction if needed).

    Parameters
    ----------
    net : Network
    backend : {"cpu", "cuda", "dask"}
        "cpu": Numba threads in this process. "cuda": Numba CUDA kernels on a
        GPU (``pip install brainsim[cuda]``). "dask": partitions held by Dask
        workers (``client=``). Each builds its own subclass of Simulation.
    seed : int
        Seed of the simulation noise (Poisson input, OU current); draws are
        counter-based, so spikes do not depend on partitions or threads.
    record : dict, optional
        ``"spikes"``: True (all, default), False, or a selector (population
        name(s), ``{"region": r}``, id array); ``"rates"``: True (default) or
        False, binned per population and region every ``rate_bin`` ms;
        ``"V_m"``: a selector of neurons whose membrane potential (mV) is
        sampled every step.
    store : str, optional
        Path of the Zarr v3 results store written incrementally (default: in
        memory). ``overwrite=True`` replaces an existing store.
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
    """

    def __new__(cls, *args, **kwargs):
        # Simulation(net, backend="cuda" | "dask") builds that backend's subclass
        backend = kwargs.get("backend", args[1] if len(args) > 1 else "cpu")
        if cls is Simulation and backend != "cpu":
            return super().__new__(backends.simulation_class(backend))
        return super().__new__(cls)

    def __init__(self, net, backend="cpu", seed=1, record=None, store=None, dtype="float64",
                 threads=None, rate_bin=None, n_partitions=None, overwrite=False):
        self.backend = backends.check_backend(backend)
        if dtype not in _DTYPES:
            raise ParameterError(f"dtype must be one of {list(_DTYPES)}, got {dtype!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ParameterError(f"seed must be an integer >= 0, got {seed!r}")
        max_threads = numba.config.NUMBA_NUM_THREADS
        if threads is not None and (not isinstance(threads, (int, np.integer)) or isinstance(
                threads, bool) or not 1 <= threads <= max_threads):
            raise ParameterError(
                f"threads must be an integer in [1, {max_threads}] (NUMBA_NUM_THREADS), "
                f"got {threads!r}")
        self.net = net.build(n_partitions)
        self.seed = int(seed)
        self.dtype = _DTYPES[dtype]
        self.threads = threads
        self.step = 0
        self.bin_steps = self._bin_steps(rate_bin)
        self._init_state()
        self._init_static()
        self._init_record(record)
        self._params_version = None
        if store is not None:  # fail now, not after a long build; create at the first run
            check_path(store, RESULTS_SCHEMA, overwrite, "results store")
        self._store = (store, overwrite)
        self._extra_attrs = {}
        self.writer = None  # created by the first valid run(): no empty store on bad input

    @classmethod
    def resume(cls, store, **kwargs):
        """Continue the dask run stored in results store ``store`` from its last
        complete checkpoint (``checkpoint=step`` for an earlier one); keywords:
        client, workers, threads, window, checkpoint_ms, timeout (docs/dask.md)."""
        from .backends.dask import resume
        return resume(store, **kwargs)

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

    def _init_state(self):
        net, n = self.net, self.net.n_neurons
        self.V, self.S, self.ref, self.I_ou, self.inp = backends.initial_state(net, self.dtype)
        max_delay = net.synapses.max_delay
        self.hist = cpu.new_history(max_delay + 1, len(net.partitions),
                                    max(64, min(n, 4096)))

    def _init_static(self):
        net = self.net
        mid = backends.model_ids(net)
        self.chunks = cpu.make_chunks(net, mid)
        self.syn_arrays = net.synapses.kernel_arrays(net.n_neurons)
        self.src_ch = backends.source_channels(net)
        self.pop_of = net.pop_index()
        self.reg_of = net.region_index()
        self.pop_n = np.array([p.n for p in net.populations.values()], float)
        self.reg_n = np.bincount(self.reg_of, minlength=len(net.regions)).astype(float)
        n_chunks = self.chunks[0].size
        max_len = int((self.chunks[1] - self.chunks[0]).max())
        self.scratch = (np.zeros((n_chunks, max_len), np.int32), np.zeros(n_chunks, np.int64),
                        np.zeros(net.n_neurons, np.int32))
        self.spike_capacity = max(4 * net.n_neurons, 1 << 20)
        # False: every chunk takes the per-neuron reference loop (tests compare the two)
        self._fast_kernels = True
        self._plan_key = None

    def _init_record(self, record):
        record = {} if record is None else dict(record)
        unknown = set(record) - {"spikes", "rates", "V_m"}
        if unknown:
            raise ParameterError(
                f"record keys must be among 'spikes', 'rates', 'V_m', got {unknown}")
        spikes = record.get("spikes", True)
        self.rec_mask = np.zeros(0, np.bool_)
        if spikes is True or (isinstance(spikes, str) and spikes == "all"):
            self.rec_mode = 1
        elif spikes is False or spikes is None:
            self.rec_mode = 0
        else:
            self.rec_mode = 2
            self.rec_mask = np.zeros(self.net.n_neurons, np.bool_)
            self.rec_mask[self.net.select(spikes)] = True
        self.rec_rates = bool(record.get("rates", True))
        vm = record.get("V_m")
        self.vm_ids = np.zeros(0, np.int64) if vm is None else np.unique(self.net.select(vm))

    def _meta(self):
        net = self.net
        return {
            "dt": net.dt, "seed": self.seed, "network_seed": net.seed, "backend": self.backend,
            "brainsim_version": __version__, "dtype": np.dtype(self.dtype).name,
            "populations": list(net.populations), "regions": net.regions,
            "population_sizes": [p.n for p in net.populations.values()],
            "population_regions": [p.region for p in net.populations.values()],
            "rate_bin_ms": self.bin_steps * net.dt, "n_partitions": len(net.partitions),
            "time_units": "ms",
        }

    def _refresh_params(self):
        if self._params_version == self.net.version:
            return
        self.q_iaf, self.q_dtb, self.qrow, self.ref_steps = backends.derived_tables(
            self.net, self.dtype)
        self.inputs = backends.input_arrays(self.net, self.dtype)
        self._params_version = self.net.version

    def annotate(self, **attrs):
        """Add JSON attributes (provenance, notes) to the results store."""
        self._extra_attrs.update(attrs)
        if self.writer is not None:
            self.writer.update_attrs(**attrs)

    # ----------------------------------------------------------------- run
    @property
    def t(self):
        """Biological time simulated so far (ms)."""
        return self.step * self.net.dt

    def set_property(self, selector, name, value=None, multiplier=None):
        """``Network.set_property`` on the simulated network; applies from the next step."""
        self.net.set_property(selector, name, value=value, multiplier=multiplier)

    def _n_steps(self, t_ms):
        dt = self.net.dt
        t_ms = positive_number("t_ms", t_ms, "ms")
        n = int(round(t_ms / dt))
        if n < 1 or abs(n * dt - t_ms) > 1e-9 * t_ms:
            raise ParameterError(f"t_ms must be a multiple of dt ({dt} ms), got {t_ms!r}")
        if self.rec_rates and n % self.bin_steps:
            raise ParameterError(
                f"t_ms must be a multiple of the rate bin ({self.bin_steps * dt} ms) when rates "
                f"are recorded, got {t_ms!r}")
        return n

    def run(self, t_ms, progress=False):
        """Advance by ``t_ms`` (ms) and return that interval as an xarray.Dataset.

        The Dataset has ``spike_time`` (ms) and ``spike_neuron`` along
        ``spike``, ``rate`` (Hz) on (time, population), ``rate_region`` (Hz)
        on (time, region) and ``V_m`` (mV) on (time_vm, neuron). Everything
        is also appended to the results store.
        """
        n = self._n_steps(t_ms)
        if self.writer is None:
            store, overwrite = self._store
            self.writer = ResultsWriter(store, {**self._meta(), **self._extra_attrs},
                                        len(self.net.populations), len(self.net.regions),
                                        self.vm_ids, overwrite=overwrite)
        self._refresh_params()
        cpu.set_threads(self.threads)
        t_base = self.step
        n_bins = n // self.bin_steps if self.rec_rates else 0
        rate_pop = np.zeros((n_bins, len(self.pop_n)), np.int64)
        rate_reg = np.zeros((n_bins, len(self.reg_n)), np.int64)
        vm = np.zeros((n if self.vm_ids.size else 0, self.vm_ids.size), self.dtype)
        cap = self.spike_capacity if self.rec_mode else 0
        spk_step, spk_gid = np.empty(cap, np.int64), np.empty(cap, np.int32)
        steps_out, gids_out = [], []
        chunk = max(1, int(round(100.0 / self.net.dt)))  # hand back every 100 ms for progress
        with tqdm(total=n, unit="step", disable=not progress, desc="brainsim") as bar:
            done = 0
            while done < n:
                k, n_spk = self._advance(t_base, min(chunk, n - done), spk_step, spk_gid,
                                         rate_pop, rate_reg, vm)
                steps_out.append(spk_step[:n_spk].copy())
                gids_out.append(spk_gid[:n_spk].copy())
                done += k
                self.step += k
                bar.update(k)
        return self._finish(t_base, n, np.concatenate(steps_out), np.concatenate(gids_out),
                            rate_pop, rate_reg, vm)

    def _advance(self, t_base, n, spk_step, spk_gid, rate_pop, rate_reg, vm):
        done, n_spk, self.hist = cpu.advance(
            self.step, n, t_base, self.seed, self.scratch, self.V, self.S, self.ref, self.I_ou,
            self.inp, self.hist, *self.chunks, self.q_iaf, self.q_dtb, self.qrow, self.ref_steps,
            *self.inputs, *self.syn_arrays, self.src_ch, self.rec_mode, self.rec_mask,
            spk_step, spk_gid, 0, self.pop_of, rate_pop, self.reg_of, rate_reg,
            self.bin_steps, self.vm_ids, vm, *self._plan())
        return done, n_spk

    def _plan(self):
        """The chunk plan for the current parameters (``cpu.chunk_plan``)."""
        key = (self._params_version, self._fast_kernels)
        if self._plan_key != key:
            self._plan_cache = cpu.chunk_plan(self.chunks, self.qrow, self.inputs, self.seed,
                                              self._fast_kernels)
            self._plan_key = key
        return self._plan_cache

    def _finish(self, t_base, n, spk_step, spk_gid, rate_pop, rate_reg, vm):
        dt = self.net.dt
        bin_s = self.bin_steps * dt * 1e-3
        rate = rate_pop / (self.pop_n * bin_s)
        rate_r = rate_reg / (self.reg_n * bin_s)
        t_bins = (t_base + np.arange(rate.shape[0]) * self.bin_steps) * dt
        t_vm = (t_base + 1 + np.arange(vm.shape[0])) * dt
        vm = vm.astype(np.float64)
        self.writer.append(spike_step=spk_step, spike_neuron=spk_gid, time=t_bins, rate=rate,
                           rate_region=rate_r, time_vm=t_vm, V_m=vm)
        self.writer.update_attrs(t_stop=self.t)
        meta = {**self._meta(), "t_start": t_base * dt, "t_stop": self.t}
        return make_dataset(meta, spk_step, spk_gid, t_bins, rate, rate_r, t_vm, vm, self.vm_ids)
