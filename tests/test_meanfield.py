"""Mean-field (Siegert + Fourcaud-Brunel) rates: closed forms, a direct
quadrature, a simulation and the published microcircuit rates."""
import math

import numpy as np
import pytest
from scipy import integrate, optimize, special

import brainsim
from brainsim.analysis import meanfield as mf
from brainsim.errors import ParameterError
from brainsim.generation import potjans_diesmann as mc

NEURON = {"C_m": 250.0, "tau_m": 10.0, "tau_syn_ex": 0.5, "tau_syn_in": 0.5, "t_ref": 2.0,
          "E_L": -65.0, "V_reset": -65.0, "V_th": -50.0}


def siegert_ref(mu, sigma, tau_m, tau_s, v_th, v_r, t_ref):
    """Slow reference (Hz): the Siegert integral of exp(u^2) (1 + erf u),
    written exp(u^2) erfc(-u) so that 1 + erf(u) does not cancel for u << 0,
    by adaptive quadrature, with the Fourcaud-Brunel shift written out."""
    shift = abs(special.zeta(0.5)) / math.sqrt(2) * math.sqrt(tau_s / tau_m)
    y_th = (v_th - mu) / sigma + shift
    y_r = (v_r - mu) / sigma + shift
    def f(u):
        return math.exp(u * u) * special.erfc(-u)

    integral = integrate.quad(f, y_r, y_th, points=[0.0] if y_r < 0 < y_th else None,
                              epsabs=0.0, epsrel=1e-13, limit=500)[0]
    return 1e3 / (t_ref + tau_m * math.sqrt(math.pi) * integral)


def test_fourcaud_brunel_constant():
    assert mf.FB_SHIFT == pytest.approx(abs(special.zeta(0.5)) / math.sqrt(2), rel=1e-14)
    assert mf.FB_SHIFT == pytest.approx(1.0326, abs=1e-4)


@pytest.mark.parametrize("mu", [-49.0, -45.0, -30.0])
def test_vanishing_noise_gives_deterministic_lif_rate(mu):
    exact = 1e3 / (2.0 + 10.0 * math.log((mu + 65.0) / (mu + 50.0)))
    for sigma, rel in ((1e-2, 2e-3), (1e-4, 2e-5)):
        got = mf.siegert(mu, sigma, 10.0, 0.5, -50.0, -65.0, 2.0)
        assert got == pytest.approx(exact, rel=rel)
    assert mf.siegert(mu, 0.0, 10.0, 0.5, -50.0, -65.0, 2.0) == pytest.approx(exact, rel=1e-14)


def test_subthreshold_without_noise_is_silent():
    assert mf.siegert(-52.0, 0.0, 10.0, 0.5, -50.0, -65.0, 2.0) == 0.0
    assert mf.siegert(-52.0, 0.05, 10.0, 0.5, -50.0, -65.0, 2.0) < 1e-100
    assert mf.siegert(-70.0, 1e-3, 10.0, 0.5, -50.0, -65.0, 2.0) == 0.0  # exp overflow -> 0


@pytest.mark.parametrize("mu,sigma,tau_s", [(-55.0, 5.0, 0.5), (-50.0, 2.0, 0.5),
                                            (-60.0, 3.0, 2.0), (-40.0, 4.0, 0.0),
                                            (-58.0, 1.5, 0.5), (-64.0, 10.0, 5.0)])
def test_siegert_matches_direct_quadrature(mu, sigma, tau_s):
    ref = siegert_ref(mu, sigma, 10.0, tau_s, -50.0, -65.0, 2.0)
    assert mf.siegert(mu, sigma, 10.0, tau_s, -50.0, -65.0, 2.0) == pytest.approx(ref, rel=1e-8)


def single_population(K=200.0, J=87.81, lam_ext=20000.0, I_e=-400.0, kind="E"):
    return mf.PopulationModel(names=["P"], K=[[K]], J=[[J if kind == "E" else -J]],
                              kinds=[kind], neuron=NEURON, ext_rate=[lam_ext],
                              ext_weight=[87.81], I_e=[I_e])


