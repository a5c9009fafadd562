"""CUDA engine: ``Simulation(net, backend="cuda")`` steps the network on a GPU.

The network (a CSR keyed by source), the state (``X``, ``I_ou``, ``inp`` of
``flatten.KernelNetwork``) and the parameter table ``Q`` are uploaded once
and stay on the device; ``advance`` launches the kernels of
``brainsim.kernels.cuda_kernels`` window by window (a window is up to the
minimum synaptic delay in steps) and copies the spikes, rate counts and V_m
of the call back into the Simulation's RunRecord, in the cpu engine's form.
The per-neuron update is the cpu engine's own reference loop of each model,
compiled for the device (``cuda_kernels.network_kernels``): no model is
named here, and a user's registered model runs like a built-in one.

Synaptic input is summed in int64 fixed point, ``round(w * 2**k)``, so the
order of the atomic additions does not matter: the same seed gives the same
spikes on every run and for any launch configuration. ``k`` is chosen per
network as the largest value for which no neuron's summed input can overflow
(see ``fixed_point_bits``). What equals the cpu engine bit for bit, and what
only statistically, is listed in docs/cuda.md.

``numba.cuda`` is imported only when this engine is used: set
``NUMBA_ENABLE_CUDASIM=1`` before the first import of numba.cuda to run the
same kernels in Numba's CUDA simulator (slow; for tests).
"""
import math
import weakref

import numpy as np

from brainsim.kernels import csr

from ..errors import BrainsimError, ParameterError
from ..validation import integer

#: Steps per window at most (one window: update all neurons, then deliver).
MAX_WINDOW = 16
MODES = ("launch", "persistent")
#: Options of ``Simulation(..., backend="cuda", **options)``.
OPTIONS = ("device", "threads_per_block", "mode", "blocks")
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
    cuda.select_device(integer("device", device, low=0, high=n - 1, strict=True))
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
    2**-k in the receptors' weight unit (e.g. pA, nS, mV, or 1); a weight is
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
    """(indptr (N + 1,), targets int32, weights float32, delays uint16) of
    all synapses keyed by source: the partitions' rows concatenated, in
    partition order within a row."""
    syn, n = net.synapses, net.n_neurons
    if len(net.partitions) == 1:
        p = net.partitions[0]
        indptr = csr.dense_indptr(p.sources, p.indptr, n, p.offset)
        return indptr, syn["targets"], syn["weights"], syn["delays"]
    src = np.concatenate([np.repeat(p.sources, np.diff(p.indptr)) for p in net.partitions])
    order = csr.stable_counting_order(src, n, np.empty(0, np.int64), 1)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    return (indptr,) + tuple(csr.take(syn[k], order) for k in ("targets", "weights", "delays"))


