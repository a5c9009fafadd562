"""CPU engine: Numba threads in this process step the network.

The loops are in ``brainsim.kernels.loops`` (compiled per model and per set
of models): rows of the CSR are sorted by delay, so a row is a list of
segments of equal delay. Per step t: (1) in parallel over target partitions,
every spike of the last R steps whose row has a segment of delay equal to
its age adds that segment's weights into the input array ``inp`` (2 x N:
excitatory and inhibitory channel); (2) in parallel over chunks of neurons
(one model each), each chunk through its model's loop: read and clear the
input, add Poisson input, advance the OU current and the neuron; (3) gather
the step's spikes in ascending id order, record them and enter them into the
spike history.

Step (2) has two loops per model: the per-neuron reference loop (which the
CUDA engine compiles for the device) and, for chunks whose neurons share a
parameter row and a Poisson source (every population of the microcircuit and
of generated networks), split branch-free loops that LLVM vectorises, with
the same operations in the same order and types, so results are
bit-identical (tests/test_fast_kernels.py).

Delivering late (Brian2's spike queue does the same) keeps the scattered
read-modify-writes inside an array of N values instead of a ring buffer of
R x N, which at full microcircuit scale is the difference between cache and
main memory.

Every neuron and every input cell is written by one thread only, and each
target's input is summed in the same order (delay, source id, creation order
of the synapses) whatever the partitioning: spikes are bit-identical for any
number of partitions and threads.
"""
import numba
import numpy as np
from numba import njit

from brainsim.kernels import loops, rng
from brainsim.kernels.loops import new_history  # noqa: F401  (used by the dask worker)
from brainsim.kernels.rng import STREAM_POISSON, stream_key


