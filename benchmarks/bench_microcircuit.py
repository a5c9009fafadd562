"""Time the Potjans-Diesmann microcircuit in brainsim (build and simulation).

Protocol (reference/pd14.md, Senk et al. 2026): build, 500 ms warm-up
discarded, then ``--t-ms`` of biological time timed with no spike recording
(rates are counted in bins, which costs one increment per spike). Each
configuration runs in a fresh subprocess so that its peak memory is its own.

    python benchmarks/bench_microcircuit.py --scales 0.1 0.5 1.0 --inputs poisson dc \
        --threads 2 --out benchmarks/out/microcircuit.json

Reported per run: neurons, synapses, build s, simulate s, real-time factor
(wall s per biological s), synaptic events per second (wall), peak RSS and
bytes per synapse (in memory), per-population rates.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np


def one_run(scale, k_scale, inp, threads, t_ms, seed, dtype):
    os.environ.setdefault("NUMBA_NUM_THREADS", str(threads))
    import brainsim
    from brainsim.generation import microcircuit

    # compile outside the timed region (cached on disk after the first run)
    warm = microcircuit(scale=0.01, input=inp, seed=seed)
    brainsim.Simulation(warm, seed=seed, threads=threads, dtype=dtype,
                        record={"spikes": False}).run(10.0)
    t0 = time.perf_counter()
    net = microcircuit(scale=scale, k_scale=k_scale, input=inp, seed=seed)
    net.build(threads)
    build_s = time.perf_counter() - t0
    sim = brainsim.Simulation(net, seed=seed, threads=threads, dtype=dtype,
                              record={"spikes": False})
    sim.run(500.0)
    t0 = time.perf_counter()
    ds = sim.run(t_ms)
    sim_s = time.perf_counter() - t0
    rates = ds.rate.mean("time").values
    outdeg = np.zeros(net.n_neurons)
    for p in net.partitions:
        outdeg[p.sources] += np.diff(p.indptr)
    pop_out = np.array([outdeg[q.start:q.stop].mean() for q in net.populations.values()])
    pop_n = np.array([q.n for q in net.populations.values()])
    events_per_bio_s = float((rates * pop_n * pop_out).sum())
    return {
        "scale": scale, "k_scale": k_scale, "input": inp, "threads": threads, "dtype": dtype,
        "seed": seed, "neurons": net.n_neurons, "synapses": net.n_synapses,
        "build_s": build_s, "sim_s": sim_s, "t_ms": t_ms, "rtf": sim_s / (t_ms * 1e-3),
        "events_per_wall_s": events_per_bio_s * (t_ms * 1e-3) / sim_s,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "bytes_per_synapse": net.bytes_per_synapse(),
        "rates": dict(zip(net.populations, np.round(rates, 3).tolist())),
        "brainsim_version": brainsim.__version__,
    }


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "load_avg_at_start": os.getloadavg()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", type=float, nargs="+", default=[0.1, 0.5, 1.0])
    ap.add_argument("--inputs", nargs="+", default=["poisson", "dc"], choices=["poisson", "dc"])
    ap.add_argument("--k-scale", type=float, default=None,
                    help="in-degree scale (default: equal to the scale for Poisson input, 1.0 "
                         "for DC, since the K-down-scaled DC network has a stable silent state)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--t-ms", type=float, default=1000.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(one_run(**json.loads(args.child))))
        return
    results = {"machine": machine(), "runs": []}
    for scale in args.scales:
        for inp in args.inputs:
            k = args.k_scale if args.k_scale is not None else (scale if inp == "poisson" else 1.0)
            for seed in args.seeds:
                cfg = dict(scale=scale, k_scale=k, inp=inp, threads=args.threads,
                           t_ms=args.t_ms, seed=seed, dtype=args.dtype)
                out = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)],
                                     capture_output=True, text=True)
                if out.returncode:
                    print(out.stderr, file=sys.stderr)
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                results["runs"].append(r)
                print(f"scale {scale:4} k {k:4} {inp:7} seed {seed}: N {r['neurons']:6d} "
                      f"syn {r['synapses']:.3g} build {r['build_s']:.1f} s  RTF {r['rtf']:.3f}  "
                      f"events/s {r['events_per_wall_s']:.3g}  RSS {r['peak_rss_gb']:.2f} GB  "
                      f"B/syn {r['bytes_per_synapse']:.1f}  rates {list(r['rates'].values())}",
                      flush=True)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
