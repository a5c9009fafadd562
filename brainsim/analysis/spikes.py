"""Spike-train statistics: irregularity (CV of ISI, LvR), population
synchrony and pairwise spike-count correlation.

Per-neuron measures return a DataArray on ``neuron`` with ``population``
(and ``region`` where known) coordinates, so that a population summary is
``summarize(cv)`` or ``cv.groupby("population").mean()``.
"""
import numpy as np
import xarray as xr

from ..errors import ParameterError
from ..validation import integer
from . import _common


def _intervals(ds, t_window, neurons, min_spikes, network):
    """ISIs (ms) of the selected neurons with >= min_spikes spikes in the
    window, the neuron index of each ISI, the kept ids and their coords."""
    min_spikes = integer("min_spikes (two intervals at least)", min_spikes, low=3, strict=True)
    t0, t1 = _common.window(ds, t_window)
    times, ids = _common.spikes(ds)
    chosen = _common.select_neurons(ds, neurons, network)
    keep = _common.in_window(times, t0, t1) & np.isin(ids, chosen)
    times, ids = times[keep], ids[keep]
    order = np.lexsort((times, ids))
    times, ids = times[order], ids[order]
    kept, n_spk = np.unique(ids, return_counts=True)
    kept = kept[n_spk >= min_spikes]
    sel = np.isin(ids, kept)
    times, ids = times[sel], ids[sel]
    same = ids[1:] == ids[:-1]
    isi = np.diff(times)[same]
    owner = np.searchsorted(kept, ids[1:][same])
    return isi, owner, kept, _common.neuron_coords(ds, kept, network), (t0, t1)


def cv_isi(ds, t_window=None, neurons=None, min_spikes=3, network=None):
    """Coefficient of variation of the inter-spike intervals of each neuron.

    CV = sd(ISI) / mean(ISI) (population sd, ``ddof=0``): 0 for a regular
    train, 1 for a Poisson process.

    Parameters
    ----------
    ds : xarray.Dataset
        Simulation results.
    t_window : (float, float), ms, optional
        Default (t_start, t_stop) of ``ds``.
    neurons : str, list of str or array of int, optional
        Population name(s) or neuron ids; default all neurons.
    min_spikes : int
        Neurons with fewer spikes in the window (>= 3) are left out.
    network : Network, optional
        Adds the ``region`` coordinate when ``ds`` lacks the map.

    Returns
    -------
    xarray.DataArray
        CV (units "1") on ``neuron`` (ids of the neurons kept).
    """
    isi, owner, kept, coords, win = _intervals(ds, t_window, neurons, min_spikes, network)
    count = np.bincount(owner, minlength=kept.size)
    mean = np.bincount(owner, isi, minlength=kept.size) / count
    var = np.bincount(owner, (isi - mean[owner]) ** 2, minlength=kept.size) / count
    out = xr.DataArray(np.sqrt(var) / mean, dims="neuron", coords=coords)
    return _common.annotate(out, "1", "coefficient of variation of the inter-spike intervals",
                            t_window_ms=list(win), min_spikes=int(min_spikes))


def lvr(ds, R=2.0, t_window=None, neurons=None, min_spikes=3, network=None):
    """Revised local variation LvR of each neuron (Shinomoto et al. 2009).

    LvR = 3 / (n - 1) sum_i (1 - 4 I_i I_{i+1} / (I_i + I_{i+1})^2)
    (1 + 4 R / (I_i + I_{i+1})) over the n ISIs I_i: 0 for a regular train,
    about 1 for a Poisson process (with refractoriness R); the multi-area
    model papers use R = 2 ms. doi:10.1371/journal.pcbi.1000433

    Parameters
    ----------
    ds : xarray.Dataset
        Simulation results.
    R : float, ms
        Refractoriness constant (>= 0).
    t_window, neurons, min_spikes, network
        As in :func:`cv_isi`.

    Returns
    -------
    xarray.DataArray
        LvR (units "1") on ``neuron``.
    """
    if isinstance(R, bool) or not isinstance(R, (int, float, np.number)) or not R >= 0 \
            or not np.isfinite(R):
        raise ParameterError(f"R must be a finite number >= 0 ms, got {R!r}")
    isi, owner, kept, coords, win = _intervals(ds, t_window, neurons, min_spikes, network)
    pair = owner[1:] == owner[:-1]
    a, b, who = isi[:-1][pair], isi[1:][pair], owner[1:][pair]
    s = a + b
    terms = (1.0 - 4.0 * a * b / s ** 2) * (1.0 + 4.0 * R / s)
    value = 3.0 * np.bincount(who, terms, minlength=kept.size) / np.bincount(
        who, minlength=kept.size)
    out = xr.DataArray(value, dims="neuron", coords=coords)
    return _common.annotate(out, "1", "revised local variation LvR", R_ms=float(R),
                            t_window_ms=list(win), min_spikes=int(min_spikes))


