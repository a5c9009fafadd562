"""Every neuron model side by side with NEST 3.10: single neurons under DC
steps and under a fixed input spike train, and the cost per neuron-step.

    python benchmarks/bench_neuron_models.py --out benchmarks/out/neuron_models.json
    python benchmarks/bench_neuron_models.py --models aeif_cond_exp --no-speed

For each model and scenario the same specification goes to brainsim (this
process) and to NEST (``peers/nest_single_neuron.py`` in NEST's venv,
``--nest-python``): 1 s at dt = 0.1 ms; "dc": I_e stepped every 250 ms
(SetStatus / set_property between runs); "spikes": a constant I_e plus
excitatory and inhibitory Poisson spike trains drawn once from a seeded
generator and played by spike generators in both. Reported: spike counts,
the largest difference of the first ten spike times, the share of spikes
matched within 0.1 ms, and the largest V_m difference before the first
unmatched spike. Models with escape noise (gif_psc_exp) are compared in
distribution over many neurons: mean rate and a two-sample KS test of the
inter-spike intervals. Speed: 10,000 unconnected neurons driven by DC, 1
thread, float64, process CPU ns per neuron-step, brainsim and NEST.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
NEST_CHILD = os.path.join(HERE, "peers", "nest_single_neuron.py")
DT, T_SIM = 0.1, 1000.0

#: Per model: parameters, DC steps (pA), spike-train weights (NEST's units and
#: signs), the constant I_e of the spike-train scenario, and the DC of the
#: speed test. Defaults are NEST's; changes are listed.
MODELS = {
    "iaf_psc_exp": {"params": {}, "dc": [200.0, 400.0, 600.0, 0.0],
                    "w": (60.0, -120.0), "bias": 370.0, "speed_dc": 400.0},
    "iaf_cond_exp": {"params": {}, "dc": [200.0, 400.0, 600.0, 0.0],
                     "w": (3.0, -6.0), "bias": 290.0, "speed_dc": 400.0},
    "aeif_cond_exp": {"params": {}, "dc": [400.0, 700.0, 1000.0, 0.0],
                      "w": (4.0, -8.0), "bias": 800.0, "speed_dc": 800.0},
    "hh_psc_alpha": {"params": {}, "dc": [300.0, 600.0, 1000.0, 0.0],
                     "w": (100.0, -150.0), "bias": 400.0, "speed_dc": 800.0},
    "izhikevich": {"params": {}, "dc": [4.0, 8.0, 14.0, 0.0],
                   "w": (4.0, -4.0), "bias": 5.0, "speed_dc": 10.0},
    "gif_psc_exp": {"params": {"tau_sfa": [100.0, 1000.0], "q_sfa": [5.0, 1.0],
                               "tau_stc": [10.0, 100.0], "q_stc": [20.0, 5.0]},
                    "dc": [80.0, 150.0, 250.0, 0.0], "w": (40.0, -80.0), "bias": 120.0,
                    "speed_dc": 150.0, "n_stochastic": 400},
}
RATES = (400.0, 150.0)  # Hz of the excitatory and inhibitory input trains


def spike_trains(seed=11):
    """Poisson trains (ms, on the dt grid, >= dt) of RATES over T_SIM."""
    g = np.random.default_rng(seed)
    out = []
    for rate in RATES:
        steps = np.flatnonzero(g.random(int(T_SIM / DT)) < rate * DT * 1e-3) + 1
        out.append([round(float(s) * DT, 10) for s in steps if s * DT < T_SIM - 5.0])
    return out


def spec_of(model, scenario, n=1, record_vm=True):
    cfg = MODELS[model]
    spec = {"model": model, "params": dict(cfg["params"]), "dt": DT, "t_sim": T_SIM, "n": n,
            "seed": 1, "delay": 1.0, "record_vm": record_vm}
    if scenario == "dc":
        spec["dc"] = [[i * T_SIM / len(cfg["dc"]), a] for i, a in enumerate(cfg["dc"])]
    else:
        spec["dc"] = [[0.0, cfg["bias"]]]
        ex, inh = spike_trains()
        spec.update(spikes_ex=ex, spikes_in=inh, weight_ex=cfg["w"][0], weight_in=cfg["w"][1])
    return spec


# ------------------------------------------------------------------ runs
def run_brainsim(spec, seed=1, threads=1):
    import brainsim
    net = brainsim.Network(dt=spec["dt"], seed=0)
    params = {**spec["params"], "I_e": spec["dc"][0][1]}
    net.add_population("N", spec["n"], model=spec["model"], params=params)
    for key, kind in (("ex", "E"), ("in", "I")):
        times = spec.get(f"spikes_{key}") or []
        if times:
            net.add_spike_generator(f"G{key}", times, kind=kind)
            net.connect(f"G{key}", "N", rule="all_to_all", weight=spec[f"weight_{key}"],
                        delay=spec["delay"])
    record = {"V_m": "N"} if spec.get("record_vm", True) else {}
    sim = brainsim.Simulation(net, seed=seed, threads=threads, n_partitions=1,
                              record={"spikes": "N", "rates": False, **record})
    edges = [t for t, _ in spec["dc"]] + [spec["t_sim"]]
    times, senders, vm = [], [], []
    cpu = 0.0
    for (t, amp), t_next in zip(spec["dc"], edges[1:]):
        sim.set_property("N", "I_e", value=float(amp))
        c0 = time.process_time()
        ds = sim.run(t_next - t)
        cpu += time.process_time() - c0
        first = net.population("N").start
        times += list(ds.spike_time.values)
        senders += list(ds.spike_neuron.values - first)
        vm.append(ds.V_m.values)
    out = {"times": [float(x) for x in times], "senders": [int(s) for s in senders],
           "cpu_s": cpu}
    if vm and vm[0].size:
        out["V_m"] = np.concatenate(vm).T.tolist()
    return out


def run_nest(spec, python):
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
        with open(src, "w") as fh:
            json.dump(spec, fh)
        t0 = time.process_time()
        subprocess.run([python, NEST_CHILD, src, dst], check=True, stdout=subprocess.DEVNULL)
        with open(dst) as fh:
            out = json.load(fh)
    out["cpu_s_total"] = time.process_time() - t0
    return out


# ------------------------------------------------------------- compare
def compare_deterministic(a, b, tol=0.1):
    """a: brainsim, b: NEST, one neuron each."""
    ta, tb = np.array(a["times"]), np.array(b["times"])
    k = min(10, ta.size, tb.size)
    first10 = float(np.max(np.abs(ta[:k] - tb[:k]))) if k else 0.0
    matched = 0
    for t in ta:
        if tb.size and np.min(np.abs(tb - t)) <= tol + 1e-9:
            matched += 1
    n = min(ta.size, tb.size)
    bad = np.flatnonzero(np.abs(ta[:n] - tb[:n]) > tol + 1e-9)
    t_first_bad = float(min(ta[bad[0]], tb[bad[0]])) if bad.size else (
        float(min(ta[n], tb[n])) if ta.size != tb.size and n < max(ta.size, tb.size)
        else T_SIM)
    out = {"spikes_brainsim": int(ta.size), "spikes_nest": int(tb.size),
           "first10_max_dt_ms": first10,
           "matched_share": matched / max(ta.size, tb.size) if ta.size or tb.size else 1.0,
           "agree_until_ms": t_first_bad}
    if "V_m" in a and "V_m" in b:
        va, vb = np.array(a["V_m"][0]), np.array(b["V_m"][0])
        m = min(va.size, vb.size)
        t = (np.arange(m) + 1) * DT
        before = t < t_first_bad - 2.0  # V_m before the first unmatched spike
        diff = np.abs(va[:m] - vb[:m])
        out["vm_max_diff_mV"] = float(diff[before].max()) if before.any() else None
        out["vm_max_diff_all_mV"] = float(diff.max())
    return out


def compare_stochastic(a, b, n):
    from scipy import stats

    def isis(res):
        t, s = np.array(res["times"]), np.array(res["senders"])
        return np.concatenate([np.diff(np.sort(t[s == i])) for i in range(n)])
    ra = len(a["times"]) / n / (T_SIM * 1e-3)
    rb = len(b["times"]) / n / (T_SIM * 1e-3)
    ia, ib = isis(a), isis(b)
    ks = stats.ks_2samp(ia, ib)
    counts = [np.bincount(np.array(r["senders"], int), minlength=n) / (T_SIM * 1e-3)
              for r in (a, b)]
    se = float(np.hypot(counts[0].std(ddof=1), counts[1].std(ddof=1)) / np.sqrt(n))
    return {"rate_brainsim_hz": ra, "rate_nest_hz": rb, "rate_diff_in_se": (ra - rb) / se,
            "isi_ks_statistic": float(ks.statistic), "isi_ks_p": float(ks.pvalue),
            "isis": [int(ia.size), int(ib.size)]}


def speed(model, python, n=10_000):
    cfg = MODELS[model]
    spec = {"model": model, "params": dict(cfg["params"]), "dt": DT, "t_sim": T_SIM, "n": n,
            "seed": 1, "delay": 1.0, "record_vm": False, "dc": [[0.0, cfg["speed_dc"]]]}
    run_brainsim({**spec, "t_sim": 20.0})  # compile outside the timed run
    a = run_brainsim(spec)
    steps = n * T_SIM / DT
    out = {"brainsim_ns": a["cpu_s"] / steps * 1e9,
           "brainsim_rate_hz": len(a["times"]) / n / (T_SIM * 1e-3)}
    if python:
        b = run_nest(spec, python)
        out["nest_ns"] = b["wall_s"] / steps * 1e9
        out["nest_rate_hz"] = len(b["times"]) / n / (T_SIM * 1e-3)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--nest-python", default="/work/peers-venv/bin/python")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import brainsim
    from brainsim.neurons import available
    python = args.nest_python if os.path.exists(args.nest_python) else None
    if python is None:
        print(f"NEST interpreter {args.nest_python} not found: brainsim only", file=sys.stderr)
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "loadavg": os.getloadavg(), "brainsim": brainsim.__version__},
               "models": {}}
    for model in args.models:
        if model not in available():
            print(f"{model}: not a registered brainsim model, skipped", file=sys.stderr)
            continue
        res = {}
        stochastic = MODELS[model].get("n_stochastic")
        for scenario in ("dc", "spikes"):
            if stochastic:
                spec = spec_of(model, scenario, n=stochastic, record_vm=False)
                a = run_brainsim(spec)
                res[scenario] = compare_stochastic(a, run_nest(spec, python), stochastic) \
                    if python else {"rate_brainsim_hz": len(a["times"]) / stochastic}
            else:
                spec = spec_of(model, scenario)
                a = run_brainsim(spec)
                res[scenario] = compare_deterministic(a, run_nest(spec, python)) if python \
                    else {"spikes_brainsim": len(a["times"])}
        if not args.no_speed:
            res["speed"] = speed(model, python)
        results["models"][model] = res
        print(model, json.dumps(res, indent=1))
    results["machine"]["loadavg_end"] = os.getloadavg()
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
