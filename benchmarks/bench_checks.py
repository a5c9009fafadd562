"""Cost of the reliability checks on the Potjans-Diesmann microcircuit (issue 19).

    python benchmarks/bench_checks.py --scale 0.1 --repeats 7 --out benchmarks/out/checks.json

"on" is brainsim as shipped: divergence detection after every 100 ms chunk
(min/max of the V_m row), and with ``--store`` a results store whose
appends carry CRC-32 checksums, commits and state snapshots (flush_s=10 s,
and one at the end of each run). "off" is the same process with the
divergence check replaced by a no-op and the store's appends stripped of
checksums, commit records and snapshots (plain Zarr appends, as before).
Both variants alternate, ``--repeats`` times each, after a warm-up run
that compiles every kernel; each run simulates a 500 ms warm-up (untimed)
and ``--t-ms`` timed, 2 threads, Poisson input, float32, all spikes
recorded. Reported: median real-time factor of each and their ratio, and
the divergence check timed on its own (median us per call; one call per
100 ms chunk) as a share of the "off" real-time factor.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time


def run_once(net, store, t_ms):
    import brainsim
    if store is not None:
        shutil.rmtree(store, ignore_errors=True)
    sim = brainsim.Simulation(net, seed=3, store=store, dtype="float32", threads=2)
    sim.run(500.0)
    t0 = time.perf_counter()
    sim.run(t_ms)
    return (time.perf_counter() - t0) / (t_ms * 1e-3)


class Off:
    """Turns the checks off in this process (and back on)."""

    def __enter__(self):
        from brainsim.backends import cpu
        from brainsim.results import ResultsWriter
        self.saved = (cpu.CpuEngine.check_state, ResultsWriter.append, ResultsWriter.commit)

        def plain_append(writer, t_stop=None, state=None, **records):
            for name, data in records.items():
                if len(data):
                    writer._arrays[name].append(data)
            if t_stop is not None:
                writer.group.attrs.update({"t_stop": t_stop})
        cpu.CpuEngine.check_state = lambda self, t_ms: None
        ResultsWriter.append = plain_append
        ResultsWriter.commit = lambda writer, t_stop=None: None
        return self

    def __exit__(self, *exc):
        from brainsim.backends import cpu
        from brainsim.results import ResultsWriter
        cpu.CpuEngine.check_state, ResultsWriter.append, ResultsWriter.commit = self.saved


def time_check_state(net, calls=2000):
    """Median wall time (us) of one divergence check (the V_m row's min and
    max) of this network, timed directly: one call per 100 ms chunk."""
    import brainsim
    sim = brainsim.Simulation(net, seed=3, dtype="float32", threads=2)
    sim.run(100.0)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        sim.engine.check_state(100.0)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--t-ms", type=float, default=1000.0)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-store", action="store_true", help="measure without a results store")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    os.environ.setdefault("NUMBA_NUM_THREADS", "2")
    from brainsim.generation import microcircuit
    net = microcircuit(scale=args.scale, input="poisson", seed=1)
    net.build(2)
    tmp = tempfile.mkdtemp(prefix="brainsim_checks_")
    store = None if args.no_store else os.path.join(tmp, "r.zarr")
    try:
        run_once(net, store, 200.0)  # compile
        with Off():
            run_once(net, store, 200.0)
        on, off = [], []
        for _ in range(args.repeats):
            on.append(run_once(net, store, args.t_ms))
            with Off():
                off.append(run_once(net, store, args.t_ms))
        check_us = time_check_state(net)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med_off = statistics.median(off)
    res = {"check_state_us": check_us,
           "check_state_share": check_us * 1e-6 * 10 / med_off,  # 10 chunks per sim. second
           "scale": args.scale, "store": not args.no_store, "t_ms": args.t_ms,
           "rtf_on": on, "rtf_off": off, "median_on": statistics.median(on),
           "median_off": statistics.median(off),
           "ratio": statistics.median(on) / statistics.median(off),
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                       "loadavg": os.getloadavg()}}
    print(json.dumps({k: v for k, v in res.items() if k not in ("rtf_on", "rtf_off")},
                     indent=1))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
