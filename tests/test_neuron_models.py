"""The model layer: descriptions, registration errors, a user-defined model
against its own reference, generated parameter checks, spike generators, and
the Simulation features that came with the engine split (state access,
retention of records, a network store path as input)."""
import math
import subprocess
import sys

import numpy as np
import pytest

import brainsim
import reference
import user_models
from brainsim.errors import ModelDefinitionError, ParameterError, UnknownNameError
from brainsim.neurons import (NeuronModel, Parameter, Receptor, StateVar, get_model,
                              neuron_model, register)

QIF = get_model(user_models.NAME)
PSC = {"E": Receptor("ex", "pA", +1), "I": Receptor("in", "pA", -1)}


def _step(s, p, in_ex, in_in, i_ext, u):
    v = s.V_m + p.a
    return (v,), v > 0.0


def _model(name="m_ok", **kw):
    spec = dict(parameters=[Parameter("a", 1.0, "mV", "any")],
                state=[StateVar("V_m", "mV", 0.0)], receptors=PSC, step=_step)
    spec.update(kw)
    return NeuronModel(name, **spec)


# ------------------------------------------------------------ registration
@pytest.mark.parametrize("kw, field", [
    ({"step": None}, "step"),
    ({"parameters": [Parameter("a", 1.0, "parsec")]}, "parameter 'a'"),
    ({"parameters": [Parameter("a", None, "mV")]}, "parameter 'a'"),
    ({"parameters": [Parameter("a", -1.0, "mV", "> 0")]}, "parameter 'a'"),
    ({"parameters": [Parameter("a", 1.0, "mV", "between 0 and 1")]}, "parameter 'a'"),
    ({"state": [StateVar("V_m", "volts")]}, "state variable 'V_m'"),
    ({"state": [StateVar("V_m", "mV", "b")]}, "state variable 'V_m'"),
    ({"membrane": "V"}, "membrane"),
    ({"receptors": {"E": PSC["E"]}}, "receptors"),
    ({"receptors": {"E": PSC["E"], "I": Receptor("in", "pA", 0)}}, "receptors['I']"),
    ({"step": lambda s, p: ((s.V_m,), False)}, "step"),
    ({"derived": lambda p, dt: {"a": p["a"]}}, "derived"),
    ({"derived": lambda p, dt: p["nope"]}, "derived"),
    ({"constraints": [("a", "<", "nope")]}, "constraints"),
])
def test_bad_descriptions_name_the_model_and_the_field(kw, field):
    with pytest.raises(ModelDefinitionError) as err:
        _model("m_bad", **kw)
    assert "m_bad" in str(err.value) and field in str(err.value)


def _python_only(x):
    return x


def _uncompilable(s, p, in_ex, in_in, i_ext, u):
    return (_python_only(s.V_m),), False  # a plain Python function: Numba cannot call it


def _too_few(s, p, in_ex, in_in, i_ext, u):
    return (s.V_m,), False


def test_register_compiles_the_step_and_checks_what_it_returns():
    with pytest.raises(ModelDefinitionError, match="m_nocompile.*Numba cannot compile"):
        register(_model("m_nocompile", step=_uncompilable))
    two = [StateVar("V_m", "mV", 0.0), StateVar("w", "pA", 0.0)]
    with pytest.raises(ModelDefinitionError, match="m_short.*returns 1 state values.*2"):
        register(_model("m_short", step=_too_few, state=two))
    with pytest.raises(UnknownNameError):
        get_model("m_short")  # nothing was registered


def test_register_refuses_builtins_and_silent_replacement():
    with pytest.raises(ModelDefinitionError, match="built in"):
        register(_model("iaf_psc_exp"))
    first = register(_model("m_twice"))
    with pytest.raises(ModelDefinitionError, match="replace=True"):
        register(_model("m_twice"))
    second = register(_model("m_twice"), replace=True)
    assert get_model("m_twice") is second is not first
    with pytest.raises(UnknownNameError, match="not registered"):
        get_model(_model("m_unregistered"))
    with pytest.raises(UnknownNameError, match="model must be one of"):
        brainsim.Network().add_population("X", 1, model="no_such_model")


def test_fingerprint_follows_the_code_and_is_stable_across_processes(tmp_path):
    def other(s, p, in_ex, in_in, i_ext, u):
        v = s.V_m + 2.0 * p.a
        return (v,), v > 0.0
    assert _model("m_fp").fingerprint() == _model("m_fp").fingerprint()
    assert _model("m_fp").fingerprint() != _model("m_fp", step=other).fingerprint()
    code = ("import brainsim.neurons as n; print(n.get_model('lif_dtb').fingerprint())")
    # cwd away from the repository root, where `python -c` would import the
    # source folder brainsim/ (without kernels/) instead of the installed package
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, cwd=tmp_path).stdout for _ in range(2)}
    assert runs == {get_model("lif_dtb").fingerprint() + "\n"}


