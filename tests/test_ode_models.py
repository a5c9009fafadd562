"""The ODE neuron models (iaf_cond_exp, aeif_cond_exp, hh_psc_alpha) and
their adaptive Dormand-Prince integrator (kernels/neurons/ode.py).

Single neurons simulated by ``brainsim.Simulation`` (float64) are compared
with the SciPy references of ``reference.py`` (solve_ivp, DOP853,
rtol = atol = 1e-10, the same per-step semantics) under DC steps (I_e changed
with ``Network.set_property`` between runs) and under fixed excitatory and
inhibitory input spike trains (``Network.add_spike_generator``). Tolerances:
spike steps equal to the reference's; V_m within ``V_TOL`` mV at every step
(1e-5 mV for iaf_cond_exp, 5e-3 mV for aeif_cond_exp and hh_psc_alpha, whose
V_m moves by up to ~100 mV/ms around a spike).

The defaults are NEST 3.10's (read with ``nest.GetDefaults``); the
side-by-side run against NEST itself is benchmarks/peers/ode_models_vs_nest.py.
"""
import math

import numpy as np
import pytest
from numba import njit

import brainsim
import reference as ref
from brainsim.errors import ParameterError
from brainsim.kernels.neurons.ode import make_integrator
from brainsim.neurons import get_model

DT = 0.1
MODELS = ("iaf_cond_exp", "aeif_cond_exp", "hh_psc_alpha")
#: max |V_m - V_m reference| (mV) at any step
V_TOL = {"iaf_cond_exp": 1e-5, "aeif_cond_exp": 5e-3, "hh_psc_alpha": 5e-3}
#: weights of the input trains (nS for the conductance models, pA for hh)
WEIGHTS = {"iaf_cond_exp": (20.0, -5.0), "aeif_cond_exp": (20.0, -5.0),
           "hh_psc_alpha": (400.0, -400.0)}

#: nest.GetDefaults(model) in NEST 3.10 (the parameters brainsim has)
NEST_DEFAULTS = {
    "iaf_cond_exp": {"C_m": 250.0, "E_L": -70.0, "E_ex": 0.0, "E_in": -85.0, "I_e": 0.0,
                     "V_m": -70.0, "V_reset": -60.0, "V_th": -55.0, "g_L": 16.6667,
                     "t_ref": 2.0, "tau_syn_ex": 0.2, "tau_syn_in": 2.0},
    "aeif_cond_exp": {"C_m": 281.0, "Delta_T": 2.0, "E_L": -70.6, "E_ex": 0.0, "E_in": -85.0,
                      "I_e": 0.0, "V_m": -70.6, "V_peak": 0.0, "V_reset": -60.0, "V_th": -50.4,
                      "a": 4.0, "b": 80.5, "g_L": 30.0, "gsl_error_tol": 1e-6, "t_ref": 0.0,
                      "tau_syn_ex": 0.2, "tau_syn_in": 2.0, "tau_w": 144.0},
    "hh_psc_alpha": {"Act_m": 0.05293248525724958, "Act_n": 0.3176769140606974, "C_m": 100.0,
                     "E_K": -77.0, "E_L": -54.402, "E_Na": 50.0, "I_e": 0.0,
                     "Inact_h": 0.5961207535084603, "V_m": -65.0, "g_K": 3600.0, "g_L": 30.0,
                     "g_Na": 12000.0, "t_ref": 2.0, "tau_syn_ex": 0.2, "tau_syn_in": 2.0},
}


def trains(t_sim, seed=3):
    """Excitatory (~800 Hz) and inhibitory (~300 Hz) spike times (ms) on the
    dt grid, drawn once from a seeded generator."""
    rng = np.random.default_rng(seed)
    n = int(round(t_sim / DT)) - 20
    return [np.round((np.flatnonzero(rng.random(n) < r * DT / 1000.0) + 1) * DT, 10)
            for r in (800.0, 300.0)]


