"""The network builder: populations, connections, external inputs.

A NEST-like API::

    net = brainsim.Network(dt=0.1, seed=1)
    e = net.add_population("E", 800, model="iaf_psc_exp", params={"I_e": 376.0})
    i = net.add_population("I", 200, kind="I")
    net.connect("E", ["E", "I"], rule="fixed_indegree", indegree=80, weight=20.0, delay=1.5)
    net.connect("I", ["E", "I"], rule="fixed_indegree", indegree=20, weight=-100.0)

Neurons get global ids 0..N-1, contiguous per population, populations
contiguous per region. Synapses are generated at ``connect`` and arranged at
``build`` into one CSR per target partition, keyed by source (see
``Partition``). Structure is fixed after ``build``; neuron parameters are
not (``set_property``).
"""
import ctypes
import os
from dataclasses import dataclass, field

import numpy as np

from brainsim.kernels import csr

from . import connect as _connect
from .errors import BuildError, ParameterError, StoreError, UnknownNameError
from .network_format import read_synapses, save_network
from .neurons import canonical_name, check_values, full_params, get_model
from .synapses import SynapseTable, local_dtype
from .validation import (boolean, check_finite, integer, number, numeric_array,
                         positive_number)

MAX_DELAY_STEPS = np.iinfo(np.uint16).max - 1
#: neurons in a network at most: ids are int32 in synapse tables and results
MAX_NEURONS = np.iinfo(np.int32).max


