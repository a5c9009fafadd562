"""Firing rates: mean rate per population or region over a window, rate
histograms over time, and the population x area table of the multi-area
model figures.

Rates are spikes per neuron per second (Hz); times in ms. A spike stamped t
(NEST: the end of the step that emitted it) counts in the bin
(t0 + k w, t0 + (k + 1) w], see ``brainsim.analysis._common``.
"""
import numpy as np
import xarray as xr

from ..errors import ParameterError
from . import _common

SOURCES = ("spikes", "rates")


def mean_rate(ds, by="population", t_window=None, source="spikes", network=None):
    """Mean firing rate of each population or region over a time window.

    Parameters
    ----------
    ds : xarray.Dataset
        Simulation results (``Simulation.run`` or ``open_results``).
    by : {"population", "region"}
        Group neurons by population or by region. Regions need the
        population -> region map (``network`` or ``attrs["population_regions"]``).
    t_window : (float, float), ms, optional
        Window [t0, t1) of simulated time; default (t_start, t_stop) of ``ds``.
    source : {"spikes", "rates"}
        "spikes": spike count / (neurons x window length); needs all spikes
        recorded. "rates": mean of the binned ``rate`` / ``rate_region`` over
        the bins that lie wholly inside the window.
    network : Network, optional
        The simulated network (for ``by="region"``).

    Returns
    -------
    xarray.DataArray
        Rate (Hz) on dimension ``by``.
    """
    if source not in SOURCES:
        raise ParameterError(f"source must be one of {SOURCES}, got {source!r}")
    t0, t1 = _common.window(ds, t_window)
    if source == "rates":
        out = _binned_mean(ds, by, t0, t1)
    else:
        names, group_of, sizes = _common.groups(ds, by, network)
        times, ids = _common.spikes(ds)
        _common.check_ids(ids, group_of.size)
        counts = np.bincount(group_of[ids[_common.in_window(times, t0, t1)]],
                             minlength=len(names))
        out = xr.DataArray(counts / (sizes * (t1 - t0) * 1e-3), dims=by, coords={by: names})
    return _common.annotate(out, "Hz", f"mean firing rate per {by}", t_window_ms=[t0, t1])


def _binned_mean(ds, by, t0, t1):
    """Mean of the recorded rate bins that lie wholly in [t0, t1)."""
    if by not in _common.GROUPINGS:
        raise ParameterError(f"by must be one of {_common.GROUPINGS}, got {by!r}")
    var = "rate" if by == "population" else "rate_region"
    if var not in ds.variables or ds.sizes.get("time", 0) == 0:
        raise ParameterError(f"source='rates' needs the binned {var!r} in ds; none recorded")
    width = float(ds.attrs.get("rate_bin_ms", np.nan))
    if not np.isfinite(width):
        starts = ds["time"].values
        width = float(starts[1] - starts[0]) if starts.size > 1 else np.nan
    if not np.isfinite(width) or width <= 0:
        raise ParameterError("source='rates' needs ds.attrs['rate_bin_ms'] > 0 (ms)")
    start = ds["time"].values
    tol = 1e-9 * width
    keep = (start >= t0 - tol) & (start + width <= t1 + tol)
    if not keep.any():
        raise ParameterError(f"t_window ({t0!r}, {t1!r}) ms holds no complete rate bin "
                             f"(bins of {width!r} ms from {start[0]!r} ms)")
    out = ds[var].isel(time=np.flatnonzero(keep)).mean("time")
    return xr.DataArray(np.asarray(out.values, np.float64), dims=by,
                        coords={by: list(out[by].values)})


def rate_histogram(ds, bin_ms=1.0, by="population", t_window=None, network=None):
    """Instantaneous firing rate per population or region, from the spikes.

    Parameters
    ----------
    ds : xarray.Dataset
        Simulation results with all spikes recorded.
    bin_ms : float, ms
        Bin width (> 0, at most the window length); trailing time shorter
        than a bin is left out.
    by : {"population", "region"}
    t_window : (float, float), ms, optional
        Default (t_start, t_stop) of ``ds``.
    network : Network, optional
        The simulated network (for ``by="region"``).

    Returns
    -------
    xarray.DataArray
        Rate (Hz) on (time, ``by``); ``time`` is the start of each bin (ms).
    """
    t0, t1, width, n, names, group_of, sizes, times, ids = _common.binned(
        ds, bin_ms, t_window, by, network)
    counts = _common.count_matrix(times, group_of[ids], t0, width, n, len(names))
    time = xr.Variable("time", t0 + width * np.arange(n),
                       {"units": "ms", "long_name": "start of the bin"})
    out = xr.DataArray(counts / (sizes * width * 1e-3), dims=("time", by),
                       coords={"time": time, by: names})
    return _common.annotate(out, "Hz", f"firing rate per {by}", bin_ms=width)


def rates_by_area(rates, network=None, population_regions=None):
    """Arrange per-population values as a table (population type x area).

    The multi-area model names populations by area and type (e.g. "V1_4E");
    the type is the name with its area and one separator ("_", "/", "-",
    ".", ":") removed. Types an area lacks (area TH has no layer 4) are NaN.

    Parameters
    ----------
    rates : xarray.DataArray
        Values on dimension ``population`` (e.g. :func:`mean_rate`).
    network : Network, optional
        Gives each population's region (area).
    population_regions : sequence of str, optional
        The region of each population of ``rates`` in order (instead of
        ``network``).

    Returns
    -------
    xarray.DataArray
        On (population, region): ``population`` holds the types in first-seen
        order, ``region`` the areas; units and long_name of ``rates``.
    """
    if not isinstance(rates, xr.DataArray) or rates.dims != ("population",):
        raise ParameterError(f"rates must be a DataArray on ('population',), got "
                             f"{getattr(rates, 'dims', type(rates).__name__)!r}")
    pops = [str(p) for p in rates["population"].values]
    regs = _regions_of(pops, network, population_regions)
    types = [_type_name(p, r) for p, r in zip(pops, regs)]
    type_order, area_order = list(dict.fromkeys(types)), list(dict.fromkeys(regs))
    table = np.full((len(type_order), len(area_order)), np.nan)
    for value, t, r in zip(rates.values, types, regs):
        table[type_order.index(t), area_order.index(r)] = value
    out = xr.DataArray(table, dims=("population", "region"),
                       coords={"population": type_order, "region": area_order})
    out.attrs.update(rates.attrs)
    return out


def _regions_of(pops, network, population_regions):
    if network is not None:
        try:
            return [network.populations[p].region for p in pops]
        except KeyError as err:
            raise ParameterError(f"network has no population {err.args[0]!r}") from None
    if population_regions is None or len(population_regions) != len(pops):
        raise ParameterError(f"population_regions must give one region for each of the "
                             f"{len(pops)} populations (or pass network=), got "
                             f"{population_regions!r}")
    return [str(r) for r in population_regions]


def _type_name(pop, region):
    """Population name without its region prefix or suffix and one separator."""
    for sep in ("_", "/", "-", ".", ":"):
        if pop.startswith(region + sep):
            return pop[len(region) + 1:]
        if pop.endswith(sep + region):
            return pop[:-len(region) - 1]
    return pop
