"""Analysis of continuous signals (binned rates, BOLD): functional
connectivity, its agreement between model and data, per-region Pearson r
and power spectra.

Signals are DataArrays with a ``time`` dimension whose coordinate carries
``attrs["units"]`` "ms" (rates) or "s" (BOLD).
"""
import numpy as np
import xarray as xr

from ..errors import ParameterError
from ..validation import integer, number

_TIME_SCALE = {"ms": 1e-3, "s": 1.0}


def _check_signal(name, signal, dim):
    if not isinstance(signal, xr.DataArray):
        raise ParameterError(f"{name} must be an xarray.DataArray, got {type(signal).__name__}")
    if dim not in signal.dims:
        raise ParameterError(f"{name} must have the dimension dim={dim!r}, got dims "
                             f"{signal.dims}")
    if signal.sizes[dim] < 2:
        raise ParameterError(f"{name} needs at least 2 samples along {dim!r}, got "
                             f"{signal.sizes[dim]}")


def _pearson(a, b):
    """Pearson r of the columns of a and b (samples on axis 0); NaN if constant."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(0) / den, np.nan)


def functional_connectivity(signal, dim="time"):
    """Functional connectivity: Pearson correlation matrix of the signals.

    Parameters
    ----------
    signal : xarray.DataArray
        Two dimensions: ``dim`` and the regions (or populations), e.g. BOLD
        (time s, region) or ``rate_region`` (time ms, region).
    dim : str
        The sample dimension.

    Returns
    -------
    xarray.DataArray
        Correlation matrix (units "1") on (``<d>_a``, ``<d>_b``) where ``d``
        is the other dimension (e.g. ``region_a``, ``region_b``); NaN rows
        and columns for constant signals.
    """
    _check_signal("signal", signal, dim)
    if signal.ndim != 2:
        raise ParameterError(f"signal must have 2 dimensions ({dim!r} and the regions), got "
                             f"dims {signal.dims}")
    other = next(d for d in signal.dims if d != dim)
    x = np.asarray(signal.transpose(dim, other).values, np.float64)
    fc = _column_correlations(x)
    labels = signal[other].values if other in signal.coords else np.arange(x.shape[1])
    out = xr.DataArray(fc, dims=(f"{other}_a", f"{other}_b"),
                       coords={f"{other}_a": labels, f"{other}_b": labels})
    out.attrs.update(units="1", long_name="functional connectivity (Pearson r)")
    return out


def _column_correlations(x):
    """Pearson r between the columns of ``x`` (samples on axis 0), clipped
    to [-1, 1]; NaN rows and columns for constant columns."""
    x = x - x.mean(0)
    norm = np.sqrt((x * x).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(norm > 0, x / norm, np.nan)
    return np.clip(z.T @ z, -1.0, 1.0)


def fc_correlation(fc_a, fc_b):
    """Agreement of two FC matrices: Pearson r of their upper triangles.

    Parameters
    ----------
    fc_a, fc_b : array_like or xarray.DataArray
        Square matrices of equal shape (e.g. simulated and empirical FC);
        entries off the diagonal that are NaN in either are left out.

    Returns
    -------
    float
        Pearson r (dimensionless); NaN if an upper triangle is constant.
    """
    a, b = _square("fc_a", fc_a), _square("fc_b", fc_b)
    if a.shape != b.shape:
        raise ParameterError(f"fc_a and fc_b must have the same shape, got {a.shape} and "
                             f"{b.shape}")
    if isinstance(fc_a, xr.DataArray) and isinstance(fc_b, xr.DataArray):
        for da, db in zip(fc_a.dims, fc_b.dims):
            if da in fc_a.coords and db in fc_b.coords and \
                    list(fc_a[da].values) != list(fc_b[db].values):
                raise ParameterError(f"fc_b's {db!r} labels must equal fc_a's {da!r} labels "
                                     "(same regions in the same order)")
    iu = np.triu_indices(a.shape[0], 1)
    x, y = a[iu], b[iu]
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        raise ParameterError(f"fc_a and fc_b need at least 2 finite entries above the "
                             f"diagonal, got {int(ok.sum())}")
    return float(_pearson(x[ok][:, None], y[ok][:, None])[0])


def fcd(signal, window=60.0, step=10.0, dim="time", time_units=None):
    """Functional connectivity dynamics: how alike the FC of sliding windows is.

    The signal is cut into windows of ``window`` (sliding by ``step``); the
    FC of each window (Pearson r between regions) is taken as the vector of
    its upper triangle, and FCD[i, j] is the Pearson r between the vectors
    of windows i and j (Hansen et al. 2015, doi
    10.1016/j.neuroimage.2014.11.001). A stationary FC gives an FCD near 1
    everywhere; switches between FC states give blocks.

    Parameters
    ----------
    signal : xarray.DataArray
        (``dim``, region), evenly sampled, e.g. BOLD on (time s, region).
    window, step : float, s
        Window length and shift in seconds (default 60 s and 10 s, the
        usual choice for BOLD, whatever the time coordinate's units); each
        is rounded to whole samples and must come to at least 3 samples
        (window) and 1 sample (step), and the window must fit in the signal.
    dim : str
        The time dimension.
    time_units : {"ms", "s"}, optional
        Units of the time coordinate if it carries none.

    Returns
    -------
    xarray.DataArray
        FCD (units "1") on (``window_a``, ``window_b``), coordinates the
        windows' start times in s; attrs ``window_samples`` and
        ``step_samples``. NaN for a window in which a region's signal is
        constant (its FC is undefined) or whose FC is uniform.
    """
    _check_signal("signal", signal, dim)
    if signal.ndim != 2:
        raise ParameterError(f"signal must have 2 dimensions ({dim!r} and the regions), got "
                             f"dims {signal.dims}")
    fs = _sampling_rate(signal, dim, time_units)
    n = signal.sizes[dim]
    window = number("window", window, low=0, low_open=True, unit="s")
    step = number("step", step, low=0, low_open=True, unit="s")
    w, k = int(round(window * fs)), int(round(step * fs))
    if not 3 <= w <= n:
        raise ParameterError(f"window must come to between 3 and {n} samples (the "
                             f"signal's length) at {fs:g} samples per s, got {window!r} s = "
                             f"{w} samples")
    if k < 1:
        raise ParameterError(f"step must come to at least 1 sample at {fs:g} samples per "
                             f"s, got {step!r} s")
    other = next(d for d in signal.dims if d != dim)
    x = np.asarray(signal.transpose(dim, other).values, np.float64)
    if x.shape[1] < 3:
        raise ParameterError(f"signal needs at least 3 regions along {other!r}, got "
                             f"{x.shape[1]}")
    starts = np.arange(0, n - w + 1, k)
    iu = np.triu_indices(x.shape[1], 1)
    vecs = np.empty((iu[0].size, starts.size))
    for j, a in enumerate(starts):
        vecs[:, j] = _column_correlations(x[a:a + w])[iu]
    out = _column_correlations(vecs)
    t0 = np.asarray(signal[dim].values, np.float64)[starts] * (
        _TIME_SCALE[time_units or signal[dim].attrs.get("units")])
    coords = {"window_a": ("window_a", t0, {"units": "s"}),
              "window_b": ("window_b", t0, {"units": "s"})}
    da = xr.DataArray(out, dims=("window_a", "window_b"), coords=coords)
    da.attrs.update(units="1", long_name="functional connectivity dynamics (Pearson r of "
                    "window FCs)", window_samples=w, step_samples=k)
    return da


def fcd_ks(fcd_a, fcd_b):
    """Kolmogorov-Smirnov distance between the FCD distributions of two
    signals: the largest gap between the empirical CDFs of the entries above
    the diagonal of each FCD matrix (NaNs left out). 0 for the same
    distribution, 1 for disjoint ones; the usual fitting target beside the
    FC r (it sees how FC varies, which the static FC cannot).

    Parameters
    ----------
    fcd_a, fcd_b : array_like or xarray.DataArray
        Square FCD matrices (``fcd``), of any sizes (e.g. simulated and
        empirical recordings of different lengths).

    Returns
    -------
    float
        KS statistic D (dimensionless).
    """
    vals = []
    for name, m in (("fcd_a", fcd_a), ("fcd_b", fcd_b)):
        arr = np.asarray(m.values if isinstance(m, xr.DataArray) else m, np.float64)
        if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 2:
            raise ParameterError(f"{name} must be a square matrix of at least 2 x 2 (an FCD), "
                                 f"got shape {arr.shape}")
        v = arr[np.triu_indices(arr.shape[0], 1)]
        v = np.sort(v[np.isfinite(v)])
        if v.size == 0:
            raise ParameterError(f"{name} has no finite entry above the diagonal")
        vals.append(v)
    a, b = vals
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / a.size
    cdf_b = np.searchsorted(b, grid, side="right") / b.size
    return float(np.abs(cdf_a - cdf_b).max())


def _square(name, fc):
    arr = np.asarray(fc.values if isinstance(fc, xr.DataArray) else fc, np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 3:
        raise ParameterError(f"{name} must be a square matrix of at least 3 x 3, got shape "
                             f"{arr.shape}")
    return arr


def pearson_r(a, b, dim="time"):
    """Pearson r between two signals along ``dim``, for each region.

    Parameters
    ----------
    a, b : xarray.DataArray
        Same dimensions and sizes (e.g. simulated and observed BOLD on
        (time, region)); labels of the other dimensions must agree. Samples
        are paired by position along ``dim``.
    dim : str
        The sample dimension.

    Returns
    -------
    xarray.DataArray
        r (units "1") on the other dimensions; NaN where a signal is constant.
    """
    _check_signal("a", a, dim)
    _check_signal("b", b, dim)
    if set(a.dims) != set(b.dims) or any(a.sizes[d] != b.sizes[d] for d in a.dims):
        raise ParameterError(f"a and b must have the same dimensions and sizes, got "
                             f"{dict(a.sizes)} and {dict(b.sizes)}")
    rest = [d for d in a.dims if d != dim]
    for d in rest:
        if d in a.coords and d in b.coords and list(a[d].values) != list(b[d].values):
            raise ParameterError(f"b's {d!r} labels must equal a's (same order)")
    x = np.asarray(a.transpose(dim, *rest).values, np.float64)
    y = np.asarray(b.transpose(dim, *rest).values, np.float64)
    shape = x.shape[1:]
    r = _pearson(x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)).reshape(shape)
    coords = {d: a[d].values for d in rest if d in a.coords}
    out = xr.DataArray(r, dims=rest, coords=coords)
    out.attrs.update(units="1", long_name=f"Pearson r along {dim}")
    return out


def _sampling_rate(signal, dim, time_units):
    """Samples per second of ``signal`` along ``dim`` (uniform spacing)."""
    if dim not in signal.coords:
        raise ParameterError(f"signal needs a {dim!r} coordinate to give the sampling rate")
    units = time_units or signal[dim].attrs.get("units")
    if units not in _TIME_SCALE:
        raise ParameterError(f"time_units must be one of {list(_TIME_SCALE)} (or the {dim!r} "
                             f"coordinate must carry them), got {units!r}")
    step = np.diff(np.asarray(signal[dim].values, np.float64))
    if step[0] <= 0 or not np.allclose(step, step[0], rtol=1e-6, atol=0):
        raise ParameterError(f"signal's {dim!r} coordinate must be increasing and evenly "
                             "spaced")
    return 1.0 / (step[0] * _TIME_SCALE[units])


def power_spectrum(signal, dim="time", nperseg=None, time_units=None, detrend="constant"):
    """Power spectral density by Welch's method (scipy.signal.welch).

    Parameters
    ----------
    signal : xarray.DataArray
        Evenly sampled along ``dim`` (e.g. a rate in Hz on (time ms,
        population) or BOLD on (time s, region)); other dims are kept.
    dim : str
        The time dimension.
    nperseg : int, optional
        Samples per Welch segment (default scipy's: 256, or all if fewer);
        the frequency resolution is the sampling rate / nperseg.
    time_units : {"ms", "s"}, optional
        Units of the time coordinate if it carries none.
    detrend : str or False
        Passed to scipy (default: remove each segment's mean).

    Returns
    -------
    xarray.DataArray
        One-sided PSD on (frequency, other dims) in (signal units)^2 / Hz;
        ``frequency`` in Hz.
    """
    from scipy.signal import welch
    _check_signal("signal", signal, dim)
    fs = _sampling_rate(signal, dim, time_units)
    n = signal.sizes[dim]
    if nperseg is not None:
        nperseg = integer(f"nperseg (samples along {dim!r}, or None)", nperseg, low=2, high=n,
                          strict=True)
    rest = [d for d in signal.dims if d != dim]
    x = np.asarray(signal.transpose(dim, *rest).values, np.float64)
    freq, psd = welch(x, fs=fs, nperseg=nperseg or min(n, 256), detrend=detrend, axis=0)
    coords = {d: signal[d].values for d in rest if d in signal.coords}
    coords["frequency"] = xr.Variable("frequency", freq, {"units": "Hz",
                                                          "long_name": "frequency"})
    out = xr.DataArray(psd, dims=("frequency", *rest), coords=coords)
    unit = signal.attrs.get("units", "1")
    out.attrs.update(units=f"{unit}^2/Hz", long_name="power spectral density (Welch)",
                     nperseg=int(nperseg or min(n, 256)), fs_hz=float(fs))
    return out
