"""Single neurons of the ODE models (iaf_cond_exp, aeif_cond_exp,
hh_psc_alpha) in brainsim and NEST 3.10 side by side.

    NUMBA_NUM_THREADS=1 /work/venv/bin/python benchmarks/peers/ode_models_vs_nest.py \
        [--nest PY] [--t-sim MS] [--n N] [--out FILE.json]

For each model and each protocol (DC steps; a fixed excitatory and inhibitory
input spike train on top of a constant I_e) it runs one neuron for t_sim ms
in brainsim (``Simulation``, float64) and in NEST (``nest_single_neuron.py``,
in NEST's venv, same spec), and prints the differences of the first ten spike
times (ms), the max |V_m| difference (mV) over the whole run and over the
steps before the first spike time that differs by a step or more, and the
brainsim wall time per neuron-step of ``--n`` identical neurons under the
first DC step for 200 ms (one thread: NUMBA_NUM_THREADS=1 keeps the
parallel loop's thread wake-ups out of the figure on a shared machine).
Input trains reach the neuron through ``Network.add_spike_generator`` in
brainsim and NEST's ``spike_generator``, delay 1 ms.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import brainsim

HERE = os.path.dirname(os.path.abspath(__file__))
NEST_PY = "/work/peers-venv/bin/python"

#: Cases: model, parameters (NEST's defaults for the rest), DC steps [t (ms),
#: I_e (pA)], and for the input-spike protocol a constant I_e (pA) and the
#: weights of the excitatory and inhibitory trains (nS or pA, NEST's signs).
CASES = {
    "iaf_cond_exp": {"model": "iaf_cond_exp", "params": {},
                     "dc": [[0.0, 400.0], [300.0, 600.0], [650.0, 250.0]],
                     "drive": 250.0, "w_ex": 20.0, "w_in": -5.0},
    "aeif_cond_exp": {"model": "aeif_cond_exp", "params": {},
                      "dc": [[0.0, 700.0], [300.0, 1200.0], [650.0, 500.0]],
                      "drive": 700.0, "w_ex": 20.0, "w_in": -5.0},
    "aeif_cond_exp_tref2": {"model": "aeif_cond_exp", "params": {"t_ref": 2.0},
                            "dc": [[0.0, 700.0], [300.0, 1200.0], [650.0, 500.0]],
                            "drive": 700.0, "w_ex": 20.0, "w_in": -5.0},
    "hh_psc_alpha": {"model": "hh_psc_alpha", "params": {},
                     "dc": [[0.0, 700.0], [300.0, 1500.0], [650.0, 900.0]],
                     "drive": 500.0, "w_ex": 400.0, "w_in": -400.0},
}


def spike_trains(t_sim, dt, seed=5):
    """Fixed excitatory (800 Hz) and inhibitory (300 Hz) Poisson-like trains
    on the dt grid (ms), drawn once with a seeded NumPy generator."""
    rng = np.random.default_rng(seed)
    n = int(round(t_sim / dt))
    out = []
    for rate in (800.0, 300.0):
        steps = np.flatnonzero(rng.random(n - 20) < rate * dt / 1000.0) + 1
        out.append(sorted({round(float(s) * dt, 10) for s in steps}))
    return out


def make_spec(case, protocol, t_sim, dt=0.1):
    cfg = CASES[case]
    spec = {"model": cfg["model"], "params": dict(cfg["params"]), "dt": dt, "t_sim": t_sim,
            "delay": 1.0, "record_vm": True}
    if protocol == "dc":
        spec["dc"] = [[t, a] for t, a in cfg["dc"] if t < t_sim]
    else:
        ex, inh = spike_trains(t_sim, dt)
        spec.update(dc=[[0.0, cfg["drive"]]], spikes_ex=ex, spikes_in=inh,
                    weight_ex=cfg["w_ex"], weight_in=cfg["w_in"])
    return spec


def run_brainsim(spec, n=1):
    """brainsim's run of ``spec``: spike times (ms) and V_m (n_steps,) of
    neuron 0, and the wall time (s) of the runs."""
    net = brainsim.Network(dt=spec["dt"])
    net.add_population("N", n, model=spec["model"],
                       params={**spec["params"], "I_e": spec["dc"][0][1]})
    for key, kind in (("ex", "E"), ("in", "I")):
        times = spec.get(f"spikes_{key}")
        if times:
            net.add_spike_generator(f"G{key}", times, kind=kind)
            net.connect(f"G{key}", "N", weight=spec[f"weight_{key}"], delay=spec["delay"])
    sim = brainsim.Simulation(net, record={"V_m": net.select("N")[:1], "rates": False})
    edges = [t for t, _ in spec["dc"]] + [spec["t_sim"]]
    spikes, vm, wall = [], [], 0.0
    for (t, amp), t_next in zip(spec["dc"], edges[1:]):
        net.set_property("N", "I_e", value=float(amp))
        t0 = time.perf_counter()
        ds = sim.run(t_next - t)
        wall += time.perf_counter() - t0
        ids = net.select("N")
        mine = np.isin(ds.spike_neuron.values, ids[:1])
        spikes += list(ds.spike_time.values[mine])
        vm.append(ds.V_m.values[:, 0])
    return np.array(spikes), np.concatenate(vm), wall


def run_nest(spec, python):
    with tempfile.TemporaryDirectory() as tmp:
        fin, fout = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
        with open(fin, "w") as fh:
            json.dump(spec, fh)
        subprocess.run([python, os.path.join(HERE, "nest_single_neuron.py"), fin, fout],
                       check=True, capture_output=True)
        with open(fout) as fh:
            out = json.load(fh)
    return np.array(out["times"]), np.array(out["V_m"][0]), out["wall_s"]


def compare(b_spk, b_vm, n_spk, n_vm, dt):
    k = min(10, b_spk.size, n_spk.size)
    d10 = (b_spk[:k] - n_spk[:k]).tolist()
    m = min(b_spk.size, n_spk.size)
    differ = np.flatnonzero(np.abs(b_spk[:m] - n_spk[:m]) > dt / 2)
    if differ.size:
        t_cut = min(b_spk[differ[0]], n_spk[differ[0]])
    elif b_spk.size != n_spk.size:
        t_cut = min(b_spk[m] if b_spk.size > m else np.inf, n_spk[m] if n_spk.size > m else np.inf)
    else:
        t_cut = np.inf
    n_vm_common = min(b_vm.size, n_vm.size)  # NEST's multimeter misses the last min_delay
    b_vm, n_vm = b_vm[:n_vm_common], n_vm[:n_vm_common]
    steps = (np.arange(n_vm_common) + 1) * dt
    before = steps < t_cut - dt / 2
    dv = np.abs(b_vm - n_vm)
    return {"n_spikes": [int(b_spk.size), int(n_spk.size)], "first10_dt_ms": d10,
            "max_abs_first10_ms": float(np.max(np.abs(d10))) if d10 else 0.0,
            "all_spikes_same_step": bool(b_spk.size == n_spk.size and differ.size == 0),
            "max_dV_mV": float(dv.max()),
            "max_dV_before_divergence_mV": float(dv[before].max()) if before.any() else 0.0,
            "t_divergence_ms": float(t_cut)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nest", default=NEST_PY)
    ap.add_argument("--t-sim", type=float, default=1000.0)
    ap.add_argument("--n", type=int, default=1000, help="neurons for the cost per neuron-step")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    results = {}
    for case in CASES:
        for protocol in ("dc", "spikes"):
            spec = make_spec(case, protocol, args.t_sim)
            b_spk, b_vm, _ = run_brainsim(spec)
            n_spk, n_vm, n_wall = run_nest(spec, args.nest)
            res = compare(b_spk, b_vm, n_spk, n_vm, spec["dt"])
            res["nest_wall_s"] = n_wall
            results[f"{case}/{protocol}"] = res
            print(f"{case:20s} {protocol:6s} spikes b/n {res['n_spikes']}, first 10 "
                  f"max|dt| {res['max_abs_first10_ms']:.3g} ms, all same step "
                  f"{res['all_spikes_same_step']}, max|dV| {res['max_dV_mV']:.3g} mV "
                  f"(before divergence {res['max_dV_before_divergence_mV']:.3g} mV)",
                  flush=True)
        spec = make_spec(case, "dc", 200.0)
        run_brainsim(spec, n=args.n)  # compile
        _, _, wall = run_brainsim(spec, n=args.n)
        ns = wall / (args.n * round(spec["t_sim"] / spec["dt"])) * 1e9
        results[f"{case}/ns_per_neuron_step"] = ns
        print(f"{case:20s} {ns:.0f} ns per neuron-step ({args.n} neurons, DC, 1 thread "
              f"share of a shared 2-core machine)", flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    sys.exit(main())
