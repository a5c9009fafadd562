"""Partitioning of a region-structured network into contiguous neuron ranges.

A partition (what one thread, Dask worker or GPU owns) is a contiguous range
of neuron ids. Ids are contiguous per population ("unit") and units per
region, so a partitioning is (1) an order of the regions, in which ids are
laid out (a region's units stay together, in their given order), and (2)
``P + 1`` cuts in the neuron ids of the reordered network.

Work is counted as synapses (stored with their targets): a unit of ``n``
neurons of mean in-degree ``k`` has load ``n * k``. Communication is counted
as synaptic events per second crossing partitions. Neurons of a unit are
homogeneous, so a piece holding the fraction ``f`` of a unit carries ``f`` of
its load and of its traffic, as source and as target.

Two methods:

``"size"``
    The Digital Twin Brain's size-only balancing, as we read it (Lu et al.
    2024, Nat. Comput. Sci., doi 10.1038/s43588-024-00731-3: populations
    assigned to GPUs balancing size x degree, max/mean <= 1.1): regions in
    the input (atlas) order, cut into ``P`` ranges of balanced load, with as
    few cuts inside units as the tolerance allows, then the best balance.
``"traffic"``
    Minimises the cut traffic subject to the same load bound: spectral
    ordering of the regions (Fiedler vector of the region-traffic Laplacian;
    Pothen, Simon & Liou 1990, SIAM J. Matrix Anal. Appl. 11:430,
    doi 10.1137/0611030) refined by moving blocks of regions, each order
    scored by its best cut.

For a given order both use one dynamic programme that takes the cheapest
cuts with every partition's load at most ``(1 + tolerance) * mean``, exact
over a set of candidate ids: unit ends, the ideal balanced cuts, and the ids
one capacity after or before a region end (the traffic cut by a cut inside a
unit is concave in its position, so a single cut is best at a unit end or
where a partition is full; cuts chained at full capacity through several
units are not all candidates, which costs a few per cent at most in our
checks). Scoring one order costs about U * span + tolerance * C^2 steps, with C
about U + 2 R + P candidates and span the most units one partition touches.
"""
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from numba import njit

from brainsim.errors import ParameterError, UnknownNameError
from brainsim.validation import integer, number

METHODS = ("traffic", "size")
#: Block lengths (regions) moved by the local search, and neighbours of a
#: block next to which it is tried.
_BLOCK_LENGTHS = (1, 2)
_N_NEIGHBOURS = 3
_MAX_SWEEPS = 10
_IMPROVEMENT = 1e-12  # relative to the total traffic
#: Candidate cuts 1.._CHAIN_STEPS capacities away from each region end.
_CHAIN_STEPS = 1
#: Tie-breaks of the traffic objective (fractions of the total traffic):
#: a cut inside a unit, then squared deviation of a load from the mean.
_SPLIT_PENALTY = 1e-9
_DEVIATION_PENALTY = 1e-12


@dataclass(frozen=True, eq=False)
class Partitioning:
    """A region order and neuron-id cuts, with their load and traffic figures.

    Attributes
    ----------
    order : (R,) int64 array
        Region index (input numbering) at each new position.
    bounds : (P + 1,) int64 array
        Cuts in the neuron ids of the reordered network: partition ``p``
        holds ids ``bounds[p] .. bounds[p + 1] - 1``; 0 first, N last.
    method : str
        ``"traffic"`` or ``"size"``.
    tolerance : float
        Allowed excess of a partition's load over the mean (0.1 = 10 %).
    loads : (P,) float64 array, synapses
        Load of each partition.
    balance : float
        Largest load over mean load (1 = perfect).
    cut_traffic : float, events/s
        Synaptic events per second between neurons of different partitions.
    total_traffic : float, events/s
        All synaptic events per second.
    cut_fraction : float
        ``cut_traffic / total_traffic`` (0 without traffic).
    n_split_units : int
        Units (populations) whose neurons lie in more than one partition.
    """

    order: np.ndarray
    bounds: np.ndarray
    method: str
    tolerance: float
    loads: np.ndarray
    balance: float
    cut_traffic: float
    total_traffic: float
    cut_fraction: float
    n_split_units: int

    @property
    def n_partitions(self):
        return self.bounds.size - 1

    def report(self):
        """The figures as a plain, JSON-able dict."""
        return {"method": self.method, "tolerance": self.tolerance,
                "n_partitions": self.n_partitions, "order": self.order.tolist(),
                "bounds": self.bounds.tolist(), "loads": self.loads.tolist(),
                "balance": self.balance, "cut_traffic": self.cut_traffic,
                "total_traffic": self.total_traffic, "cut_fraction": self.cut_fraction,
                "n_split_units": self.n_split_units}


