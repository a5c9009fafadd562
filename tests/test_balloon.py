"""Balloon-Windkessel BOLD (brainsim.assimilation.balloon).

Science checks compare with an independent solution of the same ODE
(scipy's RK45 at rtol 1e-10, written below from the equations, not from the
module) and with the published response windows; the fast kernel is compared
with a plain-Python Euler loop.
"""
import dataclasses

import numpy as np
import pytest
import xarray as xr
from scipy.integrate import solve_ivp

from brainsim.assimilation.balloon import (PARAMETER_SETS, Balloon, BalloonParams, bold,
                                           bold_signal, get_params)
from brainsim.errors import ParameterError, UnknownNameError

SETS = sorted(PARAMETER_SETS)
#: pulse height in spikes per neuron per 1 ms step (10 spikes/s for DTB's eps = 200;
#: a unit stimulus for Friston's eps = 0.5), small enough for a near-linear response
PULSE = {"dtb": 0.01, "friston2003": 1.0, "obata2004": 1.0}


# ------------------------------------------------------------------ references
def rhs(t, y, p, drive):
    """The Balloon-Windkessel ODE (t in s); ``drive`` is eps times spikes per neuron per ms."""
    s, f, v, q = y
    return [drive - p.kappa * s - p.gamma * (f - 1.0),
            s,
            (f - v ** (1.0 / p.alpha)) / p.tau,
            (f * (1.0 - (1.0 - p.E0) ** (1.0 / f)) / p.E0 - q * v ** (1.0 / p.alpha - 1.0)) / p.tau]


def signal(q, v, p):
    return p.V0 * (p.k1 * (1.0 - q) + p.k2 * (1.0 - q / v) + p.k3 * (1.0 - v))


def rk45_pulse(p, height, t_grid, width=0.1):
    """BOLD on ``t_grid`` (s) for ``height`` spikes per neuron per ms during [0, width) s."""
    opts = dict(method="RK45", rtol=1e-10, atol=1e-13, dense_output=True)
    on = solve_ivp(rhs, (0.0, width), [0.0, 1.0, 1.0, 1.0], args=(p, p.eps * height), **opts)
    off = solve_ivp(rhs, (width, t_grid[-1]), on.y[:, -1], args=(p, 0.0), **opts)
    y = off.sol(np.maximum(t_grid, width))
    y[:, t_grid < width] = on.sol(t_grid[t_grid < width])
    return signal(y[3], y[2], p)


def euler_loop(u, p, dt_ms, state0=(0.0, 1.0, 1.0, 1.0)):
    """Plain-Python forward Euler, u (time, n) in spikes per neuron per step."""
    h = dt_ms / 1000.0
    out = np.empty(u.shape)
    for b in range(u.shape[1]):
        s, f, v, q = (float(x) for x in np.broadcast_to(
            np.asarray(state0, float).reshape(4, -1), (4, u.shape[1]))[:, b])
        for t in range(u.shape[0]):
            d = rhs(0.0, (s, f, v, q), p, p.eps * float(u[t, b]) / dt_ms)
            s, f, v, q = s + h * d[0], f + h * d[1], v + h * d[2], q + h * d[3]
            out[t, b] = signal(q, v, p)
    return out


def pulse(height, t_s, dt_ms=1.0, width_ms=100.0):
    u = np.zeros(int(round(t_s * 1e3 / dt_ms)))
    u[:int(round(width_ms / dt_ms))] = height * dt_ms  # spikes per neuron per step
    return u


# ------------------------------------------------------------------ science
# reference/assimilation.md table (kappa, gamma 1/s; tau s; alpha, E0, V0, k1, k2, k3, eps)
TABLE = {"dtb": (1.25, 2.5, 1.0, 0.2, 0.8, 0.02, 5.6, 2.0, 1.4, 200.0),
         "friston2003": (0.65, 0.41, 0.98, 0.32, 0.34, 0.02, 2.38, 2.0, 0.48, 0.5),
         "obata2004": (0.65, 0.41, 0.98, 0.32, 0.34, 0.02, 3.72, 0.527, 0.53, 0.5)}


@pytest.mark.parametrize("name", SETS)
def test_parameter_sets_match_the_table(name):
    p = get_params(name)
    got = (p.kappa, p.gamma, p.tau, p.alpha, p.E0, p.V0, p.k1, p.k2, p.k3, p.eps)
    np.testing.assert_allclose(got, TABLE[name], rtol=1e-14)
    assert p.name == name and get_params(p) is p


