"""Dask backend: overhead per exchange window vs window size and worker count,
and a whole-brain HCP network on 1 vs 2 workers.

Networks (``--network``):
  tiny  one region of 60 iaf_psc_exp neurons per partition, Poisson-driven,
        2 ms between regions: the kernel costs ~nothing, so the overhead per
        window is the fixed cost of an exchange (collect, route, send,
        receive, merge);
  hcp   DTB-style whole-brain network on the HCP connectome (94 regions, E/I
        per region, lif_dtb), remote delays from fibre lengths at
        ``--velocity`` m/s, so the window W (smallest delay between workers)
        spans many steps; here overhead includes waiting for the slower
        worker (load imbalance, and the other processes on the machine).
Each configuration: a fresh Simulation on a LocalCluster of single-threaded
worker processes, ``--warmup-ms`` simulated first (Numba cache loads,
history fills), then ``--t-ms`` timed.

Per window, from the workers' own clocks (mean over workers):
  advance   the CPU kernel stepping the window's steps;
  overhead  window wall time minus advance: collecting the window's spikes,
            routing, the TCP exchange (including waiting for the slowest
            peer), merging received spikes into the history;
  links     the part of overhead spent in the TCP exchange itself.
Bytes and messages per window are what crosses worker boundaries.

    python benchmarks/bench_dask.py --network tiny --out benchmarks/out/dask_tiny.json
    python benchmarks/bench_dask.py --network hcp --out benchmarks/out/dask_hcp.json
    python benchmarks/bench_dask.py --network hcp --whole-brain --neurons 1000000 --dt 1 \
        --workers 1 2 --out benchmarks/out/dask_hcp_1e6.json
"""
import argparse
import json
import os
import shutil
import tempfile
import time

import numpy as np


def tiny_store(path, partitions, dt, seed=1):
    """One 60-neuron iaf_psc_exp region per partition, 2 ms between regions."""
    import brainsim
    t0 = time.perf_counter()
    net = brainsim.Network(dt=dt, seed=seed)
    for r in range(partitions):
        net.add_population(f"E{r}", 48, region=f"R{r}", params={"I_e": 355.0})
        net.add_population(f"I{r}", 12, region=f"R{r}", kind="I", params={"I_e": 355.0})
    for r in range(partitions):
        net.connect(f"E{r}", [f"E{r}", f"I{r}"], rule="fixed_indegree", indegree=10,
                    weight=40.0, delay=dt)
        net.connect(f"I{r}", [f"E{r}", f"I{r}"], rule="fixed_indegree", indegree=3,
                    weight=-120.0, delay=dt)
        other = [f"E{q}" for q in range(partitions) if q != r]
        if other:
            net.connect(f"E{r}", other, rule="fixed_indegree", indegree=5, weight=40.0,
                        delay=2.0)
    net.add_poisson([f"E{r}" for r in range(partitions)], rate=8.0, indegree=100, weight=40.0)
    net.build(partitions).save(path, overwrite=True)
    return net, time.perf_counter() - t0


def make_store(path, n_neurons, k_in, partitions, dt, velocity, seed=1):
    from brainsim.generation.connectome import from_connectome

    from brainsim.datasets import load_hcp
    t0 = time.perf_counter()
    net = from_connectome(load_hcp(), n_neurons, k_in, partitions=partitions, seed=seed,
                          store=path, dt=dt, velocity=velocity, overwrite=True)
    return net, time.perf_counter() - t0


def measure(client, store, workers, window, warmup_ms, t_ms, seed=1):
    """Timings of one configuration (None if ``window`` exceeds W)."""
    import brainsim
    with brainsim.Simulation(store, backend="dask", client=client, workers=workers,
                             window=window, seed=seed, record={"spikes": False},
                             checkpoint_ms=None) as sim:
        try:
            sim.run(warmup_ms)
        except brainsim.ParameterError:
            return None
        t0 = time.perf_counter()
        ds = sim.run(t_ms)
        wall = time.perf_counter() - t0
        st = dict(sim.stats)
    sizes = np.array([p.n for p in sim.net.populations.values()])
    spikes_per_s = float((ds.rate.mean("time").values * sizes).sum())
    rate = spikes_per_s / sizes.sum()
    spikes_per_window = spikes_per_s * st["window_steps"] * sim.net.dt * 1e-3
    st.update(workers=workers, wall_s=wall, rtf=wall / (t_ms * 1e-3), rate_hz=rate,
              spikes_per_window=spikes_per_window)
    return st