def simulate(model, params, dc, t_sim, ex=(), inh=(), weights=(0.0, 0.0), delay=1.0,
             dtype="float64"):
    """One neuron: I_e switched at the times of ``dc`` ([t ms, I_e pA], ...);
    input trains from spike generators (always present, so that each model
    compiles one network kernel). Returns (spike steps, V_m per step, sim)."""
    net = brainsim.Network(dt=DT)
    net.add_population("N", 1, model=model, params={**params, "I_e": dc[0][1]})
    far = t_sim + 100.0  # a generator whose spike never arrives in the run
    for name, kind, times, w in (("GE", "E", ex, weights[0]), ("GI", "I", inh, weights[1])):
        net.add_spike_generator(name, list(times) if len(times) else [far], kind=kind)
        net.connect(name, "N", weight=w, delay=delay)
    sim = brainsim.Simulation(net, record={"V_m": "N", "spikes": "N", "rates": False},
                              dtype=dtype)
    edges = [t for t, _ in dc] + [t_sim]
    steps, vm = [], []
    for (t, amp), t_next in zip(dc, edges[1:]):
        net.set_property("N", "I_e", value=amp)
        ds = sim.run(t_next - t)
        steps += list(np.rint(ds.spike_time.values / DT).astype(int) - 1)
        vm.append(ds.V_m.values[:, 0])
    return np.array(steps, int), np.concatenate(vm), sim


def reference(model, params, dc, t_sim, ex=(), inh=(), weights=(0.0, 0.0), delay=1.0):
    """The SciPy reference of the same protocol (reference's outputs)."""
    n = int(round(t_sim / DT))
    i_e = np.zeros(n)
    edges = [t for t, _ in dc] + [t_sim]
    for (t, amp), t_next in zip(dc, edges[1:]):
        i_e[int(round(t / DT)):int(round(t_next / DT))] = amp
    p = {**get_model(model).defaults, **params}
    return ref.MODELS[model](p, DT, i_e, ref.arrivals(ex, weights[0], delay, DT, n),
                             ref.arrivals(inh, weights[1], delay, DT, n))


def check_against_reference(model, got, want, min_spikes):
    steps, vm = got
    ref_vm, ref_steps = want[0], want[-1]
    assert ref_steps.size >= min_spikes  # the protocol makes the neuron fire
    np.testing.assert_array_equal(steps, ref_steps)
    np.testing.assert_allclose(vm, ref_vm, rtol=0, atol=V_TOL[model])


# ------------------------------------------------------------ defaults
@pytest.mark.parametrize("model", MODELS)
def test_defaults_and_units_are_nests(model):
    m = get_model(model)
    assert m.defaults == pytest.approx(NEST_DEFAULTS[model], rel=0, abs=0)
    assert set(m.param_names) == set(NEST_DEFAULTS[model])
    assert not m.gpu_exact
    units = m.units
    assert units["C_m"] == "pF" and units["V_m"] == "mV" and units["t_ref"] == "ms"
    assert units["I_e"] == "pA" and units["g_L"] == "nS"
    rec = m.receptors
    assert (rec["E"].sign, rec["I"].sign) == (1, -1)  # NEST: inhibitory weights negative
    assert rec["E"].unit == rec["I"].unit == ("pA" if model == "hh_psc_alpha" else "nS")


# -------------------------------------------------------- vs reference
DC_CASES = [
    ("iaf_cond_exp", {}, [[0.0, 400.0], [60.0, 600.0], [120.0, 200.0]], 160.0, 10),
    ("aeif_cond_exp", {"t_ref": 2.0}, [[0.0, 700.0], [60.0, 1200.0], [120.0, 500.0]],
     160.0, 5),
    ("aeif_cond_exp", {}, [[0.0, 700.0], [60.0, 1200.0], [120.0, 500.0]], 160.0, 5),
    ("aeif_cond_exp", {"Delta_T": 0.0}, [[0.0, 800.0], [60.0, 1400.0]], 120.0, 8),
    ("hh_psc_alpha", {}, [[0.0, 700.0], [60.0, 1500.0], [120.0, 900.0]], 160.0, 10),
    ("hh_psc_alpha", {"t_ref": 15.0}, [[0.0, 1500.0]], 100.0, 3),
]


