"""brainsim run of the Potjans-Diesmann microcircuit for run_peers.py (one JSON line).

Runs in brainsim's environment. Same protocol and measurements as
``benchmarks/bench_microcircuit.py`` (Numba compilation on a tiny network before the timed
region, cached on disk; build = ``microcircuit()`` + ``Network.build``; 500 ms warm-up;
1000 ms timed with spikes only counted per population), plus the CPU seconds of the process
during the timed run (all threads), which a shared machine disturbs less than wall time.

    /work/venv/bin/python benchmarks/peers/brainsim_pd14.py --scale 0.1 --input poisson
"""
import argparse
import json
import os
import resource
import time

import numpy as np

WARMUP_MS, MEASURE_MS = 500.0, 1000.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--k-scale", type=float, default=None, help="default: --scale")
    ap.add_argument("--input", choices=("poisson", "dc"), default="poisson")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    a = ap.parse_args()
    os.environ.setdefault("NUMBA_NUM_THREADS", str(a.threads))
    import brainsim
    from brainsim.generation import microcircuit

    k_scale = a.scale if a.k_scale is None else a.k_scale
    warm = microcircuit(scale=0.01, input=a.input, seed=a.seed)  # compile (disk cache)
    brainsim.Simulation(warm, seed=a.seed, threads=a.threads, dtype=a.dtype,
                        record={"spikes": False}).run(10.0)
    t0 = time.perf_counter()
    net = microcircuit(scale=a.scale, k_scale=k_scale, input=a.input, seed=a.seed)
    net.build(a.threads)
    build_s = time.perf_counter() - t0
    sim = brainsim.Simulation(net, seed=a.seed, threads=a.threads, dtype=a.dtype,
                              record={"spikes": False})
    t0 = time.perf_counter()
    sim.run(WARMUP_MS)
    t1, c1 = time.perf_counter(), time.process_time()
    ds = sim.run(MEASURE_MS)
    t2, c2 = time.perf_counter(), time.process_time()
    rates = ds.rate.mean("time").values
    print(json.dumps({
        "simulator": "brainsim", "version": brainsim.__version__, "seed": a.seed,
        "threads": a.threads, "dtype": a.dtype, "neurons": int(net.n_neurons),
        "synapses": int(net.n_synapses), "build_s": build_s, "warmup_s": t1 - t0,
        "sim_s": t2 - t1, "sim_cpu_s": c2 - c1,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
        "bytes_per_synapse": float(net.bytes_per_synapse()),
        "rates": dict(zip(net.populations, np.asarray(rates, dtype=float).tolist()))}))


if __name__ == "__main__":
    main()
