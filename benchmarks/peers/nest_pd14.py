"""NEST 3.10 reference run of brainsim's Potjans-Diesmann microcircuit (firing rates per seed).

Runs in the peers environment (``/work/peers-venv``, ``pip install nest-simulator``), never
in brainsim's. The model is not re-typed here: every number comes from the JSON written by
``dump_pd14_params.py`` (run in ``/work/venv`` from ``brainsim.generation.microcircuit``):
population sizes, iaf_psc_exp parameters incl. the DC ``I_e``, initial V (normal), synapse
numbers per projection (fixed_total_number, autapses and multapses allowed), normal weights
redrawn to keep their sign, normal delays redrawn below dt, and the Poisson drive (one
``poisson_generator`` of rate K_ext * 8 Hz per population, connected all_to_all, so every
neuron gets its own Poisson train of that rate).

Protocol per seed: ResetKernel, resolution dt, 2 threads, rng_seed = seed; build; 500 ms
warm-up (discarded); 1000 ms measured; rate = spikes with t in (500, 1500] ms / (N * 1 s).
Results for the params' input mode ("poisson" or "dc") are stored under ``runs[input]`` of
``--out`` (other modes already there are kept), and a table over seeds is printed.

    /work/peers-venv/bin/python benchmarks/peers/nest_pd14.py \
        --params benchmarks/peers/pd14_params_scale0.1_poisson.json --seeds 1 2 3 4 5 6 7 8 \
        --out benchmarks/peers/nest_pd14_scale0.1.json

``--timed`` runs the benchmark protocol instead (``run_timed``; used by run_peers.py).
"""
import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

import nest

WARMUP_MS, MEASURE_MS, THREADS = 500.0, 1000.0, 2


def build(par, seed, threads=THREADS, recorder=None):
    """Create the network in the (reset) NEST kernel; returns (populations, recorders).

    ``recorder``: spike_recorder parameters (e.g. ``{"start": 500.0, "stop": 1500.0}``).
    Recurrent synapses use two copies of static_synapse (E and I sources): NEST 3.10 allows
    at most 134,217,726 connections of one synapse model per virtual process, which the
    full-scale model on 2 threads exceeds with a single model (no effect on the dynamics).
    """
    dt = par["dt"]
    nest.ResetKernel()
    nest.verbosity = nest.VerbosityLevel.ERROR
    nest.SetKernelStatus({"resolution": dt, "local_num_threads": threads, "rng_seed": seed,
                          "print_time": False})
    for kind in ("E", "I"):
        nest.CopyModel("static_synapse", f"static_synapse_{kind}")
    kinds = {p["name"]: p["kind"] for p in par["populations"]}
    pops, recs = {}, {}
    for p in par["populations"]:
        assert p["model"] == "iaf_psc_exp"
        params = dict(p["params"])
        params["V_m"] = nest.random.normal(mean=p["V0_mean"], std=p["V0_sd"])
        pops[p["name"]] = nest.Create("iaf_psc_exp", p["n"], params=params)
        recs[p["name"]] = nest.Create("spike_recorder", params=recorder or {})
        nest.Connect(pops[p["name"]], recs[p["name"]])
    for c in par["projections"]:
        wmin = -np.inf if c["weight_min"] is None else c["weight_min"]
        wmax = np.inf if c["weight_max"] is None else c["weight_max"]
        syn = {"synapse_model": f"static_synapse_{kinds[c['source']]}",
               "weight": nest.math.redraw(nest.random.normal(mean=c["weight_mean"],
                                                             std=c["weight_sd"]),
                                          min=wmin, max=wmax),
               "delay": nest.math.redraw(nest.random.normal(mean=c["delay_mean"],
                                                            std=c["delay_sd"]),
                                         min=c["delay_min"], max=np.inf)}
        conn = {"rule": c["rule"], "N": c["n_syn"], "allow_autapses": c["allow_autapses"],
                "allow_multapses": c["allow_multapses"]}
        nest.Connect(pops[c["source"]], pops[c["target"]], conn, syn)
    for q in par["poisson"]:
        gen = nest.Create("poisson_generator", params={"rate": q["total_rate_hz"]})
        nest.Connect(gen, pops[q["target"]], "all_to_all",
                     {"synapse_model": "static_synapse", "weight": q["weight"],
                      "delay": q["delay"]})
    return pops, recs