# ---------------------------------------------------- generated checks
def test_parameter_errors_come_from_the_table():
    net = brainsim.Network()
    with pytest.raises(ParameterError, match=r"iaf_psc_exp parameter tau_m must be > 0 ms, "
                                             r"got -1\.0"):
        net.add_population("A", 1, params={"tau_m": -1.0})
    with pytest.raises(ParameterError, match=r"V_reset must be < V_th \(-55\.0 mV\)"):
        net.add_population("A", 1, params={"V_reset": -50.0})
    with pytest.raises(UnknownNameError, match="allowed: C_m, tau_m"):
        net.add_population("A", 1, params={"tau": 1.0})
    with pytest.raises(ParameterError, match=f"{QIF.name} parameter C_m must be > 0 pF"):
        net.add_population("Q", 1, model=QIF.name, params={"C_m": 0.0})
    net.add_population("Q", 2, model=QIF.name)
    with pytest.raises(ParameterError, match="tau_syn must be > 0 ms"):
        net.set_property("Q", "tau_syn", value=np.array([1.0, -1.0]))
    # defaults, units and docs are the same table
    assert QIF.defaults["k"] == 0.7 and QIF.units["k"] == "nS/mV"
    assert get_model("iaf_psc_exp").units["C_m"] == "pF"


# -------------------------------------------------- user model vs reference
QIF_REF = {"params": list(QIF.param_names),
           "init": lambda p: [p["V_m"], 0.0, 0.0],
           "step": lambda st, e, i, c, p, dt: _ref_qif(st, e, i, c, p, dt)}


def _ref_qif(state, in_e, in_i, i_cur, p, dt):
    v, a, b, sp = reference.qif_step(state[0], state[1], state[2], in_e, in_i, i_cur, p, dt)
    return [v, a, b], sp


def _qif_network(seed=3):
    net = brainsim.Network(dt=0.1, seed=seed)
    net.add_population("QE", 60, model=QIF.name, params={"I_e": 220.0})
    net.add_population("QI", 20, model=QIF.name, kind="I", params={"I_e": 160.0, "k": 0.9})
    net.add_population("L", 20, params={"I_e": 420.0})  # iaf_psc_exp beside it
    net.connect(["QE", "L"], ["QE", "QI", "L"], rule="fixed_indegree", indegree=8,
                weight={"distribution": "normal", "mean": 40.0, "sd": 10.0},
                delay={"distribution": "normal", "mean": 1.5, "sd": 0.4})
    net.connect("QI", ["QE", "QI", "L"], rule="fixed_indegree", indegree=4, weight=-60.0,
                delay=0.8)
    net.add_poisson("QE", rate=400.0, weight=30.0)
    return net


@pytest.mark.parametrize("parts", [1, 3])
def test_user_model_network_matches_the_reference_simulator(parts):
    net = _qif_network()
    sim = brainsim.Simulation(net, seed=5, n_partitions=parts,
                              record={"V_m": np.arange(net.n_neurons)})
    ds = [sim.run(20.0), sim.run(15.0)]
    n_steps = 350
    poisson = [{"ids": net.select("QE"), "rate": 400.0, "weight": 30.0}]
    spikes, v, _ = reference.simulate(net, n_steps, 5, poisson_inputs=poisson,
                                      record_v=np.arange(net.n_neurons), models={
                                          QIF.name: QIF_REF})
    got = sorted((int(round(t / 0.1)) - 1, int(i)) for d in ds
                 for t, i in zip(d.spike_time.values, d.spike_neuron.values))
    assert len(spikes) > 100 and {i for _, i in spikes} & set(net.select("QI"))
    assert got == sorted(spikes)
    vm = np.concatenate([d.V_m.values for d in ds])
    np.testing.assert_allclose(vm, v, rtol=1e-12, atol=1e-9)


