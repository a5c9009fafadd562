"""Balloon-Windkessel hemodynamics: region firing activity -> BOLD signal.

State per region: vasodilatory signal s (1/s), blood inflow f, blood volume v
and deoxyhemoglobin content q (f, v, q relative to rest; resting point
s = 0, f = v = q = 1). Time t in s::

    ds/dt = eps u' - kappa s - gamma (f - 1)
    df/dt = s
    dv/dt = (f - v**(1/alpha)) / tau
    dq/dt = (f (1 - (1 - E0)**(1/f)) / E0 - q v**(1/alpha - 1)) / tau
    BOLD  = V0 (k1 (1 - q) + k2 (1 - q/v) + k3 (1 - v))

Input convention (DTB): ``u`` is the number of spikes per neuron of the region
in one integration step; ``u' = u / (dt / 1 ms)`` is that count per ms (the
rate in kHz), so at DTB's dt = 1 ms ``u' = u`` exactly and for any other step
the same firing rate drives the same hemodynamics (``eps`` is defined per
1 ms). Integration is forward Euler at the step of the input.

References
----------
Friston, Harrison & Penny (2003), Dynamic causal modelling, NeuroImage 19:1273,
doi 10.1016/S1053-8119(03)00202-7.
Obata et al. (2004), Discrepancies between BOLD and flow dynamics in primary
and supplementary motor areas, NeuroImage 21:144, doi 10.1016/j.neuroimage.2003.08.040.
Lu et al. (2024), Simulation and assimilation of the digital human brain,
Nat Comput Sci, doi 10.1038/s43588-024-00731-3 (DTB's parameter set).
"""
import dataclasses
import math

import numpy as np
import xarray as xr
from numba import njit

from brainsim.errors import DivergenceError, ParameterError, UnknownNameError
from brainsim.validation import is_number, positive_number

#: attrs["units"] of activity read as a rate in spikes per neuron per second
RATE_UNITS = ("Hz", "spikes/s")
#: attrs["units"] of activity read as spikes per neuron per step
COUNT_UNITS = (None, "", "1", "spikes per neuron per step")


@dataclasses.dataclass(frozen=True)
class BalloonParams:
    """Parameters of the Balloon-Windkessel model (validated on creation).

    Parameters
    ----------
    kappa : float, 1/s
        Rate of decay of the vasodilatory signal (DTB: 1/tau_s).
    gamma : float, 1/s
        Rate of flow-dependent autoregulatory feedback (DTB: 1/tau_f).
    tau : float, s
        Haemodynamic transit time (DTB: tau_0).
    alpha : float, 1
        Grubb's vessel stiffness exponent, > 0.
    E0 : float, 1
        Resting oxygen extraction fraction, in (0, 1).
    V0 : float, 1
        Resting blood volume fraction.
    k1, k2, k3 : float, 1
        BOLD signal coefficients.
    eps : float, 1
        Neural efficacy: gain of the input (spikes per neuron per ms) on ds/dt.
    name : str
        Label written to the output attrs.
    """

    kappa: float
    gamma: float
    tau: float
    alpha: float
    E0: float
    V0: float
    k1: float
    k2: float
    k3: float
    eps: float
    name: str = "custom"

    def __post_init__(self):
        for field, unit in (("kappa", "1/s"), ("gamma", "1/s"), ("tau", "s"), ("alpha", "")):
            positive_number(field, getattr(self, field), unit)
        if not is_number(self.E0) or not 0.0 < self.E0 < 1.0:
            raise ParameterError(f"E0 must be a number in (0, 1), got {self.E0!r}")
        for field in ("V0", "k1", "k2", "k3", "eps"):
            value = getattr(self, field)
            if not is_number(value) or not math.isfinite(value):
                raise ParameterError(f"{field} must be a finite number, got {value!r}")

    def as_array(self):
        """Kernel constants: [eps, kappa, gamma, 1/tau, 1/alpha, E0, V0, k1, k2, k3]."""
        return np.array([self.eps, self.kappa, self.gamma, 1.0 / self.tau, 1.0 / self.alpha,
                         self.E0, self.V0, self.k1, self.k2, self.k3], dtype=np.float64)