def run_seed(par, seed):
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    pops, recs = build(par, seed)
    t1 = time.perf_counter()
    nest.Simulate(WARMUP_MS)
    t2 = time.perf_counter()
    nest.Simulate(MEASURE_MS)
    t3 = time.perf_counter()
    rates, n_spk, frac_active = {}, {}, {}
    for name, pop in pops.items():
        ev = recs[name].get("events")
        tt, snd = np.asarray(ev["times"]), np.asarray(ev["senders"])
        keep = (tt > WARMUP_MS) & (tt <= WARMUP_MS + MEASURE_MS)
        n = len(pop)
        n_spk[name] = int(keep.sum())
        rates[name] = n_spk[name] / (n * MEASURE_MS * 1e-3)
        frac_active[name] = len(np.unique(snd[keep])) / n
    n_conn = nest.GetKernelStatus("num_connections")
    return {"seed": seed, "rates_hz": rates, "spikes": n_spk, "frac_active": frac_active,
            "build_s": t1 - t0, "warmup_sim_s": t2 - t1, "sim_s": t3 - t2,
            "rtf": (t3 - t2) / (MEASURE_MS * 1e-3), "num_connections": n_conn,
            "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg())}


def run_timed(par, seed, threads=THREADS):
    """The benchmark protocol: build (Create, Connect, Prepare), 500 ms warm-up, 1000 ms timed.

    Spikes are counted by one spike_recorder per population that records only in
    (500, 1500] ms (memory backend; at full scale ~4e5 spikes/s against ~1e9 synaptic
    events/s). Returns a dict (JSON-serialisable).
    """
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    pops, recs = build(par, seed, threads,
                       recorder={"start": WARMUP_MS, "stop": WARMUP_MS + MEASURE_MS})
    t1 = time.perf_counter()
    nest.Prepare()
    t2 = time.perf_counter()
    # progress on stderr: a run killed by the driver's timeout still tells how far it got
    print(f"build {t2 - t0:.1f} s (Prepare {t2 - t1:.1f} s)", file=sys.stderr, flush=True)
    nest.Run(WARMUP_MS)
    t3, c3 = time.perf_counter(), time.process_time()
    print(f"warm-up {t3 - t2:.1f} s", file=sys.stderr, flush=True)
    nest.Run(MEASURE_MS)
    t4, c4 = time.perf_counter(), time.process_time()
    nest.Cleanup()
    rates = {name: recs[name].get("n_events") / (len(pop) * MEASURE_MS * 1e-3)
             for name, pop in pops.items()}
    n_syn = sum(nest.GetDefaults(f"static_synapse_{k}")["num_connections"] for k in "EI")
    return {"simulator": "NEST", "version": nest.__version__, "seed": seed,
            "threads": threads, "neurons": sum(len(p) for p in pops.values()),
            "synapses": int(n_syn), "create_connect_s": t1 - t0, "prepare_s": t2 - t1,
            "build_s": t2 - t0, "warmup_s": t3 - t2, "sim_s": t4 - t3, "sim_cpu_s": c4 - c3,
            "rates": rates,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
            "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg())}


def machine():
    def sh(cmd):
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    cpu = sorted({ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                  if ln.startswith("model name")})
    return {"nproc": sh("nproc"), "free_g": sh("free -g"), "cpu_model": cpu,
            "uptime": sh("uptime"), "platform": platform.platform(),
            "python": platform.python_version()}


def table(runs):
    lines = []
    for inp, run in runs.items():
        seeds = run["seeds"]
        names = list(seeds[0]["rates_hz"])
        lines.append(f"NEST {run['nest_version']}  scale {run['scale']} k_scale {run['k_scale']}  "
                     f"input {inp}  seeds {[s['seed'] for s in seeds]}")
        lines.append(f"{'pop':6s} {'mean':>8s} {'sd':>8s} {'min':>8s} {'max':>8s}   (spikes/s)")
        for nm in names:
            r = np.array([s["rates_hz"][nm] for s in seeds])
            sd = r.std(ddof=1) if r.size > 1 else float("nan")
            lines.append(f"{nm:6s} {r.mean():8.3f} {sd:8.3f} {r.min():8.3f} {r.max():8.3f}")
        for key in ("build_s", "warmup_sim_s", "sim_s"):
            v = np.array([s[key] for s in seeds])
            lines.append(f"{key:13s} mean {v.mean():7.2f}  min {v.min():7.2f}  max {v.max():7.2f}")
        lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", required=True, help="JSON from dump_pd14_params.py")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 9)))
    ap.add_argument("--out", help="results JSON (updated in place)")
    ap.add_argument("--timed", action="store_true", help="benchmark protocol for the first "
                    "seed only (Prepare/Run, no recording before 500 ms); prints one JSON line")
    ap.add_argument("--threads", type=int, default=THREADS)
    a = ap.parse_args()
    with open(a.params) as f:
        par = json.load(f)
    if a.timed:
        print(json.dumps(run_timed(par, a.seeds[0], a.threads)))
        return
    if not a.out:
        ap.error("--out is required without --timed")
    seeds = []
    for seed in a.seeds:
        r = run_seed(par, seed)
        seeds.append(r)
        print(f"seed {seed}: build {r['build_s']:.2f} s, warm-up {r['warmup_sim_s']:.2f} s, "
              f"sim {r['sim_s']:.2f} s, load {r['loadavg_before'][0]:.2f}->"
              f"{r['loadavg_after'][0]:.2f}; rates "
              + " ".join(f"{v:.2f}" for v in r["rates_hz"].values()), flush=True)
    out = {}
    if os.path.exists(a.out):
        with open(a.out) as f:
            out = json.load(f)
    out.setdefault("runs", {})
    out["nest_version"] = nest.__version__
    out["machine"] = machine()
    out["protocol"] = {"warmup_ms": WARMUP_MS, "measure_ms": MEASURE_MS, "threads": THREADS,
                       "dt_ms": par["dt"], "rate": "spikes in (500, 1500] ms / (N * 1 s)",
                       "spike_recorder": "one per population, on during all runs"}
    out["runs"][par["input"]] = {
        "nest_version": nest.__version__, "scale": par["scale"], "k_scale": par["k_scale"],
        "input": par["input"], "params_file": os.path.relpath(a.params, os.path.dirname(a.out)
                                                              or "."),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "n_neurons": {p["name"]: p["n"] for p in par["populations"]},
        "total_synapses": par["total_synapses"], "seeds": seeds}
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    print(table(out["runs"]))


if __name__ == "__main__":
    main()
