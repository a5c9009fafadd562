"""CUDA backend: ``Simulation(net, backend="cuda")`` steps the network on a GPU.

The network (a CSR keyed by source), the state and the parameter tables are
uploaded once and stay on the device; ``run`` launches the kernels of
``brainsim.kernels.cuda_kernels`` window by window (a window is up to the
minimum synaptic delay in steps), and copies back the spikes, rates and V_m
of each run chunk into the same Dataset as the cpu backend.

Synaptic input is summed in int64 fixed point, ``round(w * 2**k)``, so the
order of the atomic additions does not matter: the same seed gives the same
spikes on every run and for any launch configuration. ``k`` is chosen per
network as the largest value for which no neuron's summed input can overflow
(see ``fixed_point_bits``). What equals the cpu backend bit for bit, and what
only statistically, is listed in docs/cuda.md.

``numba.cuda`` is imported only when this backend is used: set
``NUMBA_ENABLE_CUDASIM=1`` before the first import of numba.cuda to run the
same kernels in Numba's CUDA simulator (slow; for tests).
"""
import math

import numpy as np

from brainsim.kernels import csr

from ..errors import BrainsimError, ParameterError
from ..simulation import Simulation
from . import block_rows, cpu, model_ids, source_channels

#: Steps per window at most (one window: update all neurons, then deliver).
MAX_WINDOW = 16
MODES = ("launch", "persistent")
#: Windows launched between two looks at the device's stop flag ("launch" mode).
CHECK_EVERY = 32


class CudaUnavailableError(BrainsimError, RuntimeError):
    """backend="cuda" without numba-cuda or without a usable GPU."""


def _cuda():
    """The numba.cuda module, or a CudaUnavailableError naming the fix."""
    try:
        from numba import cuda
    except ImportError as exc:
        raise CudaUnavailableError(
            "backend='cuda' needs the numba-cuda package: pip install 'brainsim[cuda]' "
            f"(or pip install numba-cuda); importing numba.cuda failed: {exc}") from None
    return cuda


def simulator_enabled():
    """True when Numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1)."""
    from numba.cuda.core import config
    return bool(config.ENABLE_CUDASIM)


def require_gpu(device=0):
    """Select GPU ``device`` (or the simulator) and return numba.cuda."""
    cuda = _cuda()
    if not simulator_enabled() and not cuda.is_available():
        raise CudaUnavailableError(
            "backend='cuda' found no usable CUDA GPU (numba.cuda.is_available() is False): "
            "install or update the NVIDIA driver and check that `nvidia-smi` lists a GPU; "
            "to run the CUDA kernels on the CPU (slowly) set NUMBA_ENABLE_CUDASIM=1 before "
            "Python starts, or use backend='cpu'")
    n = len(cuda.gpus)
    if isinstance(device, bool) or not isinstance(device, (int, np.integer)) or not (
            0 <= device < n):
        raise ParameterError(f"device must be an integer in [0, {n - 1}], got {device!r}")
    cuda.select_device(int(device))
    return cuda


def cuda_devices():
    """The CUDA devices Numba sees, as dicts (for ``brainsim info``).

    Keys: ``id``, ``name``, ``compute_capability`` (major, minor),
    ``memory_total`` and ``memory_free`` (bytes). Under the simulator one
    entry named "CUDA simulator" with None values; empty when numba-cuda or a
    GPU is missing.
    """
    try:
        cuda = _cuda()
        if simulator_enabled():
            return [{"id": 0, "name": "CUDA simulator (NUMBA_ENABLE_CUDASIM=1)",
                     "compute_capability": None, "memory_total": None, "memory_free": None}]
        if not cuda.is_available():
            return []
        out = []
        for gpu in cuda.gpus:
            with gpu:
                dev = cuda.get_current_device()
                free, total = cuda.current_context().get_memory_info()
                name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
                out.append({"id": int(gpu.id), "name": name,
                            "compute_capability": tuple(dev.compute_capability),
                            "memory_total": int(total), "memory_free": int(free)})
        return out
    except (CudaUnavailableError, ImportError):
        return []


def describe_devices():
    """Lines for ``brainsim info``: the CUDA devices, or how to get one."""
    devs = cuda_devices()
    if not devs:
        return ["CUDA devices: none (backend='cuda' needs pip install 'brainsim[cuda]', an "
                "NVIDIA GPU and its driver)"]
    lines = ["CUDA devices:"]
    for d in devs:
        extra = ""
        if d["memory_total"] is not None:
            cc = ".".join(map(str, d["compute_capability"]))
            extra = f", compute capability {cc}, {d['memory_total'] / 2**30:.1f} GiB"
        lines.append(f"  {d['id']}: {d['name']}{extra}")
    return lines