def _standard_set(name, kappa, gamma, tau, alpha, E0, eps, k=None):
    k1, k2, k3 = k if k is not None else (7.0 * E0, 2.0, 2.0 * E0 - 0.2)
    return BalloonParams(kappa=kappa, gamma=gamma, tau=tau, alpha=alpha, E0=E0, V0=0.02,
                         k1=k1, k2=k2, k3=k3, eps=eps, name=name)


#: Named parameter sets. "dtb": Lu et al. 2024 (eps = 200, u = spikes per neuron
#: per 1 ms step). "friston2003": Friston et al. 2003 priors with neural efficacy
#: eps = 0.5 (Friston's u is a stimulus in arbitrary units; with DTB's spike
#: counts this set gives 400 times smaller responses, the shape is the same for
#: small inputs; use ``dataclasses.replace(p, eps=200.0)`` to match DTB's gain).
#: "obata2004": the same hemodynamics with Obata's k1, k2, k3.
PARAMETER_SETS = {
    "dtb": _standard_set("dtb", 1.0 / 0.8, 1.0 / 0.4, 1.0, 0.2, 0.8, eps=200.0),
    "friston2003": _standard_set("friston2003", 0.65, 0.41, 0.98, 0.32, 0.34, eps=0.5),
    "obata2004": _standard_set("obata2004", 0.65, 0.41, 0.98, 0.32, 0.34, eps=0.5,
                               k=(3.72, 0.527, 0.53)),
}


def get_params(params):
    """Return a :class:`BalloonParams` from a set name or an instance.

    Parameters
    ----------
    params : str or BalloonParams
        One of ``PARAMETER_SETS`` ("dtb", "friston2003", "obata2004") or an instance.
    """
    if isinstance(params, BalloonParams):
        return params
    try:
        return PARAMETER_SETS[params]
    except (KeyError, TypeError):
        raise UnknownNameError(f"params must be a BalloonParams or one of "
                               f"{sorted(PARAMETER_SETS)}, got {params!r}") from None


# ------------------------------------------------------------------ kernel
@njit(inline="always")
def _derivatives(s, f, v, q, drive, kappa, gamma, inv_tau, inv_alpha, E0):
    """Right-hand side of the ODE (per s); ``drive`` = eps u'."""
    ds = drive - kappa * s - gamma * (f - 1.0)
    dv = (f - v ** inv_alpha) * inv_tau
    dq = (f * (1.0 - (1.0 - E0) ** (1.0 / f)) / E0 - q * v ** (inv_alpha - 1.0)) * inv_tau
    return ds, s, dv, dq


@njit(inline="always")
def _signal(q, v, V0, k1, k2, k3):
    """BOLD (fractional signal change) of one region."""
    return V0 * (k1 * (1.0 - q) + k2 * (1.0 - q / v) + k3 * (1.0 - v))


@njit(inline="always")
def _euler(s, f, v, q, z, h, p):
    """One forward-Euler step of h s with neural input z; constants p as in
    :meth:`BalloonParams.as_array`."""
    ds, df, dv, dq = _derivatives(s, f, v, q, z, p[1], p[2], p[3], p[4], p[5])
    return s + h * ds, f + h * df, v + h * dv, q + h * dq


@njit(cache=True)
def _integrate(u, state, dt_ms, p, out):
    """Forward Euler over u (time, batch) from state (4, batch), in place.

    Writes BOLD after each step to out (time, batch) and the final state to
    ``state``. Constants ``p`` as in :meth:`BalloonParams.as_array`.
    """
    h = dt_ms * 1e-3  # s
    gain = p[0] / dt_ms  # eps per spike per neuron per ms
    for b in range(u.shape[1]):
        s, f, v, q = state[0, b], state[1, b], state[2, b], state[3, b]
        for t in range(u.shape[0]):
            s, f, v, q = _euler(s, f, v, q, gain * u[t, b], h, p)
            out[t, b] = _signal(q, v, p[6], p[7], p[8], p[9])
        state[0, b], state[1, b], state[2, b], state[3, b] = s, f, v, q


