"""Fast kernels against tests/reference.py on random inputs (float64).

Scalar updates are compared case by case; whole small networks simulated by
``brainsim.Simulation`` are compared with the reference network simulator
(identical spikes, V traces to 1e-12); the OU and Poisson inputs are checked
against their closed-form stationary statistics.
"""
import math

import numpy as np
import pytest
from numba import njit

import brainsim
import reference
from brainsim.kernels import inputs
from brainsim.kernels.loops import step_many
from brainsim.neurons import get_model, refractory_steps

IAF = get_model("iaf_psc_exp")
DTB = get_model("lif_dtb")

RTOL = 1e-12
Z = 5.0  # statistical bounds in standard errors


# ------------------------------------------------------- scalar updates
def _iaf_many(v, i_ex, i_in, ref, in_ex, in_in, i_cur, p, dt):
    state = {"V_m": v, "I_syn_ex": i_ex, "I_syn_in": i_in, "r": ref}
    out, spk = step_many(IAF, state, p, dt, in_ex, in_in, i_cur)
    return np.array([out["V_m"], out["I_syn_ex"], out["I_syn_in"], out["r"]]), spk


def _dtb_many(v, j4, ref, in_e, in_i, i_cur, p, dt):
    state = {"V_m": v, "r": ref, **{"J_" + ch: j4[k] for k, ch in enumerate(
        reference.DTB_CHANNELS)}}
    out, spk = step_many(DTB, state, p, dt, in_e, in_i, i_cur)
    return np.array([out["V_m"]] + [out["J_" + ch] for ch in reference.DTB_CHANNELS]
                    + [out["r"]]), spk


