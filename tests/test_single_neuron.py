"""Single neurons simulated by brainsim.Simulation (float64) against closed
forms: DC step response, the PSP of one input spike, first spike time and
inter-spike interval under DC, and the exact arrival step of delayed spikes
and of Poisson input.

Timing convention (NEST): a spike emitted in step t is stamped (t + 1) dt;
with a delay of d steps it is added to the target's synaptic current in step
t + d, after that step's membrane update, so V moves from step t + d + 1 on.
V_m recorded in step k is the value at time (k + 1) dt.
"""
import math

import numpy as np
import pytest

import brainsim
import reference
from brainsim.kernels.neurons.iaf_psc_exp import first_spike_time_dc
from brainsim.neurons import get_model

IAF = {"C_m": 250.0, "tau_m": 10.0, "E_L": -70.0, "V_th": -55.0, "V_reset": -70.0,
       "V_m": -70.0}
NO_RATES = {"rates": False}


def _steps(ds, dt):
    return np.rint(ds.spike_time.values / dt).astype(np.int64) - 1


def _i_e_for_spike_in_step(step, dt, p=IAF):
    """DC (pA) that brings a neuron at rest to threshold at t = (step + 1/2) dt."""
    x = math.exp(-(step + 0.5) * dt / p["tau_m"])
    v_inf = (p["V_th"] - p["E_L"] * x) / (1.0 - x)
    return (v_inf - p["E_L"]) * p["C_m"] / p["tau_m"]


# ------------------------------------------------------------------ DC
@pytest.mark.parametrize("dt, params", [
    (0.1, {"I_e": 200.0}),
    (0.05, {"I_e": 40.0, "C_m": 100.0, "tau_m": 20.0, "E_L": -65.0, "V_m": -65.0}),
    (1.0, {"I_e": -150.0, "tau_m": 5.0}),
])
def test_iaf_dc_step_response(dt, params):
    p = {**IAF, **params}
    net = brainsim.Network(dt=dt)
    net.add_population("N", 1, params=p)
    n_steps = int(round(10 * p["tau_m"] / dt))
    ds = brainsim.Simulation(net, record={"V_m": "N", **NO_RATES}).run(n_steps * dt)
    assert ds.spike_time.size == 0
    t = ds.time_vm.values
    np.testing.assert_allclose(t, (np.arange(n_steps) + 1) * dt, rtol=1e-12)
    u_inf = p["tau_m"] * p["I_e"] / p["C_m"]
    want = p["E_L"] + u_inf * -np.expm1(-t / p["tau_m"])
    v = ds.V_m.values[:, 0]
    np.testing.assert_allclose(v, want, rtol=1e-12, atol=0)
    np.testing.assert_allclose(v - p["E_L"], want - p["E_L"], rtol=0, atol=1e-12)