def partition_units(unit_size, unit_indegree, unit_region, traffic, n_partitions,
                    method="traffic", tolerance=0.1, seed=0, order=None, max_sweeps=None):
    """Order the regions and cut the neuron ids into balanced partitions.

    Parameters
    ----------
    unit_size : (U,) int array, neurons
        Neurons per unit (population), >= 1.
    unit_indegree : (U,) float array, synapses per neuron
        Mean in-degree of the unit's neurons; load = size * in-degree.
    unit_region : (U,) int array
        Region of each unit: non-decreasing, regions numbered 0..R-1.
    traffic : (U, U) float array, events/s
        ``traffic[u, v]``: synaptic events per second from unit ``v``
        (source) onto unit ``u`` (target), i.e. synapses(v -> u) * rate(v).
    n_partitions : int
        Number of partitions P, 1 <= P <= number of neurons.
    method : {"traffic", "size"}
        Minimise the cut traffic, or balance the load in the input region
        order (the baseline).
    tolerance : float
        Every partition's load is at most ``(1 + tolerance)`` times the mean
        (where neuron granularity allows: a neuron heavier than that, or
        ``tolerance=0`` with indivisible loads, relaxes the bound to the
        best contiguous cut of the ideal positions).
    seed : int
        Order in which the local search visits regions (``"traffic"`` only).
    order : (R,) int array, optional
        Keep this region order and choose only the cuts (with ``"traffic"``,
        the cuts that minimise the cut traffic). ``from_connectome`` uses it
        to keep one order for every partition count.
    max_sweeps : int, optional
        Sweeps of the order search (default ``_MAX_SWEEPS``); the order of
        ``from_connectome`` uses 2 (within 0.5 % of the cut traffic of 10 on
        HCP, 3.5x faster).

    Returns
    -------
    Partitioning
        A cut falls inside a unit only where the balance needs it or, for
        ``"traffic"``, where it lowers the cut traffic.
    """
    size, indeg, region, traffic = _check_units(unit_size, unit_indegree, unit_region, traffic)
    n_parts = _check_n_partitions(n_partitions, int(size.sum()))
    tolerance = _check_tolerance(tolerance)
    seed = integer("seed", seed, low=0, strict=True)
    if method not in METHODS:
        raise UnknownNameError(f"method must be one of {list(METHODS)}, got {method!r}")
    n_regions = int(region[-1]) + 1
    rstart = np.searchsorted(region, np.arange(n_regions + 1)).astype(np.int64)
    total = float(traffic.sum())
    sym = (traffic + traffic.T) / (total if total > 0 else 1.0)
    args = (rstart, size, indeg, sym, n_parts, tolerance, _weights(method))
    if order is not None:
        order = np.asarray(order, np.int64)
        if order.shape != (n_regions,) or not np.array_equal(np.sort(order),
                                                             np.arange(n_regions)):
            raise ParameterError(f"order must be a permutation of the {n_regions} regions, "
                                 f"got {order!r}")
    elif method == "traffic" and n_parts > 1 and n_regions > 1 and total > 0:
        sweeps = _MAX_SWEEPS if max_sweeps is None else int(max_sweeps)
        order = _traffic_order(args, _region_traffic(sym, rstart), seed, sweeps)
    else:
        order = np.arange(n_regions, dtype=np.int64)
    _, bounds = _best_cut(order, *args)
    return _result(order, bounds, size, indeg, region, traffic, method, tolerance)