@pytest.mark.parametrize("name", SETS)
def test_resting_point_is_fixed(name):
    model = Balloon((2, 3), name)
    y = model.step(np.zeros((60_000, 2, 3)), 1.0)
    np.testing.assert_allclose(model.state[0], 0.0, atol=1e-12)
    np.testing.assert_allclose(model.state[1:], 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(y, 0.0, atol=1e-12)


# Measured (Euler, dt = 1 ms, 100 ms pulse; times from pulse onset, BOLD sample
# at the end of each step): dtb peak 2.051 s, undershoot minimum 4.577 s;
# friston2003 peak 3.129 s, minimum 9.105 s; obata2004 peak 3.326 s,
# minimum 9.309 s. Literature: DTB's faster set peaks near 2 s; the DCM priors
# (Friston 2003) give a peak near 3 s and a late undershoot (reference table:
# peak 2-3 s, undershoot 5-9 s depending on the set).
WINDOWS = {"dtb": ((1.8, 2.5), (4.0, 6.0)), "friston2003": ((2.7, 3.6), (8.0, 10.5)),
           "obata2004": ((2.8, 3.8), (8.0, 10.5))}


@pytest.mark.parametrize("name", SETS)
def test_pulse_peak_and_undershoot_match_rk45(name):
    p = get_params(name)
    y = bold(pulse(PULSE[name], 30.0)[:, None], name, dt=1.0)[:, 0]
    t = np.arange(1, y.size + 1) * 1e-3
    ref = rk45_pulse(p, PULSE[name], t)
    i_peak, i_ref = np.argmax(y), np.argmax(ref)
    j_min = i_peak + np.argmin(y[i_peak:])
    j_ref = i_ref + np.argmin(ref[i_ref:])
    assert abs(t[i_peak] - t[i_ref]) <= 0.01      # s
    assert abs(t[j_min] - t[j_ref]) <= 0.03       # s (the undershoot is flat)
    np.testing.assert_allclose(y, ref, rtol=0, atol=2e-3 * ref.max())
    (p_lo, p_hi), (u_lo, u_hi) = WINDOWS[name]
    assert p_lo <= t[i_peak] <= p_hi and u_lo <= t[j_min] <= u_hi
    assert y[i_peak] > 0 > y[j_min]


def _convergence_error(name, rate_khz, dt_fine=0.1):
    """max |BOLD(dt 1 ms) - BOLD(dt_fine)| / peak on the 1 ms grid, same rate input."""
    k = int(round(1.0 / dt_fine))
    coarse = bold(rate_khz[:, None], name, dt=1.0)[:, 0]
    fine = bold(np.repeat(rate_khz, k)[:, None] * dt_fine, name, dt=dt_fine)[k - 1::k, 0]
    return np.max(np.abs(coarse - fine)) / np.max(np.abs(fine))


@pytest.mark.parametrize("name", SETS)
def test_euler_1ms_agrees_with_0p1ms(name):
    assert _convergence_error(name, pulse(PULSE[name], 30.0)) < 2e-3
    rng = np.random.default_rng(5)
    rates = np.repeat(rng.uniform(0, 2 * PULSE[name], 300), 100)  # 100 ms bins, 30 s
    assert _convergence_error(name, rates) < 2e-3


def test_coarse_dt_changes_the_answer():
    # the comparison above can fail: at dt = 50 ms Euler is visibly off
    u = pulse(PULSE["dtb"], 30.0)
    fine = bold(u[:, None], "dtb", dt=1.0)[49::50, 0]
    coarse = bold(u.reshape(-1, 50).sum(1)[:, None], "dtb", dt=50.0)[:, 0]
    assert np.max(np.abs(coarse - fine)) > 2e-3 * fine.max()


# ------------------------------------------------------------------ kernel
@pytest.mark.parametrize("name", ["dtb", "obata2004"])
def test_batch_matches_python_loop(name):
    rng = np.random.default_rng(1)
    u = rng.uniform(0, 3 * PULSE[name], (1500, 3, 5))      # (time, member, region)
    u[:, 0, 0] = 0.0
    y = bold(u, name, dt=1.0)
    assert y.shape == u.shape
    ref = euler_loop(u.reshape(1500, -1), get_params(name), 1.0).reshape(u.shape)
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-12)
    assert np.all(y[:, 0, 0] == 0.0) and np.ptp(y[-1]) > 0


def test_blocks_equal_one_offline_call():
    rng = np.random.default_rng(2)
    u = rng.uniform(0, 0.02, (2000, 3, 4))
    full = bold(u, dt=1.0)
    model = Balloon((3, 4))
    edges = [0, 1, 50, 333, 334, 900, 1500, 2000]          # 7 blocks, one of length 1
    parts = [model.step(u[a:b], 1.0) for a, b in zip(edges[:-1], edges[1:])]
    np.testing.assert_array_equal(np.concatenate(parts), full)
    np.testing.assert_allclose(model.bold, full[-1], rtol=0, atol=1e-15)
    model.reset()
    np.testing.assert_array_equal(model.step(u, 1.0), full)


def test_state_write_back_continues_from_it():
    rng = np.random.default_rng(3)
    u = rng.uniform(0, 0.02, (800, 2, 3))
    state = Balloon((2, 3)).state
    state[0] += rng.normal(0, 0.1, (2, 3))                 # like an EnKF analysis
    state[1:] *= rng.uniform(0.95, 1.05, (3, 2, 3))
    model = Balloon((2, 3))
    model.state = state
    np.testing.assert_array_equal(model.state, state)
    y = model.step(u, 1.0)
    ref = euler_loop(u.reshape(800, -1), get_params("dtb"), 1.0, state.reshape(4, -1))
    np.testing.assert_allclose(y.reshape(800, -1), ref, rtol=0, atol=1e-12)
    fresh = Balloon((2, 3))
    assert np.max(np.abs(fresh.step(u, 1.0) - y)) > 1e-4    # the state mattered
    copy = model.state
    copy[2] = -1.0                                         # a copy: no bypass of checks
    assert np.all(model.state[2] > 0)


