"""Recording: what a run records, the buffers the engines fill, and where
the records go (one path for every engine).

- :class:`RecordSpec`: which spikes, whether rates, whose V_m.
- :class:`RunRecord`: the buffers of one ``run()`` that an engine fills
  (spike record, rate counts per bin, V_m samples); ``kernel_args`` hands
  them to the CPU kernels.
- :class:`Recorder`: the retention choice. ``keep="store"`` appends every
  run to a Zarr results store on disk, ``keep="memory"`` to one in memory
  (``Simulation.results()`` returns all of it), ``keep="aggregate"`` keeps
  only totals (spike counts per neuron, mean rates), so a loop that calls
  ``run`` every TR does not accumulate every bin of the whole run.
"""
import numpy as np
import xarray as xr

from .errors import ParameterError
from .results import ResultsWriter, make_dataset

KEEP = ("store", "memory", "aggregate")


class RecordSpec:
    """What to record (``record=`` of Simulation, see its docstring)."""

    def __init__(self, net, record):
        record = {} if record is None else record
        if not isinstance(record, dict):
            raise ParameterError(f"record must be a dict with keys among 'spikes', 'rates', "
                                 f"'V_m', got {record!r}")
        unknown = set(record) - {"spikes", "rates", "V_m"}
        if unknown:
            raise ParameterError(
                f"record keys must be among 'spikes', 'rates', 'V_m', got {unknown}")
        spikes = record.get("spikes", True)
        self.mask = np.zeros(0, np.bool_)
        if spikes is True or (isinstance(spikes, str) and spikes == "all"):
            self.mode = 1
        elif spikes is False or spikes is None:
            self.mode = 0
        else:
            self.mode = 2
            self.mask = np.zeros(net.n_neurons, np.bool_)
            self.mask[net.select(spikes)] = True
        rates = record.get("rates", True)
        if not isinstance(rates, (bool, np.bool_)):
            raise ParameterError(f"record['rates'] must be True or False, got {rates!r}")
        self.rates = bool(rates)
        vm = record.get("V_m")
        self.vm_ids = np.zeros(0, np.int64) if vm is None else np.unique(net.select(vm))

    @property
    def n_recorded(self):
        """Neurons whose spikes are recorded."""
        return {0: 0, 1: None, 2: int(self.mask.sum())}[self.mode]


class RunRecord:
    """Buffers of one run of ``n_steps`` steps from step ``t_base``.

    ``spk_step``/``spk_gid`` (capacity ``capacity``) hold spikes until
    ``take_spikes`` moves them out; ``rate_pop`` / ``rate_reg`` hold spike
    counts per rate bin; ``vm`` (n_steps, n_vm) the sampled V_m (mV).
    """

    def __init__(self, spec, t_base, n_steps, bin_steps, n_pop, n_reg, dtype, capacity):
        self.spec = spec
        self.t_base, self.n_steps, self.bin_steps = t_base, n_steps, bin_steps
        n_bins = n_steps // bin_steps if spec.rates else 0
        self.rate_pop = np.zeros((n_bins, n_pop), np.int64)
        self.rate_reg = np.zeros((n_bins, n_reg), np.int64)
        self.vm = np.zeros((n_steps if spec.vm_ids.size else 0, spec.vm_ids.size), dtype)
        cap = capacity if spec.mode else 0
        self.spk_step, self.spk_gid = np.empty(cap, np.int64), np.empty(cap, np.int32)
        self.n_spk = 0
        self._steps, self._gids = [], []
        self.flushed = 0  # steps of this run already appended to the store
        self.spikes_flushed = 0

    def kernel_args(self, pop_of, reg_of):
        """The record tuple of the CPU kernels (``brainsim.kernels.loops``)."""
        s = self.spec
        return (s.mode, s.mask, self.spk_step, self.spk_gid, pop_of, self.rate_pop, reg_of,
                self.rate_reg, self.bin_steps, s.vm_ids, self.vm)

    def take_spikes(self):
        """Move the buffered spikes out of the record (the buffer is reused)."""
        self._steps.append(self.spk_step[:self.n_spk].copy())
        self._gids.append(self.spk_gid[:self.n_spk].copy())
        self.n_spk = 0

    def add_spikes(self, steps, gids):
        """Spikes gathered elsewhere (sorted by step, then id)."""
        self._steps.append(np.asarray(steps, np.int64))
        self._gids.append(np.asarray(gids, np.int32))

    def spikes(self):
        """(steps, ids) of every spike of the run so far (kept joined)."""
        self.take_spikes()
        self._steps, self._gids = [np.concatenate(self._steps)], [np.concatenate(self._gids)]
        return self._steps[0], self._gids[0]


