"""Whole-brain networks from a connectome, as the Digital Twin Brain builds them.

Lu et al., "Simulation and assimilation of the digital human brain", Nature
Computational Science 2024, doi 10.1038/s43588-024-00731-3.

``n_neurons`` neurons are shared among regions by their size (grey matter,
voxels); each region holds an excitatory (80 %) and an inhibitory (20 %)
population, or the eight laminar populations of the Potjans-Diesmann
microcircuit. Every neuron has exactly ``k_in`` inputs: 4/7 from its own
region's E population, 1/7 from its I population and 2/7 from E populations
of other regions, the source region drawn with probability from the
row-normalised connectome (``weights[target, source]``, diagonal ignored).
Sources are drawn without replacement, never the neuron itself.

Generation streams: each partition is generated (``brainsim.kernels.generate``,
parallel over Numba threads) and written to the network store while the
next is drawn, so peak memory is about two partitions, not the network. The
draws are keyed by target neuron, so the synapses do not depend on the
partition count or thread chunks.
"""
import math
import time
from dataclasses import dataclass

import numpy as np

from brainsim.errors import ParameterError, UnknownNameError
from brainsim.kernels import generate as gen
from brainsim.validation import integer, is_number, number
from brainsim.network import Network, Partition
from brainsim.synapses import SynapseTable, local_dtype

from .potjans_diesmann import N_FULL, NEURON, POPULATIONS, full_synapse_numbers

#: DTB's split of a neuron's in-degree: (local E, local I, remote E).
DTB_FRACTIONS = (4 / 7, 1 / 7, 2 / 7)
#: DTB's OU background current (mean pA, sigma pA, tau ms); DTB's table
#: gives (0.66, 0.12, 10) in nA and ms.
DTB_BACKGROUND = {"mean": 660.0, "sigma": 120.0, "tau": 10.0}
#: A background that drives iaf_psc_exp (PD14 neuron, 15 mV below threshold
#: = 375 pA) into fluctuation-driven firing: the HCP network at k_in 100 fires
#: at 3-5 spikes/s (35 at a mean of 350 pA, 15 at 300; benchmarks/RESULTS.md).
IAF_BACKGROUND = {"mean": 250.0, "sigma": 100.0, "tau": 10.0}
#: Weight ranges (low, high) per source kind, uniform draws. lif_dtb: DTB's
#: U(0, 1) trace increments, inhibitory ones x 3: with DTB's conductances and
#: U(0, 1) for both kinds the HCP network (k_in 100, OU 660 +- 120 pA) runs
#: into saturation at 1 / (t_ref + dt) = 167 spikes/s; x 3 gives 2-14 spikes/s
#: (measured, benchmarks/RESULTS.md). iaf_psc_exp: PSC amplitudes in pA (mean
#: 87.81 pA, g = -4).
DEFAULT_WEIGHTS = {"lif_dtb": {"E": (0.0, 1.0), "I": (0.0, 3.0)},
                   "iaf_psc_exp": {"E": (0.0, 175.62), "I": (-702.48, 0.0)}}


@dataclass(frozen=True)
class Plan:
    """Populations and in-degrees of a connectome network before ids exist.

    ``pops``: list of (region index, population suffix, kind, size);
    ``local``: per population, list of (source population, count);
    ``k_remote``: per population; ``p_remote``: (R, R) row-normalised
    connectome with zero diagonal (target, source).
    """

    names: tuple
    pops: tuple
    local: tuple
    k_remote: np.ndarray
    p_remote: np.ndarray

    def unit_arrays(self):
        """(size, in-degree, region) per population, for the partitioner."""
        size = np.array([p[3] for p in self.pops], np.int64)
        kin = np.array([sum(k for _, k in loc) for loc in self.local]) + self.k_remote
        return size, kin.astype(float), np.array([p[0] for p in self.pops], np.int64)

    def expected_synapses(self):
        """(P, P) expected synapse counts [target population, source population]."""
        size, _, region = self.unit_arrays()
        n_pop = len(self.pops)
        syn = np.zeros((n_pop, n_pop))
        for t, loc in enumerate(self.local):
            for s, k in loc:
                syn[t, s] += size[t] * k
        is_e = np.array([p[2] == "E" for p in self.pops])
        e_pool = np.bincount(region[is_e], weights=size[is_e], minlength=len(self.names))
        share = np.where(is_e, size / np.maximum(e_pool[region], 1), 0.0)
        syn += (size * self.k_remote)[:, None] * self.p_remote[region][:, region] * share
        return syn


