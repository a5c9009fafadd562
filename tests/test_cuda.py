"""The cuda backend against the cpu backend and tests/reference.py.

Without a GPU the kernels run in Numba's CUDA simulator: this module turns it
on (NUMBA_ENABLE_CUDASIM=1) before anything imports numba.cuda, unless the
variable is set or an NVIDIA driver is present; on a GPU the same tests run
on the device. Networks are small and thread blocks tiny so that several
blocks run (the simulator starts a Python thread per CUDA thread).

Exactness promised (float64): spikes, V_m, rates and the final state equal
the cpu engine's bit for bit for models with ``gpu_exact=True`` when every
weight is exact in the fixed point (float32 weights of magnitude >= 2**(23 -
k)); the simulator computes with the host's libm, so OU input (log, cos) and
models with ``gpu_exact=False`` are exact here and on a GPU only to the last
bits (see docs/cuda.md). The engine is model-generic: a model registered in
this file runs on it like the built-in ones.
"""
import glob
import json
import math
import os
import subprocess
import sys

if ("numba.cuda" not in sys.modules and "NUMBA_ENABLE_CUDASIM" not in os.environ
        and not glob.glob("/dev/nvidia[0-9]*")):
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    import numba.core.config
    numba.core.config.reload_config()  # numba read its environment at import

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import brainsim  # noqa: E402
import reference  # noqa: E402
from brainsim.neurons import Parameter, Receptor, StateVar, neuron_model  # noqa: E402

cuda_backend = pytest.importorskip("brainsim.backends.cuda")
pytest.importorskip("numba.cuda")
if not (cuda_backend.simulator_enabled() or cuda_backend.cuda_devices()):
    pytest.skip("numba.cuda was imported without the simulator and no GPU is present",
                allow_module_level=True)

SMALL = {"threads_per_block": 8, "blocks": 3}  # 3 blocks of 8 threads, loops over the rest
NO_RATES = {"rates": False}


def mixed_net(seed=5):
    """Two regions, both models, delays 1..5 steps, Poisson and OU input,
    float32 weights exact in fixed point (normal weights: multiples of 2**-18)."""
    net = brainsim.Network(dt=0.1, seed=seed)
    for r in range(2):
        net.add_population(f"E{r}", 24, region=f"R{r}", params={"I_e": 390.0})
        net.add_population(f"I{r}", 8, region=f"R{r}", kind="I", params={"I_e": 380.0})
    net.add_population("D", 16, model="lif_dtb", region="R2", params={"I_e": 300.0})
    g = np.random.default_rng(seed)
    for name, pop in net.populations.items():  # spread start: activity from the first ms
        low, high = (-70.0, -55.5) if pop.model == "iaf_psc_exp" else (-65.0, -50.5)
        net.set_property(name, "V_m", value=g.uniform(low, high, pop.n))
    exc, inh = ["E0", "E1"], ["I0", "I1"]
    net.connect(exc, exc + inh, rule="fixed_indegree", indegree=6,
                weight={"distribution": "normal", "mean": 60.0, "sd": 20.0},
                delay={"distribution": "normal", "mean": 0.3, "sd": 0.1})
    net.connect(inh, exc + inh, rule="pairwise_bernoulli", p=0.3, weight=-90.0, delay=0.1)
    net.connect(exc, "D", rule="fixed_total_number", n=120, weight=0.5, delay=0.5)
    net.add_poisson(exc, rate=8.0, indegree=120, weight=40.0, delay=0.2)
    net.add_ou("D", mean=100.0, sigma=60.0, tau=5.0)
    return net


def run_pair(make, t_parts, record=None, seed=11, dtype="float64", between=None, **cuda_kw):
    """Run the cpu and the cuda backend over the same intervals (ms); returns
    the two simulations and their Datasets per interval."""
    out = []
    for backend, kw in (("cpu", {}), ("cuda", {**SMALL, **cuda_kw})):
        sim = brainsim.Simulation(make(), backend=backend, seed=seed, dtype=dtype, record=record,
                                  **kw)
        dss = []
        for k, t in enumerate(t_parts):
            if k and between is not None:
                between(sim)
            dss.append(sim.run(t))
        out.append((sim, dss))
    return out