def unit_order(order, unit_region):
    """Permutation of units implied by a region order.

    Parameters
    ----------
    order : (R,) int array
        Region index at each new position (a permutation of 0..R-1).
    unit_region : (U,) int array
        Region of each unit, non-decreasing, numbered 0..R-1.

    Returns
    -------
    (U,) int64 array
        ``units[k]``: input index of the unit at new position ``k``.
    """
    region = np.asarray(unit_region)
    n_regions = int(region[-1]) + 1 if region.size else 0
    order = np.asarray(order)
    if order.shape != (n_regions,) or not np.array_equal(np.sort(order), np.arange(n_regions)):
        raise ParameterError(f"order must be a permutation of 0..{n_regions - 1}, got {order!r}")
    rstart = np.searchsorted(region, np.arange(n_regions + 1))
    count = np.diff(rstart)[order]
    shift = np.repeat(rstart[order] - np.concatenate([[0], np.cumsum(count)[:-1]]), count)
    return (np.arange(region.size) + shift).astype(np.int64)


def piece_fractions(bounds, size):
    """Fraction of each unit held by each partition.

    Parameters
    ----------
    bounds : (P + 1,) int array
        Neuron-id cuts, 0 first and N last.
    size : (U,) int array, neurons
        Unit sizes in id order.

    Returns
    -------
    (P, U) float64 array
    """
    ends = np.concatenate([[0], np.cumsum(size)])
    lo = np.maximum(bounds[:-1, None], ends[None, :-1])
    hi = np.minimum(bounds[1:, None], ends[None, 1:])
    return np.maximum(hi - lo, 0) / np.asarray(size, float)[None, :]


def cut_traffic_of(bounds, order, unit_size, unit_region, traffic):
    """Synaptic events per second between different partitions.

    Parameters
    ----------
    bounds : (P + 1,) int array
        Cuts in the neuron ids of the network reordered by ``order``.
    order : (R,) int array
        Region order.
    unit_size, unit_region, traffic
        As for :func:`partition_units` (input numbering).

    Returns
    -------
    float, events/s
    """
    units = unit_order(order, unit_region)
    frac = piece_fractions(np.asarray(bounds), np.asarray(unit_size)[units])
    t = np.asarray(traffic, float)[np.ix_(units, units)]
    within = float(((frac @ t) * frac).sum())
    return max(float(t.sum()) - within, 0.0)


# ------------------------------------------------------------ validation
def _check_units(unit_size, unit_indegree, unit_region, traffic):
    size = np.asarray(unit_size)
    if size.ndim != 1 or size.size == 0 or not np.issubdtype(size.dtype, np.integer) \
            or np.any(size < 1):
        raise ParameterError(f"unit_size must be a non-empty 1-D array of integers >= 1, "
                             f"got {unit_size!r}")
    n = size.size
    indeg = np.asarray(unit_indegree, float)
    if indeg.shape != (n,) or not np.all(np.isfinite(indeg)) or np.any(indeg < 0):
        raise ParameterError(f"unit_indegree must be {n} finite values >= 0, got {unit_indegree!r}")
    if not np.any(indeg * size > 0):
        raise ParameterError(f"unit_indegree must give some unit a load > 0, got {unit_indegree!r}")
    region = np.asarray(unit_region)
    if region.shape != (n,) or not np.issubdtype(region.dtype, np.integer) or region[0] != 0 \
            or not np.all(np.isin(np.diff(region), (0, 1))):
        raise ParameterError(f"unit_region must be {n} non-decreasing integers numbering regions "
                             f"0..R-1 without gaps, got {unit_region!r}")
    t = np.asarray(traffic, float)
    if t.shape != (n, n) or not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ParameterError(f"traffic must be a ({n}, {n}) array of finite values >= 0, "
                             f"got shape {np.shape(traffic)}: {traffic!r}")
    return size.astype(np.int64), indeg, region.astype(np.int64), t


def _check_n_partitions(n_partitions, n_neurons):
    return integer("n_partitions", n_partitions, low=1, high=n_neurons, strict=True)


def _check_tolerance(tolerance):
    return number("tolerance", tolerance, low=0)


