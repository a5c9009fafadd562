"""Figures of simulation, BOLD and assimilation results (matplotlib).

Every function returns the matplotlib Figure; those that draw one panel
accept ``ax=`` to draw into an existing Axes. Matplotlib is imported when a
function is called, so ``import brainsim`` does not import it. Axis labels
carry units: time in ms (spikes, rates) or s (BOLD, assimilation), rates in Hz.
"""
import numpy as np
import xarray as xr

from .analysis import _common
from .analysis.signals import fc_correlation, pearson_r
from .errors import ParameterError, UnknownNameError
from .validation import number

#: face colour and hatch of cells of absent populations in rate_heatmap
ABSENT_STYLE = {"facecolor": "0.85", "hatch": "///", "edgecolor": "0.5", "linewidth": 0}
_MAX_TICK_LABELS = 40


def _pyplot():
    import matplotlib.pyplot as plt
    return plt


def _axes(ax, figsize):
    """(figure, axes): ``ax`` and its figure, or a new figure with one Axes."""
    if ax is not None:
        return ax.figure, ax
    return _pyplot().subplots(figsize=figsize, layout="constrained")


def _label(name, units):
    if units == "1":
        units = "dimensionless"
    return f"{name} ({units})" if units else name


def _time_label(coord, default):
    return _label("time", coord.attrs.get("units", default))


def _sample_neurons(sizes, fraction, rng):
    """Sorted ids: round(fraction * n) neurons drawn from each population."""
    starts = np.concatenate([[0], np.cumsum(sizes)])
    picked = [starts[k] + np.sort(rng.choice(n, round(fraction * n), replace=False))
              for k, n in enumerate(sizes)]
    return np.concatenate(picked).astype(np.int64)


def raster(ds, fraction=1.0, t_window=None, populations=None, seed=0, ax=None,
           markersize=1.0, figsize=(8, 5)):
    """Spike raster coloured by population.

    Parameters
    ----------
    ds : xarray.Dataset
        Simulation results.
    fraction : float
        Fraction (0, 1] of each population's neurons shown, drawn with
        ``numpy.random.default_rng(seed)``; rows are the drawn neurons in id
        order, first population at the top.
    t_window : (float, float), ms, optional
        Spikes stamped in (t0, t1]; default (t_start, t_stop) of ``ds``.
    populations : str or list of str, optional
        Populations shown (default all).
    seed : int
        Seed of the neuron sample.
    ax : matplotlib.axes.Axes, optional
    markersize : float, points
    figsize : (float, float), inches

    Returns
    -------
    matplotlib.figure.Figure
        One line (``Line2D``) per population holding (spike time ms, row).
    """
    fraction = number("fraction", fraction, low=0, high=1, low_open=True)
    t0, t1 = _common.window(ds, t_window)
    names, sizes = _common.population_sizes(ds)
    shown = _shown_populations(names, populations)
    shown_ids = _common.select_neurons(ds, [names[k] for k in shown])
    ids_all = _sample_neurons(sizes, fraction, np.random.default_rng(seed))
    rows = np.intersect1d(ids_all, shown_ids)
    times, ids = _common.spikes(ds)
    keep = _common.in_window(times, t0, t1) & np.isin(ids, rows)
    times, ids = times[keep], ids[keep]
    fig, ax = _axes(ax, figsize)
    pop_of = np.repeat(np.arange(len(names)), sizes)
    for c, k in enumerate(shown):
        mine = pop_of[ids] == k
        ax.plot(times[mine], np.searchsorted(rows, ids[mine]), ls="none", marker=".",
                ms=markersize, color=f"C{c % 10}", label=names[k], rasterized=True)
    blocks = {names[k]: np.flatnonzero(pop_of[rows] == k) for k in shown}
    _raster_axes(ax, t0, t1, rows.size, {p: b for p, b in blocks.items() if b.size})
    return fig


def _shown_populations(names, populations):
    if populations is None:
        return list(range(len(names)))
    wanted = [populations] if isinstance(populations, str) else list(populations)
    for p in wanted:
        if p not in names:
            raise UnknownNameError(f"unknown population {p!r}; known: {names}")
    return sorted(names.index(p) for p in wanted)