@njit(cache=True)
def _stays_physical(state, steps, dt_ms, p, limit, ok):
    """For each column of ``state`` (4, batch), integrated with no input for
    ``steps`` forward-Euler steps: f, v and q positive and the BOLD finite
    and within +-limit at every step (``ok`` written; state left as is)."""
    h = dt_ms * 1e-3
    for b in range(state.shape[1]):
        s, f, v, q = state[0, b], state[1, b], state[2, b], state[3, b]
        good = f > 0.0 and v > 0.0 and q > 0.0 and np.isfinite(s)
        t = 0
        while good and t < steps:
            s, f, v, q = _euler(s, f, v, q, 0.0, h, p)
            y = _signal(q, v, p[6], p[7], p[8], p[9])
            good = f > 0.0 and v > 0.0 and q > 0.0 and abs(y) <= limit
            t += 1
        ok[b] = good


def bold_signal(q, v, params="dtb"):
    """BOLD (fractional signal change, 1) of deoxyhemoglobin ``q`` and volume ``v``.

    Parameters
    ----------
    q, v : array_like, 1
        Hemodynamic states relative to rest (same shape).
    params : str or BalloonParams
    """
    p = get_params(params)
    q, v = np.asarray(q, dtype=float), np.asarray(v, dtype=float)
    return p.V0 * (p.k1 * (1.0 - q) + p.k2 * (1.0 - q / v) + p.k3 * (1.0 - v))