# ------------------------------------------------------------ result
def _result(order, bounds, size, indeg, region, traffic, method, tolerance):
    units = unit_order(order, region)
    ends = np.concatenate([[0], np.cumsum(size[units])])
    cload = np.concatenate([[0.0], np.cumsum(size[units] * indeg[units])])
    loads = np.diff(_load_at(bounds, ends, cload, indeg[units]))
    mean = cload[-1] / loads.size
    inner = bounds[1:-1]
    split = np.searchsorted(inner, ends[1:], "left") > np.searchsorted(inner, ends[:-1], "right")
    total = float(traffic.sum())
    cut = cut_traffic_of(bounds, order, size, region, traffic) if bounds.size > 2 else 0.0
    for a in (order, bounds, loads):
        a.flags.writeable = False
    return Partitioning(order=order, bounds=bounds, method=method, tolerance=tolerance,
                        loads=loads, balance=float(loads.max() / mean), cut_traffic=cut,
                        total_traffic=total, cut_fraction=cut / total if total > 0 else 0.0,
                        n_split_units=int(split.sum()))


def _load_at(x, ends, cload, dens):
    """Load of the neurons before id ``x`` (same arithmetic as the kernel)."""
    k = np.minimum(np.searchsorted(ends, x, "right") - 1, dens.size - 1)
    return cload[k] + (x - ends[k]) * dens[k]


# ------------------------------------------------------------ traffic ordering
def _weights(method):
    """(traffic, split, deviation) weights of the cut objective."""
    if method == "size":
        return np.array([0.0, 1.0, 0.5])
    return np.array([1.0, _SPLIT_PENALTY, _DEVIATION_PENALTY])


def _region_traffic(sym, rstart):
    """Symmetric region-by-region traffic, zero diagonal."""
    a = np.add.reduceat(np.add.reduceat(sym, rstart[:-1], axis=0), rstart[:-1], axis=1)
    np.fill_diagonal(a, 0.0)
    return a


def _traffic_order(args, a, seed, sweeps):
    """Best of the input and spectral orders, refined by block moves;
    ``args`` are the arguments of the cut kernels after the order."""
    starts = np.array([np.arange(a.shape[0]), *_spectral_orders(a)], np.int64)
    costs = _costs(starts, *args)
    best = int(np.argmin(costs))
    return _improve(args, a, starts[best], costs[best], np.random.default_rng(seed), sweeps)


def _spectral_orders(a):
    """Regions sorted by the Fiedler vector of the combinatorial and of the
    normalised Laplacian (sign fixed so that the result is deterministic)."""
    deg = a.sum(axis=1)
    if deg.max() <= 0.0:  # no traffic between regions
        return []
    scale = np.where(deg > 0.0, 1.0 / np.sqrt(np.where(deg > 0.0, deg, 1.0)), 0.0)
    orders = []
    for lap, back in ((np.diag(deg) - a, np.ones_like(deg)),
                      (np.eye(deg.size) - scale[:, None] * a * scale[None, :], scale)):
        _, vec = scipy.linalg.eigh(lap, subset_by_index=[1, 1])
        v = vec[:, 0] * back
        v = v * (np.sign(v[np.argmax(np.abs(v))]) or 1.0)
        orders.append(np.argsort(v, kind="stable").astype(np.int64))
    return orders


def _improve(args, a, order, cost, rng, sweeps):
    """Move blocks of consecutive regions (``_BLOCK_LENGTHS``) next to the
    regions they exchange most traffic with, keeping the best move when its
    cut is cheaper; sweeps (regions visited in a seeded order) until no move
    is kept, at most ``sweeps``."""
    for _ in range(sweeps):
        improved = False
        for r in rng.permutation(order.size):
            for length in _BLOCK_LENGTHS:
                i = int(np.flatnonzero(order == r)[0])
                if i + length > order.size:
                    continue
                new_order, new_cost = _best_move(args, a, order, i, length)
                if new_cost < cost - _IMPROVEMENT:
                    order, cost, improved = new_order, new_cost, True
        if not improved:
            break
    return order


