"""Calibrate the whole-brain spiking model to the HCP group FC with brainsim.explore.

A search (grid, CMA-ES or random sampling) over parameters of
``brainsim.wholebrain.WholeBrainFC`` on a LocalCluster, then the best point
and the uncalibrated model re-run with a longer simulation (``--final-ms``),
printed beside the SC-FC null. Results in a Zarr store that a rerun resumes.

    python benchmarks/bench_fc_search.py --method grid --space coupling=0.1:0.7 --n 7
    python benchmarks/bench_fc_search.py --method cmaes --space coupling=0.1:0.7 \\
        --space bg_mean=600:760 --budget 40 --workers 2
"""
import argparse
import json
import os
import platform
import time

import numpy as np


def parse_space(items):
    space = {}
    for item in items:
        name, _, rng = item.partition("=")
        lo, _, hi = rng.partition(":")
        space[name] = (float(lo), float(hi))
    return space


def parse_fixed(items):
    return {k: float(v) for k, _, v in (i.partition("=") for i in items)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, default=10_000)
    ap.add_argument("--k-in", type=int, default=20)
    ap.add_argument("--t-ms", type=float, default=120_000.0, help="per search point")
    ap.add_argument("--final-ms", type=float, default=600_000.0,
                    help="the best point and the uncalibrated model (0: skip)")
    ap.add_argument("--warmup-ms", type=float, default=2_000.0)
    ap.add_argument("--remote", choices=("uniform", "strength"), default="strength")
    ap.add_argument("--space", action="append", default=[], help="name=low:high")
    ap.add_argument("--fixed", action="append", default=[], help="name=value")
    ap.add_argument("--method", choices=("grid", "cmaes", "random"), default="grid")
    ap.add_argument("--n", type=int, default=5, help="grid values per parameter")
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--popsize", type=int, default=None, help="points per generation")
    ap.add_argument("--target", default="fc_r")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="network seed of the search")
    ap.add_argument("--final-seeds", default="0,2",
                    help="network seeds of the final runs of the best point (comma-separated)")
    ap.add_argument("--store", default="benchmarks/out/fc_search.zarr")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--json", default=None, help="write the summary here")
    a = ap.parse_args()

    from distributed import Client, LocalCluster

    from brainsim import explore
    from brainsim.wholebrain import WholeBrainFC, sc_fc_r

    fixed = parse_fixed(a.fixed)
    model = WholeBrainFC(n_neurons=a.neurons, k_in=a.k_in, t_ms=a.t_ms, warmup_ms=a.warmup_ms,
                         seed=a.seed, fixed=fixed, remote=a.remote)
    space = parse_space(a.space)
    null = sc_fc_r(model.connectome, model.fc)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"model: {a.neurons} neurons, k_in {a.k_in}, remote share {a.remote}, "
          f"{a.t_ms / 1e3:g} s per point; fixed {fixed}; SC-FC null r = {null:.3f}")
    t0 = time.perf_counter()
    with LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        if a.method == "grid":
            ds = explore.evaluate(model, explore.grid(space, a.n), a.store, client=client,
                                  progress=True, overwrite=a.overwrite, on_error="nan")
            best_i = int(np.nanargmax(ds[a.target].values))
            best = {k: float(ds[k].values[best_i]) for k in space}
        else:
            ds = explore.fit(model, space, a.store, maximize=a.target, method=a.method,
                             budget=a.budget, popsize=a.popsize, seed=a.seed, client=client,
                             progress=True,
                             overwrite=a.overwrite)
            best = explore.best(ds)
        search_s = time.perf_counter() - t0
        cols = list(space) + [c for c in ("fc_r", "fcd_ks", "fc_mean", "rate_E", "rate_I")
                              if c in ds]
        print(" ".join(f"{c:>9}" for c in cols))
        for i in range(ds.sizes["point"]):
            print(" ".join(f"{float(ds[c].values[i]):9.3f}" for c in cols))
        print(f"search: {ds.sizes['point']} points, {search_s:.0f} s wall, {a.workers} workers;"
              f" best {best}")
        summary = {"points": int(ds.sizes["point"]), "search_s": search_s,
                   "workers": a.workers, "best": best, "sc_fc_r": null, "space": space,
                   "fixed": fixed, "neurons": a.neurons, "k_in": a.k_in, "t_ms": a.t_ms}
        if a.final_ms > 0:
            seeds = [int(x) for x in a.final_seeds.split(",")]
            runs = [(f"calibrated, network seed {sd}", sd, a.remote, fixed, best) for sd in seeds]
            runs.append((f"uncalibrated (DTB defaults, uniform remote share), network seed "
                         f"{seeds[0]}", seeds[0], "uniform", {}, {}))
            t1 = time.perf_counter()
            futs = [client.submit(WholeBrainFC(n_neurons=a.neurons, k_in=a.k_in, t_ms=a.final_ms,
                                               warmup_ms=a.warmup_ms, seed=sd, fixed=fx,
                                               remote=rm), p, pure=False)
                    for _, sd, rm, fx, p in runs]
            results = [f.result() for f in futs]
            final_s = time.perf_counter() - t1
            print(f"{a.final_ms / 1e3:g} s of activity ({results[0]['n_bold']:.0f} BOLD volumes), "
                  f"{final_s:.0f} s wall for {len(runs)} runs on {a.workers} workers:")
            for (label, *_), m in zip(runs, results):
                print(f"  {label}: FC r {m['fc_r']:.3f}  FCD KS {m['fcd_ks']:.3f}  "
                      f"mean FC {m['fc_mean']:.3f}  rates E {m['rate_E']:.2f} "
                      f"I {m['rate_I']:.2f} Hz")
            print(f"  SC-FC null: FC r {null:.3f}")
            summary.update(final_ms=a.final_ms, final_s=final_s, final={
                label: {k: float(v) for k, v in m.items()} for (label, *_), m in
                zip(runs, results)})
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