# ------------------------------------------------------------------ validation
def _check_activity(name, u):
    """``u`` as a float64 array; raise on NaN/inf or negative values."""
    try:
        u = np.asarray(u, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be numeric, got {type(u).__name__}") from None
    if not np.all(np.isfinite(u)):
        raise ParameterError(f"{name} must be finite, got {u[~np.isfinite(u)][:3]!r}")
    if np.any(u < 0):
        raise ParameterError(f"{name} must be >= 0 (spikes per neuron per step), "
                             f"got {u[u < 0][:3]!r}")
    return u


def _check_state(state, shape):
    """``state`` as a float64 (4, *shape) array with finite values and f, v, q > 0."""
    state = np.array(state, dtype=np.float64)
    if state.shape != (4, *shape):
        raise ParameterError(f"state must have shape {(4, *shape)} (s, f, v, q x batch), "
                             f"got {state.shape}")
    if not np.all(np.isfinite(state)):
        raise ParameterError("state must be finite, got NaN or inf")
    if np.any(state[1:] <= 0):
        raise ParameterError(f"state f, v, q must be > 0, got {state[1:][state[1:] <= 0][:3]!r}")
    return state


# ------------------------------------------------------------------ online
class Balloon:
    """Hemodynamic state of a batch of regions, advanced block by block.

    Parameters
    ----------
    shape : int or tuple of int
        Batch shape, e.g. ``(member, region)``.
    params : str or BalloonParams
        Parameter set (default "dtb").

    Examples
    --------
    >>> model = Balloon((30, 90))              # 30 members x 90 regions
    >>> y = model.step(spikes_per_step, 1.0)   # (800, 30, 90) -> BOLD (800, 30, 90)
    >>> y_tr = y[-1]                           # BOLD at the end of the TR
    """

    def __init__(self, shape, params="dtb"):
        self.shape = (int(shape),) if is_number(shape) else tuple(int(n) for n in shape)
        self.params = get_params(params)
        self._p = self.params.as_array()
        self.reset()

    def reset(self):
        """Put every region at the resting point s = 0, f = v = q = 1."""
        n = math.prod(self.shape)
        self._state = np.vstack([np.zeros(n), np.ones((3, n))])

    @property
    def state(self):
        """(4, *shape) array of s (1/s), f, v, q (1); a copy. Assign to write back."""
        return self._state.reshape(4, *self.shape).copy()

    @state.setter
    def state(self, value):
        self._state = _check_state(value, self.shape).reshape(4, -1)

    @property
    def bold(self):
        """BOLD (1) of the current state, shape ``shape``."""
        return bold_signal(self._state[3], self._state[2], self.params).reshape(self.shape)

    def admissible(self, state, horizon_s=3.0, dt_ms=1.0, limit=1.0):
        """Which columns of ``state`` (4, *shape) stay physical: integrated
        with no input (the worst case: input only raises s and f) for
        ``horizon_s`` seconds, BOLD stays finite and within +-``limit``
        (a 100 % signal change is far beyond any real BOLD). The flow's
        undershoot reaches its lowest within about half a period of the
        (s, f) oscillator (about 2 s for DTB's set), so a state that passes
        cannot drive f through 0 in the next TRs. A filter's linear update
        can produce states that fail (e.g. s far below its ensemble); those
        diverge within a few seconds.

        Returns
        -------
        bool array of shape ``shape``
        """
        trial = np.ascontiguousarray(_check_state(state, self.shape).reshape(4, -1),
                                     dtype=np.float64)
        steps = max(1, int(round(horizon_s * 1000.0 / dt_ms)))
        ok = np.empty(trial.shape[1], np.bool_)
        # f, v and q positive at every step, not only at the horizon (the flow
        # can cross 0 and come back while the BOLD stays bounded)
        _stays_physical(trial, steps, float(dt_ms), self._p, float(limit), ok)
        return ok.reshape(self.shape)

    def step(self, u_block, dt_ms):
        """Advance over a block of input and return the BOLD after each step.

        Parameters
        ----------
        u_block : array_like, spikes per neuron per step, shape (time, *shape)
        dt_ms : float, ms
            Integration step (DTB: 1 ms).

        Returns
        -------
        numpy.ndarray, 1, shape (time, *shape)
        """
        dt_ms = positive_number("dt_ms", dt_ms, "ms")
        u = _check_activity("u_block", u_block)
        if u.ndim < 1 or u.shape[1:] != self.shape:
            raise ParameterError(f"u_block must have shape (time, *{self.shape}), got {u.shape}")
        u = np.ascontiguousarray(u.reshape(u.shape[0], -1))
        out = np.empty_like(u)
        _integrate(u, self._state, dt_ms, self._p, out)
        if not np.all(np.isfinite(out)):
            t, i = np.argwhere(~np.isfinite(out))[0]
            raise DivergenceError(
                f"the Balloon model diverged: BOLD of signal {i} (flat index over {self.shape}) "
                f"is {float(out[t, i])!r} after step {t} of this block (input "
                f"{float(u[t, i])!r} spikes per neuron per step; dt_ms = {dt_ms} may be too "
                f"large for the input, or the input is far outside the model's range)")
        return out.reshape(out.shape[0], *self.shape)


# ------------------------------------------------------------------ offline
def _time_step(activity, dt):
    """(dt, t0) in ms from the ``time`` coordinate of ``activity`` and/or ``dt``."""
    t = activity["time"].values.astype(float) if "time" in activity.coords else None
    if t is not None and t.size >= 2:
        steps = np.diff(t)
        if np.ptp(steps) > 1e-9 * abs(steps[0]):
            raise ParameterError("activity time coordinate must be evenly spaced (ms), "
                                 f"got steps from {steps.min()!r} to {steps.max()!r}")
        if dt is not None and abs(steps[0] - dt) > 1e-9 * dt:
            raise ParameterError(f"dt ({dt!r} ms) disagrees with the time coordinate "
                                 f"step ({steps[0]!r} ms)")
        dt = float(steps[0])
    if dt is None:
        raise ParameterError("dt (ms) is needed when activity has no time coordinate "
                             "of at least two points")
    dt = positive_number("dt", dt, "ms")
    return dt, (float(t[0]) if t is not None and t.size else 0.0)


def _per_step(values, units, dt):
    """Activity in spikes per neuron per step from ``units`` (see :func:`bold`)."""
    if units in RATE_UNITS:
        return values * (dt * 1e-3)
    if units in COUNT_UNITS:
        return values
    raise ParameterError(f"activity units must be one of {RATE_UNITS} (rate) or "
                         f"{COUNT_UNITS} (spikes per neuron per step), got {units!r}")


def _tr_steps(tr, dt):
    """Steps of length ``dt`` (ms) in one TR (``tr`` in s); 1 when ``tr`` is None."""
    if tr is None:
        return 1
    tr = positive_number("tr", tr, "s")
    n = int(round(tr * 1e3 / dt))
    if n < 1 or abs(n * dt - tr * 1e3) > 1e-9 * tr * 1e3:
        raise ParameterError(f"tr must be a positive multiple of dt ({dt!r} ms), got {tr!r} s")
    return n


def _integrate_offline(u, params, dt):
    """BOLD (time, *batch) from rest for u (time, *batch) in spikes per neuron per step."""
    if u.ndim < 1 or u.shape[0] < 1:
        raise ParameterError(f"activity needs a time axis of length >= 1, got shape {u.shape}")
    return Balloon(u.shape[1:], params).step(u, dt)


def bold(activity, params="dtb", tr=None, dt=None):
    """BOLD signal of region activity through the Balloon-Windkessel model.

    Starts from the resting point and integrates with forward Euler at the
    step of the input (DTB: dt = 1 ms); see the module docstring for the
    equations.

    Parameters
    ----------
    activity : xarray.DataArray or numpy.ndarray
        Non-negative activity with a ``time`` dimension (ms; any other dims,
        e.g. ``member``, ``region``, are kept). The unit is read from
        ``attrs["units"]``: "Hz" or "spikes/s" (a rate such as
        ``Simulation``'s ``rate_region``) is converted to spikes per neuron
        per step as ``rate * dt / 1000``; "1", "spikes per neuron per step" or
        no units mean spikes per neuron per step already (DTB's input). A
        numpy array has time on axis 0 and is taken as spikes per neuron per step.
    params : str or BalloonParams
        "dtb" (default), "friston2003", "obata2004" or an instance.
    tr : float, s, optional
        Repetition time; a positive multiple of dt. If given, the BOLD is
        sampled at the end of each complete TR (the value after its last
        step, as DTB samples once per TR); a trailing partial TR is dropped.
    dt : float, ms, optional
        Step of the input; needed for a numpy array, otherwise taken from the
        ``time`` coordinate (and checked against it if both are given).

    Returns
    -------
    xarray.DataArray or numpy.ndarray
        BOLD as fractional signal change (units "1"), of the caller's type.
        Time in s: the end of each step, ``t0 + (i + 1) dt``, or of each TR,
        ``t0 + k tr`` (k = 1, 2, ...), where t0 is the first time
        coordinate (the start of the first bin; 0 for numpy input).
    """
    p = get_params(params)
    if not isinstance(activity, xr.DataArray):
        return _bold_array(activity, p, tr, dt)
    if "time" not in activity.dims:
        raise ParameterError(f"activity must have a 'time' dimension, got dims {activity.dims}")
    da = activity.transpose("time", ...)
    dt, t0 = _time_step(da, dt)
    n_tr = _tr_steps(tr, dt)
    u = _per_step(_check_activity("activity", da.values), da.attrs.get("units"), dt)
    y, t = _sample(_integrate_offline(u, p, dt), dt, t0, n_tr)
    coords = {k: c for k, c in da.coords.items() if "time" not in c.dims}
    out = xr.DataArray(y, dims=da.dims, coords=coords)
    out = out.assign_coords(time=("time", t, {"units": "s", "long_name": "time"}))
    out.attrs.update(units="1", long_name="BOLD signal (fractional change)", params=p.name,
                     dt=dt)
    if tr is not None:
        out.attrs["tr"] = float(tr)
    return out.transpose(*activity.dims)


def _bold_array(activity, p, tr, dt):
    """:func:`bold` for a numpy array (time on axis 0, spikes per neuron per step)."""
    if dt is None:
        raise ParameterError("dt (ms) is needed for numpy activity, got None")
    dt = positive_number("dt", dt, "ms")
    n_tr = _tr_steps(tr, dt)
    u = _check_activity("activity", activity)
    return _sample(_integrate_offline(u, p, dt), dt, 0.0, n_tr)[0]


def _sample(y, dt, t0, n):
    """(values, time in s) of BOLD ``y`` at the end of every ``n``-th step."""
    k = y.shape[0] // n
    if k == 0:
        raise ParameterError(f"activity spans {y.shape[0] * dt!r} ms, shorter than one "
                             f"tr ({n * dt!r} ms)")
    return y[n - 1::n][:k], (t0 + n * dt * np.arange(1, k + 1)) * 1e-3