def _best_move(args, a, order, i, length):
    """Best of the moves of ``order[i:i + length]`` beside its strongest
    neighbours; (None, inf) when there is none."""
    block = order[i:i + length]
    rest = np.concatenate([order[:i], order[i + length:]])
    link = a[block].sum(axis=0)[rest]
    near = np.argsort(-link, kind="stable")[:_N_NEIGHBOURS]
    near = near[link[near] > 0]
    targets = np.setdiff1d(np.concatenate([near, near + 1]), [i])
    if targets.size == 0:
        return None, np.inf
    cands = np.array([np.concatenate([rest[:t], block, rest[t:]]) for t in targets])
    costs = _costs(cands, *args)
    k = int(np.argmin(costs))
    return cands[k], costs[k]


# ------------------------------------------------------------ kernels
@njit(cache=True)
def _layout(order, rstart, size, indeg):
    """Units in the order of the regions, their neuron ends, cumulative
    load, per-neuron load, and which ends are region ends."""
    n_units = size.size
    units = np.empty(n_units, np.int64)
    region_end = np.zeros(n_units + 1, np.bool_)
    k = 0
    for r in order:
        region_end[k] = True
        for u in range(rstart[r], rstart[r + 1]):
            units[k] = u
            k += 1
    region_end[n_units] = True
    ends = np.zeros(n_units + 1, np.int64)
    cload = np.zeros(n_units + 1)
    dens = np.empty(n_units)
    for k in range(n_units):
        u = units[k]
        dens[k] = indeg[u]
        ends[k + 1] = ends[k] + size[u]
        cload[k + 1] = cload[k] + size[u] * indeg[u]
    return units, ends, cload, dens, region_end


@njit(cache=True)
def _load(x, ends, cload, dens):
    k = min(np.searchsorted(ends, x, "right") - 1, dens.size - 1)
    return cload[k] + (x - ends[k]) * dens[k]


@njit(cache=True)
def _floor_pos(t, ends, cload, dens):
    """Largest id x with load(x) <= t (-1 if none)."""
    if t < 0.0:
        return -1
    n_units = dens.size
    if t >= cload[n_units]:
        return ends[n_units]
    k = np.searchsorted(cload, t, "right") - 1  # cload[k] <= t < cload[k + 1]
    x = min(ends[k] + np.int64(np.floor((t - cload[k]) / dens[k])), ends[k + 1])
    while x > ends[k] and _load(x, ends, cload, dens) > t:
        x -= 1
    while x < ends[k + 1] and _load(x + 1, ends, cload, dens) <= t:
        x += 1
    return x


@njit(cache=True)
def _ceil_pos(t, ends, cload, dens):
    """Smallest id x with load(x) >= t (N + 1 if none)."""
    n_units = dens.size
    if t <= 0.0:
        return 0
    if t > cload[n_units]:
        return ends[n_units] + 1
    k = np.searchsorted(cload, t, "left")  # cload[k - 1] < t <= cload[k]
    x = max(ends[k - 1] + np.int64(np.ceil((t - cload[k - 1]) / dens[k - 1])), ends[k - 1])
    x = min(x, ends[k])
    while x < ends[k] and _load(x, ends, cload, dens) < t:
        x += 1
    while x > ends[k - 1] and _load(x - 1, ends, cload, dens) >= t:
        x -= 1
    return x


@njit(cache=True)
def _fallback(ends, cload, dens, n_parts):
    """Ideal balanced cuts rounded to the nearest id, made strictly increasing."""
    n = ends[-1]
    cuts = np.empty(n_parts + 1, np.int64)
    cuts[0], cuts[n_parts] = 0, n
    mean = cload[-1] / n_parts
    for j in range(1, n_parts):
        t = j * mean
        x = _floor_pos(t, ends, cload, dens)
        if x < n and (_load(x + 1, ends, cload, dens) - t < t - _load(x, ends, cload, dens)):
            x += 1
        cuts[j] = min(max(x, j, cuts[j - 1] + 1), n - (n_parts - j))
    return cuts


