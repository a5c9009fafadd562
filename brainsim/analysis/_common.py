"""Shared input handling of the analysis functions: spikes of a results
Dataset, time windows, and the neuron -> population / region map.

Spike times follow NEST: a spike emitted in the step [t, t + dt) is stamped
t + dt. A window or bin [t0, t1) of simulated time therefore holds the
stamps in (t0, t1]; every function here counts a spike stamped t in the bin
k with t0 + k w < t <= t0 + (k + 1) w, which reproduces the simulator's own
binned rates exactly.
"""
import math

import numpy as np
import xarray as xr

from ..errors import ParameterError, UnknownNameError
from ..validation import positive_number

#: relative tolerance (in bins) for spike stamps that lie on a bin edge
_EDGE_TOL = 1e-9

GROUPINGS = ("population", "region")


def spikes(ds):
    """(times ms float64, neuron ids int64) of a results Dataset."""
    if not isinstance(ds, xr.Dataset):
        raise ParameterError(f"ds must be an xarray.Dataset of simulation results, "
                             f"got {type(ds).__name__}")
    missing = [v for v in ("spike_time", "spike_neuron") if v not in ds.variables]
    if missing:
        raise ParameterError(f"ds must hold spike_time and spike_neuron, missing {missing}")
    times = np.asarray(ds["spike_time"].values, np.float64)
    ids = np.asarray(ds["spike_neuron"].values, np.int64)
    return times, ids


def window(ds, t_window):
    """Validated (t0, t1) in ms; default: the Dataset's (t_start, t_stop)."""
    if t_window is None:
        if "t_stop" not in ds.attrs:
            raise ParameterError("t_window (t0, t1) in ms is needed: ds.attrs has no t_stop")
        t_window = (ds.attrs.get("t_start", 0.0), ds.attrs["t_stop"])
    try:
        t0, t1 = (float(t) for t in t_window)
    except (TypeError, ValueError):
        raise ParameterError(f"t_window must be a pair (t0, t1) of times in ms, "
                             f"got {t_window!r}") from None
    if not (math.isfinite(t0) and math.isfinite(t1)) or t1 <= t0:
        raise ParameterError(f"t_window must be finite with t0 < t1 (ms), got {t_window!r}")
    return t0, t1


def bin_width(name, value):
    """A bin width in ms, checked > 0."""
    return positive_number(name, value, "ms")


def bin_index(times, t0, width, n_bins):
    """Bin of each stamp (k: t0 + k w < t <= t0 + (k + 1) w); -1 outside."""
    k = np.ceil((times - t0) / width - _EDGE_TOL).astype(np.int64) - 1
    k[(k < 0) | (k >= n_bins)] = -1
    return k


def count_matrix(times, labels, t0, width, n, n_labels):
    """Spike counts (n bins, n_labels) of stamps ``times`` with ``labels``."""
    k = bin_index(times, t0, width, n)
    ok = k >= 0
    counts = np.zeros((n, n_labels))
    np.add.at(counts, (k[ok], labels[ok]), 1.0)
    return counts


def binned(ds, bin_ms, t_window, by, network):
    """Checked inputs of a binned spike analysis: (t0, t1, width, n bins,
    group names, group of each neuron, group sizes, spike stamps, spike ids)."""
    width = bin_width("bin_ms", bin_ms)
    t0, t1 = window(ds, t_window)
    n = n_bins(t0, t1, width)
    names, group_of, sizes = groups(ds, by, network)
    times, ids = spikes(ds)
    check_ids(ids, group_of.size)
    return t0, t1, width, n, names, group_of, sizes, times, ids


def n_bins(t0, t1, width, name="bin_ms"):
    """Number of whole bins of ``width`` in [t0, t1); at least one."""
    n = math.floor((t1 - t0) / width + _EDGE_TOL)
    if n < 1:
        raise ParameterError(f"{name} must be <= the window length {t1 - t0!r} ms, "
                             f"got {width!r}")
    return n


def in_window(times, t0, t1):
    """Mask of the stamps in (t0, t1]."""
    return bin_index(times, t0, t1 - t0, 1) == 0


def population_sizes(ds):
    """(names, sizes int64) of the populations from the Dataset's attrs."""
    names = list(ds.attrs.get("populations", []))
    sizes = np.asarray(ds.attrs.get("population_sizes", []), np.int64)
    if not names or len(names) != sizes.size:
        raise ParameterError("ds.attrs must list 'populations' and 'population_sizes' of "
                             f"equal length, got {names!r} and {sizes.tolist()!r}")
    return names, sizes


