"""Time the Potjans-Diesmann microcircuit on a GPU (``backend="cuda"``).

Protocol as benchmarks/bench_microcircuit.py (reference/pd14.md): build,
upload, warm-up discarded (it also compiles the kernels), then ``--t-ms`` of
biological time timed with no spike recording (rates binned on the device).
Then a second interval with CUDA events around every kernel gives the GPU
time per step of each kernel. Each configuration runs in a fresh subprocess.

    python benchmarks/bench_cuda.py --scales 0.1 0.5 1.0 --inputs dc poisson \
        --out benchmarks/out/cuda.json

Reported per run: neurons, synapses, build s (host), upload s (state and
network to the device), compile + warm-up s, real-time factor (wall s per
biological s), synaptic events per wall s, kernel ms per step, GPU memory
(arrays held; used on the device), fixed-point bits, window (steps per launch
pair), per-population rates. Needs a GPU; under NUMBA_ENABLE_CUDASIM=1 it runs
(very slowly) for checking at tiny scales.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np


def one_run(scale, k_scale, inp, t_ms, warmup_ms, seed, dtype, mode, threads_per_block):
    import brainsim
    from brainsim.backends.cuda import cuda_devices
    from brainsim.generation import microcircuit

    t0 = time.perf_counter()
    net = microcircuit(scale=scale, k_scale=k_scale, input=inp, seed=seed)
    net.build(1)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sim = brainsim.Simulation(net, backend="cuda", seed=seed, dtype=dtype, mode=mode,
                              threads_per_block=threads_per_block, record={"spikes": False})
    upload_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sim.run(warmup_ms)
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = sim.run(t_ms)
    sim_s = time.perf_counter() - t0
    kernels = sim.kernel_times(t_ms)
    rates = ds.rate.mean("time").values
    return {
        "scale": scale, "k_scale": k_scale, "input": inp, "dtype": dtype, "mode": mode,
        "threads_per_block": threads_per_block, "seed": seed, "neurons": net.n_neurons,
        "synapses": net.n_synapses, "build_s": build_s, "upload_s": upload_s,
        "warmup_s": warmup_s, "warmup_ms": warmup_ms, "sim_s": sim_s, "t_ms": t_ms,
        "rtf": sim_s / (t_ms * 1e-3),
        "events_per_wall_s": _events_per_bio_s(net, rates) * (t_ms * 1e-3) / sim_s,
        "kernel_ms_per_step": kernels, "gpu_arrays_gb": sim.device_memory() / 1e9,
        "gpu_used_gb": _gpu_used_gb(sim), "fixed_point_bits": sim.fixed_bits,
        "window_steps": sim.window, "device": cuda_devices()[0]["name"],
        "rates": dict(zip(net.populations, np.round(rates, 3).tolist())),
        "brainsim_version": brainsim.__version__,
    }


def _events_per_bio_s(net, rates):
    outdeg = np.zeros(net.n_neurons)
    for p in net.partitions:
        outdeg[p.sources] += np.diff(p.indptr)
    pop_out = np.array([outdeg[q.start:q.stop].mean() for q in net.populations.values()])
    pop_n = np.array([q.n for q in net.populations.values()])
    return float((rates * pop_n * pop_out).sum())


def _gpu_used_gb(sim):
    free, total = sim._cu.current_context().get_memory_info()
    used = total - free
    return used / 1e9 if np.isfinite(used) else None


def machine():
    from brainsim.backends.cuda import cuda_devices
    return {"gpus": cuda_devices(), "cores": os.cpu_count(),
            "python": platform.python_version(),
            "simulator": os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", type=float, nargs="+", default=[0.1, 0.5, 1.0])
    ap.add_argument("--inputs", nargs="+", default=["dc", "poisson"], choices=["poisson", "dc"])
    ap.add_argument("--k-scale", type=float, default=None,
                    help="in-degree scale (default: the scale for Poisson input, 1.0 for DC)")
    ap.add_argument("--t-ms", type=float, default=1000.0)
    ap.add_argument("--warmup-ms", type=float, default=500.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--modes", nargs="+", default=["launch"], choices=["launch", "persistent"])
    ap.add_argument("--threads-per-block", type=int, default=128)
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(one_run(**json.loads(args.child))))
        return 0
    results = {"machine": machine(), "runs": []}
    failed = 0
    for scale in args.scales:
        for inp in args.inputs:
            k = args.k_scale if args.k_scale is not None else (scale if inp == "poisson" else 1.0)
            for mode in args.modes:
                cfg = dict(scale=scale, k_scale=k, inp=inp, t_ms=args.t_ms,
                           warmup_ms=args.warmup_ms, seed=args.seed, dtype=args.dtype,
                           mode=mode, threads_per_block=args.threads_per_block)
                out = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)],
                                     capture_output=True, text=True)
                if out.returncode:
                    print(out.stderr, file=sys.stderr)
                    failed += 1
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                results["runs"].append(r)
                kern = {k: round(v * 1e3, 2) for k, v in r["kernel_ms_per_step"].items()
                        if k != "steps"}
                print(f"scale {scale:5} k {k:5} {inp:7} {mode:10}: N {r['neurons']:6d} "
                      f"syn {r['synapses']:.3g} build {r['build_s']:.1f} s upload "
                      f"{r['upload_s']:.2f} s warm-up {r['warmup_s']:.1f} s  RTF {r['rtf']:.3f}  "
                      f"kernel us/step {kern}  GPU arrays {r['gpu_arrays_gb']:.2f} GB  "
                      f"rates {list(r['rates'].values())}", flush=True)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
