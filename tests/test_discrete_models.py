"""NEST's ``izhikevich`` and ``gif_psc_exp`` simulated by brainsim.Simulation
(float64): against the slow references of tests/reference.py
(identical spikes, V_m to 1e-12), against closed forms (the Izhikevich fixed
point, a voltage jump, gif's threshold crossings in the deterministic limit)
and against the escape-noise statistics (constant hazard, first-passage
distribution from the hazard integral).

The update orders these tests encode were found by running NEST 3.10 side
by side (see the model modules' docstrings): izhikevich adds input spikes
to V after the Euler step (standard scheme) or as a current inside it
(published scheme), bounds V by V_min, then tests the threshold;
gif_psc_exp takes the kernel sums before they decay, updates the synaptic
currents before V, holds V at V_reset for NEST's refractory steps after
(not in) the spike step.

Networks of a test module share three model sets ((izhikevich,
spike_source), (gif_psc_exp, spike_source), (izhikevich, gif_psc_exp)), so
that the compiled network kernels are reused across tests.
"""
import math

import numpy as np
import pytest

import brainsim
import reference as ref
from brainsim.errors import ParameterError
from brainsim.kernels.loops import step_many
from brainsim.kernels.neurons.gif_psc_exp import MAX_KERNELS, nest_steps
from brainsim.neurons import get_model

NO_RATES = {"rates": False}


def _spikes(datasets, dt):
    """Sorted (step, neuron) of the spikes of several runs."""
    return sorted((int(round(t / dt)) - 1, int(i)) for ds in datasets
                  for t, i in zip(ds.spike_time.values, ds.spike_neuron.values))


def _vm(datasets):
    return np.concatenate([ds.V_m.values for ds in datasets])


def _check_against_reference(datasets, net, n_steps, seed, record, changes=None,
                             poisson=()):
    spikes, v, states = ref.simulate_izh_gif(net, n_steps, seed, poisson_inputs=poisson,
                                     record_v=record, changes=changes)
    assert _spikes(datasets, net.dt) == sorted(spikes)
    np.testing.assert_allclose(_vm(datasets), v, rtol=1e-12, atol=1e-12)
    return spikes, states


# ------------------------------------------------------------ izhikevich
@pytest.mark.parametrize("consistent, dt", [(1.0, 0.1), (0.0, 0.1), (0.0, 1.0)])
def test_izhikevich_single_neuron_matches_reference(consistent, dt):
    net = brainsim.Network(dt=dt)
    net.add_population("N", 1, model="izhikevich",
                       params={"I_e": 10.0, "V_min": -80.0, "consistent_integration": consistent})
    net.add_spike_generator("GE", [5.0, 20.0, 20.0, 41.0, 70.0], kind="E")
    net.add_spike_generator("GI", [10.0, 60.0], kind="I")
    net.add_spike_generator("GB", [84.0], kind="E")
    net.connect("GE", "N", rule="all_to_all", weight=4.0, delay=1.0)
    net.connect("GI", "N", rule="all_to_all", weight=-40.0, delay=1.0)
    net.connect("GB", "N", rule="all_to_all", weight=300.0, delay=1.0)
    sim = brainsim.Simulation(net, record={"V_m": "N", "spikes": True, **NO_RATES})
    ds = [sim.run(50.0)]
    sim.set_property("N", "I_e", value=3.0)  # a DC step between runs
    ds.append(sim.run(50.0))
    half = round(50.0 / dt)
    changes = {0: [([0], "I_e", 10.0)], half: [([0], "I_e", 3.0)]}
    spikes, _ = _check_against_reference(ds, net, 2 * half, 1, [0], changes)
    own = [t for t, i in spikes if i == 0]
    assert len(own) >= 2
    v = _vm(ds)[:, 0]
    arrive = [round((t + 1.0) / dt) - 1 for t in (10.0, 60.0, 84.0)]  # the step ending at t + d
    if consistent:  # jumps: -40 mV reaches V_min, +300 mV fires in its arrival step
        assert v[arrive[0]] == -80.0 and v[arrive[1]] == -80.0
        assert arrive[2] in own and v[arrive[2]] == -65.0