@pytest.mark.parametrize("model, params, dc, t_sim, min_spikes", DC_CASES)
def test_dc_steps_match_reference(model, params, dc, t_sim, min_spikes):
    steps, vm, _ = simulate(model, params, dc, t_sim)
    check_against_reference(model, (steps, vm), reference(model, params, dc, t_sim),
                            min_spikes)


@pytest.mark.parametrize("model, params, drive", [
    ("iaf_cond_exp", {}, 250.0), ("aeif_cond_exp", {"t_ref": 2.0}, 600.0),
    ("hh_psc_alpha", {}, 500.0)])
def test_input_spikes_match_reference(model, params, drive):
    t_sim = 200.0
    ex, inh = trains(t_sim)
    args = ([[0.0, drive]], t_sim, ex, inh, WEIGHTS[model])
    steps, vm, _ = simulate(model, params, *args)
    check_against_reference(model, (steps, vm), reference(model, params, *args), 3)


# ------------------------------------------------------------ semantics
@pytest.mark.parametrize("model, params, i_e", [
    ("iaf_cond_exp", {"t_ref": 2.0}, 600.0),
    ("aeif_cond_exp", {"t_ref": 2.0, "b": 0.0}, 1200.0)])
def test_v_held_at_reset_while_refractory(model, params, i_e):
    """V_m equals V_reset exactly in the spike step and the round(t_ref / dt)
    steps after it, and leaves it in the next one."""
    p = {**get_model(model).defaults, **params}
    steps, vm, _ = simulate(model, params, [[0.0, i_e]], 60.0)
    n_ref = round(p["t_ref"] / DT)
    assert steps.size >= 2
    for k in steps:
        if k + n_ref + 1 < vm.size:
            assert np.all(vm[k:k + n_ref + 1] == p["V_reset"])
            assert vm[k + n_ref + 1] > p["V_reset"]


def test_aeif_adaptation_w_trace():
    """w at the end of each DC segment agrees with the reference (w += b at
    each spike, tau_w dw/dt = a (V - E_L) - w between)."""
    params, dc = {"t_ref": 2.0}, [[0.0, 900.0], [50.0, 300.0]]
    _, _, sim = simulate("aeif_cond_exp", params, dc[:1], 50.0)
    w = [float(sim.get_state("w", "N")[0])]
    sim.net.set_property("N", "I_e", value=dc[1][1])
    sim.run(50.0)
    w.append(float(sim.get_state("w", "N")[0]))
    want = reference("aeif_cond_exp", params, dc, 100.0)[1]
    assert want[499] > 2 * NEST_DEFAULTS["aeif_cond_exp"]["b"]  # several jumps
    np.testing.assert_allclose(w, [want[499], want[999]], rtol=0, atol=1e-3)


def test_aeif_several_resets_in_one_step_are_all_applied():
    """t_ref = 0, V_reset above V_th and a large current: V returns to
    V_peak several times per step; every reset adds b to w (the step reports
    one spike)."""
    b, t_sim = 10.0, 5.0
    params = {"V_reset": -45.0, "V_peak": -40.0, "Delta_T": 0.5, "a": 0.0, "b": b,
              "tau_w": 1e9, "t_ref": 0.0}
    steps, vm, sim = simulate("aeif_cond_exp", params, [[0.0, 3e4]], t_sim)
    w = float(sim.get_state("w", "N")[0])
    assert steps.size >= 40  # a spike in (almost) every step
    resets = w / b  # tau_w = 1e9 ms: w only grows, by b per reset
    assert resets > 2 * steps.size
    assert abs(resets - round(resets)) < 1e-3