def test_bold_signal_of_state():
    p = get_params("friston2003")
    q, v = np.array([0.9, 1.1]), np.array([1.05, 0.97])
    np.testing.assert_allclose(bold_signal(q, v, p), signal(q, v, p), rtol=1e-15)


# ------------------------------------------------------------------ xarray
def _rates(n_time=2000, dt=1.0, t0=0.0, seed=4):
    rng = np.random.default_rng(seed)
    return xr.DataArray(
        rng.uniform(0, 20, (3, n_time, 4)), dims=("member", "time", "region"),
        coords={"member": [0, 1, 2], "time": t0 + dt * np.arange(n_time),
                "region": ["V1", "M1", "PFC", "A1"]},
        attrs={"units": "Hz", "long_name": "region firing rate"})


def test_xarray_dims_coords_units_and_hz_conversion():
    da = _rates(dt=2.0, t0=1000.0)
    y = bold(da, "dtb")
    assert y.dims == da.dims and y.shape == da.shape
    assert list(y.region.values) == ["V1", "M1", "PFC", "A1"]
    np.testing.assert_array_equal(y.member, [0, 1, 2])
    np.testing.assert_allclose(y.time, 1.0 + 2e-3 * np.arange(1, 2001), rtol=1e-12)
    assert y.attrs["units"] == "1" and y.attrs["params"] == "dtb" and y.attrs["long_name"]
    assert y.time.attrs["units"] == "s"
    counts = da.values * 2.0 / 1000.0                      # spikes per neuron per 2 ms step
    expected = bold(np.moveaxis(counts, 1, 0), "dtb", dt=2.0)
    np.testing.assert_allclose(y.transpose("time", ...).values, expected, rtol=1e-13)
    as_counts = da.copy(data=counts).assign_attrs(units="1")
    np.testing.assert_array_equal(bold(as_counts).values, y.values)


def test_tr_sampling_takes_the_end_of_each_tr():
    da = _rates(n_time=4300).transpose("time", "member", "region")
    full = bold(da)
    y = bold(da, tr=0.8)
    assert y.sizes["time"] == 5                            # 4300 ms = 5 TRs + 300 ms
    np.testing.assert_allclose(y.time, 0.8 * np.arange(1, 6), rtol=1e-12)
    np.testing.assert_array_equal(y.values, full.values[799::800][:5])
    np.testing.assert_allclose(y.time, full.time[799::800][:5], rtol=1e-12)
    assert y.attrs["tr"] == 0.8
    # numpy in, numpy out
    np.testing.assert_allclose(bold(da.values * 1e-3, dt=1.0, tr=0.8), y.values, rtol=1e-13)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("bad, kwargs, match", [
    (np.nan, {}, "activity must be finite"),
    (np.inf, {}, "activity must be finite"),
    (-0.01, {}, "activity must be >= 0"),
    (0.0, {"tr": 0.8005}, r"tr must be a positive multiple of dt \(1.0 ms\), got 0.8005"),
    (0.0, {"tr": -0.8}, "tr must be a finite number > 0"),
    (0.0, {"dt": None}, "dt"),
])
def test_bad_activity(bad, kwargs, match):
    u = np.zeros((1000, 2))
    u[10, 1] = bad
    with pytest.raises(ParameterError, match=match):
        bold(u, **{"dt": 1.0, **kwargs})


def test_bad_params_units_and_state():
    with pytest.raises(UnknownNameError, match=r"params must be .* got 'frist'"):
        bold(np.zeros((10, 1)), "frist", dt=1.0)
    with pytest.raises(ParameterError, match=r"E0 must be a number in \(0, 1\), got 1.2"):
        dataclasses.replace(get_params("dtb"), E0=1.2)
    with pytest.raises(ParameterError, match="tau must be a finite number > 0 s, got 0"):
        BalloonParams(**{**dataclasses.asdict(get_params("dtb")), "tau": 0})
    with pytest.raises(ParameterError, match="activity units must be one of .* got 'mV'"):
        bold(_rates(10).assign_attrs(units="mV"))
    with pytest.raises(ParameterError, match="evenly spaced"):
        bold(_rates(10).assign_coords(time=[0, 1, 2, 3, 5, 6, 7, 8, 9, 10]))
    model = Balloon((2, 3))
    with pytest.raises(ParameterError, match=r"state must have shape \(4, 2, 3\)"):
        model.state = np.ones((4, 3, 2))
    with pytest.raises(ParameterError, match="f, v, q must be > 0"):
        model.state = np.vstack([np.zeros((1, 2, 3)), np.zeros((3, 2, 3))])
    with pytest.raises(ParameterError, match="state must be finite"):
        model.state = np.full((4, 2, 3), np.nan)
    with pytest.raises(ParameterError, match=r"u_block must have shape"):
        model.step(np.zeros((5, 3)), 1.0)
