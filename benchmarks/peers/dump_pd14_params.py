"""Dump brainsim's Potjans-Diesmann microcircuit parameters to JSON for the NEST peer.

Runs in brainsim's own environment (``/work/venv``): it calls
``brainsim.generation.microcircuit(scale, k_scale, input)`` and records, per population
and per projection, exactly what the builder asked the Network for (sizes, neuron
parameters incl. the DC ``I_e``, synapse numbers, weight and delay distributions, the
Poisson drive). The arguments are captured by wrapping ``Network.connect`` and
``Network.add_poisson`` in this process only (nothing in brainsim is changed), and are
cross-checked against a recomputation from the module's helpers and constants.

    /work/venv/bin/python benchmarks/peers/dump_pd14_params.py --scale 0.1 --input poisson \
        --out benchmarks/peers/pd14_params_scale0.1_poisson.json

The NEST script ``nest_pd14.py`` (run in ``/work/peers-venv``) reads the JSON.
"""
import argparse
import json
import math

import numpy as np

import brainsim
from brainsim.generation import potjans_diesmann as mc
from brainsim.network import Network


def capture(scale, k_scale, input):
    """Build (unbuilt) the brainsim microcircuit and capture the builder's calls."""
    calls = {"connect": [], "poisson": []}
    orig_connect, orig_poisson = Network.connect, Network.add_poisson

    def connect(self, pre, post, rule="all_to_all", **kw):
        calls["connect"].append({"pre": pre, "post": post, "rule": rule, **kw})
        return 0  # nothing is drawn: only the arguments are needed

    def add_poisson(self, selector, rate, weight, indegree=1, delay=None):
        calls["poisson"].append({"pop": selector, "rate": rate, "weight": weight,
                                 "indegree": indegree, "delay": delay})
        return orig_poisson(self, selector, rate, weight, indegree=indegree, delay=delay)

    Network.connect, Network.add_poisson = connect, add_poisson
    try:
        net = mc.microcircuit(scale=scale, k_scale=k_scale, input=input, seed=0)
    finally:
        Network.connect, Network.add_poisson = orig_connect, orig_poisson
    return net, calls


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--k-scale", type=float, default=None, help="default: --scale")
    ap.add_argument("--input", choices=("poisson", "dc"), default="poisson")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    k_scale = a.scale if a.k_scale is None else a.k_scale
    net, calls = capture(a.scale, k_scale, a.input)

    pops = list(mc.POPULATIONS)
    assert list(net.populations) == pops
    populations = []
    for k, name in enumerate(pops):
        p = net.populations[name]
        v0 = net.neuron_param("V_m")[p.start:p.stop]
        populations.append({
            "name": name, "n": p.n, "model": p.model, "kind": p.kind,
            # homogeneous parameters (NEST names/units) incl. I_e (DC, pA); V_m is drawn
            "params": {kk: vv for kk, vv in p.params.items() if kk != "V_m"},
            "V0_mean": float(mc.V0_MEAN[k]), "V0_sd": float(mc.V0_SD[k]),
            "V0_check_sample_mean": float(v0.mean()), "V0_check_sample_sd": float(v0.std()),
        })

    projections = []
    for c in calls["connect"]:
        assert c["rule"] == "fixed_total_number"
        assert c.get("allow_autapses", True) and c.get("allow_multapses", True)
        w, d = c["weight"], c["delay"]
        assert w["distribution"] == "normal" and d["distribution"] == "normal"
        projections.append({
            "source": c["pre"], "target": c["post"], "rule": "fixed_total_number",
            "n_syn": int(c["n"]), "allow_autapses": True, "allow_multapses": True,
            "weight_mean": float(w["mean"]), "weight_sd": float(w["sd"]),
            "delay_mean": float(d["mean"]), "delay_sd": float(d["sd"]),
            # brainsim: sign kept by redraw; delays redrawn below dt, rounded to steps
            "weight_min": 0.0 if w["mean"] >= 0 else None,
            "weight_max": None if w["mean"] >= 0 else 0.0,
            "delay_min": net.dt,
        })

    poisson = [{"target": q["pop"], "rate_per_source_hz": float(q["rate"]),
                "indegree": int(q["indegree"]), "total_rate_hz": float(q["rate"]) * int(q["indegree"]),
                "weight": float(q["weight"]), "delay": float(q["delay"])}
               for q in calls["poisson"]]

    # ---- cross-check against the module's helpers and constants
    n = np.maximum(np.round(mc.N_FULL * a.scale).astype(int), 1)
    assert [q["n"] for q in populations] == n.tolist()
    indeg_full = mc.full_synapse_numbers() / mc.N_FULL[:, None]
    w_scaled = mc.mean_psc_matrix() / math.sqrt(k_scale)
    expected = {}
    for t, tgt in enumerate(pops):
        for s, src in enumerate(pops):
            n_syn = int(np.round(indeg_full[t, s] * n[t] * k_scale))
            if n_syn:
                expected[(src, tgt)] = (n_syn, w_scaled[t, s])
    got = {(q["source"], q["target"]): (q["n_syn"], q["weight_mean"]) for q in projections}
    assert set(got) == set(expected), (set(got) ^ set(expected))
    for key, (n_syn, wm) in expected.items():
        assert got[key][0] == n_syn and np.isclose(got[key][1], wm), (key, got[key], n_syn, wm)
    if a.input == "poisson":
        assert len(poisson) == 8
        for k, q in enumerate(poisson):
            assert q["indegree"] == int(np.round(mc.K_EXT[k] * k_scale))
            assert np.isclose(q["weight"], mc.PSC_E / math.sqrt(k_scale))
    else:
        assert not poisson
    for q in populations:
        for kk, vv in mc.NEURON.items():
            assert q["params"][kk] == vv, (q["name"], kk)

    out = {
        "model": "potjans_diesmann_2014", "source": "brainsim.generation.microcircuit",
        "brainsim_version": brainsim.__version__,
        "scale": a.scale, "k_scale": k_scale, "input": a.input, "dt": net.dt,
        "populations": populations, "projections": projections, "poisson": poisson,
        "total_synapses": int(sum(q["n_syn"] for q in projections)),
        "constants": {
            "N_FULL": mc.N_FULL.tolist(), "K_EXT": mc.K_EXT.tolist(), "BG_RATE": mc.BG_RATE,
            "PSC_E": mc.PSC_E, "G": mc.G, "REL_SD_WEIGHT": mc.REL_SD_WEIGHT,
            "DELAY_E": mc.DELAY_E, "DELAY_I": mc.DELAY_I, "REL_SD_DELAY": mc.REL_SD_DELAY,
            "DELAY_POISSON": mc.DELAY_POISSON, "FULL_RATES": mc.FULL_RATES.tolist(),
            "CONN_PROBS": mc.CONN_PROBS.tolist(), "NEURON": mc.NEURON,
        },
    }
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {a.out}: {sum(q['n'] for q in populations)} neurons, "
          f"{out['total_synapses']} synapses, {len(poisson)} Poisson drives")


if __name__ == "__main__":
    main()
