"""docs/neuron_models.md stays true: its complete example runs as written (a
model defined outside the package, registered and simulated), the model it
defines follows the equations it states, and its table of built-in models
names exactly the registered built-ins."""
import pathlib
import re

import numpy as np

import brainsim
from brainsim.kernels.loops import step_many
from brainsim.kernels.neurons import BUILTIN
from brainsim.neurons import get_model

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "neuron_models.md"


def test_writing_a_neuron_model_example_runs_and_follows_its_equations():
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    ns = {}
    exec(compile(code, str(DOC), "exec"), ns)  # noqa: S102 - our own documentation
    ds = ns["ds"]
    rates = ds.rate.mean("time").values
    assert np.all(rates > 0.5) and np.all(rates < 100.0), rates
    model = get_model("izh2007_psc_exp")
    assert model.gpu_exact and model.units["k"] == "nS/mV"
    # one Euler step of C dv/dt = k (v - v_r)(v - v_t) - u + I, du/dt = a (b (v - v_r) - u)
    p = {**model.defaults, "I_e": 55.0}
    params = {k: np.array([v, v]) for k, v in p.items()}
    state = {"V_m": np.array([-58.0, 34.99]), "u": np.array([12.0, 30.0]),
             "I_syn_ex": np.array([40.0, 0.0]), "I_syn_in": np.array([-10.0, 0.0])}
    out, spiked = step_many(model, state, params, 0.1, in_ex=5.0)
    v, w = state["V_m"], state["u"]
    i_tot = state["I_syn_ex"] + state["I_syn_in"] + 55.0
    v_new = v + 0.1 / p["C_m"] * (p["k"] * (v - p["V_r"]) * (v - p["V_t"]) - w + i_tot)
    w_new = w + 0.1 * p["a"] * (p["b"] * (v - p["V_r"]) - w)
    assert list(spiked) == [False, True]
    np.testing.assert_allclose(out["V_m"], [v_new[0], p["c"]], rtol=1e-13)
    np.testing.assert_allclose(out["u"], [w_new[0], w_new[1] + p["d"]], rtol=1e-13)
    np.testing.assert_allclose(out["I_syn_ex"], 40.0 * np.exp(-0.1 / 2.0) * np.array([1, 0])
                               + 5.0, rtol=1e-13)


def test_builtin_table_lists_the_builtin_models():
    table = re.search(r"## Built-in models\n(.*?)\n\n", DOC.read_text(), re.S).group(1)
    named = re.findall(r"^\| `(\w+)` \|", table, re.M)
    assert sorted(named) == sorted(m.name for m in BUILTIN)
    assert all(name in brainsim.neurons.available() for name in named)