@njit(cache=True)
def _capacity(ends, cload, dens, n_parts, tolerance, fallback):
    """(1 + tolerance) * mean load, or the fallback's largest load if larger
    (neuron granularity)."""
    cap = (1.0 + tolerance) * cload[-1] / n_parts
    for j in range(n_parts):
        cap = max(cap, _load(fallback[j + 1], ends, cload, dens)
                  - _load(fallback[j], ends, cload, dens))
    return cap


@njit(cache=True)
def _candidates(ends, cload, dens, cap, fallback, region_end):
    """Sorted candidate cut ids: unit ends, the fallback cuts, and the ids
    1.._CHAIN_STEPS capacities after / before each region end."""
    n = ends[-1]
    out = np.full((2 * _CHAIN_STEPS + 1) * ends.size + fallback.size, -1, np.int64)
    k = 0
    for i in range(ends.size):
        out[k] = ends[i]
        k += 1
        if region_end[i]:
            start = _load(ends[i], ends, cload, dens)
            for s in range(1, _CHAIN_STEPS + 1):
                out[k] = _floor_pos(start + s * cap, ends, cload, dens)
                out[k + 1] = _ceil_pos(start - s * cap, ends, cload, dens)
                k += 2
    out[out.size - fallback.size:] = fallback
    out = np.unique(out)
    return out[(out >= 0) & (out <= n)]


@njit(cache=True)
def _span(cload, cap):
    """Bound on ky - kx for the units kx, ky holding the ends of a range of
    load <= cap (the whole units between them hold <= cap)."""
    n_units = cload.size - 1
    span, j = 1, 0
    for a in range(n_units + 1):  # a = kx + 1, the first whole unit
        j = max(j, a)
        while j < n_units and cload[j + 1] - cload[a] <= cap * (1.0 + 1e-9):
            j += 1
        span = max(span, j - a + 2)  # ky <= j, one unit of margin
    return min(span, n_units)


@njit(cache=True)
def _band(units, sym, span):
    """Traffic among units at most ``span`` apart in the id order:
    ``mb[a, d]`` between units a and a + d, ``right[a, d]`` = sum of
    ``mb[a, :d]``, ``left[a, d]`` between unit a and the d units before it,
    ``block[i, d]`` among the units i .. i + d - 1. Row ``U`` is a zero
    unit of padding."""
    n_units = units.size
    width = span + 1
    mb = np.zeros((n_units + 1, width))
    for a in range(n_units):
        for d in range(min(width, n_units - a)):
            mb[a, d] = sym[units[a], units[a + d]]
    right = np.zeros((n_units + 1, width + 1))
    left = np.zeros((n_units + 1, width))
    block = np.zeros((n_units + 1, width))
    for a in range(n_units + 1):
        for d in range(width):
            right[a, d + 1] = right[a, d] + mb[a, d]
        for d in range(min(width - 1, a)):
            left[a, d + 1] = left[a, d] + mb[a - d - 1, d + 1]
    for i in range(n_units + 1):
        for d in range(min(width - 1, n_units - i)):
            block[i, d + 1] = block[i, d] + 2.0 * left[i + d, d] + mb[i + d, 0]
    return mb, right, left, block


@njit(cache=True)
def _within(kx, fx, ky, fy, mb, right, left, block):
    """Traffic (both directions) among the ids from x to y, where x, y lie
    at fractions fx, fy of the units kx <= ky (x < y)."""
    if kx == ky:
        return (fy - fx) ** 2 * mb[kx, 0]
    gx, d = 1.0 - fx, ky - kx - 1  # d whole units between
    return (gx * gx * mb[kx, 0] + block[kx + 1, d] + fy * fy * mb[ky, 0]
            + 2.0 * gx * (right[kx, d + 1] - mb[kx, 0]) + 2.0 * fy * left[ky, d]
            + 2.0 * gx * fy * mb[kx, d + 1])