def test_user_model_single_neuron_dc_and_spike_train():
    dt = 0.1
    net = brainsim.Network(dt=dt)
    net.add_population("Q", 1, model=QIF.name, params={"I_e": 50.0})
    net.add_spike_generator("GE", [2.0, 2.5, 7.0, 7.1, 7.2, 30.0], kind="E")
    net.add_spike_generator("GI", [12.0, 40.0], kind="I")
    net.connect("GE", "Q", rule="all_to_all", weight=400.0, delay=1.0)
    net.connect("GI", "Q", rule="all_to_all", weight=-300.0, delay=0.5)
    sim = brainsim.Simulation(net, record={"V_m": "Q", "spikes": "Q", "rates": False})
    ds1 = sim.run(20.0)
    sim.set_property("Q", "I_e", value=160.0)  # a DC step
    ds2 = sim.run(40.0)
    # the reference, written from the equations, with the same arrival steps
    p = dict(QIF.defaults, I_e=50.0)
    arrive_e = {round(t / dt) - 1 + 10 for t in [2.0, 2.5, 7.0, 7.1, 7.2, 30.0]}
    arrive_i = {round(t / dt) - 1 + 5 for t in [12.0, 40.0]}
    v, a, b, vs, spk = p["V_m"], 0.0, 0.0, [], []
    for k in range(600):
        if k == 200:
            p["I_e"] = 160.0
        v, a, b, sp = reference.qif_step(v, a, b, 400.0 * (k in arrive_e),
                                         -300.0 * (k in arrive_i), 0.0, p, dt)
        vs.append(v)
        if sp:
            spk.append(round((k + 1) * dt, 10))
    got = np.concatenate([ds1.spike_time.values, ds2.spike_time.values])
    assert len(spk) >= 2
    np.testing.assert_allclose(got, spk, rtol=0, atol=1e-9)
    vm = np.concatenate([ds1.V_m.values[:, 0], ds2.V_m.values[:, 0]])
    np.testing.assert_allclose(vm, vs, rtol=1e-12, atol=1e-9)


# ----------------------------------------------------------- generators
def test_spike_generator_plays_its_times_like_nests():
    net = brainsim.Network(dt=0.1)
    net.add_spike_generator("G", [0.5, 1.0, 1.0, 3.2])
    net.add_population("T", 1, params={"V_th": 1e6})
    net.connect("G", "T", rule="all_to_all", weight=10.0, delay=1.0)
    sim = brainsim.Simulation(net, record={"rates": False})
    ds = sim.run(6.0)
    np.testing.assert_allclose(ds.spike_time.values, [0.5, 1.0, 1.0, 3.2])
    assert list(ds.spike_neuron.values) == [0, 1, 2, 3]
    # arrival: the step ending at t + delay takes the weight (two spikes at 2.0 ms)
    assert sim.get_state("I_syn_ex", "T")[0] > 0
    for bad in ([], [0.0], [0.05], [1.0, np.nan], "1.0"):
        with pytest.raises(ParameterError, match="spike_times"):
            brainsim.Network(dt=0.1).add_spike_generator("G", bad)


# ------------------------------------------------------- state and inputs
def test_poisson_weight_is_checked_for_every_selected_population():
    net = brainsim.Network()
    net.add_population("A", 5)
    net.add_population("D", 5, model="lif_dtb")
    net.add_population("B", 5)
    with pytest.raises(ParameterError, match="'D' \\(lif_dtb\\)"):
        net.add_poisson(np.arange(15), rate=10.0, weight=-5.0)  # D is in the middle
    net.add_poisson(["A", "B"], rate=10.0, weight=-5.0)


def test_set_property_on_v_m_sets_the_running_state_like_nests_setstatus():
    net = brainsim.Network(dt=0.1)
    net.add_population("N", 3, params={"I_e": 0.0})
    sim = brainsim.Simulation(net, record={"V_m": "N", "rates": False})
    sim.run(1.0)
    net.set_property(np.array([1]), "V_m", value=-60.0)  # on the network, as NEST users do
    ds = sim.run(0.1)
    # one step from -60 mV towards E_L = -70 mV
    want = -70.0 + 10.0 * math.exp(-0.1 / 10.0)
    assert ds.V_m.values[0, 1] == pytest.approx(want, rel=1e-12)
    assert ds.V_m.values[0, 0] == -70.0
    sim.set_state("N", "V_m", np.array([-65.0, -66.0, -67.0]))  # the state directly, now
    np.testing.assert_array_equal(sim.get_state("V_m"), [-65.0, -66.0, -67.0])
    with pytest.raises(ParameterError, match="state variable must be one of"):
        sim.get_state("V")


def test_state_of_mixed_models_reads_nan_where_a_model_lacks_the_variable():
    net = brainsim.Network()
    net.add_population("A", 2)
    net.add_population("D", 3, model="lif_dtb")
    sim = brainsim.Simulation(net)
    assert sim.state_names[:4] == ["V_m", "I_syn_ex", "I_syn_in", "r"]
    j = sim.get_state("J_NMDA")
    assert np.isnan(j[:2]).all() and (j[2:] == 0).all()
    np.testing.assert_array_equal(sim.get_state("V_m"), [-70.0] * 2 + [-57.5] * 3)


