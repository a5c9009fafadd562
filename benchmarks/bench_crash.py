"""Random SIGKILLs during a long CPU run writing a results store (issue 19).

    python benchmarks/bench_crash.py --kills 25 --flush-s 1.0 --out benchmarks/out/crash.json

A child process simulates a network for ``--t-ms`` with a results store and
``flush_s``; the parent kills it (SIGKILL) at a uniformly random time after
the child's first commit, then checks:

- the store opens (``open_results``, checksums verified);
- it holds exactly the uninterrupted reference run's records up to its
  committed time (spikes, rates, V_m equal, not approximately);
- how much was lost: wall-clock seconds between the last commit (the
  store's root ``zarr.json`` modification time) and the kill, against
  ``flush_s`` plus one 100 ms chunk's wall time;
- ``Simulation.resume(store, network=...)`` finishes the run and the whole
  store equals the reference bit for bit.
"""
import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

CHILD = """
import sys
sys.path.insert(0, {here!r})
import brainsim
from bench_crash import network, RECORD
sim = brainsim.Simulation(network(), seed=5, store={store!r}, record=RECORD,
                          flush_s={flush_s!r}, threads=1)
print("started", flush=True)
sim.run({t_ms!r})
"""
RECORD = {"V_m": [3, 1601]}


def network():
    """2,000 iaf_psc_exp neurons (E/I 4:1), in-degree 100/25, Poisson drive."""
    import brainsim
    net = brainsim.Network(dt=0.1, seed=8)
    net.add_population("E", 1600, params={"I_e": 360.0})
    net.add_population("I", 400, kind="I", params={"I_e": 360.0}, region="R2")
    net.connect("E", ["E", "I"], "fixed_indegree", indegree=100, weight=8.0,
                delay={"distribution": "normal", "mean": 1.5, "sd": 0.7})
    net.connect("I", ["E", "I"], "fixed_indegree", indegree=25, weight=-30.0, delay=0.8)
    net.add_poisson("E", rate=2000.0, weight=15.0)
    net.build(2)
    return net


def committed_step(store):
    try:
        with open(os.path.join(store, "zarr.json")) as fh:
            return (json.load(fh)["attributes"].get("committed") or {}).get("state")
    except (OSError, ValueError, KeyError):
        return None


def one_kill(store, args, rng):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(here=os.path.dirname(os.path.abspath(__file__)),
                                            store=store, flush_s=args.flush_s,
                                            t_ms=args.t_ms)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=os.path.dirname(store))
    deadline = time.monotonic() + 300
    while committed_step(store) is None and child.poll() is None:
        if time.monotonic() > deadline:
            child.kill()
            raise RuntimeError("the child never committed")
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, args.kill_window_s))
    killed_at = time.time()
    child.send_signal(signal.SIGKILL)
    child.wait()
    try:
        last_commit = os.path.getmtime(os.path.join(store, "zarr.json"))
    except OSError:
        last_commit = None
    return killed_at, last_commit, child.returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=25)
    ap.add_argument("--flush-s", type=float, default=1.0)
    ap.add_argument("--t-ms", type=float, default=30000.0,
                    help="long enough that no child finishes within the kill window")
    ap.add_argument("--kill-window-s", type=float, default=8.0,
                    help="kill uniformly within this many seconds after the first commit")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import brainsim
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    ref_sim = brainsim.Simulation(network(), seed=5, record=RECORD, threads=1)
    ref = ref_sim.run(args.t_ms)
    ref_wall = time.perf_counter() - t0
    chunk_wall = ref_wall / (args.t_ms / 100.0)
    rows = []
    tmp = tempfile.mkdtemp(prefix="brainsim_crash_")
    try:
        for k in range(args.kills):
            store = os.path.join(tmp, f"run{k}.zarr")
            killed_at, last_commit, rc = one_kill(store, args, rng)
            row = {"kill": k, "returncode": rc}
            try:
                part = brainsim.open_results(store).load()
                row["opens"] = True
            except Exception as err:  # counted, not hidden
                row.update(opens=False, error=f"{type(err).__name__}: {err}")
                rows.append(row)
                print(row, flush=True)
                continue
            t = float(part.attrs["t_stop"])
            n = int(np.searchsorted(ref.spike_time.values, t + 1e-9))
            row["t_committed_ms"] = t
            row["prefix_exact"] = bool(
                part.sizes["spike"] == n
                and np.array_equal(part.spike_neuron.values, ref.spike_neuron.values[:n])
                and np.array_equal(part.rate.values, ref.rate.values[:part.sizes["time"]])
                and np.array_equal(part.V_m.values, ref.V_m.values[:part.sizes["time_vm"]]))
            row["lost_wall_s"] = killed_at - last_commit if last_commit else None
            if t < args.t_ms:
                sim = brainsim.Simulation.resume(store, network=network(), threads=1)
                sim.run(args.t_ms - t)
            whole = brainsim.open_results(store).load()
            row["continued_identical"] = all(
                np.array_equal(whole[v].values, ref[v].values)
                for v in ("spike_time", "spike_neuron", "rate", "rate_region", "V_m"))
            rows.append(row)
            print(row, flush=True)
            shutil.rmtree(store, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    killed = [r for r in rows if r["returncode"] == -signal.SIGKILL]
    lost = [r["lost_wall_s"] for r in killed if r.get("lost_wall_s") is not None]
    summary = {
        "kills": len(rows), "killed_mid_run": len(killed),
        "opened": sum(r["opens"] for r in rows),
        "prefix_exact": sum(r.get("prefix_exact", False) for r in rows),
        "continued_identical": sum(r.get("continued_identical", False) for r in rows),
        "lost_wall_s_median": float(np.median(lost)) if lost else None,
        "lost_wall_s_max": float(np.max(lost)) if lost else None,
        "bound_s": args.flush_s + chunk_wall, "chunk_wall_s": chunk_wall,
        "reference_wall_s": ref_wall, "flush_s": args.flush_s, "t_ms": args.t_ms,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "loadavg": os.getloadavg()},
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump({"summary": summary, "kills": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