class CpuEngine:
    """The cpu engine of a Simulation (``backend="cpu"``).

    Parameters
    ----------
    flat : KernelNetwork
    seed : int
    threads : int or None
        Numba threads (None: all).
    syn : tuple, optional
        Synapse arrays (``SynapseTable.kernel_arrays``); default: the
        network's. The Dask worker passes those of its partitions.
    bounds : list of (lo, hi), optional
        Neuron ranges of the partitions stepped (default: all).
    max_delay : int, optional
        Largest delay (steps) of the synapses in ``syn``.
    """

    name = "cpu"
    #: Steps per call of the kernel at most (hand back every 100 ms for progress)
    CHUNK_MS = 100.0

    def __init__(self, flat, seed, threads=None, syn=None, bounds=None, max_delay=None):
        net = flat.net
        self.flat, self.seed, self.threads = flat, int(seed), threads
        # refs and fasts own the machine code that addresses point to
        self.kernel, self.refs, self.fasts, self.addresses = loops.network_kernels(
            flat.models, np.dtype(flat.dtype).name)
        self.chunks = make_chunks(net, flat.model_of, bounds=bounds)
        if syn is None:
            syn = net.synapses.kernel_arrays(net.n_neurons)
            max_delay = net.synapses.max_delay
        self.syn = tuple(syn) + (flat.src_ch,)
        n_blocks = self.syn[0].shape[0]
        n = net.n_neurons
        self.state = flat.initial_state()
        self.hist = new_history(max_delay + 1, n_blocks, max(64, min(n, 4096)))
        n_chunks = self.chunks[0].size
        max_len = int((self.chunks[1] - self.chunks[0]).max())
        self.scratch = (np.zeros((n_chunks, max_len), np.int32), np.zeros(n_chunks, np.int64),
                        np.zeros(n, np.int32))
        self.spike_capacity = max(4 * n, 1 << 20)
        # False: every chunk takes the per-neuron reference loop (tests compare the two)
        self.fast = True
        self._version = None
        self._plan_key = None

    @property
    def n_partitions(self):
        return self.syn[0].shape[0]

    def chunk_steps(self, dt):
        return max(1, int(round(self.CHUNK_MS / dt)))

    # ---------------------------------------------------------- parameters
    def sync(self):
        """Rebuild parameter table and inputs after the network's parameters
        changed (``Network.version``)."""
        net = self.flat.net
        if self._version != net.version:
            self.params = self.flat.parameters()
            self.inputs = self.flat.inputs()
            self._version = net.version

    def plan(self):
        """The chunk plan for the current parameters (``chunk_plan``)."""
        key = (self._version, self.fast)
        if self._plan_key != key:
            plan = chunk_plan(self.chunks, self.params[1], self.inputs, self.seed, self.fast)
            # the loops this plan calls, compiled before advance may call them
            slots = loops.plan_slots(plan[0], self.chunks[2], len(self.refs))
            loops.compile_loops(self.refs, self.fasts, self.addresses, slots,
                                self.flat.dtype)
            self._plan_cache = plan
            self._plan_key = key
        return self._plan_cache

    # ---------------------------------------------------------------- state
    def get_state(self, name, ids=None):
        """State variable ``name`` (float64 per neuron; NaN where a neuron's
        model has no such variable)."""
        return self.flat.read_state(self.state[0], name, ids)

    def set_state(self, name, ids, values):
        """Write state variable ``name`` of neurons ``ids``."""
        X = self.state[0]
        rows = self.flat.state_row(name)
        mod = self.flat.model_of[ids]
        values = np.broadcast_to(np.asarray(values, float), ids.shape)
        for k, r in enumerate(rows):
            sel = mod == k
            if r is not None and sel.any():
                X[r, ids[sel]] = values[sel]

    @property
    def X(self):
        return self.state[0]

    @property
    def I_ou(self):
        return self.state[1]

    @property
    def inp(self):
        return self.state[2]

    # ------------------------------------------------------------------ run
    def advance(self, t0, n, run):
        """Advance steps t0 .. t0 + n - 1 recording into ``run``; returns
        the steps done (fewer when the spike record filled up)."""
        set_threads(self.threads)
        chunks = self.chunks + self.plan()
        rec = run.kernel_args(self.flat.pop_of, self.flat.reg_of)
        done, run.n_spk, self.hist = self.kernel(
            t0, n, run.t_base, self.seed, self.scratch, self.state, self.params, self.inputs,
            self.syn, chunks, rec, run.n_spk, self.hist, self.addresses)
        return done

    #: names of the arrays of a state snapshot (``snapshot`` / ``restore``)
    SNAPSHOT = ("X", "I_ou", "inp", "h_spk", "h_n", "h_cur")

    def snapshot(self):
        """Everything the next step depends on (copies): the neurons' state,
        OU currents, pending input and the spike history of the last
        max-delay steps. Noise is counter-based, so nothing else is needed
        to continue bit-identically."""
        return dict(zip(self.SNAPSHOT, (*(a.copy() for a in self.state),
                                        *(a.copy() for a in self.hist))))

    def restore(self, arrays):
        """Load a ``snapshot`` (arrays of this engine's dtypes and shapes,
        except the history's capacity, which grows as needed)."""
        for k, name in enumerate(self.SNAPSHOT[:3]):
            self.state[k][...] = arrays[name]
        self.hist = tuple(np.ascontiguousarray(arrays[name]) for name in self.SNAPSHOT[3:])

    def check_state(self, t_ms):
        """Raise DivergenceError if a membrane potential diverged."""
        self.flat.check_membrane(self.state[0][0], t_ms)

    def close(self):
        pass


def chunk_plan(chunks, qrow, inputs, seed, fast=True):
    """(plan, pkey) for the loops from the chunk table ``chunks`` (lo, hi,
    model, ...), the parameter rows ``qrow``, the input bundle ``inputs``
    (``KernelNetwork.inputs``) and the simulation seed; ``fast=False`` sends
    every chunk through the reference loop. Depends only on these: compute
    it again when parameters or inputs change."""
    pois, _, pois_idx, ou = inputs
    return _chunk_plan(chunks[0], chunks[1], qrow, pois, pois_idx, ou[0] if ou.shape[1] else
                       np.zeros(0, ou.dtype), fast, seed)