def assert_same_run(cpu, gpu):
    (sim_c, ds_c), (sim_g, ds_g) = cpu, gpu
    for a, b in zip(ds_c, ds_g):
        for name in ("spike_time", "spike_neuron", "rate", "rate_region", "V_m"):
            np.testing.assert_array_equal(b[name].values, a[name].values, err_msg=name)
        assert b.attrs["backend"] == "cuda" and a.attrs["t_stop"] == b.attrs["t_stop"]
    for name in ("X", "I_ou", "inp"):  # every state variable of every model
        np.testing.assert_array_equal(getattr(sim_g.engine, name), getattr(sim_c.engine, name),
                                      err_msg=name)


# ------------------------------------------------------------ parity with cpu
def test_mixed_network_bit_identical_to_cpu_across_runs_and_set_property():
    """Both models, Poisson and OU input, delays 1..5 steps; three runs with a
    parameter change (re-uploaded tables) and a state change between them."""
    def between(sim):
        sim.set_property("E0", "I_e", multiplier=1.3)
        sim.set_state("D", "V_m", np.linspace(-60.0, -51.0, 16))

    rec = {"V_m": [0, 30, 57, 70]}
    cpu, gpu = run_pair(mixed_net, [8.0, 6.0, 6.0], record=rec, between=between)
    spikes = sum(ds.spike_neuron.size for ds in cpu[1])
    assert spikes > 60  # active: the comparison means something
    assert set(np.concatenate([ds.spike_neuron.values for ds in cpu[1]]) // 32) >= {0, 1}
    assert np.any(cpu[1][0].V_m.values[:, 3] != cpu[1][0].V_m.values[0, 3])  # lif_dtb moves
    assert gpu[0].window == 1 and gpu[0].fixed_bits > 30
    assert_same_run(cpu, gpu)


def test_selected_spikes_and_persistent_mode():
    """record a selection; the persistent kernel (grid-wide barriers; one
    block under the simulator) equals the launch mode and the cpu."""
    rec = {"spikes": ["E1", "D"], "V_m": "D"}
    cpu, gpu = run_pair(mixed_net, [10.0], record=rec, mode="persistent",
                        threads_per_block=16, blocks=None)
    got = cpu[1][0].spike_neuron.values
    assert got.size > 5 and set(got) <= set(range(32, 56)) | set(range(64, 80))
    assert cpu[1][0].rate.values.sum() > got.size  # rates count all neurons
    assert_same_run(cpu, gpu)


def test_windows_of_several_steps_and_small_spike_record():
    """min delay 4 steps: windows of 4 steps per pair of launches; then a
    spike record of N + 20 entries, so that windows are single steps and the
    device stops (ends a chunk) once more than 20 spikes are recorded."""
    def make():
        net = brainsim.Network(dt=0.1, seed=2)
        net.add_population("E", 30, params={"I_e": 600.0})
        net.add_population("I", 10, kind="I", params={"I_e": 500.0})
        net.set_property("E", "V_m", value=np.linspace(-70.0, -56.0, 30))
        net.connect("E", ["E", "I"], rule="fixed_indegree", indegree=8, weight=30.0, delay=0.7)
        net.connect("I", ["E", "I"], rule="fixed_indegree", indegree=4, weight=-70.0, delay=0.4)
        return net

    ref = brainsim.Simulation(make()).run(12.0)
    assert ref.spike_neuron.size > 30
    for cap in (None, 60):
        sim = brainsim.Simulation(make(), backend="cuda", **SMALL)
        assert sim.window == 4
        calls = []
        if cap:
            sim.engine.spike_capacity = cap
            advance = sim.engine.advance
            sim.engine.advance = lambda *a: calls.append(1) or advance(*a)
        ds = sim.run(12.0)
        assert len(calls) >= (2 if cap else 0)
        np.testing.assert_array_equal(ds.spike_neuron.values, ref.spike_neuron.values)
        np.testing.assert_array_equal(ds.spike_time.values, ref.spike_time.values)
        np.testing.assert_array_equal(ds.rate.values, ref.rate.values)


def test_float32_close_to_cpu():
    """float32: the cpu rounds each addition of a synaptic sum in float32, the
    GPU rounds the exact sum once, so only agreement within rounding (and,
    after trajectories part, statistics) is promised."""
    rec = {"V_m": np.arange(32), **NO_RATES}
    cpu, gpu = run_pair(mixed_net, [4.0], record=rec, dtype="float32")
    a, b = cpu[1][0], gpu[1][0]
    assert b.V_m.dtype == np.float64 and gpu[0].dtype == np.float32
    np.testing.assert_allclose(b.V_m.values, a.V_m.values, rtol=0, atol=1e-3)


# ------------------------------------------------- a model defined here
ESCAPE = "cuda_test_escape_lif"


def _escape_derived(p, dt):
    """Exact propagators of the leaky membrane and the adaptation current,
    the escape probability per step above V_soft and the refractory steps."""
    return {"P22": np.exp(-dt / p["tau_m"]),
            "P20": -p["tau_m"] / p["C_m"] * np.expm1(-dt / p["tau_m"]),
            "Pw": np.exp(-dt / p["tau_w"]), "q_esc": p["rho"] * dt * 1e-3,
            "n_ref": np.rint(p["t_ref"] / dt)}


@neuron_model(
    ESCAPE,
    parameters=[
        Parameter("C_m", 250.0, "pF", "> 0", "membrane capacitance"),
        Parameter("tau_m", 10.0, "ms", "> 0", "membrane time constant"),
        Parameter("tau_w", 50.0, "ms", "> 0", "adaptation decay time"),
        Parameter("b", 20.0, "pA", ">= 0", "adaptation increment per spike"),
        Parameter("E_L", -65.0, "mV", "any", "resting potential"),
        Parameter("V_th", -50.0, "mV", "any", "hard threshold"),
        Parameter("V_soft", -56.0, "mV", "any", "escape noise acts above this"),
        Parameter("V_reset", -65.0, "mV", "any", "reset potential"),
        Parameter("t_ref", 2.0, "ms", ">= 0", "refractory period"),
        Parameter("rho", 300.0, "Hz", ">= 0", "escape rate above V_soft"),
        Parameter("I_e", 0.0, "pA", "any", "constant current"),
        Parameter("V_m", -65.0, "mV", "any", "initial membrane potential"),
    ],
    # the membrane potential is not the first state variable: X row 0 is still V_m
    state=[StateVar("w", "pA", 0.0, "adaptation current"), StateVar("V_m", "mV", "V_m"),
           StateVar("r", "1", 0.0, "remaining refractory steps")],
    receptors={"E": Receptor("ex", "mV", +1), "I": Receptor("in", "mV", -1)},
    derived=_escape_derived, constraints=[("V_reset", "<", "V_th"), ("V_soft", "<", "V_th")],
    noise=True, gpu_exact=True, replace=True)
def escape_step(s, p, in_ex, in_in, i_ext, u):
    """Leaky membrane with voltage-jump synapses and an adaptation current;
    a spike at V_th, or with probability q_esc per step above V_soft (u is
    the step's uniform draw). Only +, -, * and comparisons per step."""
    v, w, r = s.V_m, s.w, s.r
    if r > 0:
        r -= 1
        v = p.V_reset
    else:
        v = p.E_L + (v - p.E_L) * p.P22 + (p.I_e + i_ext - w) * p.P20 + in_ex + in_in
    w = w * p.Pw
    spiked = v >= p.V_th or (v >= p.V_soft and u < p.q_esc)
    if spiked:
        v = p.V_reset
        r = p.n_ref
        w = w + p.b
    return (w, v, r), spiked


def user_net(seed=3):
    """iaf_psc_exp and the model above, both ways connected, Poisson and OU
    input; weights exact in fixed point (mV onto the user model, pA onto iaf)."""
    net = brainsim.Network(dt=0.1, seed=seed)
    net.add_population("E", 16, params={"I_e": 450.0})
    net.add_population("U", 24, model=ESCAPE, params={"I_e": 450.0})
    net.add_population("J", 8, model=ESCAPE, kind="I", params={"V_soft": -58.0})
    g = np.random.default_rng(seed)
    net.set_property("E", "V_m", value=g.uniform(-70.0, -55.5, 16))
    net.set_property("U", "V_m", value=g.uniform(-65.0, -52.0, 24))
    net.connect("E", ["U", "J"], rule="fixed_indegree", indegree=4, weight=0.5, delay=0.2)
    net.connect("U", "E", rule="fixed_indegree", indegree=6, weight=30.0, delay=0.3)
    net.connect("U", ["U", "J"], rule="pairwise_bernoulli", p=0.2, weight=0.75, delay=0.1)
    net.connect("J", "U", rule="fixed_indegree", indegree=3, weight=-1.0, delay=0.2)
    net.add_poisson("U", rate=600.0, weight=0.25, delay=0.1)
    net.add_ou("J", mean=400.0, sigma=80.0, tau=5.0)
    return net


def test_user_model_with_noise_bit_identical_to_cpu():
    """A model registered in this file (escape noise: the u of its step,
    an adaptation current, V_m not first in its state) next to iaf_psc_exp:
    the device compiles the cpu engine's loop for it, and spikes, V_m and
    every state variable equal the cpu's (gpu_exact=True)."""
    model = brainsim.neurons.get_model(ESCAPE)
    assert model.gpu_exact and model.noise
    rec = {"V_m": [0, 16, 30, 44]}
    cpu, gpu = run_pair(user_net, [6.0, 4.0], record=rec)
    got = np.concatenate([ds.spike_neuron.values for ds in cpu[1]])
    assert got.size > 30 and np.any(got < 16) and np.any(got >= 40)
    assert np.any(cpu[0].get_state("w", "U") > 0.0)  # adaptation moved
    assert_same_run(cpu, gpu)
    for name in ("w", "r", "I_syn_ex"):
        np.testing.assert_array_equal(gpu[0].get_state(name), cpu[0].get_state(name))
    # the escape noise (u) decides spikes: without it (rho = 0) they differ
    quiet = user_net()
    quiet.set_property(["U", "J"], "rho", value=0.0)
    spikes = brainsim.Simulation(quiet, seed=11, record=rec).run(6.0).spike_neuron.values
    assert not np.array_equal(spikes, cpu[1][0].spike_neuron.values)


# ------------------------------------------------------ every built-in model
#: Weight magnitude per receptor unit, strong enough to move every model
_W_UNIT = {"pA": 150.0, "nS": 8.0, "mV": 4.0, "1": 0.5}


def all_models_net(seed=7):
    """One population of every built-in model, driven by a spiking
    iaf_psc_exp population and Poisson input through its own receptors
    (weights exact in fixed point); eight models behind one dispatch."""
    from brainsim.kernels.neurons import BUILTIN
    net = brainsim.Network(dt=0.1, seed=seed)
    net.add_population("drive", 8, params={"I_e": 600.0})
    net.set_property("drive", "V_m", value=np.linspace(-70.0, -56.0, 8))
    for m in BUILTIN:
        name = f"P_{m.name}"
        net.add_population(name, 5, model=m.name)
        w = _W_UNIT[m.receptors["E"].unit] * m.receptors["E"].sign
        net.connect("drive", name, rule="fixed_indegree", indegree=3, weight=w, delay=0.2)
        net.add_poisson(name, rate=3000.0, weight=abs(w), delay=0.1)
    return net, BUILTIN


def test_every_builtin_model_runs_on_the_device():
    """All built-in models in one network: the device runs each through the
    cpu engine's loop (ODE integrators, vector parameters, escape noise
    included). Under the simulator (the host's libm) everything equals the
    cpu; on a GPU models with gpu_exact=False agree in spike counts only."""
    net_c, models = all_models_net()
    net_g, _ = all_models_net()
    rec = {"V_m": np.arange(net_c.n_neurons), **NO_RATES}
    cpu = brainsim.Simulation(net_c, seed=3, record=rec)
    gpu = brainsim.Simulation(net_g, backend="cuda", seed=3, record=rec, **SMALL)
    x0 = cpu.engine.X.copy()
    a, b = cpu.run(4.0), gpu.run(4.0)
    x1 = cpu.engine.X
    assert gpu.engine.flat.models == tuple(models)
    exact = cuda_backend.simulator_enabled()
    for m in models:
        ids = net_c.select(f"P_{m.name}")
        va, vb = a.V_m.values[:, ids], b.V_m.values[:, ids]
        assert np.any(x1[:, ids] != x0[:, ids]), m.name  # the comparison means something
        if exact or m.gpu_exact:
            np.testing.assert_array_equal(vb, va, err_msg=m.name)
            for name in m.state_names:
                np.testing.assert_array_equal(gpu.get_state(name, ids),
                                              cpu.get_state(name, ids), err_msg=name)
        n_a = np.isin(a.spike_neuron.values, ids).sum()
        n_b = np.isin(b.spike_neuron.values, ids).sum()
        assert abs(int(n_a) - int(n_b)) <= max(2, 0.2 * n_a), m.name
    assert a.spike_neuron.size > 10


# ----------------------------------------------------------- reference.py
def test_matches_reference_simulator():
    """The reference network simulator (Python loops, propagators from expm):
    identical spikes, V to 1e-12, final state."""
    dt, n_steps, seed = 0.1, 120, 17
    net = brainsim.Network(dt=dt, seed=4)
    net.add_population("A", 14, params={"I_e": 600.0})
    net.add_population("B", 6, kind="I")
    net.add_population("C", 8, model="lif_dtb", params={"I_e": 700.0})
    net.set_property("A", "V_m", value=np.linspace(-70.0, -56.0, 14))
    net.connect("A", ["A", "B", "C"], rule="pairwise_bernoulli", p=0.3, weight=55.0,
                delay={"distribution": "normal", "mean": 0.25, "sd": 0.1})
    net.connect("B", "A", rule="pairwise_bernoulli", p=0.5, weight=-80.0, delay=0.2)
    net.connect("A", "C", rule="fixed_indegree", indegree=3, weight=0.25, delay=0.4)
    pois = [dict(ids=net.select("B"), rate=5000.0, weight=40.0, delay=0.3)]
    ou = [dict(ids=net.select("C"), mean=50.0, sigma=40.0, tau=3.0)]
    net.add_poisson(pois[0]["ids"], rate=5000.0, weight=40.0, delay=0.3)
    net.add_ou(ou[0]["ids"], mean=50.0, sigma=40.0, tau=3.0)
    net.build(1)
    ids = np.arange(net.n_neurons)
    spikes, v, state = reference.simulate(net, n_steps, seed, pois, ou, ids)
    sim = brainsim.Simulation(net, backend="cuda", seed=seed,
                              record={"V_m": ids, **NO_RATES}, **SMALL)
    ds = sim.run(n_steps * dt)
    got = list(zip(np.rint(ds.spike_time.values / dt).astype(int) - 1,
                   ds.spike_neuron.values.tolist()))
    assert len(spikes) > 15 and len({i for _, i in spikes}) > 10
    assert got == sorted(spikes)
    np.testing.assert_allclose(ds.V_m.values, v, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(sim.get_state("r"), state["ref"])
    np.testing.assert_allclose(sim.engine.I_ou, state["I_ou"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("target_model, kind", [("iaf_psc_exp", "I"), ("lif_dtb", "E")])
def test_spikes_arrive_after_exactly_their_delay(target_model, kind):
    """Drivers fire once each (steps 0, 2, 5, 5); the weight appears in the
    target's synaptic state in step emit + delay, exactly, not before."""
    dt, emit, delays = 0.1, [0, 2, 5, 5], [0.1, 0.3, 1.0, 2.6]
    net = brainsim.Network(dt=dt, seed=0)
    net.add_population("D", len(emit), kind=kind, params={"t_ref": 1000.0})
    net.set_property("D", "I_e", value=[_i_e_spike_in_step(s, dt) for s in emit])
    net.add_population("T", len(emit), model=target_model, params={"I_e": 0.0})
    iaf = target_model == "iaf_psc_exp"
    w = (-80.0 if kind == "I" else 80.0) if iaf else 0.25
    net.connect("D", "T", rule="one_to_one", weight=w, delay=np.array(delays))
    sim = brainsim.Simulation(net, backend="cuda", record=NO_RATES, threads_per_block=2,
                              blocks=2)
    names = (["I_syn_ex", "I_syn_in"] if iaf
             else ["J_AMPA", "J_NMDA", "J_GABA_A", "J_GABA_B"])
    hit = (({"I_syn_ex"} if kind == "E" else {"I_syn_in"}) if iaf
           else ({"J_AMPA", "J_NMDA"} if kind == "E" else {"J_GABA_A", "J_GABA_B"}))
    arrive = [e + round(d / dt) for e, d in zip(emit, delays)]
    tgt = net.select("T")
    for k in range(max(arrive) + 2):
        ds = sim.run(dt)
        assert set(ds.spike_neuron.values) == {j for j, e in enumerate(emit) if e == k}
        S = {name: sim.get_state(name, tgt) for name in names}
        for j in range(len(emit)):
            if k < arrive[j]:
                assert all(S[name][j] == 0.0 for name in names)
            elif k == arrive[j]:
                for name in names:
                    assert S[name][j] == (np.float32(w) if name in hit else 0.0), name


def _i_e_spike_in_step(step, dt, tau=10.0, c=250.0, e_l=-70.0, v_th=-55.0):
    """DC (pA) bringing an iaf_psc_exp at rest to threshold at (step + 1/2) dt."""
    x = math.exp(-(step + 0.5) * dt / tau)
    return ((v_th - e_l * x) / (1.0 - x) - e_l) * c / tau


# ----------------------------------------------------- fixed-point summation
def test_fixed_point_bits_bound_the_summed_input():
    targets = np.array([0, 0, 1, 1, 1], np.int32)
    weights = np.array([300.0, -200.0, 100.0, 100.0, 56.0], np.float32)
    k = cuda_backend.fixed_point_bits(targets, weights, 3)
    assert k == 61 - 9  # |w| onto neuron 0: 500 <= 2**9
    assert 500.0 * 2.0**k <= 2.0**61 < 500.0 * 2.0**(k + 1)
    assert cuda_backend.fixed_point_bits(targets[:0], weights[:0], 3) == 32


def test_sum_independent_of_atomic_order():
    """Weights below the fixed-point resolution (a 1e7 pA synapse from a silent
    neuron forces k = 37) and 40 sources onto each target: the sums, hence V
    and S, do not depend on the order of the atomic additions (launch
    configuration), and differ from the cpu's float sums only by rounding."""
    def make():
        net = brainsim.Network(dt=0.1, seed=9)
        net.add_population("A", 40, params={"I_e": 500.0})
        net.set_property("A", "V_m", value=np.linspace(-70.0, -55.5, 40))
        net.add_population("B", 3)
        net.add_population("Z", 1)
        net.connect("A", "B", rule="all_to_all",
                    weight={"distribution": "normal", "mean": 3.0, "sd": 2.9}, delay=0.2)
        net.connect("A", "B", rule="all_to_all",
                    weight={"distribution": "normal", "mean": 2e-5, "sd": 2e-5}, delay=0.3)
        net.connect("Z", "B", rule="all_to_all", weight=1e7, delay=0.1)
        return net

    runs = []
    for kw in ({"threads_per_block": 1, "blocks": 1}, {"threads_per_block": 4, "blocks": 3}):
        sim = brainsim.Simulation(make(), backend="cuda", record={"V_m": "B", **NO_RATES}, **kw)
        runs.append((sim.run(12.0), sim.engine.X, sim.fixed_bits))
    (a, sa, k), (b, sb, _) = runs
    w = brainsim.Simulation(make(), backend="cuda").net.synapses["weights"].astype(float)
    assert k == 37 and np.any(w * 2.0**k % 1.0 != 0.0)  # some weights are not exact
    assert a.spike_neuron.size >= 25
    np.testing.assert_array_equal(a.V_m.values, b.V_m.values)
    np.testing.assert_array_equal(sa, sb)
    cpu = brainsim.Simulation(make(), record={"V_m": "B", **NO_RATES})
    np.testing.assert_allclose(cpu.run(12.0).V_m.values, a.V_m.values, rtol=1e-12)
    assert not np.array_equal(cpu.engine.X, sa)  # the comparison above is not vacuous


# ------------------------------------------------------------------ errors
def test_bad_parameters_name_value_and_allowed():
    net = mixed_net()
    for kw, text in [({"mode": "fast"}, "mode must be one of"),
                     ({"threads_per_block": 0}, "threads_per_block must be an integer in [1, 10"),
                     ({"blocks": 2.5}, "blocks must be an integer"),
                     ({"device": 99}, "device must be an integer in [0, "),
                     ({"device": True}, "device must be an integer in [0, "),
                     ({"device": "0"}, "device must be an integer in [0, "),
                     ({"device": 0.0}, "device must be an integer in [0, ")]:
        with pytest.raises(brainsim.ParameterError) as err:
            brainsim.Simulation(net, backend="cuda", **kw)
        assert text in str(err.value) and repr(list(kw.values())[0]) in str(err.value)
    with pytest.raises(brainsim.ParameterError) as err:
        brainsim.Simulation(net, backend="cuda", thread_per_block=64, grid=3)
    msg = str(err.value)
    assert "['grid', 'thread_per_block']" in msg  # the unknown ones
    assert "'threads_per_block'" in msg and "'device'" in msg  # and the allowed ones


_PROBE = r"""
import json, os, sys
if sys.argv[1] == "no-package":
    sys.modules["numba.cuda"] = None
import brainsim
from brainsim.backends import cuda
net = brainsim.Network()
net.add_population("A", 2)
try:
    brainsim.Simulation(net, backend="cuda")
    out = {"raised": None}
except Exception as exc:
    out = {"raised": type(exc).__name__, "msg": str(exc), "runtime": isinstance(exc, RuntimeError),
           "brainsim": isinstance(exc, brainsim.BrainsimError)}
out["devices"] = cuda.cuda_devices()
out["lines"] = cuda.describe_devices()
print(json.dumps(out))
"""


# `python -c` puts the working folder first on sys.path; from the repository root the
# source folder brainsim/ (without kernels/, mapped in only on install) would shadow
# the installed package, so the subprocesses start in tests/
_HERE = os.path.dirname(os.path.abspath(__file__))


def _probe(case):
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    res = subprocess.run([sys.executable, "-c", _PROBE, case], env=env, capture_output=True,
                         text=True, timeout=120, cwd=_HERE)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_missing_numba_cuda_names_the_extra():
    out = _probe("no-package")
    assert out["raised"] == "CudaUnavailableError" and out["runtime"] and out["brainsim"]
    assert "pip install 'brainsim[cuda]'" in out["msg"]
    assert out["devices"] == [] and "pip install 'brainsim[cuda]'" in out["lines"][0]


@pytest.mark.skipif(bool(glob.glob("/dev/nvidia[0-9]*")), reason="a GPU is present")
def test_no_gpu_names_the_driver_and_the_simulator():
    out = _probe("no-gpu")
    assert out["raised"] == "CudaUnavailableError" and out["runtime"] and out["brainsim"]
    assert "NVIDIA driver" in out["msg"] and "NUMBA_ENABLE_CUDASIM=1" in out["msg"]
    assert out["devices"] == []


def test_cuda_devices_lists_what_numba_sees():
    devs = cuda_backend.cuda_devices()
    assert len(devs) >= 1
    assert set(devs[0]) == {"id", "name", "compute_capability", "memory_total", "memory_free"}
    if cuda_backend.simulator_enabled():
        assert "simulator" in devs[0]["name"]
    else:
        assert devs[0]["memory_total"] > 0 and len(devs[0]["compute_capability"]) == 2
    lines = cuda_backend.describe_devices()
    assert lines[0] == "CUDA devices:" and devs[0]["name"] in lines[1]


def test_import_brainsim_does_not_import_numba_cuda():
    code = "import sys, brainsim; print('numba.cuda' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=_HERE)
    assert res.stdout.strip() == "False", res.stderr


# --------------------------------------------------------------- benchmark
@pytest.mark.slow
def test_benchmark_script_runs_at_a_tiny_scale(tmp_path):
    """benchmarks/bench_cuda.py (what runs on a GPU when one is lent) at a
    tiny scale: the microcircuit, the HCP network and a random network of
    another model, both modes, with the cpu-vs-cuda agreement of each (1 ms:
    the script's plumbing; the spike comparisons are the tests above)."""
    bench = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "bench_cuda.py")
    out = tmp_path / "bench.json"
    models = ["iaf_psc_exp", "lif_dtb", "izhikevich"]
    res = subprocess.run([sys.executable, bench, "--models", *models, "--scales", "0.002",
                          "--t-ms", "1", "--warmup-ms", "1", "--agree-ms", "1", "--modes",
                          "launch", "persistent", "--out", str(out)],
                         capture_output=True, text=True, timeout=900,
                         env={**os.environ, "NUMBA_ENABLE_CUDASIM": os.environ.get(
                             "NUMBA_ENABLE_CUDASIM", "0")})
    assert res.returncode == 0, res.stderr
    rows = json.loads(out.read_text())["runs"]
    assert [(r["model"], r["mode"]) for r in rows] == [
        (m, mode) for m in models for mode in ("launch", "persistent")]
    assert [r["network"] for r in rows[::2]] == ["microcircuit", "hcp", "random"]
    for r in rows:
        assert r["scale"] == 0.002 and r["neurons"] >= 100 and r["ns_per_neuron_step"] > 0
        assert set(r["kernel_ms_per_step"]) == ({"update", "deliver", "steps"}
                                                if r["mode"] == "launch"
                                                else {"persistent", "steps"})
        a = r["agreement"]
        assert a["t_ms"] == 1.0 and a["cpu_spikes"] == a["cuda_spikes"]
        assert a["identical"] and r["gpu_exact"]


def test_a_diverging_membrane_is_reported_like_on_cpu():
    """Issue 19: the V_m row is checked after every chunk on the device too."""
    from test_reliability import _runaway
    sim = _runaway("cuda", dtype="float64", **SMALL)
    with pytest.raises(brainsim.errors.DivergenceError, match="t = 100 ms.*'runaway'"):
        sim.run(100.0)