def _trim_heap():
    """Hand freed heap memory back to the operating system (glibc only).

    Arrays below malloc's mmap threshold (which glibc raises up to 32 MB)
    live on the heap; without this, the per-connection pieces freed while
    the build concatenates them stay resident and raise its peak by up to
    the size of all synapses (measured: +0.8 GB on 9e7 synapses)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclass
class Population:
    """A group of neurons of one model, kind (``"E"`` or ``"I"``) and region;
    ids ``start .. start + n - 1``. ``params`` holds homogeneous values
    (NEST's names and units)."""

    name: str
    n: int
    model: str
    params: dict
    region: str
    kind: str
    start: int

    @property
    def stop(self):
        return self.start + self.n

    @property
    def ids(self):
        """Global neuron ids of the population (int64 array)."""
        return np.arange(self.start, self.stop)


@dataclass
class Partition:
    """Synapses onto the neurons ``lo .. hi - 1`` as CSR keyed by source.

    ``sources`` (sorted global ids with targets here) and ``indptr`` index
    the slice ``offset : offset + indptr[-1]`` of the network's synapse
    arrays (``brainsim.synapses.SynapseTable``), where targets are held
    local to the partition (target id - ``lo``).
    """

    lo: int
    hi: int
    sources: np.ndarray
    indptr: np.ndarray
    offset: int
    meta: dict = field(default_factory=dict)

    @property
    def n_synapses(self):
        return int(self.indptr[-1])


class Network:
    """A spiking network under construction or built.

    Parameters
    ----------
    dt : float, ms
        Simulation resolution; every delay is rounded to whole steps of dt.
    seed : int
        Seed of connectivity and of drawn initial values (the simulation's
        noise has its own seed, see ``Simulation``).
    """

    def __init__(self, dt=0.1, seed=0):
        dt = positive_number("dt", dt, "ms")
        self.seed = integer("seed", seed, low=0, strict=True)
        self.dt = dt
        self.populations = {}
        self._region_cache = (0, set())  # (populations counted, region names)
        self.n_neurons = 0
        self.columns = {}
        self.inputs = {}
        self.meta = {}
        self._partitions = None
        self._synapses = None
        self._lazy_store = None  # network store whose synapses load at first use
        self._stored_n_synapses = 0
        self.version = 0
        self._pending = []
        self._n_draws = 0
        # (ids, state variable, values) written by set_property to parameters that
        # are initial values of state variables (V_m); simulations apply them
        self._state_log = []

    # ----------------------------------------------------------- structure
    def add_population(self, name, n, model="iaf_psc_exp", params=None, region=None, kind="E"):
        """Add ``n`` neurons of ``model`` and return the Population.

        model : str or NeuronModel
            A registered neuron model (``brainsim.neurons.available()``).
        params : dict, optional
            Homogeneous parameter values (NEST's names: C_m pF, tau_m ms, ...);
            the model's defaults fill the rest.
        region : str, optional
            Region (area, voxel) the population belongs to; populations of a
            region are added one after the other. Default "default".
        kind : {"E", "I"}
            Spikes of excitatory sources reach their targets' "E" receptor
            (e.g. AMPA/NMDA for lif_dtb), of inhibitory sources the "I"
            receptor; each model declares its receptors' weight sign.
        """
        self._check_unbuilt("add_population")
        if not isinstance(name, str) or not name:
            raise ParameterError(f"population name must be a non-empty str, got {name!r}")
        if name in self.populations:
            raise ParameterError(f"population name {name!r} is already used")
        n = integer("population size n", n, low=1, high=MAX_NEURONS - self.n_neurons,
                    strict=True)
        if kind not in ("E", "I"):
            raise ParameterError(f"kind must be 'E' or 'I', got {kind!r}")
        region = "default" if region is None else str(region)
        seen = self._region_names()
        last = next(reversed(self.populations.values())).region if self.populations else None
        if region != last and region in seen:
            raise ParameterError(
                f"populations of region {region!r} must be added one after the other "
                f"(last region added is {last!r})")
        model = get_model(model).name
        values = full_params(model, params)
        pop = Population(name, int(n), model, values, region, kind, self.n_neurons)
        self.populations[name] = pop
        seen.add(region)
        self._region_cache = (len(self.populations), seen)
        self.n_neurons += pop.n
        for col in self.columns.values():  # keep per-neuron columns full length
            col.resize(self.n_neurons, refcheck=False)
        for name_, col in self.columns.items():
            col[pop.start:pop.stop] = values.get(name_, np.nan)
        for arr in self.inputs.values():
            arr.resize(self.n_neurons, refcheck=False)
        return pop

    def _region_names(self):
        """The set of region names, kept up to date by add_population (and
        recomputed when populations came another way, e.g. from a store):
        checking a new population's region against a rebuilt list made
        adding P populations cost O(P^2) (5 s for HMDA's 5,640)."""
        cache = self._region_cache
        if cache[0] != len(self.populations):
            cache = (len(self.populations), {p.region for p in self.populations.values()})
            self._region_cache = cache
        return cache[1]

    @property
    def regions(self):
        """Region names in id order."""
        out = []
        for pop in self.populations.values():
            if not out or out[-1] != pop.region:
                out.append(pop.region)
        return out

    def population(self, name):
        try:
            return self.populations[name]
        except (KeyError, TypeError):
            raise UnknownNameError(
                f"unknown population {name!r}; known: {list(self.populations)}") from None

    def _pops(self, selector, what):
        names = [selector] if isinstance(selector, str) else list(selector)
        if not names:
            raise ParameterError(f"{what} must name at least one population")
        return [self.population(s) for s in names]

    def connect(self, pre, post, rule="all_to_all", *, indegree=None, n=None, p=None,
                weight=1.0, delay=1.0, allow_autapses=True, allow_multapses=True):
        """Connect population(s) ``pre`` to population(s) ``post``.

        Each (pre, post) pair is connected by ``rule`` (NEST's rules and
        semantics): ``fixed_indegree`` (``indegree`` sources per target),
        ``fixed_total_number`` (``n`` synapses), ``pairwise_bernoulli`` (each
        pair with probability ``p``), ``one_to_one``, ``all_to_all``.

        weight : float or dict, in the unit of the target model's receptor
            for the source's kind (``brainsim.neurons.get_model(m).receptors``):
            e.g. pA for iaf_psc_exp (PSC amplitude, <= 0 from inhibitory
            populations), nS for iaf_cond_exp (<= 0 from inhibitory
            populations, NEST's sign convention), dimensionless for lif_dtb
            (>= 0). ``{"distribution": "normal", "mean": m, "sd": s}`` draws
            per synapse, redrawn where the sign would flip.
        delay : float or dict, ms; rounded to whole steps, >= dt; normal
            draws are redrawn below dt.
        Returns the number of synapses created.
        """
        self._check_unbuilt("connect")
        pres, posts = self._pops(pre, "pre"), self._pops(post, "post")
        autapses = boolean("allow_autapses", allow_autapses)
        multapses = boolean("allow_multapses", allow_multapses)
        created = 0
        for a in pres:
            for b in posts:
                created += self._connect_pair(a, b, rule, indegree, n, p, weight, delay,
                                              autapses, multapses)
        return created

    def _connect_pair(self, a, b, rule, indegree, n, p, weight, delay, autapses, multapses):
        self._n_draws += 1
        rng = np.random.default_rng([self.seed, self._n_draws])
        rule_arg = {"fixed_indegree": indegree, "fixed_total_number": n,
                    "pairwise_bernoulli": p}.get(rule)
        src, tgt = _connect.make_pairs(rng, rule, a.n, b.n, a is b, autapses, multapses, rule_arg)
        low, high = self._weight_bounds(a, b)
        w = _connect.draw_values(rng, weight, src.size, low, high, "weight")
        check_finite("weight", w)
        big = float(np.finfo(np.float32).max)  # weights are stored as float32
        if w.size and np.abs(w).max() > big:
            raise ParameterError(f"weight must lie within +-{float(big):.4g} (float32), got "
                                 f"{float(w[np.argmax(np.abs(w))])!r}")
        if w.size and (w.min() < low or w.max() > high):
            bad = w[(w < low) | (w > high)][0]
            rec = get_model(b.model).receptors[a.kind]
            raise ParameterError(
                f"weight from {a.kind} population {a.name!r} onto {b.model} (receptor "
                f"{rec.name!r}, {rec.unit}) must lie in [{low}, {high}], got {float(bad)!r}")
        d = self._delay_steps(rng, delay, src.size)
        self._pending.append([(src + a.start).astype(np.int32), (tgt + b.start).astype(np.int32),
                              w.astype(np.float32), d])
        return int(src.size)

    def _weight_bounds(self, a, b):
        """Allowed weights from population a onto b: the sign that b's model
        declares for the receptor of a's kind."""
        sign = get_model(b.model).receptors[a.kind].sign
        return (0.0, np.inf) if sign > 0 else (-np.inf, 0.0)

    def _delay_steps(self, rng, delay, size):
        if not isinstance(delay, dict) and np.ndim(delay) == 0:  # dicts: draw_values checks
            check_finite("delay", delay)
        d = _connect.draw_values(rng, delay, size, self.dt, np.inf, "delay")
        check_finite("delay", d)
        if d.size and d.min() < self.dt * (1 - 1e-9):
            raise ParameterError(
                f"delay must be >= dt ({self.dt} ms), got {float(d.min())!r} ms")
        steps = np.maximum(np.rint(d / self.dt), 1)
        if steps.size and steps.max() > MAX_DELAY_STEPS:
            raise ParameterError(
                f"delay must be <= {MAX_DELAY_STEPS * self.dt} ms ({MAX_DELAY_STEPS} steps), "
                f"got {float(d.max())!r} ms")
        return steps.astype(np.uint16)

    # ------------------------------------------------------------ selection
    def select(self, selector):
        """Global ids selected by a population name, a list of names, an
        array of ids, or a dict combining ``region``, ``kind`` ("E"/"I") and
        ``population`` (each a name or a list of names; all must hold), e.g.
        ``{"region": ["Precentral_L", "Precentral_R"], "kind": "I"}`` (DTB's
        modify_property by region and population)."""
        if isinstance(selector, dict):
            return self._select_dict(selector)
        if isinstance(selector, str) or (
                isinstance(selector, (list, tuple)) and selector and
                all(isinstance(s, str) for s in selector)):
            return np.concatenate([q.ids for q in self._pops(selector, "selector")])
        ids = np.asarray(selector)
        if ids.ndim != 1 or not (ids.size == 0 or np.issubdtype(ids.dtype, np.integer)):
            raise ParameterError(
                f"selector must be population name(s), {{'region': name}} or a 1-D array "
                f"of neuron ids, got {selector!r}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_neurons):
            raise ParameterError(
                f"neuron ids must lie in [0, {self.n_neurons}), "
                f"got min {ids.min()} max {ids.max()}")
        return ids.astype(np.int64)

    def _select_dict(self, selector):
        allowed = {"region", "kind", "population"}
        if not selector or not set(selector) <= allowed:
            raise ParameterError(f"selector dict keys must be among {sorted(allowed)}, "
                                 f"got {selector!r}")
        known = {"region": self.regions, "kind": ["E", "I"], "population": list(self.populations)}
        want = {}
        for key, value in selector.items():
            names = [value] if isinstance(value, str) else list(value)
            for name in names:
                if name not in known[key]:
                    raise UnknownNameError(f"unknown {key} {name!r}; known: {known[key]}")
            want[key] = set(names)
        pops = [q for q in self.populations.values()
                if q.region in want.get("region", [q.region]) and
                q.kind in want.get("kind", [q.kind]) and q.name in want.get("population", [q.name])]
        if not pops:
            return np.zeros(0, np.int64)
        return np.concatenate([q.ids for q in pops])

    def pop_index(self):
        """Array (N,) of the population index of every neuron."""
        out = np.empty(self.n_neurons, np.int32)
        for k, pop in enumerate(self.populations.values()):
            out[pop.start:pop.stop] = k
        return out

    def region_index(self):
        """Array (N,) of the region index of every neuron."""
        regions = {r: k for k, r in enumerate(self.regions)}
        out = np.empty(self.n_neurons, np.int32)
        for pop in self.populations.values():
            out[pop.start:pop.stop] = regions[pop.region]
        return out

    # ----------------------------------------------------------- properties
    def neuron_param(self, name):
        """Per-neuron values (N,) of parameter ``name``; NaN where a neuron's
        model has no such parameter."""
        if name in self.columns:
            return self.columns[name].copy()
        out = np.full(self.n_neurons, np.nan)
        for pop in self.populations.values():
            if name in pop.params:
                out[pop.start:pop.stop] = pop.params[name]
        return out

    def set_property(self, selector, name, value=None, multiplier=None):
        """Change neuron parameter ``name`` of the selected neurons.

        Give either ``value`` (a scalar, or an array with one value per
        selected neuron) or ``multiplier`` (scales the current values; scalar
        or array). Works on built networks and between runs of a Simulation
        (the change applies from the next step). Units are the model's.
        """
        if (value is None) == (multiplier is None):
            raise ParameterError("give exactly one of value= or multiplier=")
        ids = self.select(selector)
        if ids.size == 0:
            raise ParameterError(f"selector {selector!r} selects no neurons")
        popl = list(self.populations.values())
        owner = self._owner_of(ids)  # index into popl of each selected neuron
        count = np.bincount(owner, minlength=len(popl))
        pops = [popl[i] for i in np.flatnonzero(count)]
        names = {canonical_name(q.model, name) for q in pops}
        if len(names) != 1:
            raise ParameterError(f"parameter {name!r} means different things in {names}")
        name = names.pop()
        if any(get_model(q.model).parameter(name).size for q in pops):
            raise ParameterError(f"{name!r} is a vector parameter: set it per population in "
                                 "add_population(params=...)")
        given = numeric_array("value" if multiplier is None else "multiplier",
                              value if multiplier is None else multiplier)
        if given.ndim not in (0, 1) or (given.ndim == 1 and given.shape != ids.shape):
            raise ParameterError(
                f"value must be a scalar or have shape {ids.shape} (one per selected neuron), "
                f"got shape {given.shape}")
        check_finite(name, given)
        current = self.neuron_param(name)
        new = current.copy()
        new[ids] = given if multiplier is None else current[ids] * given
        by_model = {}
        for i in np.flatnonzero(count):
            by_model.setdefault(popl[i].model, []).append(i)
        for model, members in by_model.items():
            # the changed parameter and its constraint partners, all neurons of
            # the model's touched populations at once (the others are unchanged)
            rows = np.concatenate([np.arange(popl[i].start, popl[i].stop) for i in members])
            values = {name: new[rows]}
            for a, _, b in get_model(model).constraints:
                if name in (a, b):
                    other = b if a == name else a
                    values[other] = self.neuron_param(other)[rows]
            check_values(model, values)
            state = [v.name for v in get_model(model).state if v.initial == name]
            if state:
                sel = ids[np.isin(owner, members)]
                for var in state:
                    self._state_log.append((sel, var, new[sel]))
        if name not in self.columns:
            distinct = np.bincount(self._owner_of(np.unique(ids)), minlength=len(popl))
            whole = all(distinct[i] == popl[i].n for i in np.flatnonzero(count))
            uniform = all(np.all(new[q.start:q.stop] == new[q.start]) for q in pops)
        if name not in self.columns and whole and uniform:
            for q in pops:
                q.params[name] = float(new[q.start])
        else:
            self.columns[name] = new
        self.version += 1

    def _owner_of(self, ids):
        """Index (in ``populations`` order) of the population of each id."""
        popl = list(self.populations.values())
        starts = np.array([q.start for q in popl], np.int64)
        order = np.argsort(starts, kind="stable")
        return order[np.searchsorted(starts[order], ids, side="right") - 1]

    # --------------------------------------------------------------- inputs
    def _input_array(self, key, fill=0.0):
        if key not in self.inputs:
            self.inputs[key] = np.full(self.n_neurons, fill)
        return self.inputs[key]

    def add_dc(self, selector, amplitude):
        """Add a constant current ``amplitude`` (pA) to the selected neurons
        (added to their ``I_e``)."""
        check_finite("amplitude", amplitude)
        if np.ndim(amplitude) != 0:
            raise ParameterError(
                f"amplitude must be a scalar in pA, got shape {np.shape(amplitude)}")
        ids = self.select(selector)
        self.set_property(ids, "I_e", self.neuron_param("I_e")[ids] + float(amplitude))

    def add_poisson(self, selector, rate, weight, indegree=1, delay=None):
        """Drive the selected neurons, each with ``indegree`` independent
        Poisson sources of ``rate`` (Hz) and synaptic ``weight``, arriving
        after ``delay`` (ms, default dt). A weight >= 0 reaches the targets'
        "E" receptor, a weight < 0 their "I" receptor; each selected neuron's
        model must accept that sign (units: the receptor's, e.g. pA or nS)."""
        ids = self.select(selector)
        rate = number("rate", rate, low=0.0, unit="Hz")
        weight = number("weight", weight)
        indegree = integer("indegree", indegree, low=0)
        delay = self.dt if delay is None else delay
        if np.ndim(delay) != 0 or isinstance(delay, dict):
            raise ParameterError(f"delay of a Poisson input must be a scalar in ms, got {delay!r}")
        d = self._delay_steps(None, delay, 1)[0]
        kind = "E" if weight >= 0 else "I"
        for pop in self.populations.values():
            if not np.any((ids >= pop.start) & (ids < pop.stop)):
                continue
            rec = get_model(pop.model).receptors[kind]
            if weight != 0 and (weight > 0) != (rec.sign > 0):
                allowed = {k: (">= 0" if r.sign > 0 else "<= 0")
                           for k, r in get_model(pop.model).receptors.items()}
                raise ParameterError(
                    f"Poisson weight onto population {pop.name!r} ({pop.model}) must be >= 0 "
                    f"(excitatory receptor, {allowed['E']}) or < 0 for its inhibitory receptor "
                    f"(which takes weights {allowed['I']}); got {weight!r}")
        lam = self._input_array("poisson_rate")
        if np.any(lam[ids] > 0):
            raise ParameterError("some selected neurons already have a Poisson input "
                                 "(one Poisson input per neuron)")
        lam[ids] = float(rate) * float(indegree)
        self._input_array("poisson_weight")[ids] = float(weight)
        self._input_array("poisson_delay", 1.0)[ids] = float(d)
        self.version += 1

    def add_spike_generator(self, name, spike_times, region=None, kind="E"):
        """A population that plays the spike train ``spike_times`` (ms), as
        NEST's ``spike_generator``: one ``spike_source`` node per spike, so
        ``connect(name, targets, rule="all_to_all", weight=w, delay=d)``
        makes every spike reach every target in the step ending at
        ``time + d``. Times must be multiples of dt and >= dt; ``kind``
        ("E" or "I") selects the targets' receptor. Returns the Population."""
        times = np.asarray(spike_times, dtype=float) if not isinstance(
            spike_times, (str, bytes)) else None
        if times is None or times.ndim != 1 or times.size == 0:
            raise ParameterError(f"spike_times must be a non-empty sequence of times in ms, "
                                 f"got {spike_times!r}")
        check_finite("spike_times", times)
        steps = np.rint(times / self.dt)
        if np.any(steps < 1) or np.any(np.abs(steps * self.dt - times) > 1e-9 * np.maximum(
                times, self.dt)):
            bad = times[(steps < 1) | (np.abs(steps * self.dt - times) > 1e-9 * np.maximum(
                times, self.dt))][0]
            raise ParameterError(f"spike_times must be multiples of dt ({self.dt} ms) and >= dt, "
                                 f"got {float(bad)!r}")
        pop = self.add_population(name, times.size, model="spike_source",
                                  params={"spike_time": float(times.min())}, region=region,
                                  kind=kind)
        if times.size > 1:
            self.set_property(name, "spike_time", value=np.sort(times))
        return pop

    def add_ou(self, selector, mean, sigma, tau):
        """Ornstein-Uhlenbeck background current on the selected neurons:
        stationary ``mean`` and ``sigma`` (pA), correlation time ``tau`` (ms).
        Starts at ``mean`` (DTB's convention)."""
        mean = number("mean", mean, unit="pA")
        sigma = number("sigma", sigma, low=0.0, unit="pA")
        tau = number("tau", tau, low=0.0, low_open=True, unit="ms")
        ids = self.select(selector)
        self._input_array("ou_mean")[ids] = float(mean)
        self._input_array("ou_sigma")[ids] = float(sigma)
        self._input_array("ou_tau", 1.0)[ids] = float(tau)
        self._input_array("ou_on")[ids] = 1.0
        self.version += 1

    # ---------------------------------------------------------------- build
    def _check_unbuilt(self, what):
        if self.is_built:
            raise BuildError(f"{what}: the network is built; structure is fixed after "
                             "build/save/simulate (neuron parameters can still be changed)")

    @property
    def is_built(self):
        return self._partitions is not None or self._lazy_store is not None

    def _attach_store(self, path, n_synapses):
        """Mark the network built with its synapses in the network store at
        ``path``, loaded at their first use."""
        self._lazy_store = os.fspath(path)
        self._stored_n_synapses = int(n_synapses)

    def _load_lazy(self):
        if self._partitions is None and self._lazy_store is not None:
            read_synapses(self._lazy_store, self.n_neurons, self._adopt_partitions)
            self._lazy_store = None

    def _adopt_partitions(self, read):
        """Set the partitions and the SynapseTable from ``read`` = (total
        synapses, the partitions' (lo, hi), an iterable of partition dicts
        as a network store holds them: lo, hi, sources, indptr, targets
        local to the partition, weights, delays;
        ``network_format.read_partitions``). Each partition's arrays are
        copied into the table's and dropped before the next is read, so
        loading peaks near the table's own size instead of twice it."""
        total, bounds, parts = read
        targets = np.empty(total, local_dtype(bounds))
        weights = np.empty(total, np.float32)
        delays = np.empty(total, np.uint16)
        held, off = [], 0
        for p in parts:
            n = int(p["targets"].size)
            if off + n > total:
                raise StoreError(f"partition {len(held)} holds more synapses than the "
                                 f"arrays' shapes say ({total} in all)")
            # values checked by read_partition: local targets fit the dtype
            targets[off:off + n] = p["targets"]
            weights[off:off + n] = p["weights"]
            delays[off:off + n] = p["delays"]
            held.append(Partition(p["lo"], p["hi"], p["sources"], p["indptr"], off))
            off += n
            p = None  # drop this partition's arrays before the next is read
        if off != total:
            raise StoreError(f"the partitions hold {off} synapses, their arrays' shapes "
                             f"say {total}")
        self.synapses = SynapseTable(held, targets, weights, delays)
        self.partitions = held

    @property
    def partitions(self):
        """Partitions of a built network (None before ``build``)."""
        self._load_lazy()
        return self._partitions

    @partitions.setter
    def partitions(self, value):
        self._partitions = value

    @property
    def synapses(self):
        """The ``SynapseTable`` (partition/CSR order; a mapping with
        "targets" (int32 global ids), "weights" (float32) and "delays"
        (uint16 steps)); None before ``build``."""
        self._load_lazy()
        return self._synapses

    @synapses.setter
    def synapses(self, value):
        if value is not None and not isinstance(value, SynapseTable):
            raise TypeError("Network.synapses must be a brainsim.synapses.SynapseTable, got "
                            f"{type(value).__name__}")
        self._synapses = value

    def skip_draws(self, n):
        """Advance the connection-draw counter as if ``n`` (pre, post) pairs
        had been connected. Every pair draws from its own random stream,
        numbered in the order of the calls, so a streaming build that
        connects only some pairs of a network (those onto one partition)
        skips the others and draws exactly what the whole network draws."""
        self._n_draws += integer("n", n, low=0)

    def build(self, n_partitions=None, bounds=None):
        """Arrange all synapses into ``n_partitions`` target partitions
        (default: one per Numba thread). Partitions follow regions when there
        are enough regions, else populations, else neuron ranges, balanced by
        synapse count. ``bounds`` ([0, b1, ..., n_neurons], increasing) fixes
        the cuts instead. Idempotent once built."""
        if self.is_built:
            return self
        if self.n_neurons == 0:
            raise BuildError("the network has no populations")
        if bounds is not None:
            bounds = np.asarray(bounds)
            if (bounds.ndim != 1 or bounds.size < 2 or bounds.dtype.kind not in "iu"
                    or bounds[0] != 0 or bounds[-1] != self.n_neurons
                    or np.any(np.diff(bounds) <= 0)):
                raise ParameterError(f"bounds must be increasing integers from 0 to "
                                     f"{self.n_neurons}, got {bounds.tolist()!r}")
            n_partitions = bounds.size - 1
        elif n_partitions is None:
            import numba
            n_partitions = min(numba.get_num_threads(), self.n_neurons)
        n_partitions = integer("n_partitions", n_partitions, low=1, high=self.n_neurons,
                               strict=True)
        # the build's peak memory: the pending arrays (14 bytes per synapse) and the
        # order (4); every array is freed as soon as it is not needed
        src, tgt, w, d = self._take_pending()
        if bounds is None:
            bounds = self._partition_bounds(int(n_partitions), tgt)
        part_of = np.repeat(np.arange(n_partitions, dtype=np.int32), np.diff(bounds))
        order, rows = csr.csr_order(src, d, tgt, part_of, self.n_neurons, n_partitions)
        del src
        parts, offset = [], 0
        for k in range(n_partitions):
            sources, indptr = csr.rows_from_counts(rows[k])
            parts.append(Partition(int(bounds[k]), int(bounds[k + 1]), sources, indptr, offset))
            offset += int(indptr[-1])
        del rows
        local = csr.take_local(tgt, order, part_of, bounds,
                               np.empty(order.size, local_dtype(zip(bounds, bounds[1:]))))
        del tgt
        w = csr.take(w, order)
        d = csr.take(d, order)
        del order
        self.synapses = SynapseTable(parts, local, w, d)
        self.partitions = parts
        return self

    def _take_pending(self):
        pend, self._pending = self._pending, []
        if not pend:
            return (np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.float32),
                    np.empty(0, np.uint16))
        if len(pend) == 1:
            return tuple(pend[0])
        out = []
        for i in range(4):  # one field at a time, freeing the pieces: peak + one field
            out.append(np.concatenate([p[i] for p in pend]))
            for p in pend:
                p[i] = None
            _trim_heap()
        return tuple(out)

    def _partition_bounds(self, n_parts, tgt):
        """Cuts balancing an estimate of the work per step: about 10 ns per
        neuron update plus 5 ns per synaptic event at 5 Hz. With at least as
        many regions as partitions, partitions hold whole regions; else
        population cuts, or any neuron where population cuts would leave the
        largest partition > 10 % above the mean."""
        indegree = csr.bincount(tgt, self.n_neurons).astype(float)
        load = 10.0 + 5.0 * indegree * 5.0 * self.dt * 1e-3
        cum = np.concatenate([[0.0], np.cumsum(load)])
        pops = list(self.populations.values())
        region_cuts = [0] + [b.start for a, b in zip(pops, pops[1:]) if a.region != b.region]
        if len(region_cuts) >= n_parts:  # whole regions per partition (long windows)
            return self._balanced_cuts(np.array(region_cuts + [self.n_neurons]), cum, n_parts)
        for cuts in ([q.start for q in pops], range(self.n_neurons)):
            if len(cuts) < n_parts:
                continue
            bounds = self._balanced_cuts(np.array(list(cuts) + [self.n_neurons]), cum, n_parts)
            if np.diff(cum[bounds]).max() <= 1.1 * cum[-1] / n_parts:
                break
        return bounds

    def _balanced_cuts(self, cuts, cum, n_parts):
        want = cum[-1] * np.arange(1, n_parts) / n_parts
        inner = cuts[1:-1]
        chosen = []
        first = 0  # first position in inner still free
        for j, x in enumerate(want):
            # candidates leaving a cut for each of the remaining partitions
            ok = inner[first:len(inner) - (n_parts - 2 - j)]
            k = first + int(np.argmin(np.abs(cum[ok] - x)))
            chosen.append(inner[k])
            first = k + 1
        return np.array([0, *chosen, self.n_neurons], np.int64)

    # ---------------------------------------------------------- reporting
    @property
    def n_synapses(self):
        if self._lazy_store is not None and self._synapses is None:
            return self._stored_n_synapses
        if self.synapses is not None:
            return self.synapses.n_synapses
        return int(sum(p[0].size for p in self._pending))

    def bytes_per_synapse(self):
        """Bytes per synapse held in memory: local targets, weights, delay
        segments and row arrays over all partitions (``SynapseTable.nbytes``)."""
        if self.synapses is None:
            raise BuildError("bytes_per_synapse needs a built network (call build())")
        return self.synapses.nbytes / max(self.n_synapses, 1)

    def save(self, path, overwrite=False):
        """Write the built network (built now if needed) to a Zarr v3 store."""
        save_network(self.build(), path, overwrite=overwrite)

    def __repr__(self):
        state = ("not built" if not self.is_built else
                 "synapses in store" if self._partitions is None else
                 f"{len(self._partitions)} partitions")
        return (f"<brainsim.Network: {self.n_neurons} neurons in {len(self.populations)} "
                f"populations, {len(self.regions)} regions, {self.n_synapses} synapses, "
                f"dt={self.dt} ms, {state}>")