def cpu_reference(store, t_ms, warmup_ms, threads, seed=1):
    import brainsim
    sim = brainsim.Simulation(brainsim.load_network(store), seed=seed, threads=threads,
                              record={"spikes": False})
    sim.run(warmup_ms)
    t0 = time.perf_counter()
    sim.run(t_ms)
    return (time.perf_counter() - t0) / (t_ms * 1e-3)


def row_text(r):
    return (f"{r['workers']:>3} {r['window_steps']:>6} {r['windows']:>8} "
            f"{r['advance_s_per_window'] * 1e6:>10.1f} {r['overhead_s_per_window'] * 1e6:>11.1f} "
            f"{r['links_s_per_window'] * 1e6:>9.1f} {r['messages_per_window']:>5} "
            f"{r['spikes_per_window']:>9.1f} {r['rtf']:>8.2f}")


HEADER = (f"{'W':>3} {'window':>6} {'windows':>8} {'advance us':>10} {'overhead us':>11} "
          f"{'links us':>9} {'msgs':>5} {'spikes/W':>9} {'RTF':>8}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--network", choices=("tiny", "hcp"), default="tiny")
    ap.add_argument("--neurons", type=int, default=50_000)
    ap.add_argument("--k-in", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--dt", type=float, default=0.1)
    ap.add_argument("--velocity", type=float, default=3.0, help="m/s (= mm/ms)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--windows", type=int, nargs="+", default=[1, 2, 5, 10, 20, 0],
                    help="window sizes (steps); 0 = the largest allowed")
    ap.add_argument("--t-ms", type=float, default=200.0)
    ap.add_argument("--warmup-ms", type=float, default=50.0)
    ap.add_argument("--whole-brain", action="store_true",
                    help="one run per worker count at the largest window, plus the CPU "
                    "backend in one process with as many threads")
    ap.add_argument("--store", default=None, help="reuse / keep the network store here")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from distributed import Client, LocalCluster

    tmp = tempfile.mkdtemp(prefix="bench-dask-")
    store = args.store or os.path.join(tmp, "net.zarr")
    try:
        if not os.path.exists(store):
            if args.network == "tiny":
                net, gen_s = tiny_store(store, args.partitions, args.dt)
            else:
                net, gen_s = make_store(store, args.neurons, args.k_in, args.partitions,
                                        args.dt, args.velocity)
            print(f"network: {net.n_neurons:,} neurons, {net.n_synapses:,} synapses, "
                  f"{args.partitions} partitions, generated in {gen_s:.1f} s", flush=True)
        rows = []
        with LocalCluster(n_workers=max(args.workers), threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
            print(HEADER, flush=True)
            for w in args.workers:
                windows = [0] if args.whole_brain or w == 1 else args.windows
                done = set()
                for win in windows:
                    if win and win in done:
                        continue
                    r = measure(client, store, w, win or None, args.warmup_ms, args.t_ms)
                    if r is None or (not win and r["window_steps"] in done):
                        continue
                    done.add(r["window_steps"])
                    rows.append(r)
                    print(row_text(r), flush=True)
        cpu = {th: cpu_reference(store, args.t_ms, args.warmup_ms, th)
               for th in sorted(set(args.workers) & {1, 2})}
        print("cpu backend, one process: " +
              ", ".join(f"{th} thread(s) RTF {v:.2f}" for th, v in cpu.items()))
        if args.out:
            with open(args.out, "w") as fh:
                json.dump({"args": vars(args), "rows": rows, "cpu_rtf": cpu,
                           "load_average": os.getloadavg()}, fh, indent=1, default=float)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