@pytest.mark.parametrize("consistent", [1.0, 0.0])
def test_izhikevich_dc_converges_to_the_fixed_point(consistent):
    # rest: 0.04 v^2 + (5 - b) v + 140 + I = 0 (stable root), u = b v
    dt, b = 0.5, 0.2
    i_e = np.array([0.0, 2.0, 3.5])
    net = brainsim.Network(dt=dt)
    net.add_population("N", 3, model="izhikevich", params={"consistent_integration": consistent})
    net.set_property("N", "I_e", value=i_e)
    net.add_spike_generator("G", [dt], kind="E")  # unconnected: keeps the model set
    sim = brainsim.Simulation(net, record={"spikes": False, **NO_RATES})
    sim.run(1500.0)
    disc = (5.0 - b) ** 2 - 4 * 0.04 * (140.0 + i_e)
    v_rest = (-(5.0 - b) - np.sqrt(disc)) / (2 * 0.04)  # -70, -67.07.., -63.53..
    np.testing.assert_allclose(sim.get_state("V_m", "N"), v_rest, rtol=0, atol=1e-9)
    np.testing.assert_allclose(sim.get_state("U_m", "N"), b * v_rest, rtol=0, atol=1e-9)


@pytest.mark.parametrize("consistent", [1.0, 0.0])
def test_izhikevich_spike_is_a_jump_or_a_current(consistent):
    # standard scheme: V jumps by w in the arrival step; published scheme: the
    # weight is a current over the step, V moves by w dt (1 + O(dt))
    dt, w = 0.1, 2.5
    net = brainsim.Network(dt=dt)
    for name in ("A", "B"):
        net.add_population(name, 1, model="izhikevich",
                           params={"I_e": 4.0, "consistent_integration": consistent})
    net.add_spike_generator("G", [3.0], kind="E")
    net.connect("G", "B", rule="all_to_all", weight=w, delay=0.5)
    sim = brainsim.Simulation(net, record={"V_m": ["A", "B"], **NO_RATES})
    v = sim.run(10.0).V_m.values
    k = round((3.0 + 0.5) / dt) - 1  # arrival: the step ending at 3.5 ms
    np.testing.assert_array_equal(v[:k, 0], v[:k, 1])
    if consistent:
        assert v[k, 1] - v[k, 0] == pytest.approx(w, abs=1e-12)
    else:
        assert v[k, 1] - v[k, 0] == pytest.approx(w * dt, rel=0.02)


def test_izhikevich_weights_and_parameters_are_checked():
    net = brainsim.Network()
    with pytest.raises(ParameterError, match=r"izhikevich parameter consistent_integration "
                                             r"must be \{0, 1\}"):
        net.add_population("N", 1, model="izhikevich", params={"consistent_integration": 0.5})
    net.add_population("N", 1, model="izhikevich")
    net.add_population("M", 1, model="izhikevich", kind="I")
    with pytest.raises(ParameterError, match=r"receptor 'spike', mV\) must lie in \[0\.0"):
        net.connect("N", "M", weight=-1.0)
    with pytest.raises(ParameterError, match=r"receptor 'spike', mV\) must lie in \[-inf, 0\.0"):
        net.connect("M", "N", weight=1.0)
    m = get_model("izhikevich")
    assert m.defaults["V_min"] == -np.finfo(float).max and m.defaults["U_m"] == -13.0
    assert m.gpu_exact and not m.noise


# ----------------------------------------------------------- gif_psc_exp
GIF = {"q_stc": [10.0, -3.0], "tau_stc": [20.0, 5.0], "q_sfa": [5.0, 2.0, 1.0],
       "tau_sfa": [50.0, 300.0, 7.0], "I_e": 120.0, "lambda_0": 50.0, "Delta_V": 2.0,
       "t_ref": 0.25, "V_T_star": -50.0}


