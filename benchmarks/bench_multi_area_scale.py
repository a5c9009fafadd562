"""How large a canonical multi-area model this machine holds on the cpu
backend: build (streamed into a network store, one area at a time), load
and simulate, with wall times, peak memory and bytes per synapse.

Each configuration runs in a fresh process, so its peak RSS is its own:

    python benchmarks/bench_multi_area_scale.py --model human --scales 0.05 0.1 \\
        --t-ms 200 --threads 2

prints a Markdown table (and writes benchmarks/out/multi_area_scale.json).
The largest scale that fits in a given memory follows from the measured
bytes per synapse of the simulation (synapses grow as scale^2 when
k_scale = scale).
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time


def rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def one(model, scale, k_scale, t_ms, threads, folder):
    import brainsim
    from brainsim.generation import human_multi_area, macaque_multi_area

    build = human_multi_area if model == "human" else macaque_multi_area
    store = os.path.join(folder, f"{model}_{scale}.zarr")
    t0 = time.perf_counter()
    build(scale=scale, k_scale=k_scale, seed=1, store=store, overwrite=True)
    t_build = time.perf_counter() - t0
    rss_build = rss_gib()
    t0 = time.perf_counter()
    net = brainsim.load_network(store)
    t_load = time.perf_counter() - t0
    sim = brainsim.Simulation(net, seed=1, threads=threads, record={"spikes": False})
    sim.run(10 * net.dt)  # compilation
    t0 = time.perf_counter()
    ds = sim.run(t_ms)
    t_sim = time.perf_counter() - t0
    disk = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(store) for f in fs)
    return {"model": model, "scale": scale, "k_scale": k_scale, "neurons": net.n_neurons,
            "synapses": net.n_synapses, "partitions": len(net.partitions),
            "build_s": t_build, "build_peak_rss_gib": rss_build, "load_s": t_load,
            "rtf": t_sim / (t_ms * 1e-3), "peak_rss_gib": rss_gib(),
            "bytes_per_synapse": net.bytes_per_synapse(), "disk_gib": disk / 2 ** 30,
            "rate": float(ds.rate.mean().values), "threads": threads, "t_ms": t_ms}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("human", "macaque"), default="human")
    p.add_argument("--scales", type=float, nargs="+", default=[0.05, 0.1])
    p.add_argument("--k-scale", type=float, default=None, help="default: = scale")
    p.add_argument("--t-ms", type=float, default=200.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--memory-gib", type=float, default=23.0,
                   help="memory to extrapolate the largest scale to")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default="benchmarks/out/multi_area_scale.json")
    a = p.parse_args(argv)
    if a.one:
        print(json.dumps(one(a.model, a.scales[0], a.k_scale, a.t_ms, a.threads, a.folder)))
        return
    folder = tempfile.mkdtemp(prefix="brainsim_scale_")
    rows = []
    try:
        for scale in a.scales:
            cmd = [sys.executable, __file__, "--one", "--model", a.model, "--scales", str(scale),
                   "--t-ms", str(a.t_ms), "--threads", str(a.threads), "--folder", folder]
            if a.k_scale is not None:
                cmd += ["--k-scale", str(a.k_scale)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:  # e.g. killed for memory: report it, keep the rows so far
                print(f"scale {scale:g} failed (exit {out.returncode}): "
                      f"{out.stderr.strip()[-500:]}", flush=True)
                break
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder, exist_ok=True)
            print(rows[-1], flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(rows, f, indent=1)
    print(f"\n{a.model}: {os.cpu_count()} CPUs, {a.threads} threads, {a.t_ms:g} ms simulated\n")
    print("| scale | neurons | synapses | build (streamed) s | build peak GiB | load s | RTF | "
          "peak RSS GiB | B/syn in memory | disk GiB | mean rate (spikes/s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scale']:g} | {r['neurons']:,} | {r['synapses']:,} | {r['build_s']:.1f} | "
              f"{r['build_peak_rss_gib']:.2f} | {r['load_s']:.1f} | {r['rtf']:.1f} | "
              f"{r['peak_rss_gib']:.2f} | {r['bytes_per_synapse']:.2f} | {r['disk_gib']:.2f} | "
              f"{r['rate']:.3f} |")
    if not rows:
        return
    last = rows[-1]
    if len(rows) >= 2:  # memory per synapse from the slope: the fixed part drops out
        first = rows[0]
        per_syn = ((last["peak_rss_gib"] - first["peak_rss_gib"]) * 2 ** 30
                   / (last["synapses"] - first["synapses"]))
        fixed = last["peak_rss_gib"] - per_syn * last["synapses"] / 2 ** 30
        how = f"slope between scales {first['scale']:g} and {last['scale']:g}"
    else:
        per_syn, fixed = last["peak_rss_gib"] * 2 ** 30 / last["synapses"], 0.0
        how = f"peak RSS over synapses at scale {last['scale']:g} (fixed part included)"
    if a.k_scale is None:
        full = last["synapses"] / last["scale"] ** 2
        largest = ((a.memory_gib - fixed) * 2 ** 30 / per_syn / full) ** 0.5
        print(f"\nmemory per synapse ({how}): {per_syn:.2f} bytes, fixed {fixed:.2f} GiB; "
              f"largest scale within {a.memory_gib:g} GiB (synapses ~ scale^2): "
              f"{min(largest, 1.0):.3f}")

if __name__ == "__main__":
    main()