def _iaf_params(g, n):
    tau_m = g.uniform(2.0, 40.0, n)
    tau_ex = g.uniform(0.2, 10.0, n)
    tau_in = g.uniform(0.2, 10.0, n)
    # degenerate and nearly degenerate time constants
    tau_ex[:n // 8] = tau_m[:n // 8]
    tau_in[n // 8:n // 4] = tau_m[n // 8:n // 4] * (1 + g.choice([1e-12, 1e-9, 1e-6, 1e-3], n // 8))
    e_l = g.uniform(-80.0, -60.0, n)
    v_th = e_l + g.uniform(5.0, 25.0, n)
    return {"C_m": g.uniform(50.0, 500.0, n), "tau_m": tau_m, "t_ref": g.uniform(0.0, 5.0, n),
            "E_L": e_l, "V_reset": v_th - g.uniform(1.0, 20.0, n), "V_th": v_th,
            "tau_syn_ex": tau_ex, "tau_syn_in": tau_in, "I_e": g.uniform(-200.0, 800.0, n),
            "V_m": e_l}


@pytest.mark.parametrize("dt", [0.01, 0.1, 0.25, 1.0])
def test_iaf_update_matches_reference(dt):
    g = np.random.default_rng(int(dt * 100))
    n = 800
    p = _iaf_params(g, n)
    v = g.uniform(p["E_L"] - 20.0, p["V_th"] + 3.0)
    i_ex, i_in = g.uniform(0, 2000, n), g.uniform(-2000, 0, n)
    ref = g.choice([0, 0, 0, 1, 4], n).astype(np.int64)
    in_ex, in_in, i_cur = g.uniform(0, 500, n), g.uniform(-500, 0, n), g.normal(0, 200, n)
    out, spk = _iaf_many(v, i_ex, i_in, ref, in_ex, in_in, i_cur, p, dt)
    props = reference.iaf_propagators(p, dt)
    n_spk = 0
    for j in range(n):
        pj = {k: float(x[j]) for k, x in p.items()}
        want = reference.iaf_step(v[j], i_ex[j], i_in[j], int(ref[j]), in_ex[j], in_in[j], i_cur[j],
                                  pj, {k: float(x[j]) for k, x in props.items()},
                                  reference.refractory_steps(pj["t_ref"], dt))
        assert bool(spk[j]) == want[4], j
        assert out[3, j] == want[3], j
        np.testing.assert_allclose(out[:3, j], want[:3], rtol=RTOL, atol=1e-12, err_msg=str(pj))
        n_spk += want[4]
    assert 0.05 * n < n_spk < 0.95 * n  # both branches exercised


@pytest.mark.parametrize("dt", [0.1, 1.0])
def test_dtb_update_matches_reference(dt):
    g = np.random.default_rng(7 + int(dt))
    n = 800
    p = {"C_m": g.uniform(200.0, 2000.0, n), "t_ref": g.uniform(0.0, 5.0, n),
         "g_L": g.uniform(5.0, 50.0, n), "E_L": g.uniform(-80.0, -65.0, n),
         "V_th": g.uniform(-55.0, -45.0, n), "V_reset": g.uniform(-70.0, -56.0, n),
         "I_e": g.uniform(-100.0, 500.0, n), "V_m": np.full(n, -60.0)}
    for ch, e_rev in zip(reference.DTB_CHANNELS, (0.0, 0.0, -70.0, -100.0)):
        p["g_" + ch] = g.uniform(0.0, 50.0, n)
        p["E_" + ch] = e_rev + g.uniform(-5.0, 5.0, n)
        p["tau_" + ch] = g.uniform(1.0, 100.0, n)
    v = g.uniform(-80.0, -45.0, n)
    j4 = g.uniform(0.0, 3.0, (4, n))
    ref = g.choice([0, 0, 0, 1, 4], n).astype(np.int64)
    in_e, in_i, i_cur = g.uniform(0, 2, n), g.uniform(0, 2, n), g.normal(0, 100, n)
    out, spk = _dtb_many(v, j4, ref, in_e, in_i, i_cur, p, dt)
    n_spk = 0
    for j in range(n):
        pj = {k: float(x[j]) for k, x in p.items()}
        jd = dict(zip(reference.DTB_CHANNELS, j4[:, j]))
        v_r, j_r, r_r, s_r = reference.dtb_step(v[j], jd, int(ref[j]), in_e[j], in_i[j], i_cur[j],
                                                pj, dt, reference.refractory_steps(pj["t_ref"], dt))
        assert bool(spk[j]) == s_r and out[5, j] == r_r, j
        want = [v_r] + [j_r[ch] for ch in reference.DTB_CHANNELS]
        np.testing.assert_allclose(out[:5, j], want, rtol=RTOL, atol=1e-12, err_msg=str(pj))
        n_spk += s_r
    assert 0.05 * n < n_spk < 0.95 * n


def test_refractory_steps_round_t_ref():
    t_ref = np.array([0.0, 0.1, 0.25, 2.0, 2.04, 2.06, 5.0])
    want = [reference.refractory_steps(x, 0.1) for x in t_ref]
    assert list(refractory_steps(t_ref, 0.1)) == want == [0, 1, 2, 20, 20, 21, 50]


# --------------------------------------------------------- OU and Poisson
@njit
def _ou_series(n, mu, sigma, tau, dt, seed, neuron):
    dec = math.exp(-dt / tau)
    amp = sigma * math.sqrt(1.0 - dec * dec)
    out = np.empty(n)
    x = mu
    for t in range(n):
        x = inputs.ou_step(x, mu, dec, amp, seed, neuron, t)
        out[t] = x
    return out


def test_ou_step_matches_reference():
    mu, sigma, tau, dt = 50.0, 20.0, 5.0, 0.1
    x = _ou_series(500, mu, sigma, tau, dt, 3, 11)
    e, y = math.exp(-dt / tau), mu
    for t in range(500):
        xi = reference.normal(3, reference.STREAM_OU, 11, t, 0)
        y = y + (1 - e) * (mu - y) + sigma * math.sqrt(1 - e * e) * xi
        assert x[t] == pytest.approx(y, rel=RTOL)


def test_ou_time_series_statistics():
    # AR(1) with phi = exp(-dt/tau): stationary mean mu, sd sigma,
    # autocorrelation exp(-lag dt / tau); SEs for n correlated samples.
    mu, sigma, tau, dt = 50.0, 20.0, 5.0, 0.1
    x = _ou_series(1_000_000, mu, sigma, tau, dt, 5, 0)[int(20 * tau / dt):]
    n, phi = x.size, math.exp(-dt / tau)
    assert abs(x.mean() - mu) < Z * sigma * math.sqrt((1 + phi) / (1 - phi) / n)
    se_sd = sigma * math.sqrt((1 + phi**2) / (2 * (1 - phi**2) * n))
    assert abs(x.std() - sigma) < Z * se_sd
    lag = int(round(tau / dt))
    r = np.corrcoef(x[:-lag], x[lag:])[0, 1]
    p2k = phi ** (2 * lag)  # Bartlett's variance of the lag-k autocorrelation of an AR(1)
    se_r = math.sqrt(((1 + phi**2) * (1 - p2k) / (1 - phi**2) - 2 * lag * p2k) / n)
    assert abs(r - math.exp(-1.0)) < Z * se_r


def test_ou_input_ensemble_statistics():
    # many independent neurons, each with its own OU current: after 10 tau
    # the ensemble at one time has mean mu and sd sigma, and the correlation
    # of I_ou(T) with I_ou(T + tau) across neurons is exp(-1)
    n, mu, sigma, tau = 20000, 300.0, 80.0, 4.0
    net = brainsim.Network(dt=0.1, seed=1)
    net.add_population("P", n, params={"V_th": 1e6})
    net.add_ou("P", mean=mu, sigma=sigma, tau=tau)
    sim = brainsim.Simulation(net, seed=9, record={"spikes": False, "rates": False},
                              n_partitions=2)
    assert np.all(sim.I_ou == mu)  # starts at the mean
    sim.run(10 * tau)
    a = sim.I_ou.copy()
    sim.run(tau)
    b = sim.I_ou.copy()
    assert abs(a.mean() - mu) < Z * sigma / math.sqrt(n)
    assert abs(a.std() - sigma) < Z * sigma / math.sqrt(2 * n)
    r = np.corrcoef(a, b)[0, 1]
    assert abs(r - math.exp(-1.0)) < Z * (1 - math.exp(-2.0)) / math.sqrt(n)


@pytest.mark.parametrize("weight", [20.0, -35.0])
def test_poisson_input_stationary_current(weight):
    # shot noise through exponential PSCs: I = sum_k w N_k P11^(t-k), N_k ~ Poisson(lam)
    # has cumulants kappa_m = w^m lam / (1 - P11^m): mean w lam / (1 - P11),
    # variance w^2 lam / (1 - P11^2), excess kurtosis kappa_4 / kappa_2^2
    n, rate, tau_s, dt = 20000, 3000.0, 2.0, 0.1
    net = brainsim.Network(dt=dt, seed=1)
    net.add_population("P", n, params={"V_th": 1e6, "tau_syn_ex": tau_s, "tau_syn_in": tau_s})
    net.add_poisson("P", rate=rate, weight=weight, indegree=2)
    sim = brainsim.Simulation(net, seed=4, record={"spikes": False, "rates": False})
    sim.run(30.0)
    lam, p11 = 2 * rate * dt * 1e-3, math.exp(-dt / tau_s)
    row = 0 if weight > 0 else 1
    assert np.all(sim.S[1 - row] == 0.0)
    x = sim.S[row]
    sd = abs(weight) * math.sqrt(lam / (1 - p11**2))
    excess = (1 - p11**2) ** 2 / (lam * (1 - p11**4))
    assert abs(x.mean() - weight * lam / (1 - p11)) < Z * sd / math.sqrt(n)
    assert abs(x.std() - sd) < Z * sd * math.sqrt((2 + excess) / (4 * n))  # SE of a sample sd


# ------------------------------------------------------------ networks
def _spikes(ds, dt):
    steps = np.rint(ds.spike_time.values / dt).astype(np.int64) - 1
    return sorted(zip(steps.tolist(), ds.spike_neuron.values.tolist()))


def _net_iaf(n_partitions):
    net = brainsim.Network(dt=0.1, seed=11)
    net.add_population("E", 60, params={"I_e": 250.0, "tau_syn_ex": 1.5}, region="a")
    net.add_population("I", 20, kind="I", params={"tau_m": 8.0, "t_ref": 1.0}, region="a")
    net.add_population("E2", 30, params={"tau_syn_ex": 10.0, "tau_syn_in": 3.0, "C_m": 200.0},
                       region="b")
    net.connect("E", ["E", "I"], rule="fixed_indegree", indegree=8, allow_autapses=False,
                weight={"distribution": "normal", "mean": 40.0, "sd": 15.0},
                delay={"distribution": "normal", "mean": 1.0, "sd": 0.6})
    net.connect("I", ["E", "I", "E2"], rule="fixed_total_number", n=300, weight=-90.0, delay=0.4)
    net.connect("E2", "E", rule="pairwise_bernoulli", p=0.1, weight=60.0, delay=2.3)
    net.connect("E", "E2", rule="fixed_indegree", indegree=10, weight=35.0, delay=1.7)
    g = np.random.default_rng(5)
    net.set_property("E", "V_th", value=-55.0 + g.uniform(-2, 2, 60))  # per-neuron column
    pois = [dict(ids=net.select("E"), rate=900.0, weight=12.0, indegree=10, delay=0.5),
            dict(ids=net.select("I"), rate=4000.0, weight=-15.0, indegree=2, delay=0.1),
            dict(ids=net.select("E2")[:10], rate=8000.0, weight=30.0, indegree=3, delay=1.2)]
    ou = [dict(ids=net.select("E2"), mean=350.0, sigma=150.0, tau=3.0)]
    return _finish(net, pois, ou, n_partitions)


def _net_dtb(n_partitions):
    net = brainsim.Network(dt=1.0, seed=12)
    net.add_population("E", 64, model="lif_dtb", region="v1")
    net.add_population("I", 16, model="lif_dtb", kind="I", region="v1",
                       params={"t_ref": 2.0, "C_m": 500.0, "g_L": 25.0})
    net.add_population("E2", 40, model="lif_dtb", region="v2")
    w = {"distribution": "normal", "mean": 0.5, "sd": 0.3}
    net.connect("E", ["E", "I", "E2"], rule="fixed_indegree", indegree=12, weight=w,
                delay={"distribution": "normal", "mean": 2.0, "sd": 1.5})
    net.connect("I", ["E", "I"], rule="fixed_indegree", indegree=4, weight=w, delay=1.0)
    net.connect("E2", "E", rule="fixed_total_number", n=200, weight=0.8, delay=5.0)
    pois = [dict(ids=net.select("I"), rate=300.0, weight=0.3, indegree=10, delay=2.0)]
    ou = [dict(ids=net.select(["E", "I"]), mean=700.0, sigma=200.0, tau=10.0),
          dict(ids=net.select("E2"), mean=760.0, sigma=80.0, tau=5.0)]
    return _finish(net, pois, ou, n_partitions)


def _net_mixed(n_partitions):
    net = brainsim.Network(dt=0.1, seed=13)
    net.add_population("E", 50, params={"I_e": 300.0}, region="a")
    net.add_population("I", 15, kind="I", region="a")
    net.add_population("D", 40, model="lif_dtb", region="b",
                       params={"g_AMPA": 40.0, "g_GABA_A": 60.0})
    net.add_population("DI", 10, model="lif_dtb", kind="I", region="b")
    net.connect("E", ["E", "I"], rule="fixed_indegree", indegree=6, weight=45.0,
                delay={"distribution": "normal", "mean": 1.2, "sd": 0.5})
    net.connect("E", ["D", "DI"], rule="fixed_indegree", indegree=6, weight=0.4, delay=2.0)
    net.connect("I", ["E", "I"], rule="fixed_indegree", indegree=4, weight=-70.0, delay=0.8)
    net.connect("I", "D", rule="pairwise_bernoulli", p=0.3, weight=0.6, delay=0.3)
    net.connect("D", "E", rule="fixed_indegree", indegree=3, weight=30.0, delay=1.5)
    net.connect("DI", ["E", "I"], rule="fixed_indegree", indegree=2, weight=-40.0, delay=0.6)
    net.connect("DI", "D", rule="fixed_indegree", indegree=3, weight=0.7, delay=1.1)
    pois = [dict(ids=net.select("E"), rate=2000.0, weight=10.0, indegree=5, delay=0.2),
            dict(ids=net.select("D"), rate=1500.0, weight=0.5, indegree=2, delay=0.7)]
    ou = [dict(ids=net.select(["I", "D", "DI"]), mean=300.0, sigma=200.0, tau=2.0)]
    net.set_property("D", "I_e", value=450.0)
    net.set_property("DI", "I_ext", value=700.0)
    return _finish(net, pois, ou, n_partitions)


def _net_dense(n_partitions):
    """Explicit all_to_all weight and delay arrays: the reference takes the
    synapse list from this specification, not from the built CSR."""
    dt = 0.1
    net = brainsim.Network(dt=dt, seed=14)
    sizes = {"A": 30, "B": 10, "C": 20}
    net.add_population("A", 30, params={"I_e": 450.0}, region="x")
    net.add_population("B", 10, kind="I", region="x")
    net.add_population("C", 20, model="lif_dtb", region="y", params={"I_e": 800.0})
    g = np.random.default_rng(3)
    net.set_property("A", "V_m", value=g.uniform(-70.0, -56.0, 30))
    syn = []
    for pre, post, sign in [("A", "A", 1), ("A", "B", 1), ("B", "A", -1), ("A", "C", 1),
                            ("C", "A", 1), ("B", "C", 1), ("A", "A", 1)]:
        a, b = net.population(pre), net.population(post)
        m = sizes[pre] * sizes[post]
        scale = 1.0 if b.model == "lif_dtb" else 60.0
        w = sign * scale * g.uniform(0, 1, m) * (g.uniform(0, 1, m) < 0.15)
        d = dt * g.integers(1, 30, m)
        net.connect(pre, post, rule="all_to_all", weight=w, delay=d)
        tgt, src = np.divmod(np.arange(m), sizes[pre])  # NEST's all_to_all order
        syn += [(a.start + s, b.start + t, float(np.float32(wk)), int(round(dk / dt)))
                for s, t, wk, dk in zip(src, tgt, w, d)]
    syn.sort(key=lambda x: x[0])  # stable: creation order within a source
    pois = [dict(ids=net.select("B"), rate=5000.0, weight=40.0, delay=0.3)]
    return _finish(net, pois, [], n_partitions) + (syn,)


def _finish(net, pois, ou, n_partitions):
    for spec in pois:
        net.add_poisson(spec["ids"], spec["rate"], spec["weight"], spec.get("indegree", 1),
                        spec.get("delay"))
    for spec in ou:
        net.add_ou(spec["ids"], spec["mean"], spec["sigma"], spec["tau"])
    net.build(n_partitions)
    return net, pois, ou


NETWORKS = {"iaf": (_net_iaf, 300), "dtb": (_net_dtb, 120), "mixed": (_net_mixed, 300),
            "dense": (_net_dense, 300)}


@pytest.fixture(scope="module", params=list(NETWORKS))
def reference_run(request):
    """The reference simulation of one test network (computed once)."""
    make, n_steps = NETWORKS[request.param]
    net, pois, ou, *syn = make(1)
    ids = np.arange(net.n_neurons)
    spikes, v, state = reference.simulate(net, n_steps, 17, pois, ou, ids,
                                          synapses=syn[0] if syn else None)
    return request.param, n_steps, spikes, v, state


@pytest.mark.parametrize("n_partitions", [1, 3])
def test_network_matches_reference(reference_run, n_partitions):
    name, n_steps, spikes, v, state = reference_run
    make = NETWORKS[name][0]
    net = make(n_partitions)[0]
    dt = net.dt
    sim = brainsim.Simulation(net, seed=17, dtype="float64", n_partitions=n_partitions,
                              record={"V_m": np.arange(net.n_neurons)})
    half = n_steps // 2
    ds1 = sim.run(half * dt)  # two runs: the state and ring buffer carry over
    ds2 = sim.run((n_steps - half) * dt)
    got = _spikes(ds1, dt) + _spikes(ds2, dt)
    assert len(spikes) > n_steps // 10, "test network too quiet to be a test"
    assert len({i for _, i in spikes}) > net.n_neurons // 4
    assert got == sorted(spikes)
    vm = np.concatenate([ds1.V_m.values, ds2.V_m.values])
    np.testing.assert_allclose(vm, v, rtol=RTOL, atol=1e-12)
    np.testing.assert_array_equal(sim.get_state("r"), state["ref"])
    np.testing.assert_allclose(sim.I_ou, state["I_ou"], rtol=RTOL, atol=1e-12)
    for i, s in enumerate(state["syn"]):
        want = s if isinstance(s, list) else [s[ch] for ch in reference.DTB_CHANNELS]
        np.testing.assert_allclose(sim.S[:len(want), i], want, rtol=RTOL, atol=1e-12)


def test_dense_network_csr_holds_every_synapse():
    for k in (1, 3):
        net, _, _, syn = _net_dense(k)
        assert sorted(reference.synapse_list(net)) == sorted(syn)