def _apportion(total, weights):
    """Integers >= 1 summing to ``total``, proportional to ``weights``
    beyond the first one each (largest remainders)."""
    weights = np.asarray(weights, float)
    spare = total - weights.size
    share = spare * weights / weights.sum()
    out = np.floor(share).astype(np.int64)
    rest = spare - out.sum()
    out[np.argsort(-(share - out), kind="stable")[:rest]] += 1
    return out + 1


def _split(k, fractions):
    """Integers summing to ``k`` in proportion to ``fractions`` (largest remainders)."""
    fractions = np.asarray(fractions, float)
    share = k * fractions / fractions.sum()
    out = np.floor(share).astype(np.int64)
    out[np.argsort(-(share - out), kind="stable")[:k - out.sum()]] += 1
    return out


def _check_int(name, value, low):
    return integer(name, value, low=low)


def make_plan(connectome, n_neurons, k_in, e_fraction=0.8, fractions=DTB_FRACTIONS,
              laminar=False, remote="uniform"):
    """Population sizes and in-degrees of the network (see module docstring
    and ``from_connectome`` for ``remote``)."""
    n_reg = connectome.n_regions
    per_region = len(POPULATIONS) if laminar else 2
    n_neurons = _check_int("n_neurons", n_neurons, 1)
    if n_neurons < n_reg * per_region:
        raise ParameterError(
            f"n_neurons must be >= the number of populations ({n_reg} regions x "
            f"{per_region} = {n_reg * per_region}), got {n_neurons}")
    k_in = _check_int("k_in", k_in, 1)
    fractions = np.asarray(fractions, float)
    if fractions.shape != (3,) or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1):
        raise ParameterError(f"fractions (local E, local I, remote) must be 3 numbers >= 0 "
                             f"summing to 1, got {fractions.tolist()!r}")
    if not 0 < e_fraction < 1:
        raise ParameterError(f"e_fraction must be in (0, 1), got {e_fraction!r}")
    size = np.asarray(connectome.region_size, float)
    if laminar:
        shares = N_FULL / N_FULL.sum()
        suffixes, kinds = POPULATIONS, ["E" if k % 2 == 0 else "I" for k in range(8)]
    else:
        shares = np.array([e_fraction, 1 - e_fraction])
        suffixes, kinds = ("E", "I"), ["E", "I"]
    n = _apportion(n_neurons, np.outer(size, shares).ravel())
    pops = tuple((r, suffixes[q], kinds[q], int(n[r * per_region + q]))
                 for r in range(n_reg) for q in range(per_region))
    local, k_remote = _indegrees(pops, per_region, k_in, fractions, laminar,
                                 _remote_shares(connectome, fractions[2], remote))
    p_remote = connectome.row_normalised()
    _check_sources(connectome.names, pops, local, k_remote, p_remote)
    return Plan(tuple(connectome.names), pops, tuple(local), k_remote, p_remote)


def _remote_shares(connectome, share, remote):
    """Remote share of the in-degree per region: ``share`` everywhere
    ("uniform", DTB), or ``share`` x the region's connectome in-strength
    over the largest in-strength ("strength")."""
    if remote == "uniform":
        return np.full(connectome.n_regions, share)
    if remote != "strength":
        raise ParameterError(f"remote must be 'uniform' or 'strength', got {remote!r}")
    w = np.array(connectome.weights, float)
    np.fill_diagonal(w, 0.0)
    strength = w.sum(axis=1)
    return share * strength / strength.max()