def population_regions(ds, network=None):
    """Region of each population (list, attrs order): from ``network``,
    ``attrs['population_regions']`` or a single-region Dataset."""
    names, _ = population_sizes(ds)
    if network is not None:
        try:
            return [network.populations[p].region for p in names]
        except KeyError as err:
            raise ParameterError(f"network has no population {err.args[0]!r} of ds; pass the "
                                 "network that was simulated") from None
    given = ds.attrs.get("population_regions")
    if given is not None and len(given) == len(names):
        return list(given)
    regions = list(ds.attrs.get("regions", []))
    if len(regions) == 1:
        return regions * len(names)
    raise ParameterError("by='region' needs the population -> region map: pass network= "
                         "(the simulated Network) or a Dataset with attrs['population_regions']")


def groups(ds, by, network=None):
    """(group names, group index of every neuron (N,), sizes) for ``by``."""
    if by not in GROUPINGS:
        raise ParameterError(f"by must be one of {GROUPINGS}, got {by!r}")
    names, sizes = population_sizes(ds)
    pop_of = np.repeat(np.arange(len(names)), sizes)
    if by == "population":
        return names, pop_of, sizes
    regs = population_regions(ds, network)
    order = list(dict.fromkeys(regs))
    reg_of_pop = np.array([order.index(r) for r in regs])
    return order, reg_of_pop[pop_of], np.bincount(reg_of_pop, weights=sizes).astype(np.int64)


def check_ids(ids, n_neurons):
    """Raise if a spike's neuron id is outside 0 .. n_neurons - 1."""
    if ids.size and (ids.min() < 0 or ids.max() >= n_neurons):
        raise ParameterError(f"spike_neuron must lie in [0, {n_neurons}) (population_sizes), "
                             f"got min {ids.min()} max {ids.max()}")


def select_neurons(ds, neurons, network=None):
    """Neuron ids (int64, sorted) chosen by ``neurons``: None (all), a
    population name or list of names, or an array of ids."""
    names, sizes = population_sizes(ds)
    n = int(sizes.sum())
    if neurons is None:
        return np.arange(n)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    if isinstance(neurons, str) or (isinstance(neurons, (list, tuple)) and neurons
                                    and all(isinstance(p, str) for p in neurons)):
        picked = [neurons] if isinstance(neurons, str) else list(neurons)
        for p in picked:
            if p not in names:
                raise UnknownNameError(f"unknown population {p!r}; known: {names}")
        return np.unique(np.concatenate(
            [np.arange(starts[names.index(p)], starts[names.index(p) + 1]) for p in picked]))
    ids = np.unique(np.asarray(neurons))
    if ids.ndim != 1 or not (ids.size == 0 or np.issubdtype(ids.dtype, np.integer)):
        raise ParameterError(f"neurons must be None, population name(s) or an array of "
                             f"integer ids, got {neurons!r}")
    check_ids(ids, n)
    return ids.astype(np.int64)


def neuron_coords(ds, ids, network=None):
    """Coordinates of a per-neuron DataArray: neuron id, population, region."""
    names, sizes = population_sizes(ds)
    pop = np.repeat(np.arange(len(names)), sizes)[ids]
    coords = {"neuron": ("neuron", ids, {"units": "1", "long_name": "global neuron id"}),
              "population": ("neuron", np.asarray(names, dtype=object)[pop].astype(str))}
    try:
        regs = np.asarray(population_regions(ds, network), dtype=object)
        coords["region"] = ("neuron", regs[pop].astype(str))
    except ParameterError:
        if network is not None:
            raise
        # region unknown: per-population summaries only
    return coords


def trains(times, ids, neurons):
    """Sorted spike times of each neuron of ``neurons`` (list of arrays)."""
    keep = np.isin(ids, neurons)
    times, ids = times[keep], ids[keep]
    order = np.lexsort((times, ids))
    times, ids = times[order], ids[order]
    cut = np.searchsorted(ids, neurons)
    bounds = np.append(cut, ids.size)
    return [times[bounds[k]:bounds[k + 1]] for k in range(len(neurons))]


def annotate(da, units, long_name, **attrs):
    """Set units and long_name (and further attrs) on a DataArray; return it."""
    da.attrs.update(units=units, long_name=long_name, **attrs)
    return da
