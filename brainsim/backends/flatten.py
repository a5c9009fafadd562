"""One flattening of a Network into the arrays every engine uses.

:class:`KernelNetwork` maps a Network onto the kernels' layout: the models
in use (a chunk's or a neuron's model is an index into ``models``), the
state array ``X`` (n_state, N) with each model's membrane potential in row 0
(``brainsim.kernels.codegen.state_rows``), one parameter table ``Q`` (a row
per distinct parameter set of any model) with each neuron's row in ``qrow``,
the external-input arrays and the input channel of each source. The cpu,
dask and cuda engines all build their state and parameters from it; no
engine knows a model by name.
"""
import numpy as np

from brainsim.kernels import rng
from brainsim.kernels.codegen import state_rows

from ..errors import DivergenceError
from ..neurons import get_model

#: |V_m| (mV) beyond which a simulation is taken to have diverged: four
#: orders of magnitude past any physiological potential, far below where a
#: float32 state overflows.
V_M_LIMIT = 1e6


def distinct_rows(a):
    """(rows, inverse) with ``rows[inverse] == a``: the distinct rows of a 2-D
    array, as ``np.unique(a, axis=0, return_inverse=True)`` but without its
    row-by-row lexicographic sort (seconds per call at 1e6 neurons with
    per-neuron parameters, every time a parameter changes). Rows are hashed
    from their bits (NaN and -0.0 compare by bits, as np.unique's do not
    matter here: equal bits are equal parameters), the 1-D hashes deduplicated,
    and the grouping checked bit for bit; a hash collision falls back to
    np.unique. Rows come in the order of their first use (np.unique's is
    lexicographic); only the grouping matters to the results."""
    a = np.ascontiguousarray(a)
    if a.ndim != 2 or a.shape[0] == 0 or a.dtype.itemsize not in (4, 8):
        rows, inverse = np.unique(a, axis=0, return_inverse=True)
        return rows, inverse.ravel()
    bits = a.view(np.uint32 if a.dtype.itemsize == 4 else np.uint64).astype(np.uint64)
    mult = np.random.default_rng(0x5EED).integers(1, 2 ** 63, a.shape[1],
                                                  dtype=np.uint64) | np.uint64(1)
    with np.errstate(over="ignore"):
        h = (bits * mult).sum(axis=1, dtype=np.uint64)
        h ^= h >> np.uint64(29)
    _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    # rows in order of first use: with per-neuron rows the kernels then read
    # the table front to back (prefetched) instead of in hash order
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    first, inverse = first[order], rank[inverse.ravel()]
    rows = a[first]
    if not np.array_equal(bits, bits[first][inverse]):  # a collision: rare, exact fallback
        rows, inverse = np.unique(a, axis=0, return_inverse=True)
    return rows, inverse.ravel()