def _indegrees(pops, per_region, k_in, fractions, laminar, remote_shares):
    local, k_remote = [], np.zeros(len(pops), np.int64)
    if laminar:
        full = full_synapse_numbers() / N_FULL[:, None]  # PD14 in-degrees [target, source]
    for t, (r, _, kind, _) in enumerate(pops):
        f_rem = remote_shares[r]
        # remote inputs take the place of local excitatory ones; local I keeps its share
        k_local_e, k_local_i, k_rem = _split(
            k_in, (fractions[0] + fractions[2] - f_rem, fractions[1], f_rem)) \
            if f_rem != fractions[2] else _split(k_in, fractions)
        base = r * per_region
        if laminar:
            q = t - base
            counts = _split(k_local_e + k_local_i, full[q])
            local.append([(base + s, int(c)) for s, c in enumerate(counts) if c > 0])
        else:
            local.append([(s, int(c)) for s, c in ((base, k_local_e), (base + 1, k_local_i))
                          if c > 0])
        k_remote[t] = k_rem
    return local, k_remote


def _check_sources(names, pops, local, k_remote, p_remote):
    for t, loc in enumerate(local):
        for s, k in loc:
            avail = pops[s][3] - (1 if s == t else 0)
            if k > avail:
                raise ParameterError(
                    f"k_in is too large: population {names[pops[t][0]]}_{pops[t][1]} needs "
                    f"{k} distinct sources from {names[pops[s][0]]}_{pops[s][1]}, which has "
                    f"{avail} (raise n_neurons or lower k_in)")
    size = np.array([p[3] for p in pops])
    region = np.array([p[0] for p in pops])
    is_e = np.array([p[2] == "E" for p in pops])
    e_pool = np.bincount(region[is_e], weights=size[is_e], minlength=len(names))
    for t, (r, suffix, _, _) in enumerate(pops):
        if k_remote[t] == 0:
            continue
        if p_remote[r].sum() <= 0:
            raise ParameterError(
                f"region {names[r]!r} has no incoming connections in the connectome (its "
                f"row of weights[target, source] is zero off the diagonal); remote inputs "
                f"cannot be drawn (set fractions with remote 0, or fix the matrix)")
        reach = e_pool[p_remote[r] > 0].sum()
        if k_remote[t] > reach:
            raise ParameterError(
                f"k_in is too large: {names[r]}_{suffix} needs {k_remote[t]} remote sources, "
                f"the regions it is connected to hold {int(reach)} excitatory neurons")