def _gif_net(dt, pops, times=(), weights=(50.0, -25.0), delays=(1.0, 0.5)):
    """gif populations (name -> (n, params)) then spike generators (E, I);
    without input times one unconnected generator (keeps the model set)."""
    net = brainsim.Network(dt=dt)
    for name, (n, params) in pops.items():
        net.add_population(name, n, model="gif_psc_exp", params=params)
    if not times:
        net.add_spike_generator("GE", [dt], kind="E")
        return net
    net.add_spike_generator("GE", times[0], kind="E")
    net.add_spike_generator("GI", times[1], kind="I")
    net.connect("GE", list(pops), rule="all_to_all", weight=weights[0], delay=delays[0])
    net.connect("GI", list(pops), rule="all_to_all", weight=weights[1], delay=delays[1])
    return net


def test_gif_neurons_match_reference_with_kernels_inputs_and_dc_steps():
    dt, n = 0.1, 12
    net = _gif_net(dt, {"N": (n, GIF)}, ([5.0, 20.0, 20.0, 40.0, 77.7], [10.0, 60.0]),
                   weights=(100.0, -50.0))
    sim = brainsim.Simulation(net, seed=3, record={"V_m": "N", **NO_RATES})
    ds = [sim.run(60.0)]
    i_e = np.linspace(90.0, 150.0, n)
    sim.set_property("N", "I_e", value=i_e)  # per-neuron DC step
    ds.append(sim.run(40.0))
    changes = {0: [(np.arange(n), "I_e", 120.0)],
               600: [([i], "I_e", x) for i, x in enumerate(i_e)]}
    spikes, states = _check_against_reference(ds, net, 1000, 3, list(range(n)), changes)
    own = [t for t, i in spikes if i < n]
    assert len(own) > 2 * n  # several spikes per neuron: kernels were exercised
    for j in range(MAX_KERNELS):  # the kernels as state variables, padding stays 0
        stc = [st["stc"][j] if j < 2 else 0.0 for st in states[:n]]
        sfa = [st["sfa"][j] if j < 3 else 0.0 for st in states[:n]]
        np.testing.assert_allclose(sim.get_state(f"stc_{j}", "N"), stc, rtol=1e-12, atol=0)
        np.testing.assert_allclose(sim.get_state(f"sfa_{j}", "N"), sfa, rtol=1e-12, atol=0)


def test_gif_absent_kernels_equal_kernels_of_zero_jump():
    # the padding of short kernel lists has no effect: same ids and seed, same run
    dt = 0.1
    short = {**GIF, "q_stc": [10.0], "tau_stc": [20.0], "q_sfa": [5.0], "tau_sfa": [50.0]}
    long = {**short, "q_stc": [10.0, 0.0, 0.0, 0.0], "tau_stc": [20.0, 3.0, 9.0, 1.0],
            "q_sfa": [5.0, 0.0], "tau_sfa": [50.0, 2.0]}
    runs = []
    for params in (short, long):
        net = _gif_net(dt, {"N": (20, params)})
        sim = brainsim.Simulation(net, seed=9, record={"V_m": "N", **NO_RATES})
        runs.append(sim.run(100.0))
    assert runs[0].spike_time.size > 40
    np.testing.assert_array_equal(runs[0].spike_time.values, runs[1].spike_time.values)
    np.testing.assert_array_equal(runs[0].spike_neuron.values, runs[1].spike_neuron.values)
    np.testing.assert_array_equal(runs[0].V_m.values, runs[1].V_m.values)