def test_hh_refractoriness_only_blocks_detection():
    """t_ref = 15 ms: action potentials (local maxima of V_m above 0 mV)
    keep coming about every 8 ms, but spikes are at least 15 ms apart."""
    steps, vm, _ = simulate("hh_psc_alpha", {"t_ref": 15.0}, [[0.0, 1500.0]], 100.0)
    peaks = np.flatnonzero((vm[1:-1] >= 0.0) & (vm[1:-1] > vm[:-2]) & (vm[1:-1] >= vm[2:])) + 1
    assert peaks.size >= 1.5 * steps.size
    assert np.all(np.diff(steps) * DT > 15.0)
    # a spike is the first step after a maximum above 0 mV, in which V fell
    for k in steps:
        assert vm[k] >= 0.0 and vm[k - 1] > vm[k]


@pytest.mark.parametrize("model, w_in", [("iaf_cond_exp", -10.0), ("aeif_cond_exp", -10.0),
                                         ("hh_psc_alpha", -300.0)])
def test_inhibitory_spike_hyperpolarises(model, w_in):
    """One spike of an inhibitory source (negative weight, NEST's sign)
    lowers V_m from the step after its arrival on (for the conductance
    models: a positive g_in towards E_in = -85 mV); a positive weight from an
    inhibitory source is refused."""
    free = simulate(model, {}, [[0.0, 0.0]], 20.0)[1]
    steps, vm, _ = simulate(model, {}, [[0.0, 0.0]], 20.0, inh=[2.0], weights=(0.0, w_in))
    arrive = round(3.0 / DT) - 1  # the step that ends at 2 ms + 1 ms delay
    assert steps.size == 0
    np.testing.assert_array_equal(vm[:arrive + 1], free[:arrive + 1])
    assert np.all(vm[arrive + 1:arrive + 40] < free[arrive + 1:arrive + 40])
    assert np.min(vm - free) < -0.1
    net = brainsim.Network(dt=DT)
    net.add_population("N", 1, model=model)
    net.add_spike_generator("GI", [1.0], kind="I")
    with pytest.raises(ParameterError, match="weight"):
        net.connect("GI", "N", weight=abs(w_in), delay=1.0)


def test_float32_runs_and_agrees():
    """float32 state and parameters (the step integrates in float64): the
    same spike steps, V_m within 0.05 mV (one model: each float32 model
    costs a compilation of its loops)."""
    model, dc = "aeif_cond_exp", [[0.0, 900.0]]
    s64, v64, _ = simulate(model, {"t_ref": 2.0}, dc, 50.0)
    s32, v32, _ = simulate(model, {"t_ref": 2.0}, dc, 50.0, dtype="float32")
    assert s64.size >= 2
    np.testing.assert_array_equal(s32, s64)
    np.testing.assert_allclose(v32, v64, rtol=0, atol=0.05)


# ------------------------------------------------------------ validation
@pytest.mark.parametrize("model, params, name", [
    ("iaf_cond_exp", {"C_m": 0.0}, "C_m"),
    ("iaf_cond_exp", {"t_ref": -0.1}, "t_ref"),
    ("iaf_cond_exp", {"tau_syn_ex": 0.0}, "tau_syn_ex"),
    ("iaf_cond_exp", {"V_reset": -55.0}, "V_reset"),
    ("iaf_cond_exp", {"g_L": -1.0}, "g_L"),
    ("aeif_cond_exp", {"C_m": -1.0}, "C_m"),
    ("aeif_cond_exp", {"tau_w": 0.0}, "tau_w"),
    ("aeif_cond_exp", {"Delta_T": -1.0}, "Delta_T"),
    ("aeif_cond_exp", {"V_peak": -51.0}, "V_peak"),
    ("aeif_cond_exp", {"V_reset": 0.0}, "V_reset"),
    ("aeif_cond_exp", {"gsl_error_tol": 0.0}, "gsl_error_tol"),
    ("hh_psc_alpha", {"g_Na": -1.0}, "g_Na"),
    ("hh_psc_alpha", {"Act_m": -0.1}, "Act_m"),
    ("hh_psc_alpha", {"tau_syn_in": -2.0}, "tau_syn_in"),
    ("hh_psc_alpha", {"C_m": 0.0}, "C_m"),
])
def test_bad_parameter_named(model, params, name):
    net = brainsim.Network(dt=DT)
    with pytest.raises(ParameterError, match=rf"\b{name}\b"):
        net.add_population("N", 1, model=model, params=params)