@pytest.mark.parametrize("kind", ["E", "I"])
def test_single_population_fixed_point_matches_direct_integration(kind):
    """Solve nu = Phi(nu) with the reference Siegert and mu, sigma written by hand."""
    K, J, lam = 50.0 if kind == "E" else 500.0, 87.81, 20000.0
    I_e = -600.0 if kind == "E" else -400.0
    sgn = 1.0 if kind == "E" else -1.0
    tau_s, tau_m, c_m = 0.5, 10.0, 250.0

    def phi(nu):
        mean = K * nu * sgn * J + lam * 87.81  # pA / s, charge per time / tau_s
        mu = -65.0 + tau_m / c_m * (I_e + 1e-3 * tau_s * mean)
        var = tau_m * 1e-3 * (K * nu + lam) * (J * tau_s / c_m) ** 2
        return siegert_ref(mu, math.sqrt(var), tau_m, tau_s, -50.0, -65.0, 2.0)

    ref = optimize.brentq(lambda nu: phi(nu) - nu, 1e-6, 100.0, xtol=1e-12)
    got = mf.fixed_point(single_population(K, J, lam, I_e, kind))
    assert 0.5 < ref < 100.0
    assert got.values[0] == pytest.approx(ref, rel=1e-7)
    assert got.attrs["converged"] and got.attrs["residual"] < 1e-6


def poisson_driven(mu, sigma, tau_s, n=400, t_ms=2000.0):
    """Unconnected neurons with one Poisson input (weight 87.81 pA) and a DC
    chosen so that the diffusion approximation has mean mu and sd sigma."""
    w = 87.81
    jump = w * tau_s / 250.0  # mV, charge / C_m
    lam = sigma ** 2 / (10.0 * jump ** 2 * 1e-3)  # Hz
    i_e = (mu + 65.0) * 25.0 - lam * 1e-3 * w * tau_s
    params = {**NEURON, "tau_syn_ex": tau_s, "tau_syn_in": tau_s, "I_e": i_e, "V_m": -65.0}
    net = brainsim.Network(dt=0.1, seed=0)
    net.add_population("P", n, params=params)
    net.add_poisson("P", rate=lam, weight=w)
    sim = brainsim.Simulation(net, seed=3, record={"spikes": False}, threads=1)
    sim.run(200.0)
    return net, float(sim.run(t_ms).rate.mean())


@pytest.mark.parametrize("mu,sigma,tau_s,tol", [(-54.0, 5.0, 0.5, 0.05), (-52.0, 3.0, 0.5, 0.05),
                                                (-47.0, 2.0, 0.5, 0.05),
                                                (-54.0, 5.0, 2.0, 0.08)])
def test_siegert_against_simulation(mu, sigma, tau_s, tol):
    """Rates of 400 independent neurons over 2 s (800 neuron-seconds: a
    Poisson count error of 1-3.5 % at 16-50 Hz) against the corrected
    Siegert rate. The Fourcaud-Brunel correction is first order in
    sqrt(tau_s / tau_m); measured residual errors: 1-2 % at tau_s/tau_m =
    0.05 and 2-4 % at 0.2, so tol = 5 % (8 %) leaves room for the counting
    error. The plain Siegert rate (delta synapses) is 6-90 % off and must
    be worse."""
    net, simulated = poisson_driven(mu, sigma, tau_s)
    model = mf.from_network(net)
    m, s, _ = mf.input_moments(model, [0.0])
    assert m[0] == pytest.approx(mu, abs=1e-9) and s[0] == pytest.approx(sigma, rel=1e-9)
    corrected = mf.transfer(model, [0.0])[0]
    plain = mf.siegert(mu, sigma, 10.0, 0.0, -50.0, -65.0, 2.0)
    assert abs(corrected - simulated) <= tol * simulated
    assert abs(corrected - simulated) < abs(plain - simulated)


def test_microcircuit_fixed_point_near_published_rates():
    """Mean field of the full-scale microcircuit (Poisson input) against the
    published simulated rates (reference/pd14.md). Mean-field theory ignores
    correlations and shot noise, so it is a ballpark: every population
    within 0.5 spikes/s (measured: at most 0.42, L5E) and the population
    mean within 5 % (measured 2.3 %). All populations are active and keep
    the published order L23E < L6E < L23I < L4E < L4I < L5E, L6I < L5I."""
    published = np.array([0.903, 2.965, 4.414, 5.876, 7.569, 8.633, 1.105, 7.829])
    rates = mf.fixed_point(mf.from_microcircuit(1.0))
    assert rates.attrs["converged"]
    np.testing.assert_allclose(rates.values, published, atol=0.5)
    assert rates.values.mean() == pytest.approx(published.mean(), rel=0.05)
    order = [0, 6, 1, 2, 3, 4, 5]
    assert np.all(np.diff(rates.values[order]) > 0)
    assert rates.attrs["units"] == "Hz" and rates.attrs["long_name"]
    assert list(rates.population.values) == list(mc.POPULATIONS)
    assert rates.mu.attrs["units"] == "mV" and rates.sigma.attrs["units"] == "mV"