def _deterministic_spikes(i_e, n_steps, p, dt):
    """Spike steps of a gif neuron without stc in the deterministic limit
    (spike iff V > V_T): V from the closed-form solution of the membrane
    equation, V_T from one threshold kernel summed before it decays.
    Also returns the smallest |V - V_T| met (the margin of the limit)."""
    tau = p["C_m"] / p["g_L"]
    v_inf = p["E_L"] + i_e / p["g_L"]
    d = math.exp(-dt / p["tau_sfa"][0])
    n_ref = ref.gif_refractory_steps(p["t_ref"], dt)
    spikes, margin = [], math.inf
    v_start, t0, r, gamma = p["V_m"], 0, 0, 0.0
    for k in range(n_steps):
        v_t = p["V_T_star"] + gamma
        gamma *= d
        if r > 0:
            r -= 1
            if r == 0:
                v_start, t0 = p["V_reset"], k + 1
            continue
        v = v_inf + (v_start - v_inf) * math.exp(-(k + 1 - t0) * dt / tau)
        margin = min(margin, abs(v - v_t))
        if v > v_t:
            spikes.append(k)
            gamma += p["q_sfa"][0]
            r = n_ref
    return spikes, margin


def test_gif_deterministic_limit_fires_at_the_threshold_crossings():
    dt, i_e = 0.1, [170.0, 230.0, 300.0]
    p = {"C_m": 80.0, "g_L": 4.0, "E_L": -70.0, "V_m": -70.0, "V_reset": -60.0,
         "V_T_star": -50.0, "Delta_V": 1e-4, "lambda_0": 1000.0, "t_ref": 0.25,
         "q_sfa": [10.0], "tau_sfa": [10.0]}
    assert nest_steps(0.25, dt) == 3  # NEST: 250 us rounded up to whole steps
    net = _gif_net(dt, {"N": (3, p)})
    net.set_property("N", "I_e", value=np.array(i_e))
    sim = brainsim.Simulation(net, seed=1, record={"V_m": "N", **NO_RATES})
    ds = sim.run(100.0)
    v = ds.V_m.values
    for j, x in enumerate(i_e):
        want, margin = _deterministic_spikes(x, 1000, p, dt)
        # |V - V_T| > 0.005 mV: hazard*dt < 1e-4 * e^-50 below, > 1e-4 * e^50 above
        assert margin > 0.005 and len(want) >= 8
        got = [round(t / dt) - 1 for t, i in zip(ds.spike_time.values, ds.spike_neuron.values)
               if i == j]
        assert got == want
        for s in want:  # held at V_reset for 3 steps after (not in) the spike step
            assert v[s, j] > p["V_T_star"] and np.all(v[s + 1:s + 4, j] == p["V_reset"])


def test_gif_constant_hazard_gives_the_expected_spike_probability():
    # V_m = V_reset = E_L + I_e / g_L: V is constant, the hazard lambda_0 e^2 too
    dt, n = 0.1, 500
    p = {"E_L": -70.0, "g_L": 4.0, "I_e": 80.0, "V_m": -50.0, "V_reset": -50.0,
         "V_T_star": -52.0, "Delta_V": 1.0, "lambda_0": 5.0, "t_ref": 2.0}
    net = _gif_net(dt, {"N": (n, p)})
    sim = brainsim.Simulation(net, seed=21, record={"spikes": "N", **NO_RATES})
    ds = sim.run(500.0)
    n_steps, n_ref = 5000, 20
    rate = p["lambda_0"] * math.exp(2.0)  # 1/s
    prob = -math.expm1(-rate * dt / 1000.0)  # per free step
    steps = np.rint(ds.spike_time.values / dt).astype(np.int64) - 1
    who = ds.spike_neuron.values
    free = n * n_steps - np.sum(np.minimum(n_ref, n_steps - 1 - steps))
    p_hat = steps.size / free
    se = math.sqrt(prob * (1 - prob) / free)
    assert steps.size > 6000 and abs(p_hat - prob) < 4 * se
    isi = np.concatenate([np.diff(steps[who == i]) for i in range(n)])
    assert isi.min() == n_ref + 1  # refractory steps, then a spike is possible at once