def fixed_point_bits(targets, weights, n_neurons, chunk=1 << 24):
    """Fraction bits k of the int64 fixed-point synaptic sums.

    The largest k with B * 2**k <= 2**61, where B is the largest sum of
    |weights| onto one neuron (a bound on what one step can bring to one
    channel of it; the factor 4 below 2**63 covers rounding). Resolution
    2**-k (weight units: pA for iaf_psc_exp, 1 for lif_dtb); a weight is
    exact when it is a multiple of 2**-k, which float32 weights >= 2**(23-k)
    in magnitude are.
    """
    total = np.zeros(n_neurons)
    for a in range(0, targets.size, chunk):
        total += np.bincount(targets[a:a + chunk], np.abs(weights[a:a + chunk], dtype=np.float64),
                             minlength=n_neurons)
    bound = float(total.max(initial=0.0))
    if bound == 0.0:
        return 32
    return 61 - math.ceil(math.log2(bound))


def source_csr(net):
    """(indptr (N + 1,), targets, weights, delays) of all synapses keyed by
    source (the partitions' rows concatenated); the network's own arrays when
    it has one partition."""
    syn = net.synapses
    rows = block_rows(net)
    if len(net.partitions) == 1:
        return rows[0], syn["targets"], syn["weights"], syn["delays"]
    src = np.concatenate([np.repeat(p.sources, np.diff(p.indptr)) for p in net.partitions])
    order = csr.stable_counting_order(src, net.n_neurons, np.empty(0, np.int64), 1)
    indptr = np.zeros(net.n_neurons + 1, np.int64)
    np.cumsum(np.bincount(src, minlength=net.n_neurons), out=indptr[1:])
    return (indptr,) + tuple(csr.take(syn[k], order) for k in ("targets", "weights", "delays"))