@njit(cache=True)
def _chunk_plan(lo, hi, qrow, pois, pois_idx, ou_on, fast, seed):
    """Per chunk: (parameter row shared by all its neurons or -1 (per-neuron
    rows), the fast loop's variant or -1 (reference loop) (``loops.
    FAST_VARIANTS``: Poisson input none / excitatory / inhibitory, from one
    source shared by all, mean < 12 per step, one table row, weight and
    delay; OU current off / on for all), OU on, that Poisson table row or
    -1); and the Poisson stream's
    ``rng.neuron_key`` of every neuron of the fast Poisson chunks (half of
    each draw's hash, the same at every step)."""
    n = lo.size
    plan = np.full((n, 4), -1, np.int64)
    pkey = np.empty(pois.shape[1], np.uint64)
    if not fast:
        return plan, pkey
    has_pois = pois.shape[1] > 0
    has_ou = ou_on.size > 0
    key0 = stream_key(seed, STREAM_POISSON, 0)
    for c in range(n):
        a, b = lo[c], hi[c]
        ok = True
        shared = True
        for i in range(a + 1, b):
            if qrow[i] != qrow[a]:
                shared = False
        pmode = 0
        if has_pois:
            lam_on = 0
            for i in range(a, b):
                lam_on += pois[0, i] > 0.0
            if lam_on == b - a and pois[0, a] < rng.POISSON_INVERSION_MAX:
                pmode = 1
                for i in range(a + 1, b):
                    if (pois_idx[i] != pois_idx[a] or pois[1, i] != pois[1, a]
                            or pois[2, i] != pois[2, a]):
                        ok = False
            elif lam_on != 0:
                ok = False
        omode = 0
        if has_ou:
            n_on = 0
            for i in range(a, b):
                n_on += ou_on[i] != 0
            if n_on == b - a:
                omode = 1
            elif n_on != 0:
                ok = False
        if ok:
            plan[c, 0] = qrow[a] if shared else -1
            # FAST_VARIANTS: (no Poisson, excitatory, inhibitory) x (no OU, OU)
            kind = 0 if pmode == 0 else (1 if pois[1, a] >= 0.0 else 2)
            plan[c, 1] = 2 * kind + omode
            plan[c, 2] = omode
            if pmode == 1:
                plan[c, 3] = pois_idx[a]
                for i in range(a, b):
                    pkey[i] = rng.neuron_key(key0, i)
    return plan, pkey


def set_threads(threads):
    """Use ``threads`` Numba threads (None: all available)."""
    n = numba.config.NUMBA_NUM_THREADS if threads is None else int(threads)
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


def make_chunks(net, model_of, size=2048, bounds=None):
    """Contiguous neuron ranges of one model and one partition, <= size long,
    and the chunk index range of each partition. ``model_of``: each neuron's
    model index; ``bounds``: the (lo, hi) neuron ranges of consecutive
    partitions to cover (default: all of the network's; a Dask worker passes
    its own)."""
    if bounds is None:
        bounds = [(p.lo, p.hi) for p in net.partitions]
    lo_all, hi_all = bounds[0][0], bounds[-1][1]
    edges = {lo_all, hi_all}
    edges.update(lo for lo, _ in bounds)
    edges.update(q.start for q in net.populations.values() if lo_all < q.start < hi_all)
    edges = np.array(sorted(edges))
    lo, hi, model = [], [], []
    for a, b in zip(edges[:-1], edges[1:]):
        for x in range(a, b, size):
            lo.append(x)
            hi.append(min(b, x + size))
            model.append(model_of[x])
    lo = np.array(lo, np.int64)
    blk_chunks = np.searchsorted(lo, [b[0] for b in bounds] + [hi_all])
    return (lo, np.array(hi, np.int64), np.array(model, np.int8), blk_chunks.astype(np.int64))


def _for_simulation(cls, sim, net, n_partitions, **options):
    """The engine of Simulation ``sim`` (backend "cpu": no options)."""
    if options:
        from ..errors import ParameterError
        raise ParameterError(f"backend 'cpu' takes no options, got {sorted(options)}")
    from .flatten import KernelNetwork
    sim.net.build(n_partitions)
    return cls(KernelNetwork(sim.net, sim.dtype), sim.seed, sim.threads)


CpuEngine.for_simulation = classmethod(_for_simulation)