class CudaEngine:
    """The cuda engine of a Simulation (``backend="cuda"``).

    Parameters
    ----------
    flat : KernelNetwork
        The network's flattening (built network).
    seed : int
        Seed of the simulation noise.
    device : int
        GPU index (default 0).
    threads_per_block : int
        CUDA threads per block, 1 .. 1024 (default 128).
    mode : {"launch", "persistent"}
        "launch" (default): two kernel launches per window. "persistent":
        one cooperative launch per ``advance`` call, grid-wide barriers
        between the phases (fewer launches; needs a GPU that supports
        cooperative launch; under the simulator a single block).
    blocks : int, optional
        Blocks of every kernel launch (threads loop over the work). Default:
        one thread per neuron for the update, 4 blocks per SM (4 under the
        simulator) for the delivery; in "persistent" mode as many as can be
        resident at once.

    Attributes
    ----------
    fixed_bits : int
        Fraction bits of the fixed-point synaptic sums (``fixed_point_bits``).
    window : int
        Steps per window (min delay, at most ``MAX_WINDOW``).
    X, I_ou, inp : ndarray
        Copies of the device state (state rows, OU currents in pA, pending
        synaptic input).
    """

    name = "cuda"
    #: Steps per ``advance`` call at most (hand back every 100 ms for progress)
    CHUNK_MS = 100.0

    def __init__(self, flat, seed, device=0, threads_per_block=128, mode="launch", blocks=None):
        self.threads_per_block, self.mode, self.blocks = check_options(threads_per_block, mode,
                                                                       blocks)
        self._cu = require_gpu(device)
        self.device = int(device)
        self.flat, self.seed = flat, int(seed)
        self._dev, self._events, self._sim = {}, None, None
        self._version = None
        self._spec = None
        from brainsim.kernels import cuda_kernels
        self._ck = cuda_kernels
        self.kernels = cuda_kernels.network_kernels(flat.models)
        self._upload_network()
        self._dev["state"] = tuple(self._cu.to_device(a) for a in flat.initial_state())
        self.spike_capacity = max(4 * flat.net.n_neurons, 1 << 20)

    @classmethod
    def for_simulation(cls, sim, net, n_partitions, **options):
        """The engine of Simulation ``sim``: builds its network (``n_partitions``
        default 1: partitions do not matter on one GPU) with ``options``
        among :data:`OPTIONS`."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ParameterError(f"backend 'cuda' takes the options {list(OPTIONS)}, got "
                                 f"unknown {unknown}")
        # fail before a long build
        check_options(options.get("threads_per_block", 128), options.get("mode", "launch"),
                      options.get("blocks"))
        require_gpu(options.get("device", 0))
        from .flatten import KernelNetwork
        sim.net.build(1 if n_partitions is None else n_partitions)
        engine = cls(KernelNetwork(sim.net, sim.dtype), sim.seed, **options)
        engine._sim = weakref.ref(sim)
        return engine

    # --------------------------------------------------------------- setup
    def _upload_network(self):
        """Synapses, channels, indices and the device buffers that do not
        depend on the run."""
        flat, up = self.flat, self._cu.to_device
        net, n = flat.net, flat.net.n_neurons
        indptr, targets, weights, delays = source_csr(net)
        d_min = int(delays.min()) if delays.size else MAX_WINDOW
        d_max = int(delays.max()) if delays.size else 1
        self.window = max(1, min(d_min, MAX_WINDOW))
        self.fixed_bits = fixed_point_bits(targets, weights, n)
        d = self._dev
        d["syn"] = (up(indptr), up(targets), up(weights), up(delays), up(flat.src_ch))
        d["model_of"] = up(flat.model_of)
        d["pop_of"], d["reg_of"] = up(flat.pop_of), up(flat.reg_of)
        d["ring"] = up(np.zeros((d_max + self.window, 2, n), np.int64))
        d["scratch"] = up(np.zeros((n, 1), np.int32))
        d["wcnt"] = up(np.zeros((2, self.window), np.int32))
        d["wspk"] = up(np.zeros((self.window, n), np.int32))

    @property
    def n_partitions(self):
        return len(self.flat.net.partitions)

    def chunk_steps(self, dt):
        return max(1, int(round(self.CHUNK_MS / dt)))

    def sync(self):
        """Upload the parameter table and the inputs again after the
        network's parameters changed (``Network.version``)."""
        net = self.flat.net
        if self._version != net.version:
            up = self._cu.to_device
            Q, qrow = self.flat.parameters()
            self._dev["prm"] = ((up(Q), up(qrow)), self._dev["model_of"])
            self._dev["inputs"] = tuple(up(np.ascontiguousarray(a)) for a in self.flat.inputs())
            self._version = net.version

    def _use_spec(self, spec):
        """Upload the recording selection of ``spec`` (a RecordSpec) when it
        is not the one of the previous call."""
        if spec is self._spec:
            return
        n = self.flat.net.n_neurons
        vm_col = np.full(n, -1, np.int32)
        vm_col[spec.vm_ids] = np.arange(spec.vm_ids.size, dtype=np.int32)
        mask = spec.mask if spec.mode == 2 else np.zeros(1, np.bool_)
        self._dev["rec_mask"] = self._cu.to_device(mask)
        self._dev["vm_col"] = self._cu.to_device(vm_col)
        self._n_rec = {0: 0, 1: n, 2: int(spec.mask.sum())}[spec.mode]
        self._spec = spec

    # ---------------------------------------------------------------- state
    @property
    def X(self):
        """State rows (n_state, N), a copy of the device's."""
        return self._dev["state"][0].copy_to_host()

    @property
    def I_ou(self):
        """OU currents (pA), a copy of the device's."""
        return self._dev["state"][1].copy_to_host()

    @property
    def inp(self):
        """Synaptic input pending for the next step (2, N), a copy."""
        return self._dev["state"][2].copy_to_host()

    def get_state(self, name, ids=None):
        """State variable ``name`` (float64 per neuron; NaN where a neuron's
        model has no such variable)."""
        return self.flat.read_state(self.X, name, ids)

    def set_state(self, name, ids, values):
        """Write state variable ``name`` of neurons ``ids`` (on the device)."""
        X = self.X
        ids = np.asarray(ids)
        rows = self.flat.state_row(name)
        mod = self.flat.model_of[ids]
        values = np.broadcast_to(np.asarray(values, float), ids.shape)
        for k, r in enumerate(rows):
            sel = mod == k
            if r is not None and sel.any():
                X[r, ids[sel]] = values[sel]
        self._dev["state"][0].copy_to_device(X)

    def check_state(self, t_ms):
        """Raise DivergenceError if a membrane potential diverged (copies
        the V_m row only)."""
        self.flat.check_membrane(self._dev["state"][0][0].copy_to_host(), t_ms)

    # ------------------------------------------------------------------ run
    def advance(self, t0, n, run):
        """Advance steps t0 .. t0 + n - 1 recording into ``run`` (a
        RunRecord); returns the steps done (fewer when its spike buffer
        could overflow)."""
        self._use_spec(run.spec)
        cap = run.spk_step.size - run.n_spk  # a window must fit: at most cap // n_rec steps
        W = max(1, min(self.window, cap // max(self._n_rec, 1)))
        bins = run.bin_steps
        row_lo = (t0 - run.t_base) // bins
        rows = (t0 + n - 1 - run.t_base) // bins + 1 - row_lo if run.rate_pop.shape[0] else 0
        rate_d, vm_d, cnt = self._call_buffers(rows, run, n, cap)
        d = self._dev
        rec = (d["wcnt"], d["wspk"], d["pop_of"], d["reg_of"], rate_d[0], rate_d[1],
               run.t_base + row_lo * bins, bins, run.spec.mode, d["rec_mask"], cnt,
               d["rec_step"], d["rec_gid"])
        st = (d["state"], d["ring"], d["scratch"], 2.0 ** -self.fixed_bits)
        args = (self.seed, st, d["prm"], d["inputs"], rec, d["vm_col"], vm_d, t0)
        ctl = (cnt, cap, self._n_rec)
        with self._ck.launching():
            if self.mode == "launch":
                self._launch_windows(t0, n, W, args, ctl)
            else:
                self._launch_persistent(t0, n, W, args, ctl)
        _, _, done, n_spk = (int(x) for x in cnt.copy_to_host())
        self._collect(run, t0 - run.t_base, done, min(n_spk, cap), vm_d)
        run.rate_pop[row_lo:row_lo + rows] += rate_d[0].copy_to_host()
        run.rate_reg[row_lo:row_lo + rows] += rate_d[1].copy_to_host()
        return done

    def _call_buffers(self, rows, run, n, cap):
        """Device buffers of one ``advance`` call: rate counts (its rows),
        V_m samples, the control words (run window 0; steps done; spikes);
        the spike record (re-made when ``cap`` changed) and the window's
        spike counts (cleared)."""
        cu, d = self._cu, self._dev
        if d.get("rec_step") is None or d["rec_step"].size != cap:
            d["rec_step"] = cu.device_array(cap, np.int64)
            d["rec_gid"] = cu.device_array(cap, np.int32)
        d["wcnt"].copy_to_device(np.zeros((2, self.window), np.int32))
        rate_d = (cu.to_device(np.zeros((rows, run.rate_pop.shape[1]), np.int64)),
                  cu.to_device(np.zeros((rows, run.rate_reg.shape[1]), np.int64)))
        n_vm = run.vm.shape[1]
        vm_d = cu.device_array((n if n_vm else 0, n_vm), run.vm.dtype)
        return rate_d, vm_d, cu.to_device(np.array([1, 0, 0, 0], np.int64))

    def _launch_windows(self, t0, n, W, args, ctl):
        d, tpb, ck = self._dev, self.threads_per_block, self.kernels
        grid_u = self.blocks or -(-self.flat.net.n_neurons // tpb)
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

    def _launch_persistent(self, t0, n, W, args, ctl):
        d, tpb = self._dev, self.threads_per_block
        full = (t0, n, W, 0) + args + (d["syn"], 2.0 ** self.fixed_bits, ctl)
        if simulator_enabled():
            kernel, blocks = self.kernels.persistent, 1  # the simulator syncs one block only
        else:  # compile for these argument types; at most the blocks resident at once
            kernel = self.kernels.persistent.specialize(*full)
            blocks = next(iter(kernel.overloads.values())).max_cooperative_grid_blocks(tpb)
            blocks = max(1, min(blocks, self.blocks or blocks))
        self._mark(0)
        kernel[blocks, tpb](*full)
        self._mark(1)

    def _deliver_grid(self):
        if simulator_enabled():
            return 4
        return 4 * self._cu.get_current_device().MULTIPROCESSOR_COUNT

    def _collect(self, run, off, done, n_spk, vm_d):
        """Recorded spikes in (step, id) order after those already in
        ``run``, and V_m of the steps done."""
        if n_spk:
            steps = self._dev["rec_step"][:n_spk].copy_to_host()
            gids = self._dev["rec_gid"][:n_spk].copy_to_host()
            order = np.lexsort((gids, steps))
            a = run.n_spk
            run.spk_step[a:a + n_spk] = steps[order]
            run.spk_gid[a:a + n_spk] = gids[order]
            run.n_spk = a + n_spk
        if run.vm.shape[1] and done:
            run.vm[off:off + done] = vm_d[:done].copy_to_host()

    # ------------------------------------------------------------- timing
    def _mark(self, phase):
        if self._events is not None:
            ev = self._cu.event()
            ev.record()
            self._events.append((phase, ev))

    def kernel_times(self, t_ms, sim=None):
        """Run the Simulation ``t_ms`` (ms, like ``run``; ``sim`` defaults
        to the one this engine belongs to, so ``sim.kernel_times(t_ms)``
        works) timing the kernels with CUDA events; returns ms of GPU time
        per simulated step: ``{"update": .., "deliver": ..}`` ("launch"
        mode) or ``{"persistent": ..}``, plus ``"steps"``. Launch gaps
        between kernels are not counted; NaN under the simulator."""
        sim = sim if sim is not None else (self._sim() if self._sim is not None else None)
        if sim is None:
            raise ParameterError("kernel_times needs the Simulation: pass sim=")
        self._events = []
        try:
            sim.run(t_ms)
            self._cu.synchronize()
            names = ("update", "deliver") if self.mode == "launch" else ("persistent",)
            total = dict.fromkeys(names, 0.0)
            ev = self._events
            for (p0, a), (p1, b) in zip(ev[:-1], ev[1:]):
                if p1 == p0 + 1:
                    total[names[p0]] += a.elapsed_time(b)
        finally:
            self._events = None
        steps = int(round(t_ms / sim.net.dt))
        if simulator_enabled():  # the simulator's events do not time anything
            total = dict.fromkeys(total, math.nan)
        return {**{k: v / steps for k, v in total.items()}, "steps": steps}

    def device_memory(self):
        """Bytes of the arrays this engine holds on the device."""
        return sum(_nbytes(v) for v in self._dev.values())

    def close(self):
        """Drop the device arrays (the memory returns to Numba's allocator)."""
        self._dev.clear()
        self._spec = None
        self._version = None


def check_options(threads_per_block, mode, blocks):
    """Validated (threads_per_block, mode, blocks) of the cuda engine."""
    tpb = _int_in("threads_per_block", threads_per_block, 1, 1024)
    if not isinstance(mode, str) or mode not in MODES:
        raise ParameterError(f"mode must be one of {list(MODES)}, got {mode!r}")
    if blocks is not None:
        blocks = _int_in("blocks", blocks, 1, 1 << 20)
    return tpb, mode, blocks


def _nbytes(x):
    if isinstance(x, tuple):
        return sum(_nbytes(v) for v in x)
    return int(getattr(x, "nbytes", 0))


def _int_in(name, value, lo, hi):
    return integer(name, value, low=lo, high=hi, strict=True)