def test_aeif_exponential_overflow_refused():
    """NEST refuses V_peak, V_th, Delta_T with exp((V_peak - V_th) / Delta_T)
    beyond double range / 1e20; so does brainsim when it builds the tables."""
    net = brainsim.Network(dt=DT)
    net.add_population("N", 1, model="aeif_cond_exp", params={"Delta_T": 0.01})
    with pytest.raises(ParameterError, match="Delta_T") as err:
        brainsim.Simulation(net, record={"rates": False}).run(1.0)
    assert "V_peak" in str(err.value) and "0.01" in str(err.value)


# ------------------------------------------------------------ integrator
@njit
def _decay(y, p, c):
    return (-p[0] * y[0],)


@njit
def _oscillator(y, p, c):
    return (y[1], -p[0] * p[0] * y[0])


@njit
def _ramp_and_oscillator(y, p, c):
    """A ramp of slope 1 and an oscillator of angular frequency p[0] (which
    keeps the sub-steps short)."""
    return (1.0, y[2], -p[0] * p[0] * y[1])


@njit
def _wrap(y, p, c):
    """Event: ramp >= 1 -> ramp - 1, counted in c[0]."""
    if y[0] >= 1.0:
        return (y[0] - 1.0, y[1], y[2]), (c[0] + 1.0,), True
    return y, c, False


@njit
def _nan(y, p, c):
    return (math.nan,)


def test_integrator_exponential_decay():
    integ = make_integrator(_decay, 1)
    for k, dt, tol in ((2.0, 1.0, 1e-6), (0.5, 0.1, 1e-8), (10.0, 1.0, 1e-10)):
        y, h = (1.0,), dt
        for step in range(1, 6):
            (y,), _, h = integ(y, (k,), (0.0,), dt, h, tol)
            y = (y,)
            assert 0.0 < h <= dt
            assert y[0] == pytest.approx(math.exp(-k * dt * step), rel=20 * tol, abs=20 * tol)


def test_integrator_error_falls_with_tolerance():
    integ = make_integrator(_oscillator, 2)
    errs = []
    for tol in (1e-4, 1e-7, 1e-10):
        y, h = (1.0, 0.0), 1.0
        for _ in range(10):  # t = 10, omega = 3: ~5 periods
            y, _, h = integ(y, (3.0,), (0.0,), 1.0, h, tol)
        errs.append(max(abs(y[0] - math.cos(30.0)), abs(y[1] + 3.0 * math.sin(30.0))))
        assert h < 1.0  # a period of ~2 ms needs sub-steps below dt
    assert errs[0] < 1e-2 and errs[1] < errs[0] / 100 and errs[2] < errs[1] / 100


def test_integrator_stiff_decay_shrinks_sub_steps():
    (y,), _, h = make_integrator(_decay, 1)((1.0,), (1000.0,), (0.0,), 1.0, 1.0, 1e-6)
    assert abs(y) < 1e-5 and h < 0.01


def test_integrator_event_after_each_sub_step():
    integ = make_integrator(_ramp_and_oscillator, 3, _wrap)
    y, c, h = integ((0.0, 1.0, 0.0), (10.0,), (0.0,), 3.05, 3.05, 1e-8)
    assert h < 0.5  # short sub-steps: the ramp crosses 1 within three of them
    assert c[0] == 3.0  # three events in one step, each followed by the reset
    assert y[0] == pytest.approx(0.05, abs=1e-10)
    assert y[1] == pytest.approx(math.cos(30.5), abs=1e-6)


def test_integrator_nan_terminates():
    (y,), _, h = make_integrator(_nan, 1)((1.0,), (0.0,), (0.0,), 0.1, 0.1, 1e-6)
    assert math.isnan(y)