def test_gif_first_spike_times_follow_the_hazard_integral():
    # from rest under DC, no kernels: P(no spike by step k) = exp(-sum_j lambda_j dt)
    dt, n, n_steps = 0.1, 2000, 1000
    p = {"C_m": 80.0, "g_L": 4.0, "E_L": -70.0, "V_m": -70.0, "I_e": 100.0,
         "V_T_star": -50.0, "Delta_V": 2.0, "lambda_0": 2.0, "t_ref": 4.0}
    net = _gif_net(dt, {"N": (n, p)})
    sim = brainsim.Simulation(net, seed=5, record={"spikes": "N", **NO_RATES})
    ds = sim.run(n_steps * dt)
    t_end = (np.arange(n_steps) + 1) * dt
    v_inf, tau = p["E_L"] + p["I_e"] / p["g_L"], p["C_m"] / p["g_L"]
    v = v_inf + (p["V_m"] - v_inf) * np.exp(-t_end / tau)
    hazard = p["lambda_0"] * np.exp((v - p["V_T_star"]) / p["Delta_V"]) * dt / 1000.0
    cdf = -np.expm1(-np.cumsum(hazard))
    steps = np.rint(ds.spike_time.values / dt).astype(np.int64) - 1
    first = np.full(n, n_steps)
    np.minimum.at(first, ds.spike_neuron.values, steps)
    emp = np.searchsorted(np.sort(first), np.arange(n_steps), side="right") / n
    eps = math.sqrt(math.log(2 / 1e-3) / (2 * n))  # DKW bound, alpha = 0.001
    assert 0.5 < cdf[-1] < 0.7 and np.max(np.abs(emp - cdf)) < eps


def test_gif_network_of_both_models_matches_reference():
    dt, seed = 0.1, 7
    gif = {**GIF, "lambda_0": 20.0, "I_e": 80.0}
    net = brainsim.Network(dt=dt, seed=2)
    net.add_population("IE", 30, model="izhikevich", params={"I_e": 2.0})
    net.add_population("II", 10, model="izhikevich", kind="I",
                       params={"a": 0.1, "d": 2.0, "I_e": 5.0, "consistent_integration": 0.0})
    net.add_population("G", 20, model="gif_psc_exp", params=gif)
    net.add_population("GI", 10, model="gif_psc_exp", kind="I", params=gif)
    net.connect(["IE", "G"], ["IE", "II"], rule="fixed_indegree", indegree=5, weight=0.5,
                delay={"distribution": "normal", "mean": 1.5, "sd": 0.5})
    net.connect(["II", "GI"], ["IE", "II"], rule="fixed_indegree", indegree=3, weight=-1.0,
                delay=1.0)
    net.connect(["IE", "G"], ["G", "GI"], rule="fixed_indegree", indegree=5, weight=16.0,
                delay=0.8)
    net.connect(["II", "GI"], ["G", "GI"], rule="fixed_indegree", indegree=3, weight=-32.0,
                delay=2.0)
    net.add_poisson(["IE", "II"], rate=1000.0, weight=2.0)
    net.add_poisson(["G", "GI"], rate=1000.0, weight=20.0)
    sim = brainsim.Simulation(net, seed=seed, n_partitions=3,
                              record={"V_m": np.arange(net.n_neurons), **NO_RATES})
    ds = [sim.run(30.0)]
    sim.set_property(["IE", "G"], "I_e", multiplier=1.5)
    ds.append(sim.run(20.0))
    ids = {k: net.select(k) for k in ("IE", "G")}
    changes = {0: [(ids["IE"], "I_e", 2.0), (ids["G"], "I_e", 80.0)],  # values before the step
               300: [(ids["IE"], "I_e", 3.0), (ids["G"], "I_e", 120.0)]}
    poisson = [{"ids": net.select(["IE", "II"]), "rate": 1000.0, "weight": 2.0},
               {"ids": net.select(["G", "GI"]), "rate": 1000.0, "weight": 20.0}]
    spikes, _ = _check_against_reference(ds, net, 500, seed, list(range(net.n_neurons)),
                                         changes, poisson)
    fired = {i for _, i in spikes}
    for name in ("IE", "II", "G", "GI"):  # every population took part
        assert fired & set(net.select(name))