def test_dtb_dc_step_response_is_forward_euler():
    # Euler on C dV/dt = g_L (E_L - V) + I: V_k = V_inf + (V_0 - V_inf)(1 - dt g_L / C)^k
    dt, c, g_l, e_l, i_e, v0 = 1.0, 1000.0, 30.0, -75.0, 600.0, -70.0
    net = brainsim.Network(dt=dt)
    net.add_population("N", 1, model="lif_dtb",
                       params={"C_m": c, "g_L": g_l, "E_L": e_l, "I_e": i_e, "V_m": v0})
    ds = brainsim.Simulation(net, record={"V_m": "N", **NO_RATES}).run(200.0)
    v_inf = e_l + i_e / g_l
    k = np.arange(1, 201)
    want = v_inf + (v0 - v_inf) * (1.0 - dt * g_l / c) ** k
    assert ds.spike_time.size == 0
    np.testing.assert_allclose(ds.V_m.values[:, 0], want, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- PSP
def _driver_net(dt, emit_steps, delays_ms, weight, target_model="iaf_psc_exp", kind="E",
                target_params=None):
    """Drivers D[j] spiking once, in step emit_steps[j]; one_to_one onto T[j]."""
    n = len(emit_steps)
    net = brainsim.Network(dt=dt, seed=0)
    net.add_population("D", n, kind=kind, params={**IAF, "t_ref": 1000.0})
    net.set_property("D", "I_e", value=[_i_e_for_spike_in_step(s, dt) for s in emit_steps])
    net.add_population("T", n, model=target_model, params=target_params)
    net.connect("D", "T", rule="one_to_one", weight=weight, delay=np.asarray(delays_ms, float))
    return net


def _psp(s, w, c, tau_m, tau_s):
    """PSP (mV) of an exponential PSC of amplitude w (pA), s ms after its onset."""
    if tau_s == tau_m:
        return w / c * s * np.exp(-s / tau_m)
    return w / c * tau_s * tau_m / (tau_m - tau_s) * (np.expm1(-s / tau_m) - np.expm1(-s / tau_s))


@pytest.mark.parametrize("kind, weight, tau_s", [("E", 100.0, 2.0), ("E", 50.0, 0.5),
                                                 ("E", 80.0, 10.0), ("I", -120.0, 3.0)])
def test_iaf_psp_closed_form(kind, weight, tau_s):
    dt, s0, delay = 0.1, 3, 1.0  # emitted in step 3 (stamp 0.4 ms), onset at 1.4 ms
    tp = {**IAF, "tau_syn_ex": tau_s, "tau_syn_in": tau_s}
    net = _driver_net(dt, [s0], [delay], weight, kind=kind, target_params=tp)
    ds = brainsim.Simulation(net, record={"V_m": "T", **NO_RATES}).run(60.0)
    assert list(_steps(ds, dt)) == [s0] and list(ds.spike_neuron.values) == [0]
    onset = ds.spike_time.values[0] + delay
    s = ds.time_vm.values - onset
    want = np.where(s > 1e-9, _psp(np.maximum(s, 0.0), weight, tp["C_m"], tp["tau_m"], tau_s), 0.0)
    v = ds.V_m.values[:, 0]
    assert np.all(v[s < 1e-9] == tp["E_L"])  # exactly at rest before the onset
    np.testing.assert_allclose(v - tp["E_L"], want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(v, tp["E_L"] + want, rtol=1e-12, atol=0)
    peak = np.max(np.abs(want))
    assert peak > 0.05  # a PSP of tenths of a mV was tested, not zeros


# ---------------------------------------------------------- spike time
def _t_cross(v0, v_inf, v_th, tau):
    return tau * math.log((v_inf - v0) / (v_inf - v_th))


@pytest.mark.parametrize("i_e, dt", [(376.0, 0.1), (400.0, 0.1), (520.0, 0.05), (1500.0, 0.1),
                                     (8000.0, 0.25)])
def test_iaf_first_spike_and_isi_under_dc(i_e, dt):
    p = {**IAF, "I_e": i_e, "V_reset": -65.0, "t_ref": 2.0}
    v_inf = p["E_L"] + p["tau_m"] * i_e / p["C_m"]
    t1 = _t_cross(p["V_m"], v_inf, p["V_th"], p["tau_m"])
    assert first_spike_time_dc(p, 0.0) == pytest.approx(t1, rel=1e-12)
    rheobase = (p["V_th"] - p["E_L"]) * p["C_m"] / p["tau_m"]  # 375 pA
    assert first_spike_time_dc({**p, "I_e": 0.0}, 0.99 * rheobase) == math.inf
    assert first_spike_time_dc({**p, "I_e": 0.0}, i_e) == pytest.approx(t1, rel=1e-12)
    t_up = _t_cross(p["V_reset"], v_inf, p["V_th"], p["tau_m"])  # reset -> threshold
    for t in (t1, t_up):  # avoid analytic times within rounding of a step boundary
        assert abs(t / dt - round(t / dt)) > 1e-6
    net = brainsim.Network(dt=dt)
    net.add_population("N", 1, params=p)
    ds = brainsim.Simulation(net, record=NO_RATES).run(round(3 * t1 + 3 * t_up + 10, 0))
    steps = _steps(ds, dt)
    assert steps.size >= 3
    # the first step whose end time (k + 1) dt reaches the analytic time
    assert steps[0] == math.ceil(t1 / dt) - 1
    assert ds.spike_time.values[0] - dt < t1 <= ds.spike_time.values[0]
    assert ds.spike_time.values[0] == pytest.approx(t1, abs=dt)
    # then t_ref / dt steps held at V_reset, then integration from V_reset
    isi = reference.refractory_steps(p["t_ref"], dt) + math.ceil(t_up / dt)
    np.testing.assert_array_equal(np.diff(steps), isi)


# ------------------------------------------------------------- delays
@pytest.mark.parametrize("target_model, kind", [("iaf_psc_exp", "E"), ("iaf_psc_exp", "I"),
                                                ("lif_dtb", "E"), ("lif_dtb", "I")])
def test_spike_reaches_target_after_exactly_delay_steps(target_model, kind):
    dt = 0.1
    emit = [0, 2, 5, 5, 9]
    delays_ms = [0.1, 0.3, 1.0, 2.6, 0.5]
    d = [round(x / dt) for x in delays_ms]
    iaf_target = target_model == "iaf_psc_exp"
    w = (-80.0 if kind == "I" else 80.0) if iaf_target else 0.25
    tp = {"E_L": -70.0, "V_m": -70.0, "I_e": 0.0}
    net = _driver_net(dt, emit, delays_ms, w, target_model, kind, tp)
    sim = brainsim.Simulation(net, record={"V_m": "T", **NO_RATES})
    row = (0 if kind == "E" else 1) if iaf_target else (0 if kind == "E" else 2)
    rows = [row] if iaf_target else [row, row + 1]  # AMPA + NMDA or GABA_A + GABA_B
    targets = net.select("T")
    arrive = [e + dj for e, dj in zip(emit, d)]
    v = []
    for k in range(45):  # one step at a time: the synaptic state S after step k
        ds = sim.run(dt)
        assert set(ds.spike_neuron.values) == {j for j, e in enumerate(emit) if e == k}
        v.append(ds.V_m.values[0])
        for j, tgt in enumerate(targets):
            if k < arrive[j]:
                np.testing.assert_array_equal(sim.S[:, tgt], 0.0)  # nothing earlier
            elif k == arrive[j]:  # the weight, exactly, in the source's channel(s)
                want = np.zeros(sim.S.shape[0])
                want[rows] = np.float32(w)
                np.testing.assert_array_equal(sim.S[:, tgt], want)
    v = np.array(v)
    for j in range(len(emit)):
        assert np.all(v[:arrive[j] + 1, j] == -70.0)  # V untouched through the arrival step
        if iaf_target:
            p21 = _psp(dt, 1.0, 250.0, 10.0, 2.0)  # one step of a unit PSC
            assert v[arrive[j] + 1, j] - (-70.0) == pytest.approx(w * p21, rel=1e-12)
        else:
            q = get_model("lif_dtb").defaults
            chans = ("AMPA", "NMDA") if kind == "E" else ("GABA_A", "GABA_B")
            i_syn = sum(q["g_" + ch] * (q["E_" + ch] + 70.0) * w for ch in chans)
            # at rest (V = E_L = -70 mV) the leak vanishes: one Euler step of I_syn
            assert v[arrive[j] + 1, j] + 70.0 == pytest.approx(dt / q["C_m"] * i_syn, rel=1e-12)


@pytest.mark.parametrize("weight", [5.0, -7.0])
def test_poisson_input_arrives_after_its_delay(weight):
    dt, rate, delay, n, seed = 0.1, 1e5, 1.0, 6, 23
    d = round(delay / dt)
    lam = rate * dt / 1000.0  # 10 events per step: a step with none is rare
    net = brainsim.Network(dt=dt)
    net.add_population("N", n, params={**IAF, "V_th": 1e6, "tau_syn_ex": 2.0, "tau_syn_in": 2.0})
    net.add_poisson("N", rate=rate, weight=weight, delay=delay)
    sim = brainsim.Simulation(net, seed=seed, record=NO_RATES)
    row = 0 if weight > 0 else 1
    sim.run(d * dt)  # steps 0 .. d - 1: nothing yet
    assert np.all(sim.S == 0.0)
    p11 = math.exp(-dt / 2.0)
    for k in range(d, d + 5):
        sim.run(dt)
        for i in range(n):
            counts = [reference.poisson(lam, seed, reference.STREAM_POISSON, i, m)
                      for m in range(k - d + 1)]  # emitted in steps 0 .. k - d
            want = sum(c * weight * p11 ** (k - d - m) for m, c in enumerate(counts))
            assert counts[0] > 0
            assert sim.S[row, i] == pytest.approx(want, rel=1e-12)
            assert sim.S[1 - row, i] == 0.0