def summarize(per_neuron, by="population", stat="mean"):
    """Population (or region) summary of a per-neuron measure, NaN ignored.

    Parameters
    ----------
    per_neuron : xarray.DataArray
        On ``neuron`` with a ``by`` coordinate (:func:`cv_isi`, :func:`lvr`).
    by : {"population", "region"}
    stat : {"mean", "median", "std"}

    Returns
    -------
    xarray.DataArray
        On ``by`` (groups with at least one neuron), units of the input.
    """
    stats = {"mean": np.nanmean, "median": np.nanmedian, "std": np.nanstd}
    if stat not in stats:
        raise ParameterError(f"stat must be one of {list(stats)}, got {stat!r}")
    if not isinstance(per_neuron, xr.DataArray) or by not in per_neuron.coords:
        raise ParameterError(f"per_neuron must be a DataArray with a {by!r} coordinate "
                             f"(by={by!r})")
    labels = per_neuron[by].values
    names = list(dict.fromkeys(labels.tolist()))
    vals = [stats[stat](per_neuron.values[labels == g]) if np.isfinite(
        per_neuron.values[labels == g]).any() else np.nan for g in names]
    out = xr.DataArray(np.asarray(vals, np.float64), dims=by, coords={by: names},
                       attrs=dict(per_neuron.attrs))
    out.attrs["long_name"] = f"{stat} per {by} of the {per_neuron.attrs.get('long_name', '')}"
    out.coords["n_neurons"] = (by, np.array([(labels == g).sum() for g in names]))
    return out


def synchrony(ds, bin_ms=1.0, by="population", t_window=None, network=None):
    """Population synchrony: variance / mean of the population spike count.

    The spike count of each population (or region) in bins of ``bin_ms``;
    1 for independent Poisson neurons, growing with correlated firing (the
    measure of the multi-area model papers, 1 ms bins).

    Parameters
    ----------
    ds : xarray.Dataset
        Simulation results with all spikes of the groups recorded.
    bin_ms : float, ms
    by : {"population", "region"}
    t_window : (float, float), ms, optional
    network : Network, optional
        For ``by="region"``.

    Returns
    -------
    xarray.DataArray
        Synchrony (units "1") on ``by``; NaN for a silent group.
    """
    t0, t1, width, n, names, group_of, _, times, ids = _common.binned(
        ds, bin_ms, t_window, by, network)
    counts = _common.count_matrix(times, group_of[ids], t0, width, n, len(names))
    mean = counts.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(mean > 0, counts.var(0) / mean, np.nan)
    out = xr.DataArray(value, dims=by, coords={by: names})
    return _common.annotate(out, "1", "synchrony (variance / mean of the population spike "
                            "count)", bin_ms=width, t_window_ms=[t0, t1])


def spike_count_correlation(ds, n_neurons=100, bin_ms=1.0, by="population", t_window=None,
                            rng=None, network=None):
    """Mean pairwise Pearson correlation of binned spike counts in each group.

    From each population (or region) ``n_neurons`` neurons are drawn without
    replacement (all if fewer); silent ones (no spike in the window) are
    dropped (as is any neuron whose count does not vary), and the mean is
    over the pairs of the remaining neurons.

    Parameters
    ----------
    ds : xarray.Dataset
        Simulation results.
    n_neurons : int
        Sample size per group (>= 2).
    bin_ms : float, ms
        Width of the count bins.
    by : {"population", "region"}
    t_window : (float, float), ms, optional
    rng : numpy.random.Generator or int, optional
        Draws the sample (an int seeds a new Generator; default seed 0).
    network : Network, optional
        For ``by="region"``.

    Returns
    -------
    xarray.DataArray
        Mean correlation coefficient (units "1") on ``by``, with the number
        of pairs as coordinate ``n_pairs``; NaN where fewer than 2 neurons spike.
    """
    n_neurons = integer("n_neurons", n_neurons, low=2, strict=True)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(
        0 if rng is None else rng)
    t0, t1, width, n, names, group_of, sizes, times, ids = _common.binned(
        ds, bin_ms, t_window, by, network)
    k = _common.bin_index(times, t0, width, n)
    means, pairs = [], []
    by_group = np.split(np.argsort(group_of, kind="stable"), np.cumsum(sizes)[:-1])
    for members in by_group:
        sample = np.sort(rng.choice(members, min(n_neurons, members.size), replace=False))
        r, m = _mean_correlation(k, ids, sample, n)
        means.append(r)
        pairs.append(m)
    out = xr.DataArray(np.asarray(means), dims=by, coords={by: names})
    out.coords["n_pairs"] = (by, np.asarray(pairs, np.int64))
    return _common.annotate(out, "1", "mean pairwise spike-count correlation coefficient",
                            bin_ms=width, n_neurons=int(n_neurons), t_window_ms=[t0, t1])


def _mean_correlation(k, ids, sample, n_bins):
    """Mean upper-triangle Pearson r of the binned counts of ``sample``."""
    ok = (k >= 0) & np.isin(ids, sample)
    counts = np.zeros((sample.size, n_bins))
    np.add.at(counts, (np.searchsorted(sample, ids[ok]), k[ok]), 1.0)
    counts = counts[counts.std(1) > 0]
    if counts.shape[0] < 2:
        return np.nan, 0
    r = np.corrcoef(counts)
    iu = np.triu_indices(counts.shape[0], 1)
    return float(r[iu].mean()), int(iu[0].size)