class Recorder:
    """Where records go (see the module docstring).

    Parameters
    ----------
    meta : dict
        Provenance attributes of the results.
    store : str or None
        Results store path (``keep="store"``).
    keep : {"store", "memory", "aggregate"} or None
        None: "store" with a store, else "memory".
    """

    def __init__(self, meta, store, overwrite, keep, n_pop, n_reg, vm_ids, pop_n, reg_n,
                 n_neurons):
        if keep is None:
            keep = "store" if store is not None else "memory"
        if keep not in KEEP:
            raise ParameterError(f"keep must be one of {list(KEEP)}, got {keep!r}")
        if keep == "store" and store is None:
            raise ParameterError("keep='store' needs store= (the path of the results store)")
        if keep != "store" and store is not None:
            raise ParameterError(f"store={store!r} writes a results store: use keep='store' "
                                 f"(the default with a store), not keep={keep!r}")
        self.meta, self.keep = dict(meta), keep
        self.store, self.overwrite = store, overwrite
        self.shape = (n_pop, n_reg, np.asarray(vm_ids, np.int64))
        self.pop_n, self.reg_n = pop_n, reg_n
        self.writer = None
        if keep == "aggregate":
            self.counts = np.zeros(n_neurons, np.int64)
            self.steps = 0

    # -------------------------------------------------------------- store
    def open(self, extra_attrs):
        """Create the results store (or in-memory group) at the first run."""
        if self.writer is None and self.keep != "aggregate":
            n_pop, n_reg, vm_ids = self.shape
            self.writer = ResultsWriter(self.store, {**self.meta, **extra_attrs}, n_pop, n_reg,
                                        vm_ids, overwrite=self.overwrite)

    def update_attrs(self, **attrs):
        if self.writer is not None:
            self.writer.update_attrs(**attrs)

    def rates(self, counts_pop, counts_reg, dt, bin_steps):
        bin_s = bin_steps * dt * 1e-3
        return counts_pop / (self.pop_n * bin_s), counts_reg / (self.reg_n * bin_s)

    def _converted(self, dt, t0, rate_pop, rate_reg, vm, bin_steps):
        """Records from step ``t0`` as stored: (t_bins ms, rate Hz,
        rate_region Hz, t_vm ms, vm float64 mV)."""
        rate, rate_r = self.rates(rate_pop, rate_reg, dt, bin_steps)
        t_bins = (t0 + np.arange(rate.shape[0]) * bin_steps) * dt
        t_vm = (t0 + 1 + np.arange(vm.shape[0])) * dt
        return t_bins, rate, rate_r, t_vm, vm.astype(np.float64)

    def append(self, dt, t0, n_steps, spk_step, spk_gid, rate_pop, rate_reg, vm, bin_steps,
               state=None):
        """Append ``n_steps`` steps from step ``t0`` to what is kept (with
        the engine's ``state`` snapshot at their end, if given); returns
        (t_bins, rate Hz, rate_region Hz, t_vm, vm float64)."""
        t_bins, rate, rate_r, t_vm, vm = self._converted(dt, t0, rate_pop, rate_reg, vm,
                                                         bin_steps)
        if self.keep == "aggregate":
            np.add.at(self.counts, spk_gid, 1)
            self.steps += n_steps
        else:
            self.writer.append(spike_step=spk_step, spike_neuron=spk_gid, time=t_bins,
                               rate=rate, rate_region=rate_r, time_vm=t_vm, V_m=vm,
                               t_stop=(t0 + n_steps) * dt, state=state)
        return t_bins, rate, rate_r, t_vm, vm

    def flush(self, run, dt, upto, state=None):
        """Append (and commit) the records of ``run`` from where the last
        flush ended to step ``upto`` (relative to the run's start; a whole
        number of rate bins) with the engine's ``state`` there, so that a
        killed process loses at most what came after and can continue."""
        f, b = run.flushed, run.bin_steps
        if upto <= f:
            return
        steps, gids = run.spikes()
        s0, s1 = run.spikes_flushed, int(np.searchsorted(steps, run.t_base + upto))
        self.append(dt, run.t_base + f, upto - f, steps[s0:s1], gids[s0:s1],
                    run.rate_pop[f // b:upto // b], run.rate_reg[f // b:upto // b],
                    run.vm[f:upto], b, state)
        run.flushed, run.spikes_flushed = upto, s1

    def finish(self, run, dt, meta, appended=False, state=None):
        """Append what of a finished run was not appended yet (by ``flush``,
        or by an engine that ``appended`` it chunk by chunk; with the
        engine's ``state`` at its end) and return the whole run as a Dataset."""
        if not appended:
            self.flush(run, dt, run.n_steps, state)
        steps, gids = run.spikes()
        t_bins, rate, rate_r, t_vm, vm = self._converted(
            dt, run.t_base, run.rate_pop, run.rate_reg, run.vm, run.bin_steps)
        return make_dataset(meta, steps, gids, t_bins, rate, rate_r, t_vm, vm,
                            run.spec.vm_ids)

    # ------------------------------------------------------ rewind (dask)
    def position(self):
        """Where the kept records end now, for ``rewind``: the appended
        arrays' lengths, or the aggregate totals."""
        if self.keep == "aggregate":
            return {"counts": self.counts.copy(), "steps": self.steps}
        return {"lengths": self.writer.lengths(), "crc32": self.writer.checksums()}

    def rewind(self, position, t_stop):
        """Cut the kept records back to ``position`` (None: to nothing); they
        then end at ``t_stop`` (ms). The dask engine rewinds to a checkpoint
        after losing a worker."""
        if self.keep == "aggregate":
            self.counts[:] = 0 if position is None else position["counts"]
            self.steps = 0 if position is None else position["steps"]
            return
        if position is None:
            self.writer.truncate(None, t_stop=t_stop)
        else:
            self.writer.truncate(position["lengths"], t_stop=t_stop, crc=position.get("crc32"))

    def attach(self, path):
        """Append to the existing results store at ``path`` from now on
        (``Simulation.resume``)."""
        self.keep, self.store, self.overwrite = "store", path, False
        self.writer = ResultsWriter.reopen(path)

    # ------------------------------------------------------------ results
    def results(self, meta, dt, net):
        """Everything kept so far: the whole run as a Dataset (store and
        memory), or the totals (aggregate: ``spike_count`` per neuron,
        ``rate`` per population and ``rate_region`` per region in Hz, over
        ``t_total`` ms)."""
        if self.keep == "aggregate":
            t_s = self.steps * dt * 1e-3
            pop = np.bincount(net.pop_index(), self.counts, len(self.pop_n))
            reg = np.bincount(net.region_index(), self.counts, len(self.reg_n))
            with np.errstate(invalid="ignore", divide="ignore"):
                rate, rate_r = pop / (self.pop_n * t_s), reg / (self.reg_n * t_s)
            ds = xr.Dataset(
                {"spike_count": ("neuron", self.counts.copy(),
                                 {"units": "1", "long_name": "spikes per neuron"}),
                 "rate": ("population", rate, {"units": "Hz",
                                               "long_name": "mean population firing rate"}),
                 "rate_region": ("region", rate_r, {"units": "Hz",
                                                    "long_name": "mean region firing rate"})},
                coords={"neuron": np.arange(net.n_neurons), "population": meta["populations"],
                        "region": meta["regions"]},
                attrs={**meta, "t_total": self.steps * dt, "keep": "aggregate"})
            return ds
        if self.writer is None:
            raise ParameterError("nothing recorded yet: call run() first")
        from .results import open_results
        if self.keep == "store":
            return open_results(self.store)
        return open_results(self.writer.group.store)