def _raster_axes(ax, t0, t1, n_rows, blocks):
    """Limits, labels, population names at their blocks' centres, separators."""
    ax.set_xlim(t0, t1)
    ax.set_ylim(n_rows - 0.5, -0.5)  # first population at the top
    ax.set_xlabel("time (ms)")
    starts = [b[0] - 0.5 for b in list(blocks.values())[1:]]
    if starts:  # faint lines between the populations
        ax.hlines(starts, 0, 1, transform=ax.get_yaxis_transform(), color="0.8", lw=0.5,
                  zorder=0)
    if len(blocks) <= _MAX_TICK_LABELS:
        ax.set_yticks([b.mean() for b in blocks.values()], list(blocks))
        ax.set_ylabel("population (neurons in id order)")
    else:
        ax.set_ylabel("neuron (sampled, id order)")


def rate_heatmap(rates, ax=None, cmap="viridis", vmin=None, vmax=None, label="mean rate",
                 absent_label="absent population", figsize=(10, 4)):
    """Heat map of mean rates, population x area; absent populations hatched.

    The multi-area model's figure: areas along x, population types along y
    (first at the top). NaN cells (a population an area lacks, e.g. L4 of
    area TH) are drawn grey and hatched and named in the legend.

    Parameters
    ----------
    rates : xarray.DataArray
        Two dimensions, e.g. ``rates_by_area(mean_rate(ds), network)`` on
        (population, region); ``population`` (if present) goes on the y axis.
    ax : matplotlib.axes.Axes, optional
    cmap : str
    vmin, vmax : float, Hz, optional
        Colour limits (default: finite min and max).
    label : str
        Colour bar label; the units of ``rates`` (default Hz) are appended.
    absent_label : str
        Legend entry of the hatched cells.
    figsize : (float, float), inches

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(rates, xr.DataArray) or rates.ndim != 2:
        raise ParameterError(f"rates must be a 2-D DataArray (population x area), got "
                             f"{getattr(rates, 'dims', type(rates).__name__)!r}")
    if "population" in rates.dims:
        rates = rates.transpose("population", ...)
    row_dim, col_dim = rates.dims
    values = np.asarray(rates.values, np.float64)
    fig, ax = _axes(ax, figsize)
    im = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=vmin, vmax=vmax,
                   aspect="auto", interpolation="nearest")
    _mark_absent(ax, values, absent_label)
    _label_grid(ax, rates, row_dim, col_dim)
    fig.colorbar(im, ax=ax, label=_label(label, rates.attrs.get("units", "Hz")))
    return fig


def _mark_absent(ax, values, absent_label):
    from matplotlib.patches import Patch, Rectangle
    rows, cols = np.nonzero(~np.isfinite(values))
    for i, j in zip(rows, cols):
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, **ABSENT_STYLE))
    if rows.size:
        ax.legend(handles=[Patch(label=absent_label, **ABSENT_STYLE)], loc="lower right",
                  bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize="small")


def _label_grid(ax, da, row_dim, col_dim):
    for dim, setter, axis_label in ((row_dim, ax.set_yticks, ax.set_ylabel),
                                    (col_dim, ax.set_xticks, ax.set_xlabel)):
        n = da.sizes[dim]
        labels = da[dim].values if dim in da.coords else np.arange(n)
        step = max(1, int(np.ceil(n / _MAX_TICK_LABELS)))
        setter(np.arange(0, n, step), [str(v) for v in labels[::step]])
        axis_label(dim)
    ax.tick_params(axis="x", labelrotation=90)


def region_rate_heatmap(rates, regions=None, t_window=None, ax=None, cmap="magma",
                        vmax=None, figsize=(10, 5)):
    """Instantaneous firing rate per region over time, as an image.

    Parameters
    ----------
    rates : xarray.Dataset or xarray.DataArray
        Results (its ``rate_region`` is used) or a rate on (time ms, region),
        e.g. ``rate_histogram(ds, 5.0, by="region", network=net)``.
    regions : list of str, optional
        Regions shown, top to bottom (default all).
    t_window : (float, float), ms, optional
        Bins starting in [t0, t1) (default all).
    ax : matplotlib.axes.Axes, optional
    cmap : str
    vmax : float, Hz, optional
        Upper colour limit (default the maximum).
    figsize : (float, float), inches

    Returns
    -------
    matplotlib.figure.Figure
    """
    da = _region_rates(rates, regions, t_window)
    t = np.asarray(da["time"].values, np.float64)
    width = t[1] - t[0] if t.size > 1 else float(da.attrs.get("bin_ms", 1.0))
    fig, ax = _axes(ax, figsize)
    im = ax.imshow(da.transpose("region", "time").values, aspect="auto", cmap=cmap,
                   vmin=0, vmax=vmax, interpolation="nearest",
                   extent=(t[0], t[-1] + width, da.sizes["region"] - 0.5, -0.5))
    n = da.sizes["region"]
    step = max(1, int(np.ceil(n / _MAX_TICK_LABELS)))
    ax.set_yticks(np.arange(0, n, step), [str(r) for r in da["region"].values[::step]])
    ax.set_xlabel(_time_label(da["time"], "ms"))
    ax.set_ylabel("region")
    fig.colorbar(im, ax=ax, label=_label("rate", da.attrs.get("units", "Hz")))
    return fig


def _region_rates(rates, regions, t_window):
    da = rates["rate_region"] if isinstance(rates, xr.Dataset) else rates
    if not isinstance(da, xr.DataArray) or set(da.dims) != {"time", "region"}:
        raise ParameterError(f"rates must be a results Dataset or a DataArray on (time, "
                             f"region), got {getattr(da, 'dims', type(da).__name__)!r}")
    if da.sizes["time"] == 0:
        raise ParameterError("rates holds no time bins (were rates recorded?)")
    if regions is not None:
        known = [str(r) for r in da["region"].values]
        for r in regions:
            if r not in known:
                raise UnknownNameError(f"unknown region {r!r}; known: {known}")
        da = da.sel(region=list(regions))
    if t_window is not None:
        t0, t1 = _common.window(xr.Dataset(), t_window)
        t = da["time"].values
        da = da.isel(time=np.flatnonzero((t >= t0) & (t < t1)))
        if da.sizes["time"] == 0:
            raise ParameterError(f"t_window {t_window!r} ms holds no rate bin")
    return da


def bold_traces(simulated, observed=None, regions=None, max_regions=6, figsize=None):
    """Simulated (and observed) BOLD of a few regions, one panel each.

    Parameters
    ----------
    simulated : xarray.DataArray
        BOLD on (time s, region), e.g. from ``brainsim.assimilation.bold``.
    observed : xarray.DataArray, optional
        Observed BOLD on (time s, region); each trace is drawn against its
        own time coordinate; panel titles give Pearson r when the two have
        the same number of samples.
    regions : list of str, optional
        Regions shown (default the first ``max_regions``).
    max_regions : int
    figsize : (float, float), inches, optional

    Returns
    -------
    matplotlib.figure.Figure
        One Axes per region, sharing the time axis (s).
    """
    _check_bold("simulated", simulated)
    if observed is not None:
        _check_bold("observed", observed)
    known = [str(r) for r in simulated["region"].values]
    regions = known[:max_regions] if regions is None else list(regions)
    for r in regions:
        if r not in known or (observed is not None and r not in observed["region"].values):
            raise UnknownNameError(f"unknown region {r!r}; known: {known}")
    r_values = _traces_r(simulated, observed, regions)
    fig, axes = _pyplot().subplots(len(regions), 1, sharex=True, squeeze=False,
                                   figsize=figsize or (8, 1.6 * len(regions) + 0.8),
                                   layout="constrained")
    for ax, region in zip(axes[:, 0], regions):
        _trace(ax, simulated.sel(region=region), "simulated", "C0")
        if observed is not None:
            _trace(ax, observed.sel(region=region), "observed", "k")
        title = region if r_values is None else f"{region} (r = {r_values[region]:.2f})"
        ax.set_title(title, fontsize="small", loc="left")
    fig.supylabel(_bold_label(simulated))
    axes[0, 0].legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2,
                      fontsize="small", frameon=False)
    axes[-1, 0].set_xlabel(_time_label(simulated["time"], "s"))
    return fig


def _check_bold(name, da):
    if not isinstance(da, xr.DataArray) or set(da.dims) != {"time", "region"} \
            or "region" not in da.coords or "time" not in da.coords:
        raise ParameterError(f"{name} must be a DataArray on (time, region) with coordinates, "
                             f"got {getattr(da, 'dims', type(da).__name__)!r}")


def _traces_r(simulated, observed, regions):
    if observed is None or observed.sizes["time"] != simulated.sizes["time"]:
        return None
    r = pearson_r(simulated.sel(region=regions).transpose("time", "region"),
                  observed.sel(region=regions).transpose("time", "region"))
    return dict(zip(regions, r.values))


def _trace(ax, da, label, colour):
    ax.plot(da["time"].values, da.values, color=colour, lw=1.0, label=label)


def _bold_label(da):
    units = da.attrs.get("units")
    return "BOLD (fractional change)" if units in (None, "1") else _label("BOLD", units)


def fc_matrices(fc_a, fc_b, titles=("simulated", "empirical"), cmap="RdBu_r", figsize=(9, 4)):
    """Two FC matrices side by side, a shared colour bar, their agreement.

    Parameters
    ----------
    fc_a, fc_b : xarray.DataArray or array_like
        Square correlation matrices of equal shape
        (``functional_connectivity``).
    titles : (str, str)
        Panel titles.
    cmap : str
        Diverging colour map; limits are fixed to [-1, 1].
    figsize : (float, float), inches

    Returns
    -------
    matplotlib.figure.Figure
        Two Axes and a colour bar; the figure title gives the FC
        correlation (Pearson r of the upper triangles).
    """
    r = fc_correlation(fc_a, fc_b)
    if len(titles) != 2:
        raise ParameterError(f"titles must be two strings, got {titles!r}")
    fig, axes = _pyplot().subplots(1, 2, figsize=figsize, layout="constrained")
    for ax, fc, title in zip(axes, (fc_a, fc_b), titles):
        im = ax.imshow(np.asarray(fc, np.float64), cmap=cmap, vmin=-1, vmax=1,
                       interpolation="nearest")
        ax.set_title(title)
        if isinstance(fc, xr.DataArray):
            _label_grid(ax, fc, *fc.dims)
    fig.colorbar(im, ax=list(axes), label="Pearson r (dimensionless)", shrink=0.8)
    fig.suptitle(f"FC correlation r = {r:.3f}")
    return fig


def hyperparameters(ds_hmda, regions=None, hyperparameters=None, max_regions=8, figsize=None):
    """Assimilated hyperparameters over time: ensemble mean +- sd per region.

    Parameters
    ----------
    ds_hmda : xarray.Dataset
        HMDA result with ``hp_mean`` and ``hp_spread`` on (time s, region,
        hyperparameter) and optionally ``hp_true`` (region, hyperparameter),
        drawn as dashed lines.
    regions : list of str, optional
        Regions drawn (default the first ``max_regions``).
    hyperparameters : list of str, optional
        One panel each (default all).
    max_regions : int
    figsize : (float, float), inches, optional

    Returns
    -------
    matplotlib.figure.Figure
        One Axes per hyperparameter, sharing the time axis (s).
    """
    for var in ("hp_mean", "hp_spread"):
        if not isinstance(ds_hmda, xr.Dataset) or var not in ds_hmda:
            raise ParameterError(f"ds_hmda must be an HMDA Dataset with {var!r}")
    mean, spread = ds_hmda["hp_mean"], ds_hmda["hp_spread"]
    regions = _names("region", mean, regions, max_regions)
    names = _names("hyperparameter", mean, hyperparameters, None)
    fig, axes = _pyplot().subplots(len(names), 1, sharex=True, squeeze=False,
                                   figsize=figsize or (8, 2.2 * len(names) + 0.8),
                                   layout="constrained")
    t = mean["time"].values
    for ax, name in zip(axes[:, 0], names):
        for c, region in enumerate(regions):
            m = mean.sel(region=region, hyperparameter=name).values
            s = spread.sel(region=region, hyperparameter=name).values
            ax.plot(t, m, color=f"C{c % 10}", lw=1.2, label=region)
            ax.fill_between(t, m - s, m + s, color=f"C{c % 10}", alpha=0.25, lw=0)
            if "hp_true" in ds_hmda:
                ax.axhline(float(ds_hmda["hp_true"].sel(region=region, hyperparameter=name)),
                           color=f"C{c % 10}", ls="--", lw=1.0)
        ax.set_ylabel(_label(str(name), mean.attrs.get("units", "1")))
    axes[0, 0].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0),
                      frameon=False, title="region")
    axes[-1, 0].set_xlabel(_time_label(mean["time"], "s"))
    fig.suptitle("assimilated hyperparameters: ensemble mean +- sd" +
                 (", true values dashed" if "hp_true" in ds_hmda else ""))
    return fig


_SCORES = {"r_forecast": "one-step forecast", "r_persistence": "persistence",
           "r_analysis": "analysis", "r_replay": "replay", "r_free": "free run"}


def tracking_scores(ds_hmda, figsize=(10, 4)):
    """How an HMDA run tracks the observed BOLD, beside its baselines.

    Left: the per-region Pearson r of each score in the Dataset (one-step
    forecast, persistence, analysis, replay, free run; box and points per
    region, median printed). Right: each region's forecast r against its
    persistence r; points above the diagonal are regions where the forecast
    wins.

    Parameters
    ----------
    ds_hmda : xarray.Dataset
        HMDA result (:func:`brainsim.assimilation.hmda`) with ``r_forecast``
        and ``r_persistence`` on region.
    figsize : (float, float), inches

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(ds_hmda, xr.Dataset) or not {"r_forecast", "r_persistence"} <= set(
            ds_hmda.data_vars):
        raise ParameterError("ds_hmda must be an HMDA Dataset with 'r_forecast' and "
                             "'r_persistence'")
    names = [k for k in _SCORES if k in ds_hmda]
    fig, (left, right) = _pyplot().subplots(1, 2, figsize=figsize, layout="constrained",
                                            gridspec_kw={"width_ratios": (1.6, 1)})
    values = [ds_hmda[k].values[np.isfinite(ds_hmda[k].values)] for k in names]
    left.boxplot(values, showfliers=False)
    rng = np.random.default_rng(0)
    for i, v in enumerate(values, start=1):
        left.plot(i + rng.uniform(-0.15, 0.15, v.size), v, ".", color=f"C{i - 1}", ms=3,
                  alpha=0.6)
        if v.size:
            left.annotate(f"{np.median(v):.2f}", (i, np.median(v)), xytext=(14, 0),
                          textcoords="offset points", va="center", fontsize="small")
    left.set_xticks(range(1, len(names) + 1), [_SCORES[k] for k in names], rotation=20)
    left.set_ylabel("Pearson r with the observed BOLD (1)")
    left.axhline(0.0, color="0.7", lw=0.8)
    f, p = ds_hmda["r_forecast"].values, ds_hmda["r_persistence"].values
    right.plot(p, f, ".", color="C0")
    lo = float(np.nanmin([np.nanmin(f), np.nanmin(p), 0.0]))
    right.plot([lo, 1], [lo, 1], color="0.5", lw=0.8)
    right.set_xlabel("persistence r (1)")
    right.set_ylabel("one-step forecast r (1)")
    share = np.mean(f > p)
    right.set_title(f"forecast beats persistence in {100 * share:.0f} % of regions",
                    fontsize="medium")
    return fig


def _names(dim, da, wanted, limit):
    known = [str(v) for v in da[dim].values]
    if wanted is None:
        return known[:limit] if limit else known
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    for w in wanted:
        if w not in known:
            raise UnknownNameError(f"unknown {dim} {w!r}; known: {known}")
    return wanted
