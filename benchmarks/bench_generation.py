"""Generation throughput: whole-brain networks from the HCP connectome.

Each configuration runs in a fresh subprocess (its own peak memory), ``--repeats``
times; medians are reported. Configurations:

- ``brainsim``: ``from_connectome`` (94 AAL2 regions, E/I per region, k_in
  fixed) streamed into a Zarr network store, partition by partition;
- ``brainsim-memory``: the same network kept in memory (no store);
- ``brainsim-connect``: the same sizes built with the generic NEST-like API
  (one E and one I population, ``fixed_indegree`` connect + build): the
  in-repo peer for the streaming generator;
- ``nest``: NEST 3.10 ``Connect`` with ``fixed_indegree`` between an E and
  an I population of the same sizes (run with the peers' Python, see
  benchmarks/peers/README.md; skipped when not installed).

    python benchmarks/bench_generation.py --synapses 1e7 1e8 --threads 2 \
        --out benchmarks/out/generation.json

Reported: neurons, synapses, seconds, synapses per second, peak RSS, bytes per
synapse on disk (compressed chunks) and in memory.
"""
import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

K_IN = 100
PEER_PYTHON = os.environ.get("BRAINSIM_PEER_PYTHON", "/work/peers-venv/bin/python")


def run_brainsim(n, mode, threads, seed):
    os.environ.setdefault("NUMBA_NUM_THREADS", str(threads))
    import numpy as np

    import brainsim
    from brainsim.datasets import load_hcp
    from brainsim.generation import from_connectome
    from brainsim.store import network_info
    conn = load_hcp()
    tmp = tempfile.mkdtemp()
    store = os.path.join(tmp, "net.zarr") if mode == "brainsim" else None
    if mode == "brainsim-connect":
        brainsim.Network(seed=seed)  # import and compile outside the timing
        net = brainsim.Network(dt=1.0, seed=seed)
        net.add_population("E", int(0.8 * n), model="lif_dtb")
        net.add_population("I", n - int(0.8 * n), model="lif_dtb", kind="I")
        t0 = time.perf_counter()
        net.connect(["E", "I"], ["E", "I"], rule="fixed_indegree", indegree=K_IN // 2,
                    weight=0.5, allow_autapses=False, allow_multapses=False)
        net.build(threads)
    else:
        from_connectome(conn, 20_000, 10, seed=seed)  # compile outside the timing
        t0 = time.perf_counter()
        net = from_connectome(conn, n, K_IN, partitions=threads, seed=seed, store=store)
    wall = time.perf_counter() - t0
    out = {"neurons": net.n_neurons, "synapses": net.n_synapses, "seconds": wall,
           "synapses_per_s": net.n_synapses / wall,
           "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}
    if "timings_s" in net.meta:  # from_connectome: partitioning vs drawing the synapses
        out["partitioning_s"] = net.meta["timings_s"]["partitioning"]
        out["synapse_s"] = net.meta["timings_s"]["synapses"]
    if store is not None:
        info = network_info(store)
        out["bytes_per_synapse_disk"] = info["bytes_per_synapse_disk"]
        out["bytes_per_synapse_raw"] = info["bytes_per_synapse_raw"]
    else:
        out["bytes_per_synapse_memory"] = net.bytes_per_synapse()
        out["mean_indegree"] = float(np.mean(
            np.bincount(net.synapses["targets"], minlength=net.n_neurons)))
    shutil.rmtree(tmp, ignore_errors=True)
    return out


NEST_SCRIPT = """
import json, resource, sys, time
import nest
n, k, threads, seed = (int(x) for x in sys.argv[1:5])
nest.set_verbosity("M_ERROR")
nest.ResetKernel()
nest.SetKernelStatus({"local_num_threads": threads, "rng_seed": seed + 1})
e = nest.Create("iaf_psc_exp", int(0.8 * n))
i = nest.Create("iaf_psc_exp", n - int(0.8 * n))
t0 = time.perf_counter()
for pre in (e, i):
    nest.Connect(pre, e + i, {"rule": "fixed_indegree", "indegree": k // 2,
                              "allow_autapses": False, "allow_multapses": False},
                 {"synapse_model": "static_synapse", "weight": 1.0, "delay": 1.0})
nest.Prepare()
wall = time.perf_counter() - t0
syn = nest.GetKernelStatus("num_connections")
print(json.dumps({"neurons": n, "synapses": syn, "seconds": wall,
                  "synapses_per_s": syn / wall, "nest_version": nest.__version__,
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""


def run_nest(n, threads, seed):
    if not os.path.exists(PEER_PYTHON):
        return None
    proc = subprocess.run([PEER_PYTHON, "-c", NEST_SCRIPT, str(n), str(K_IN), str(threads),
                           str(seed)], capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child(args):
    if args.mode == "nest":
        res = run_nest(args.neurons, args.threads, args.seed)
    else:
        res = run_brainsim(args.neurons, args.mode, args.threads, args.seed)
    print(json.dumps(res))


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--synapses", type=float, nargs="+", default=[1e7, 1e8])
    ap.add_argument("--modes", nargs="+",
                    default=["brainsim", "brainsim-memory", "brainsim-connect", "nest"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--neurons", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    rows = []
    for n_syn in args.synapses:
        n = int(round(n_syn / K_IN))
        for mode in args.modes:
            runs = []
            for _ in range(args.repeats):
                cmd = [sys.executable, __file__, "--child", "--mode", mode, "--neurons", str(n),
                       "--threads", str(args.threads), "--seed", str(args.seed)]
                env = {**os.environ, "NUMBA_NUM_THREADS": str(args.threads)}
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "null"
                res = json.loads(line)
                if res is None:
                    print(f"{mode}: skipped ({proc.stderr[-300:]!r})", file=sys.stderr)
                    break
                runs.append(res)
            if not runs:
                continue
            row = {**runs[-1], "mode": mode, "repeats": len(runs),
                   "seconds": median([r["seconds"] for r in runs]),
                   "seconds_all": [r["seconds"] for r in runs],
                   "peak_rss_gb": max(r["peak_rss_gb"] for r in runs)}
            row["synapses_per_s"] = row["synapses"] / row["seconds"]
            extra = ""
            if "synapse_s" in runs[-1]:
                row["synapse_s"] = median([r["synapse_s"] for r in runs])
                row["partitioning_s"] = median([r["partitioning_s"] for r in runs])
                row["synapses_per_s_drawing"] = row["synapses"] / row["synapse_s"]
                extra = (f"  (partitioning {row['partitioning_s']:.2f} s, synapses "
                         f"{row['synapses_per_s_drawing']:.3g} syn/s)")
            rows.append(row)
            print(f"{mode:<18}{row['neurons']:>10,}{row['synapses']:>14,}{row['seconds']:>9.2f} s"
                  f"{row['synapses_per_s']:>12.3g} syn/s{row['peak_rss_gb']:>8.2f} GB{extra}",
                  flush=True)
    for n_syn in args.synapses:
        base = [r for r in rows if r["mode"] == "brainsim" and abs(r["synapses"] - n_syn) < 0.01 * n_syn]
        for r in rows:
            if base and r["mode"] != "brainsim" and abs(r["synapses"] - n_syn) < 0.01 * n_syn:
                print(f"{n_syn:.0e}: brainsim / {r['mode']} time ratio "
                      f"{base[0]['seconds'] / r['seconds']:.3f}")
    if args.out:
        meta = {"machine": platform.platform(), "cpus": os.cpu_count(),
                "python": sys.version.split()[0], "threads": args.threads, "k_in": K_IN}
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