def from_connectome(connectome, n_neurons, k_in, partitions=1, seed=0, store=None, *,
                    model="lif_dtb", params=None, e_fraction=0.8, fractions=DTB_FRACTIONS,
                    weights=None, heterogeneity=None, background="default", dt=1.0,
                    delay=None, velocity=None, laminar=False, region_order="traffic",
                    rates=None, overwrite=False, progress=False, remote="uniform"):
    """Build a DTB-style spiking network from a connectome.

    Parameters
    ----------
    connectome : brainsim.datasets.Connectome
        ``weights[target, source]`` (any non-negative scale: rows are
        normalised), ``region_size`` (grey matter, voxels), ``names``,
        ``lengths`` (mm; needed with ``velocity``).
    n_neurons : int
        Total neurons, exactly; shared by region size, each population >= 1.
    k_in : int
        In-degree of every neuron (so also the mean).
    partitions : int or Partitioning
        Number of partitions (threads, workers), or a result of
        ``partition``. Partitions are contiguous id ranges holding whole
        regions (a population is cut only when it exceeds a partition's
        capacity, 10 % above the mean load).
    seed : int
        Seeds synapses, weights and per-neuron heterogeneity. The network
        is the same for any ``partitions`` given the same region order.
    store : path, optional
        Network store (Zarr v3) written partition by partition; the network
        returned then loads its synapses from it at first use.
    model : {"lif_dtb", "iaf_psc_exp"}
    params : dict, optional
        Neuron parameters for all populations, or ``{"E": {...}, "I": {...}}``.
    e_fraction : float
        Excitatory share of each region (DTB: 0.8); ignored when laminar.
    fractions : 3 floats
        In-degree split (local E, local I, remote E); DTB: (4/7, 1/7, 2/7).
        With ``laminar`` the local part follows the PD14 in-degree matrix.
    weights : dict, optional
        ``{"E": w, "I": w}`` per source kind, ``w`` a constant or a
        ``(low, high)`` uniform range. Default for lif_dtb (dimensionless):
        DTB's U(0, 1), inhibitory U(0, 3) (see ``DEFAULT_WEIGHTS``: with
        U(0, 1) the default network saturates); iaf_psc_exp: U(0, 175.62)
        and U(-702.48, 0) pA.
    heterogeneity : dict, optional
        Per-neuron multipliers of parameters, e.g. DTB's
        ``{"g_AMPA": {"distribution": "gamma", "shape": 5, "scale": 0.2}}``
        (mean shape x scale); also "lognormal" (mean, sigma of the log).
    background : "default", None or dict
        OU current ``{"mean": pA, "sigma": pA, "tau": ms}`` on every neuron;
        default DTB's (660, 120, 10) for lif_dtb, (250, 100, 10) for iaf.
    dt : float, ms
        Resolution; DTB steps at 1 ms.
    delay : float, ms
        Delay of local synapses (and of remote ones without ``velocity``);
        default dt (DTB: a spike acts at the next step).
    velocity : float, mm/ms (= m/s), optional
        Remote delays = max(delay, fibre length / velocity).
    laminar : bool
        Eight PD14 populations (L23E ... L6I) per region instead of E and I.
    region_order : {"traffic", "given"}
        Order of regions in neuron ids: "traffic" groups strongly connected
        regions (the same order for every partition count, so results do
        not depend on it); "given" keeps the connectome's order.
    rates : dict, optional
        Expected rates {"E": Hz, "I": Hz} weighting the spike traffic that
        the partitioner minimises (default 1 Hz each).
    overwrite : bool
        Replace an existing network store at ``store``.
    progress : bool
        Progress bar over partitions.
    remote : {"uniform", "strength"}
        How many of a neuron's inputs are remote: ``fractions[2]`` in every
        region ("uniform", DTB: the connectome only says where remote inputs
        come from, since its rows are normalised), or ``fractions[2]`` x the
        region's in-strength (row sum of ``weights``, diagonal excluded)
        over the largest one ("strength", as in mean-field models, where a
        region's remote input scales with its summed weights); local
        excitatory inputs fill the rest of ``k_in``, local inhibitory ones
        keep ``fractions[1]``.

    Returns
    -------
    Network
        Built; ``net.meta`` records the inputs and the partition report.
    """
    plan = make_plan(connectome, n_neurons, k_in, e_fraction, fractions, laminar, remote)
    model_cls = _model_name(model)
    wr = _weight_ranges(model_cls, weights)
    dt = float(dt)
    net = Network(dt=dt, seed=seed)
    t0 = time.perf_counter()
    layout = _layout(plan, partitions, region_order, rates)
    t_layout = time.perf_counter() - t0
    order_pops = _add_populations(net, plan, layout.order, model_cls, params)
    _add_heterogeneity(net, heterogeneity, seed)
    _add_background(net, model_cls, background)
    local_steps = net._delay_steps(None, dt if delay is None else delay, 1)[0]
    remote_steps = _remote_delays(connectome, velocity, dt if delay is None else delay, net)
    ctx, wctx, pop_start, kin = _context(net, plan, order_pops, local_steps, remote_steps, wr,
                                         seed)
    bounds = [(int(a), int(b)) for a, b in zip(layout.bounds[:-1], layout.bounds[1:])]
    net.meta.update(
        model="dtb_connectome", source=connectome.source, n_neurons=int(n_neurons),
        k_in=int(k_in), fractions=[float(f) for f in fractions], laminar=bool(laminar),
        e_fraction=float(e_fraction), velocity=velocity, remote=remote, region_order=list(
            net.regions), partition_report=layout.report())
    t0 = time.perf_counter()
    _generate(net, (ctx, wctx), pop_start, kin, bounds, store, overwrite, progress)
    net.meta["timings_s"] = {"partitioning": round(t_layout, 4),
                             "synapses": round(time.perf_counter() - t0, 4)}
    return net