def test_gif_escape_noise_decides_by_the_spike_probability():
    # one step of many free neurons: spiked iff u < 1 - exp(-lambda h), lambda
    # in 1/s, for u just below and just above each neuron's probability (the
    # step skips expm1 where u >= lambda h: 1 - e^-H <= H, also in floats)
    model, dt, n = get_model("gif_psc_exp"), 0.1, 4000
    rng = np.random.default_rng(4)
    params = {k: np.full(n, float(v)) for k, v in model.defaults.items() if np.ndim(v) == 0}
    params.update(lambda_0=np.full(n, 200.0), Delta_V=rng.uniform(0.2, 3.0, n),
                  tau_stc=(), q_stc=(), tau_sfa=(10.0,), q_sfa=(0.0,))
    state = {name: np.zeros(n) for name in model.state_names}
    state["V_m"] = rng.uniform(-60.0, -20.0, n)
    state["sfa_0"] = rng.uniform(-5.0, 5.0, n)  # V_T = V_T_star + sfa_0
    v_t = params["V_T_star"] + state["sfa_0"]
    v = step_many(model, state, params, dt, u=0.0)[0]["V_m"]  # not reset in the spike step
    prob = -np.expm1(-params["lambda_0"] * np.exp((v - v_t) / params["Delta_V"]) * dt / 1000)
    assert 0.05 < np.mean(prob) < 0.95 and np.min(prob) < 1e-6
    below = np.minimum(prob * (1 - 1e-9), np.nextafter(1.0, 0.0))
    above = np.minimum(prob * (1 + 1e-9), np.nextafter(1.0, 0.0))
    assert np.all(step_many(model, state, params, dt, u=below)[1])
    np.testing.assert_array_equal(step_many(model, state, params, dt, u=above)[1], prob == 1.0)
    h = np.logspace(-320, 3, 20000)
    assert np.all(-np.expm1(-h) <= h)


def test_gif_parameters_are_checked():
    net = brainsim.Network()
    for bad, msg in [({"Delta_V": 0.0}, r"Delta_V must be > 0 mV, got 0\.0"),
                     ({"lambda_0": -1.0}, r"lambda_0 must be >= 0 1/s"),
                     ({"g_L": 0.0}, r"g_L must be > 0 nS"),
                     ({"tau_sfa": [10.0, 0.0], "q_sfa": [1.0, 2.0]}, r"tau_sfa must be > 0 ms"),
                     ({"tau_stc": [1.0] * 5, "q_stc": [1.0] * 5}, r"at most 4 entries, got 5"),
                     ({"q_sfa": 2.0}, r"q_sfa.*sequence of at most 4 numbers \(mV\)")]:
        with pytest.raises(ParameterError, match=msg):
            net.add_population("G", 1, model="gif_psc_exp", params=bad)
    net.add_population("G", 1, model="gif_psc_exp", params={"tau_sfa": [10.0, 20.0],
                                                            "q_sfa": [1.0]})
    sim = brainsim.Simulation(net, record=NO_RATES)
    with pytest.raises(ParameterError, match=r"tau_sfa and q_sfa must have the same number "
                                             r"of entries, got 2 and 1"):
        sim.run(1.0)
    m = get_model("gif_psc_exp")
    assert m.defaults["tau_stc"] == () and m.units["lambda_0"] == "1/s" and m.noise
    assert m.units["q_stc"] == "pA" and not m.gpu_exact