class KernelNetwork:
    """The arrays of a Network that depend on its models and parameters.

    Parameters
    ----------
    net : Network (built or not: synapses are not read here)
    dtype : numpy float type of state and parameters
    """

    def __init__(self, net, dtype):
        self.net = net
        self.dtype = dtype
        names = []
        for pop in net.populations.values():
            if pop.model not in names:
                names.append(pop.model)
        self.models = tuple(get_model(name) for name in names)
        self.model_of = np.empty(net.n_neurons, np.int8)
        for pop in net.populations.values():
            self.model_of[pop.start:pop.stop] = names.index(pop.model)
        self.n_state = max(m.n_state for m in self.models)
        self.n_fields = max(m.n_fields for m in self.models)
        self.src_ch = np.empty(net.n_neurons, np.int8)
        for pop in net.populations.values():
            self.src_ch[pop.start:pop.stop] = 0 if pop.kind == "E" else 1
        self.pop_of = net.pop_index()
        self.reg_of = net.region_index()
        self.pop_n = np.array([p.n for p in net.populations.values()], float)
        self.reg_n = np.bincount(self.reg_of, minlength=len(net.regions)).astype(float)
        # per model: rebuilds of the table since rows were last deduplicated,
        # when the last deduplication found mostly distinct rows (else None)
        self._dense = {}

    # ------------------------------------------------------------ models
    def model_params(self, k):
        """Per-neuron parameters (dict of arrays) of the neurons of model k."""
        m = self.models[k]
        mask = self.model_of == k
        out = {}
        for prm in m.parameters:
            if prm.size:
                out[prm.name] = self._vector_param(m, prm, mask)
            else:
                out[prm.name] = self.net.neuron_param(prm.name)[mask]
        return mask, out

    def _vector_param(self, m, prm, mask):
        rows = []
        for pop in self.net.populations.values():
            if pop.model == m.name:
                value = np.asarray(pop.params[prm.name], float)
                row = np.full(prm.size, float(prm.pad))
                row[:value.size] = value
                rows.append(np.broadcast_to(row, (pop.n, prm.size)))
        return np.concatenate(rows)

    def parameters(self):
        """(Q (rows, n_fields), qrow (N,)): a row per distinct parameter set
        (derived constants included) in ``dtype``; ``qrow[i]`` is neuron i's."""
        tables, qrow, offset = [], np.zeros(self.net.n_neurons, np.int32), 0
        for k, m in enumerate(self.models):
            mask, p = self.model_params(k)
            with np.errstate(over="ignore"):  # e.g. izhikevich's V_min (-DBL_MAX) -> -inf
                full = m.derive(p, self.net.dt).astype(self.dtype)
            rows, inverse = self._rows(k, full)
            table = np.zeros((rows.shape[0], self.n_fields), self.dtype)
            table[:, :m.n_fields] = rows
            tables.append(table)
            qrow[mask] = offset + inverse.ravel()
            offset += rows.shape[0]
        return np.ascontiguousarray(np.concatenate(tables)), qrow

    #: Rebuilds that skip deduplication after one found mostly distinct rows.
    DENSE_REUSE = 10

    def _rows(self, k, full):
        """distinct_rows(full), or every neuron its own row when model k's
        last deduplication found more than half of the rows distinct (per-neuron
        heterogeneity, HMDA's per-region scales), re-checked every
        DENSE_REUSE rebuilds: hashing 1e5-1e6 rows costs more than the few
        duplicates save. Each neuron gets the same values either way; the
        rows are in neuron order, as distinct_rows orders distinct rows."""
        skipped = self._dense.get(k)
        if skipped is not None and skipped < self.DENSE_REUSE:
            self._dense[k] = skipped + 1
            return full, np.arange(full.shape[0])
        rows, inverse = distinct_rows(full)
        self._dense[k] = 0 if 2 * rows.shape[0] > full.shape[0] else None
        return rows, inverse

    def initial_state(self):
        """(X, I_ou, inp) at t = 0: each model's initial state (from its
        parameters, e.g. V_m), OU currents at their mean (pA), no pending
        synaptic input."""
        n = self.net.n_neurons
        X = np.zeros((self.n_state, n), self.dtype)
        for k, m in enumerate(self.models):
            mask, p = self.model_params(k)
            X[np.ix_(state_rows(m), np.flatnonzero(mask))] = m.initial_state(p, self.net.dt)
        I_ou = np.zeros(n, self.dtype)
        inputs = self.net.inputs
        if "ou_on" in inputs:
            on = inputs["ou_on"] > 0
            I_ou[on] = inputs["ou_mean"][on]
        return X, I_ou, np.zeros((2, n), self.dtype)

    def state_row(self, name):
        """X row of state variable ``name`` per model (None where a model
        has no such variable)."""
        out = []
        for m in self.models:
            rows = dict(zip(m.state_names, state_rows(m)))
            out.append(rows.get(name))
        return out

    def state_names(self):
        """State variable names of the models in use (first model first)."""
        names = []
        for m in self.models:
            names += [n for n in m.state_names if n not in names]
        return names

    def read_state(self, X, name, ids=None):
        """Values (float64) of state variable ``name`` from an X array;
        NaN for neurons whose model has no such variable."""
        rows = self.state_row(name)
        ids = np.arange(self.net.n_neurons) if ids is None else np.asarray(ids)
        out = np.full(ids.size, np.nan)
        mod = self.model_of[ids]
        for k, r in enumerate(rows):
            if r is not None:
                sel = mod == k
                out[sel] = X[r, ids[sel]]
        return out

    def check_membrane(self, v, t_ms, start=0):
        """Raise DivergenceError if a membrane potential in ``v`` (row 0 of
        X for neurons ``start .. start + len(v) - 1``) is NaN, infinite or
        beyond +-V_M_LIMIT mV at time ``t_ms``. Two reductions over the
        row, so it stays on for every chunk of every run."""
        if v.size == 0:
            return
        lo, hi = v.min(), v.max()  # NaN propagates into both
        if -V_M_LIMIT < lo and hi < V_M_LIMIT:
            return
        bad = ~(np.abs(v) < V_M_LIMIT)  # NaN compares False: bad
        i = int(np.argmax(bad))
        gid = start + i
        pop = list(self.net.populations.values())[self.pop_of[gid]]
        n_bad = int(np.count_nonzero(bad))
        raise DivergenceError(
            f"the simulation diverged by t = {t_ms:g} ms: V_m of neuron {gid} (population "
            f"{pop.name!r}, region {pop.region!r}, model {pop.model}) is {float(v[i])!r} mV "
            f"({n_bad} neurons beyond +-{V_M_LIMIT:g} mV or not finite). Likely causes: "
            f"weights or input rates too large for the model, a C_m or time constant too "
            f"small for dt = {self.net.dt} ms (forward-Euler models such as lif_dtb need dt "
            f"well below tau), or float32 state for a stiff model. The state is left as it "
            f"is for inspection (Simulation.get_state)")

    # ------------------------------------------------------------ inputs
    def inputs(self):
        """External-input arrays, the loops' ``inputs`` bundle (empty where
        unused): Poisson (3, N) float64 rows mean events per step, weight
        (the model's receptor units), delay (steps); the inversion tables
        and each neuron's table row; OU (4, N) rows on (0/1), mean (pA),
        decay exp(-dt/tau) and noise amplitude sigma sqrt(1 - decay^2)."""
        net, dtype = self.net, self.dtype
        inp = net.inputs
        if "poisson_rate" in inp and np.any(inp["poisson_rate"] > 0):
            lam = inp["poisson_rate"] * net.dt * 1e-3
            # weights pass through the state dtype as before (float32 weights stay exact)
            w = inp["poisson_weight"].astype(dtype).astype(np.float64)
            pois = np.stack([lam, w, inp["poisson_delay"].astype(np.int64).astype(np.float64)])
            tab, idx = rng.poisson_tables(lam)
        else:
            pois, idx = np.zeros((3, 0)), np.zeros(0, np.int32)
            tab = np.zeros((0, rng.TABLE_LEN + 1))
        if "ou_on" in inp and np.any(inp["ou_on"] > 0):
            dec = np.exp(-net.dt / inp["ou_tau"])
            ou = np.stack([(inp["ou_on"] > 0).astype(float), inp["ou_mean"], dec,
                           inp["ou_sigma"] * np.sqrt(1.0 - dec**2)]).astype(dtype)
        else:
            ou = np.zeros((4, 0), dtype)
        return (np.ascontiguousarray(pois), np.ascontiguousarray(tab),
                np.ascontiguousarray(idx, np.int32), np.ascontiguousarray(ou))