def _model_name(model):
    if model not in DEFAULT_WEIGHTS:
        raise UnknownNameError(f"model must be one of {sorted(DEFAULT_WEIGHTS)}, got {model!r}")
    return model


def _weight_ranges(model, weights):
    spec = dict(DEFAULT_WEIGHTS[model])
    if weights is not None:
        if not isinstance(weights, dict) or not set(weights) <= {"E", "I"}:
            raise ParameterError(f"weights must be a dict with keys 'E' and/or 'I', "
                                 f"got {weights!r}")
        spec.update(weights)
    out = np.zeros((2, 2))
    for q, kind in enumerate(("E", "I")):
        w = spec[kind]
        lo, hi = (w, w) if is_number(w) else tuple(w) if np.shape(w) == (2,) else (None, None)
        if lo is None or not (is_number(lo) and is_number(hi)) or not (
                math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ParameterError(f"weights[{kind!r}] must be a finite number or a (low, high) "
                                 f"range with low <= high, got {w!r}")
        allowed = (0.0, math.inf) if model == "lif_dtb" or kind == "E" else (-math.inf, 0.0)
        if lo < allowed[0] or hi > allowed[1]:
            raise ParameterError(f"weights[{kind!r}] onto {model} must lie in {list(allowed)}, "
                                 f"got {w!r}")
        out[q] = lo, hi
    return out


def _params_for(params, kind):
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ParameterError(f"params must be a dict, got {params!r}")
    if set(params) and set(params) <= {"E", "I"}:
        return dict(params.get(kind, {}))
    return dict(params)


def _add_populations(net, plan, order, model, params):
    """Add the populations region by region in ``order``; return the plan
    population index of each network population."""
    by_region = {}
    for q, p in enumerate(plan.pops):
        by_region.setdefault(p[0], []).append(q)
    order_pops = []
    base = NEURON if model == "iaf_psc_exp" else {}
    for r in order:
        for q in by_region[int(r)]:
            _, suffix, kind, n = plan.pops[q]
            net.add_population(f"{plan.names[r]}_{suffix}", n, model,
                               params={**base, **_params_for(params, kind)},
                               region=plan.names[r], kind=kind)
            order_pops.append(q)
    return order_pops


def _add_heterogeneity(net, heterogeneity, seed):
    if not heterogeneity:
        return
    if not isinstance(heterogeneity, dict):
        raise ParameterError(f"heterogeneity must be a dict name -> distribution, "
                             f"got {heterogeneity!r}")
    for k, name in enumerate(sorted(heterogeneity)):
        spec = heterogeneity[name]
        rng = np.random.default_rng([seed, 101, k])
        dist = spec.get("distribution") if isinstance(spec, dict) else None
        if dist == "gamma":
            draw = rng.gamma(_positive(spec, "shape", name), _positive(spec, "scale", name),
                             net.n_neurons)
        elif dist == "lognormal":
            draw = rng.lognormal(spec.get("mean", 0.0), _positive(spec, "sigma", name),
                                 net.n_neurons)
        else:
            raise ParameterError(
                f"heterogeneity[{name!r}] must be {{'distribution': 'gamma', 'shape', "
                f"'scale'}} or {{'distribution': 'lognormal', 'mean', 'sigma'}}, got {spec!r}")
        net.set_property(np.arange(net.n_neurons), name, multiplier=draw)


def _positive(spec, key, name):
    return number(f"heterogeneity[{name!r}][{key!r}]", spec.get(key), low=0, low_open=True)


def _add_background(net, model, background):
    if background is None:
        return
    if background == "default":
        background = DTB_BACKGROUND if model == "lif_dtb" else IAF_BACKGROUND
    if not isinstance(background, dict) or set(background) != {"mean", "sigma", "tau"}:
        raise ParameterError(f"background must be None or a dict with keys mean (pA), "
                             f"sigma (pA), tau (ms), got {background!r}")
    net.add_ou(list(net.populations), **background)


def _remote_delays(connectome, velocity, delay, net):
    n_reg = connectome.n_regions
    if velocity is None:
        steps = net._delay_steps(None, delay, 1)[0]
        return np.full((n_reg, n_reg), steps, np.uint16)
    velocity = number("velocity", velocity, low=0, low_open=True, unit="mm/ms (m/s)")
    if connectome.lengths is None:
        raise ParameterError("velocity needs fibre lengths (connectome.lengths is None)")
    ms = np.maximum(np.asarray(connectome.lengths, float) / velocity, delay)
    return net._delay_steps(None, ms.ravel(), ms.size).reshape(n_reg, n_reg)


def _context(net, plan, order_pops, local_steps, remote_steps, wr, seed):
    pops = list(net.populations.values())
    start_of = {q: pops[t].start for t, q in enumerate(order_pops)}
    blocks = [[(start_of[s], plan.pops[s][3], k) for s, k in plan.local[q]] for q in order_pops]
    k_remote = [int(plan.k_remote[q]) for q in order_pops]
    pop_region = [plan.pops[q][0] for q in order_pops]
    kin = [sum(k for _, k in plan.local[q]) + int(plan.k_remote[q]) for q in order_pops]
    pools = [[] for _ in plan.names]
    for q in order_pops:
        if plan.pops[q][2] == "E":
            pools[plan.pops[q][0]].append((start_of[q], plan.pops[q][3]))
    ctx = gen.make_context(seed, blocks, k_remote, pop_region, plan.p_remote, pools)
    region_of = np.repeat(np.array(pop_region, np.int32), [p.n for p in pops])
    inhibitory = np.repeat(np.array([p.kind == "I" for p in pops], np.uint8), [p.n for p in pops])
    wctx = gen.make_weight_context(seed, region_of, inhibitory, local_steps, remote_steps, wr)
    pop_start = np.array([p.start for p in pops] + [net.n_neurons], np.int64)
    return ctx, wctx, pop_start, np.array(kin, np.int64)


def _generate(net, contexts, pop_start, kin, bounds, store, overwrite, progress):
    import numba
    from tqdm.auto import tqdm

    edges = gen.synapses_before(pop_start, kin, [lo for lo, _ in bounds] + [bounds[-1][1]])
    counts = np.diff(edges).tolist()
    work = gen.new_work(net.n_neurons, max(1, numba.get_num_threads()), max(counts))
    steps = tqdm(list(enumerate(zip(bounds, counts))), disable=not progress, desc="generate",
                 unit="partition")
    if store is not None:
        _stream_to_store(net, contexts, pop_start, kin, bounds, counts, work, store, overwrite,
                         steps)
        return
    total = sum(counts)
    local = np.empty(total, local_dtype(bounds))
    weights, delays = np.empty(total, np.float32), np.empty(total, np.uint16)
    # two buffers (drawn sources; int32 local targets) reused by every partition:
    # fresh pages cost ~1 s per GB here
    scratch = np.empty((2, max(counts)), np.int32)
    parts, offset = [], 0
    for k, ((lo, hi), n_syn) in steps:
        sl = slice(offset, offset + n_syn)
        out = (scratch[1, :n_syn], weights[sl], delays[sl])
        sources, indptr, tgt, _, _ = gen.generate_partition(lo, hi, pop_start, kin, *contexts,
                                                            work, out, scratch[0, :n_syn])
        local[sl] = tgt
        parts.append(Partition(lo, hi, sources, indptr, offset))
        offset += n_syn
    del scratch
    net.synapses = SynapseTable(parts, local, weights, delays)
    net.partitions = parts


def _stream_to_store(net, contexts, pop_start, kin, bounds, counts, work, store, overwrite,
                     steps):
    """Generate partition k + 1 while a writer thread compresses and writes
    partition k; two sets of buffers, allocated once (no page faults per
    partition). Peak memory: two partitions."""
    from concurrent.futures import ThreadPoolExecutor

    from brainsim.network_format import create_network_store, write_partition
    group = create_network_store(net, store, bounds, sum(counts), overwrite)
    cap = max(counts)
    buffers = [(np.empty(cap, np.int32), np.empty(cap, np.float32), np.empty(cap, np.uint16))
               for _ in range(min(2, len(bounds)))]
    scratch = np.empty(cap, np.int32)
    pending = [None] * len(buffers)
    with ThreadPoolExecutor(max_workers=1) as writer:
        for k, ((lo, hi), n_syn) in steps:
            slot = k % len(buffers)
            if pending[slot] is not None:
                pending[slot].result()  # its buffers are free again
            out = tuple(b[:n_syn] for b in buffers[slot])
            arrays = gen.generate_partition(lo, hi, pop_start, kin, *contexts, work, out,
                                            scratch=scratch[:n_syn])
            pending[slot] = writer.submit(write_partition, group, k, *arrays)
        for fut in pending:
            if fut is not None:
                fut.result()
    net._attach_store(store, sum(counts))


#: Partition count the "traffic" region order is optimised for; the order
#: is then kept for every partition count (same neuron ids, same results).
ORDER_PARTITIONS = 16
#: Sweeps of that order search (2: within 0.5 % of 10 sweeps on HCP, 3.5x faster).
ORDER_SWEEPS = 2


def _traffic(plan, rates):
    rates = {"E": 1.0, "I": 1.0, **(rates or {})}
    for kind, value in rates.items():
        if kind not in ("E", "I") or not is_number(value) or not value >= 0:
            raise ParameterError(f"rates must map 'E'/'I' to rates >= 0 Hz, got {rates!r}")
    per_source = np.array([rates[p[2]] for p in plan.pops])
    return plan.expected_synapses() * per_source[None, :]


def partition(connectome, n_partitions, n_neurons, k_in, method="traffic", tolerance=0.1,
              rates=None, e_fraction=0.8, fractions=DTB_FRACTIONS, laminar=False):
    """Assign the regions of a connectome network to ``n_partitions``.

    Balances the load (neurons x in-degree) within ``tolerance`` of the mean
    and, with ``method="traffic"``, minimises the expected spike traffic
    across partitions (synapses x source rate, ``rates`` {"E": Hz, "I": Hz});
    ``method="size"`` is DTB's size-only balancing of regions in the
    connectome's order. Returns a ``Partitioning`` (region ``order``,
    neuron-id ``bounds``, ``report()``) that ``from_connectome`` accepts.
    """
    from .partitioning import partition_units
    plan = make_plan(connectome, n_neurons, k_in, e_fraction, fractions, laminar)
    size, kin, region = plan.unit_arrays()
    return partition_units(size, kin, region, _traffic(plan, rates), n_partitions,
                           method=method, tolerance=tolerance)


def _layout(plan, partitions, region_order, rates):
    from .partitioning import Partitioning, partition_units
    size, kin, region = plan.unit_arrays()
    if isinstance(partitions, Partitioning):
        if sorted(np.asarray(partitions.order).tolist()) != list(range(len(plan.names))) or \
                int(partitions.bounds[-1]) != int(size.sum()):
            raise ParameterError("partitions (a Partitioning) was made for another network: "
                                 "its regions or neuron count differ")
        return partitions
    if region_order not in ("traffic", "given"):
        raise ParameterError(f"region_order must be 'traffic' or 'given', got {region_order!r}")
    traffic = _traffic(plan, rates)
    if region_order == "given":
        return partition_units(size, kin, region, traffic, partitions, method="size")
    ref = partition_units(size, kin, region, traffic, min(ORDER_PARTITIONS, len(plan.names)),
                          method="traffic", max_sweeps=ORDER_SWEEPS)
    return partition_units(size, kin, region, traffic, partitions, method="traffic",
                           order=ref.order)