def test_microcircuit_model_keeps_mean_input_when_scaled():
    full = mf.from_microcircuit(1.0)
    small = mf.from_microcircuit(0.1, k_scale=0.1)
    mu_full, sig_full, _ = mf.input_moments(full, mc.FULL_RATES)
    mu_small, sig_small, _ = mf.input_moments(small, mc.FULL_RATES)
    np.testing.assert_allclose(mu_small, mu_full, atol=1e-9)
    np.testing.assert_allclose(sig_small, sig_full, rtol=0.02)  # in-degree rounding only


def test_from_network_reproduces_microcircuit_definition():
    net = mc.microcircuit(scale=0.02, input="poisson", seed=4)
    model = mf.from_network(net)
    n = np.maximum(np.round(mc.N_FULL * 0.02), 1)
    n_syn = np.round(mc.full_synapse_numbers() / mc.N_FULL[:, None] * n[:, None] * 0.02)
    np.testing.assert_allclose(model.K, n_syn / n[:, None], rtol=1e-12)
    w = mc.mean_psc_matrix() / np.sqrt(0.02)
    ok = n_syn > 200  # sample mean of normal weights (sd 10 %): within 5 sd of the mean
    np.testing.assert_allclose(model.J[ok], w[ok], rtol=5 * 0.1 / np.sqrt(200))
    np.testing.assert_allclose(model.ext_rate, np.round(mc.K_EXT * 0.02) * 8.0)
    np.testing.assert_allclose(model.ext_weight, 87.81 / np.sqrt(0.02))
    i_e = [p.params["I_e"] for p in net.populations.values()]
    np.testing.assert_allclose(model.I_e, i_e)
    rates = mf.fixed_point(net)
    assert np.all(np.isfinite(rates.values)) and rates.attrs["converged"]


def test_population_model_rejects_bad_input():
    with pytest.raises(ParameterError, match="K must have shape"):
        mf.PopulationModel(names=["a", "b"], K=np.ones((3, 3)), J=np.ones((2, 2)),
                           kinds=["E", "I"], neuron=NEURON)
    with pytest.raises(ParameterError, match="K and ext_rate must be >= 0"):
        mf.PopulationModel(names=["a"], K=[[-1.0]], J=[[1.0]], kinds=["E"], neuron=NEURON)
    with pytest.raises(ParameterError, match="kinds"):
        mf.PopulationModel(names=["a"], K=[[1.0]], J=[[1.0]], kinds=["X"], neuron=NEURON)
    with pytest.raises(ParameterError, match="missing \\['tau_m'\\]"):
        bad = {k: v for k, v in NEURON.items() if k != "tau_m"}
        mf.PopulationModel(names=["a"], K=[[1.0]], J=[[1.0]], kinds=["E"], neuron=bad)
    with pytest.raises(ParameterError, match="sigma >= 0"):
        mf.siegert(-55.0, -1.0, 10.0, 0.5, -50.0, -65.0, 2.0)
    with pytest.raises(ParameterError, match="damping"):
        mf.fixed_point(single_population(), damping=0.0)
    with pytest.raises(ParameterError, match="PopulationModel, a Network"):
        mf.fixed_point("microcircuit")


def test_from_network_rejects_other_models_and_ou():
    net = brainsim.Network()
    net.add_population("D", 10, model="lif_dtb")
    with pytest.raises(ParameterError, match="iaf_psc_exp only"):
        mf.from_network(net)
    net = brainsim.Network()
    net.add_population("P", 10)
    net.add_ou("P", mean=100.0, sigma=10.0, tau=5.0)
    with pytest.raises(ParameterError, match="Ornstein-Uhlenbeck"):
        mf.from_network(net)