# ------------------------------------------------------------ simulation
def test_simulation_takes_a_network_store_path(tmp_path):
    net = _qif_network()
    net.save(tmp_path / "net.zarr")
    a = brainsim.Simulation(net, seed=2).run(10.0)
    b = brainsim.Simulation(str(tmp_path / "net.zarr"), seed=2).run(10.0)
    np.testing.assert_array_equal(a.spike_neuron.values, b.spike_neuron.values)
    with pytest.raises(ParameterError, match="net must be a brainsim Network or the path"):
        brainsim.Simulation(42)
    with pytest.raises(brainsim.StoreNotFoundError):
        brainsim.Simulation(str(tmp_path / "missing.zarr"))


def test_keep_memory_aggregate_and_bad_choices(tmp_path):
    net = _qif_network()
    mem = brainsim.Simulation(net, seed=4, keep="memory")
    agg = brainsim.Simulation(net, seed=4, keep="aggregate")
    runs = [(mem.run(10.0), agg.run(10.0)) for _ in range(3)]
    for a, b in runs:  # run() returns its interval either way
        np.testing.assert_array_equal(a.spike_neuron.values, b.spike_neuron.values)
    whole = mem.results()
    assert whole.sizes["time"] == 30 and float(whole.spike_time.max()) <= 30.0
    spikes = np.concatenate([a.spike_neuron.values for a, _ in runs])
    np.testing.assert_array_equal(whole.spike_neuron.values, spikes)
    tot = agg.results()
    np.testing.assert_array_equal(tot.spike_count.values,
                                  np.bincount(spikes, minlength=net.n_neurons))
    assert tot.attrs["t_total"] == pytest.approx(30.0)
    pop = net.pop_index()[spikes]
    want = np.bincount(pop, minlength=3) / (np.array([60, 20, 20]) * 0.03)
    np.testing.assert_allclose(tot.rate.values, want)
    assert tot.rate.attrs["units"] == "Hz"
    with pytest.raises(ParameterError, match="keep must be one of"):
        brainsim.Simulation(net, keep="all")
    with pytest.raises(ParameterError, match="use keep='store'"):
        brainsim.Simulation(net, keep="aggregate", store=str(tmp_path / "r.zarr"))
    with pytest.raises(ParameterError, match="backend 'cpu' takes no options"):
        brainsim.Simulation(net, device=0)


def test_network_of_three_models_runs_the_same_on_any_partitioning():
    """AdEx excitatory, iaf_cond_exp inhibitory and the user-defined QIF in one
    network: every weight in its target receptor's units and sign, every
    population active, the same spikes for 1 and 3 partitions."""
    net = brainsim.Network(dt=0.1, seed=5)
    net.add_population("E", 80, model="aeif_cond_exp", params={"t_ref": 2.0, "I_e": 700.0})
    net.add_population("I", 20, model="iaf_cond_exp", kind="I", params={"I_e": 300.0})
    net.add_population("Q", 40, model=QIF.name, params={"I_e": 150.0})
    net.connect(["E", "Q"], ["E", "I"], rule="fixed_indegree", indegree=10, weight=2.0,
                delay=1.5)  # nS
    net.connect("I", ["E", "I"], rule="fixed_indegree", indegree=5, weight=-6.0, delay=1.0)
    net.connect("E", "Q", rule="fixed_indegree", indegree=10, weight=40.0, delay=1.5)  # pA
    net.connect("I", "Q", rule="fixed_indegree", indegree=5, weight=-60.0, delay=1.0)
    with pytest.raises(ParameterError, match="onto iaf_cond_exp"):
        net.connect("I", "I", rule="one_to_one", weight=6.0)  # conductance sign: NEST's
    net.add_poisson(["E", "I"], rate=1000.0, weight=1.0)
    net.add_poisson("Q", rate=1000.0, weight=20.0)
    got = []
    for parts in (1, 3):
        ds = brainsim.Simulation(net, seed=6, n_partitions=parts).run(100.0)
        got.append((ds.spike_time.values, ds.spike_neuron.values))
        rates = ds.rate.mean("time").values
        assert np.all(rates > 1.0) and np.all(rates < 300.0), rates
    np.testing.assert_array_equal(got[0][0], got[1][0])
    np.testing.assert_array_equal(got[0][1], got[1][1])


def test_switch_parameters_take_nests_booleans():
    net = brainsim.Network()
    pop = net.add_population("Z", 1, model="izhikevich", params={"consistent_integration": False})
    assert pop.params["consistent_integration"] == 0.0
    with pytest.raises(ParameterError, match="numeric"):  # not a switch: a bool is no number
        net.add_population("A", 1, params={"tau_m": True})
    with pytest.raises(ParameterError, match=r"consistent_integration must be \{0, 1\}"):
        net.add_population("Y", 1, model="izhikevich", params={"consistent_integration": 0.5})