class _OnDevice:
    """State array held on the device: reading copies it to the host,
    assigning uploads it. While ``sim._staged`` is a dict (during
    ``_init_state``) the arrays live there, so the base class can fill them
    in place before they are uploaded."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, sim, owner=None):
        if sim is None:
            return self
        if sim._staged is not None:
            return sim._staged[self.name]
        return sim._dev[self.name].copy_to_host()

    def __set__(self, sim, value):
        if sim._staged is not None:
            sim._staged[self.name] = value
        else:
            sim._dev[self.name] = sim._cu.to_device(np.ascontiguousarray(value))


class CudaSimulation(Simulation):
    """``Simulation`` on a CUDA GPU (``backend="cuda"``); same ``run`` and Dataset.

    Extra parameters
    ----------------
    device : int
        GPU index (default 0).
    threads_per_block : int
        CUDA threads per block, 1 .. 1024 (default 128).
    mode : {"launch", "persistent"}
        "launch" (default): two kernel launches per window. "persistent":
        one cooperative launch per run chunk, grid-wide barriers between the
        phases (fewer launches; needs a GPU that supports cooperative launch;
        under the simulator a single block).
    blocks : int, optional
        Blocks of every kernel launch (threads loop over the work). Default:
        one thread per neuron for the update, 4 blocks per SM (4 under the
        simulator) for the delivery; in "persistent" mode as many as can be
        resident at once.

    ``V``, ``S``, ``ref``, ``I_ou`` read the device state (copies).
    n_partitions defaults to 1 (partitions do not matter on one GPU).
    """

    V = _OnDevice()
    S = _OnDevice()
    ref = _OnDevice()
    I_ou = _OnDevice()
    inp = _OnDevice()

    def __init__(self, net, backend="cuda", seed=1, record=None, store=None, dtype="float64",
                 threads=None, rate_bin=None, n_partitions=None, overwrite=False, device=0,
                 threads_per_block=128, mode="launch", blocks=None):
        self._cu = require_gpu(device)
        self._dev, self._staged, self._events = {}, None, None
        self.device = device
        self.threads_per_block = _int_in("threads_per_block", threads_per_block, 1, 1024)
        if mode not in MODES:
            raise ParameterError(f"mode must be one of {list(MODES)}, got {mode!r}")
        self.mode = mode
        if blocks is not None:
            _int_in("blocks", blocks, 1, 1 << 20)
        self.blocks = blocks
        super().__init__(net, backend, seed, record, store, dtype, threads, rate_bin,
                         1 if n_partitions is None else n_partitions, overwrite)

    # --------------------------------------------------------------- setup
    def _init_state(self):
        self._staged = {}
        super()._init_state()  # V, S, ref, I_ou, inp made on the host, then uploaded
        staged, self._staged = self._staged, None
        for name, value in staged.items():
            setattr(self, name, value)
        self.hist = None  # the cpu backend's spike history: unused here

    def _init_static(self):
        net, cu = self.net, self._cu
        n = net.n_neurons
        self.pop_of = net.pop_index()
        self.reg_of = net.region_index()
        self.pop_n = np.array([p.n for p in net.populations.values()], float)
        self.reg_n = np.bincount(self.reg_of, minlength=len(net.regions)).astype(float)
        self.spike_capacity = max(4 * n, 1 << 20)
        indptr, targets, weights, delays = source_csr(net)
        d_min = int(delays.min()) if delays.size else MAX_WINDOW
        d_max = int(delays.max()) if delays.size else 1
        self.window = max(1, min(d_min, MAX_WINDOW))
        self.fixed_bits = fixed_point_bits(targets, weights, n)
        up = cu.to_device
        d = self._dev
        d["syn"] = (up(indptr), up(targets), up(weights), up(delays),
                    up(source_channels(net)))
        d["model"] = up(model_ids(net))
        d["pop_of"], d["reg_of"] = up(self.pop_of), up(self.reg_of)
        d["ring"] = up(np.zeros((d_max + self.window, 2, n), np.int64))
        d["scratch"] = up(np.zeros((n, 1), np.int32))
        d["wcnt"] = up(np.zeros((2, self.window), np.int32))
        d["wspk"] = up(np.zeros((self.window, n), np.int32))

    def _init_record(self, record):
        super()._init_record(record)
        n = self.net.n_neurons
        vm_col = np.full(n, -1, np.int32)
        vm_col[self.vm_ids] = np.arange(self.vm_ids.size, dtype=np.int32)
        mask = self.rec_mask if self.rec_mode == 2 else np.zeros(1, np.bool_)
        self._dev["rec_mask"] = self._cu.to_device(mask)
        self._dev["vm_col"] = self._cu.to_device(vm_col)
        self._n_rec = {0: 0, 1: n, 2: int(self.rec_mask.sum())}[self.rec_mode]

    def _refresh_params(self):
        before = self._params_version
        super()._refresh_params()
        if self._params_version == before:
            return
        up = self._cu.to_device
        self._dev["prm"] = (self._dev["model"], up(self.q_iaf), up(self.q_dtb), up(self.qrow),
                            up(self.ref_steps))
        self._dev["inputs"] = tuple(up(np.ascontiguousarray(a)) for a in self.inputs)

    # ----------------------------------------------------------------- run
    def _advance(self, t_base, n, spk_step, spk_gid, rate_pop, rate_reg, vm):
        t0 = self.step
        cap = self.spike_capacity  # a window must fit: at most cap // n_rec steps
        W = max(1, min(self.window, cap // max(self._n_rec, 1)))
        row_lo = (t0 - t_base) // self.bin_steps
        rows = (t0 + n - 1 - t_base) // self.bin_steps + 1 - row_lo if rate_pop.shape[0] else 0
        rate_d, vm_d, cnt = self._chunk_buffers(rows, rate_pop, rate_reg, n, vm)
        d = self._dev
        rec = (d["wcnt"], d["wspk"], d["pop_of"], d["reg_of"], rate_d[0], rate_d[1],
               t_base + row_lo * self.bin_steps, self.bin_steps, self.rec_mode, d["rec_mask"],
               cnt, d["rec_step"], d["rec_gid"])
        st = (d["V"], d["S"], d["ref"], d["I_ou"], d["inp"], d["ring"], d["scratch"],
              2.0 ** -self.fixed_bits)
        args = (self.seed, st, d["prm"], d["inputs"], rec, d["vm_col"], vm_d, t0)
        ctl = (cnt, cap, self._n_rec)
        ck = _kernels()
        with ck.launching():
            if self.mode == "launch":
                self._launch_windows(ck, t0, n, W, args, ctl)
            else:
                self._launch_persistent(ck, t0, n, W, args, ctl)
        _, _, done, n_spk = (int(x) for x in cnt.copy_to_host())
        self._collect(t0 - t_base, done, n_spk, spk_step, spk_gid, vm, vm_d)
        rate_pop[row_lo:row_lo + rows] += rate_d[0].copy_to_host()
        rate_reg[row_lo:row_lo + rows] += rate_d[1].copy_to_host()
        return done, n_spk

    def _chunk_buffers(self, rows, rate_pop, rate_reg, n, vm):
        """Device buffers of one run chunk: rate counts (rows of this chunk),
        V_m samples, the control words (run window 0; steps done; spikes);
        the spike record (re-made if ``spike_capacity`` changed) and the
        window's spike counts (cleared)."""
        cu, d, cap = self._cu, self._dev, self.spike_capacity
        if d.get("rec_step") is None or d["rec_step"].size != cap:
            d["rec_step"] = cu.device_array(cap, np.int64)
            d["rec_gid"] = cu.device_array(cap, np.int32)
        d["wcnt"].copy_to_device(np.zeros((2, self.window), np.int32))
        rate_d = (cu.to_device(np.zeros((rows, rate_pop.shape[1]), np.int64)),
                  cu.to_device(np.zeros((rows, rate_reg.shape[1]), np.int64)))
        vm_d = cu.device_array((n if vm.shape[1] else 0, vm.shape[1]), vm.dtype)
        return rate_d, vm_d, cu.to_device(np.array([1, 0, 0, 0], np.int64))

    def _launch_windows(self, ck, t0, n, W, args, ctl):
        d, tpb = self._dev, self.threads_per_block
        grid_u = self.blocks or -(-self.net.n_neurons // tpb)
        grid_d = self.blocks or self._deliver_grid()
        scale = 2.0 ** self.fixed_bits
        t, par, k = t0, 0, 0
        while t < t0 + n:
            n_w = min(W, t0 + n - t)
            self._mark(0)
            ck.update[grid_u, tpb](t, n_w, par, *args, ctl)
            self._mark(1)
            ck.deliver[grid_d, tpb](t, n_w, min(W, t0 + n - t - n_w), par, d["syn"], d["ring"],
                                    scale, d["wcnt"], d["wspk"], ctl)
            self._mark(2)
            t, par, k = t + n_w, 1 - par, k + 1
            # the device stops when the spike record is nearly full; look now
            # and then, so that few windows are launched only to do nothing
            if k % CHECK_EVERY == 0 and ctl[0].copy_to_host()[par] == 0:
                break

    def _launch_persistent(self, ck, t0, n, W, args, ctl):
        d, tpb = self._dev, self.threads_per_block
        full = (t0, n, W, 0) + args + (d["syn"], 2.0 ** self.fixed_bits, ctl)
        if simulator_enabled():
            kernel, blocks = ck.persistent, 1  # the simulator syncs a grid of one block only
        else:  # compile for these argument types; at most the blocks resident at once
            kernel = ck.persistent.specialize(*full)
            blocks = next(iter(kernel.overloads.values())).max_cooperative_grid_blocks(tpb)
            blocks = max(1, min(blocks, self.blocks or blocks))
        self._mark(0)
        kernel[blocks, tpb](*full)
        self._mark(1)

    def _deliver_grid(self):
        if simulator_enabled():
            return 4
        return 4 * self._cu.get_current_device().MULTIPROCESSOR_COUNT

    def _collect(self, off, done, n_spk, spk_step, spk_gid, vm, vm_d):
        """Recorded spikes in (step, id) order, and V_m of the steps done."""
        if n_spk:
            steps = self._dev["rec_step"][:n_spk].copy_to_host()
            gids = self._dev["rec_gid"][:n_spk].copy_to_host()
            order = np.lexsort((gids, steps))
            spk_step[:n_spk] = steps[order]
            spk_gid[:n_spk] = gids[order]
        if vm.shape[1] and done:
            vm[off:off + done] = vm_d[:done].copy_to_host()

    def _mark(self, phase):
        if self._events is not None:
            ev = self._cu.event()
            ev.record()
            self._events.append((phase, ev))

    def kernel_times(self, t_ms):
        """Advance ``t_ms`` (ms, like ``run``) timing the kernels with CUDA
        events; returns ms of GPU time per simulated step: ``{"update": ..,
        "deliver": ..}`` ("launch" mode) or ``{"persistent": ..}``, plus
        ``"steps"``. Launch gaps between kernels are not counted; NaN under
        the simulator."""
        self._events = []
        try:
            self.run(t_ms)
            self._cu.synchronize()
            names = ("update", "deliver") if self.mode == "launch" else ("persistent",)
            total = dict.fromkeys(names, 0.0)
            ev = self._events
            for (p0, a), (p1, b) in zip(ev[:-1], ev[1:]):
                if p1 == p0 + 1:
                    total[names[p0]] += a.elapsed_time(b)
        finally:
            self._events = None
        steps = int(round(t_ms / self.net.dt))
        if simulator_enabled():  # the simulator's events do not time anything
            total = dict.fromkeys(total, math.nan)
        return {**{k: v / steps for k, v in total.items()}, "steps": steps}

    def device_memory(self):
        """Bytes of the arrays this simulation holds on the device."""
        return sum(_nbytes(v) for v in self._dev.values())


def _kernels():
    """The CUDA kernels module, with the cpu backend's per-neuron step installed."""
    from brainsim.kernels import cuda_kernels
    cuda_kernels.set_neuron_step(cpu._update_chunk)
    return cuda_kernels


def _nbytes(x):
    if isinstance(x, tuple):
        return sum(_nbytes(v) for v in x)
    return int(getattr(x, "nbytes", 0))


def _int_in(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (
            lo <= value <= hi):
        raise ParameterError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)
