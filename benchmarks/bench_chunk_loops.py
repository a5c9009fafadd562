"""Cost per neuron-step of the CPU engine's chunk loops, with and without
per-neuron parameter columns, in this interpreter's brainsim or, with
``--compare PYTHON``, interleaved with another installation (e.g. the code
before a change) in the same run.

Cases (each in a fresh process, Numba compilation before the timed region):

- ``pd14``: the Potjans-Diesmann microcircuit at scale 0.1, Poisson input
  (homogeneous populations: the fast loop with one parameter row);
- ``hcp``: issue 16's lif_dtb network: ``from_connectome(load_hcp(), 100000,
  100)`` with its OU background, dt 1 ms, float32 (the E and I mean rates,
  printed for every case, must stay statistically unchanged by a change of
  noise sampler);
- ``hcp_het``: the HCP lif_dtb network of ``from_connectome`` (1e5 neurons,
  k_in 100) with the DTB's per-neuron Gamma heterogeneity of g_AMPA,
  g_NMDA, g_GABA_A, g_GABA_B (parameter columns);
- ``hmda``: 12 copies of a 10-region lif_dtb network (3,000 neurons each,
  HMDA's ensemble) with per-region g_AMPA scales set per neuron.

Reproduce: ``python benchmarks/bench_chunk_loops.py --compare
/path/to/other/venv/bin/python --repeats 3``. Prints medians of ns per
neuron-step and the ratio now / other.
"""
import argparse
import json
import subprocess
import sys
import time

CASES = ("pd14", "hcp", "hcp_het", "hmda")


def run_case(case, t_ms, threads):
    import numpy as np

    import brainsim
    from brainsim import datasets
    from brainsim.generation import from_connectome, microcircuit
    from brainsim.wholebrain import mean_rates

    dtype = "float64"
    if case == "pd14":
        net = microcircuit(scale=0.1, seed=1)
    elif case == "hcp":
        net = from_connectome(datasets.load_hcp(), 100_000, 100, partitions=threads, seed=1)
        dtype = "float32"
    elif case == "hcp_het":
        net = from_connectome(datasets.load_hcp(), 100_000, 100, partitions=threads, seed=1)
        g = np.random.default_rng(1)
        for name in ("g_AMPA", "g_NMDA", "g_GABA_A", "g_GABA_B"):
            net.set_property(np.arange(net.n_neurons), name,
                             multiplier=g.gamma(5.0, 0.2, net.n_neurons))
    else:
        from brainsim.ensemble import replicate
        base = from_connectome(datasets.load_hcp().select(list(range(10))), 3000, 50,
                               partitions=2, seed=1).build()
        net = replicate(base, 12)
        scale = np.random.default_rng(2).uniform(0.5, 2.0, (12, 10))
        member = np.repeat(np.arange(12), base.n_neurons)
        region = np.tile(base.region_index(), 12)
        net.set_property(np.arange(net.n_neurons), "g_AMPA",
                         multiplier=scale[member, region])
    net.build(threads)
    sim = brainsim.Simulation(net, seed=1, threads=threads, record={"spikes": False},
                              dtype=dtype)
    sim.run(20 * net.dt)  # compile
    t0 = time.perf_counter()
    ds = sim.run(t_ms)
    wall = time.perf_counter() - t0
    steps = round(t_ms / net.dt)
    return {"case": case, "neurons": net.n_neurons, "wall_s": wall,
            "ns_per_neuron_step": wall / (net.n_neurons * steps) * 1e9,
            "rate_e_i_hz": mean_rates(ds, net, 0.0)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compare", default=None, help="another Python with brainsim installed")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    p.add_argument("--t-ms", type=float, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one:
        t_ms = a.t_ms if a.t_ms else (500.0 if a.one == "pd14" else 2000.0)
        print(json.dumps(run_case(a.one, t_ms, a.threads)))
        return
    pythons = {"now": sys.executable}
    if a.compare:
        pythons["other"] = a.compare
    res = {k: {c: [] for c in a.cases} for k in pythons}
    for r in range(a.repeats):
        for case in a.cases:
            for label, py in pythons.items():
                out = subprocess.run([py, __file__, "--one", case, "--threads", str(a.threads)],
                                     capture_output=True, text=True, check=True)
                row = json.loads(out.stdout.strip().splitlines()[-1])
                res[label][case].append(row["ns_per_neuron_step"])
                print(f"repeat {r} {case:8s} {label:5s} {row['ns_per_neuron_step']:.2f} "
                      f"ns/neuron-step ({row['neurons']} neurons, E/I "
                      f"{row['rate_e_i_hz'][0]:.2f}/{row['rate_e_i_hz'][1]:.2f} Hz)",
                      flush=True)
    import statistics
    print("\n| case | now (ns/neuron-step) | other | now / other |\n|---|---|---|---|")
    for case in a.cases:
        now = statistics.median(res["now"][case])
        if a.compare:
            other = statistics.median(res["other"][case])
            print(f"| {case} | {now:.2f} | {other:.2f} | {now / other:.2f} |")
        else:
            print(f"| {case} | {now:.2f} | | |")


if __name__ == "__main__":
    main()