@njit(cache=True)
def _windows(cand, cl, n_parts, cap):
    """Index range [lo[j], hi[j]] of the candidates cut j can take (necessary
    conditions: room for the partitions before and after it)."""
    n, total = cand[-1], cl[-1]
    slack = 1e-9 * total
    lo = np.zeros(n_parts + 1, np.int64)
    hi = np.zeros(n_parts + 1, np.int64)
    for j in range(1, n_parts):
        lo[j] = max(np.searchsorted(cl, total - (n_parts - j) * cap - slack, "left"),
                    np.searchsorted(cand, j, "left"))
        hi[j] = min(np.searchsorted(cl, j * cap + slack, "right"),
                    np.searchsorted(cand, n - (n_parts - j), "right")) - 1
    lo[n_parts] = hi[n_parts] = cand.size - 1
    return lo, hi


@njit(cache=True)
def _best_cut(order, rstart, size, indeg, sym, n_parts, tolerance, weights):
    """Cheapest cuts of a region order, every partition's load <= cap.
    Cost = -w0 * traffic kept inside partitions (fraction of the total)
    + w1 * cuts inside units + w2 * sum of squared relative load deviations
    (``weights`` = w0, w1, w2). Returns (cost, bounds)."""
    units, ends, cload, dens, region_end = _layout(order, rstart, size, indeg)
    fallback = _fallback(ends, cload, dens, n_parts)
    cap = _capacity(ends, cload, dens, n_parts, tolerance, fallback)
    cand = _candidates(ends, cload, dens, cap, fallback, region_end)
    tables = _band(units, sym, _span(cload, cap))
    cl = np.empty(cand.size)
    ck = np.searchsorted(ends, cand, "right") - 1  # unit of each candidate
    cf = np.zeros(cand.size)  # and the fraction of it before the candidate
    for c in range(cand.size):
        cl[c] = _load(cand[c], ends, cload, dens)
        if ck[c] < dens.size:
            cf[c] = (cand[c] - ends[ck[c]]) / (ends[ck[c] + 1] - ends[ck[c]])
    mean = cload[-1] / n_parts
    w = np.array([weights[0], weights[1],
                  weights[2] / (n_parts * max(cap / mean, 1.0) ** 2)])
    return _dp(cand, cl, ck, cf, tables, n_parts, cap, mean, w)


@njit(cache=True)
def _dp(cand, cl, ck, cf, tables, n_parts, cap, mean, w):
    """value[j, c]: least cost of j partitions ending at candidate c (stored
    per window of cut j), with the predecessor in ``back``."""
    mb, right, left, block = tables
    lo, hi = _windows(cand, cl, n_parts, cap)
    off = np.zeros(n_parts + 2, np.int64)
    for j in range(n_parts + 1):
        off[j + 1] = off[j] + max(hi[j] - lo[j] + 1, 0)
    value = np.full(off[-1], np.inf)
    back = np.full(off[-1], -1, np.int64)
    value[0] = 0.0
    for j in range(1, n_parts + 1):
        for c in range(lo[j], hi[j] + 1):
            best, arg = np.inf, -1
            split = w[1] if cf[c] > 0.0 else 0.0
            for p in range(min(c - 1, hi[j - 1]), lo[j - 1] - 1, -1):
                load = cl[c] - cl[p]
                if load > cap:
                    break
                v = value[off[j - 1] + p - lo[j - 1]]
                if v == np.inf:
                    continue
                inside = 0.5 * _within(ck[p], cf[p], ck[c], cf[c], mb, right, left, block)
                v += -w[0] * inside + split + w[2] * (load / mean - 1.0) ** 2
                if v < best:
                    best, arg = v, p
            value[off[j] + c - lo[j]] = best
            back[off[j] + c - lo[j]] = arg
    bounds = np.empty(n_parts + 1, np.int64)
    c = cand.size - 1
    for j in range(n_parts, 0, -1):
        bounds[j] = cand[c]
        c = back[off[j] + c - lo[j]]
    bounds[0] = 0
    return value[off[n_parts]], bounds


@njit(cache=True)
def _costs(orders, rstart, size, indeg, sym, n_parts, tolerance, weights):
    """Cost of the best cut of each row of ``orders``."""
    out = np.empty(orders.shape[0])
    for i in range(orders.shape[0]):
        out[i] = _best_cut(orders[i], rstart, size, indeg, sym, n_parts, tolerance, weights)[0]
    return out
