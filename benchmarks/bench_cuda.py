"""Time the cuda engine per neuron model on a GPU and check it against the cpu engine.

One network per model, sized by ``--scales`` (a fraction of 77,169 neurons,
the full Potjans-Diesmann microcircuit):

- ``iaf_psc_exp``: the microcircuit itself (reference/pd14.md; Poisson or
  DC input, ``--input``), as in benchmarks/bench_microcircuit.py;
- ``lif_dtb``: a DTB whole-brain network on the HCP connectome (94 regions,
  E/I per region, OU background, dt = 1 ms as in DTB; at least 1,000
  neurons; in-degree ``--k-in``, halved until the smallest region can
  supply it);
- every other model of ``brainsim.kernels.neurons.BUILTIN``: a random
  network of that model (80 % E, 20 % I, fixed in-degree, Poisson input),
  weights and bias current from benchmarks/bench_neuron_models.py's table
  where the model is in it, else from its receptors' units.

Per model (each in a fresh subprocess) and ``--modes``: build s, engine setup
s (upload), compile + warm-up s, then ``--t-ms`` of biological time timed
without spike recording (rates binned on the device): real-time factor and
**ns per neuron-step** (wall time / (neurons x steps)); GPU time per step of
each kernel (CUDA events, ``kernel_times``), GPU memory, fixed-point bits,
window. Then **cpu-vs-cuda spike agreement** over ``--agree-ms`` from t = 0,
same seed, spikes recorded on both: spike counts, whether the spike lists
are identical, the share of (step, neuron) spikes in common, the first time
they differ, and whether the model promises bit identity (``gpu_exact``;
models without it agree statistically once a spike shifts). The cpu run of
the agreement also gives the cpu engine's ns per neuron-step (all threads).

    python benchmarks/bench_cuda.py --scales 0.1 1.0 --out benchmarks/out/cuda.json
    python benchmarks/bench_cuda.py --models lif_dtb --scales 0.5 --modes launch persistent

Needs a GPU for meaningful numbers; under NUMBA_ENABLE_CUDASIM=1 it runs
(very slowly) for checking at tiny scales (tests/test_cuda.py does).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
N_FULL = 77_169  # neurons of the full-scale microcircuit
#: Fewest neurons of the HCP network (its smallest region then has an E neuron)
HCP_MIN = 1000
#: Weight magnitudes (E, I) and bias current by receptor unit, for models
#: not in bench_neuron_models.py's table.
UNIT_DEFAULTS = {"pA": (60.0, 120.0), "nS": (3.0, 6.0), "mV": (4.0, 4.0), "1": (0.5, 1.5)}


# ------------------------------------------------------------ networks
def build_network(model, scale, inp, k_scale, k_in, seed, partitions):
    """(Network built in ``partitions`` partitions, description dict)."""
    if model == "iaf_psc_exp":
        from brainsim.generation import microcircuit
        k = k_scale if k_scale is not None else (scale if inp == "poisson" else 1.0)
        net = microcircuit(scale=scale, k_scale=k, input=inp, seed=seed)
        net.build(partitions)
        return net, {"network": "microcircuit", "input": inp, "k_scale": k}
    if model == "lif_dtb":
        return _hcp_network(scale, k_in, seed, partitions)
    return _random_network(model, scale, seed, partitions)


def _hcp_network(scale, k_in, seed, partitions):
    from brainsim.datasets import load_hcp
    from brainsim.errors import ParameterError
    from brainsim.generation import from_connectome
    conn = load_hcp()
    n = max(int(round(scale * N_FULL)), HCP_MIN)
    k = k_in
    while True:
        try:
            net = from_connectome(conn, n, k, partitions=min(partitions, conn.n_regions),
                                  seed=seed)
            break
        except ParameterError as err:  # regions too small for this in-degree
            if "k_in is too large" not in str(err) or k == 1:
                raise
            k = max(1, k // 2)
    return net, {"network": "hcp", "k_in": k, "regions": conn.n_regions}


def _model_table():
    """bench_neuron_models.MODELS (weights in NEST's units, bias current),
    or {} when that file is not importable."""
    sys.path.insert(0, HERE)
    try:
        from bench_neuron_models import MODELS
        return MODELS
    except Exception:  # noqa: BLE001 - a benchmark table, optional
        return {}
    finally:
        sys.path.remove(HERE)


def _random_network(model, scale, seed, partitions):
    """Random E/I network of ``model``: in-degree min(100, N/5) (80 % E),
    excitatory weight half the single-neuron test weight, inhibition five
    times stronger, Poisson input of 100 x 8 Hz through the E receptor, the
    table's bias current."""
    import brainsim
    from brainsim.neurons import get_model
    m = get_model(model)
    cfg = _model_table().get(model, {})
    unit_e, unit_i = m.receptors["E"], m.receptors["I"]
    w_e, w_i = (abs(x) for x in cfg.get("w", UNIT_DEFAULTS.get(unit_e.unit, (1.0, 1.0))))
    params = dict(cfg.get("params", {}))
    if "bias" in cfg and "I_e" in m.param_names:
        params["I_e"] = cfg["bias"]
    n = max(int(round(scale * N_FULL)), 100)
    n_e = int(round(0.8 * n))
    net = brainsim.Network(dt=0.1, seed=seed)
    net.add_population("E", n_e, model=model, params=params)
    net.add_population("I", n - n_e, model=model, kind="I", params=params)
    k = max(2, min(100, n // 5))
    we = 0.5 * w_e * unit_e.sign
    wi = 5.0 * 0.5 * max(w_i, w_e) * unit_i.sign
    net.connect("E", ["E", "I"], rule="fixed_indegree", indegree=int(0.8 * k), weight=we,
                delay=1.5)
    net.connect("I", ["E", "I"], rule="fixed_indegree", indegree=max(1, int(0.2 * k)),
                weight=wi, delay=0.8)
    net.add_poisson(["E", "I"], rate=8.0, indegree=100, weight=abs(we), delay=1.5)
    net.build(partitions)
    return net, {"network": "random", "k": k, "weights": [we, wi], "params": params}


# ---------------------------------------------------------------- runs
def one_model(model, scale, inp, k_scale, k_in, t_ms, warmup_ms, agree_ms, seed, dtype, modes,
              threads_per_block):
    """All measurements of one model (see the module docstring)."""
    import numba

    import brainsim
    from brainsim.backends.cuda import cuda_devices
    from brainsim.neurons import get_model

    t0 = time.perf_counter()
    net, desc = build_network(model, scale, inp, k_scale, k_in, seed, numba.get_num_threads())
    build_s = time.perf_counter() - t0
    cpu = agreement_run(net, "cpu", agree_ms, seed, dtype, {})
    rows = []
    for mode in modes:
        opts = {"mode": mode, "threads_per_block": threads_per_block}
        row = timed_run(net, t_ms, warmup_ms, seed, dtype, opts)
        gpu = agreement_run(net, "cuda", agree_ms, seed, dtype, opts)
        row.update(model=model, gpu_exact=get_model(model).gpu_exact, scale=scale,
                   build_s=build_s, dtype=dtype, seed=seed, mode=mode,
                   threads_per_block=threads_per_block, neurons=net.n_neurons,
                   synapses=net.n_synapses, dt=net.dt, device=cuda_devices()[0]["name"],
                   agreement=agreement(cpu, gpu, net.dt),
                   cpu_ns_per_neuron_step=cpu["ns_per_neuron_step"],
                   brainsim_version=brainsim.__version__, **desc)
        rows.append(row)
    return rows


def timed_run(net, t_ms, warmup_ms, seed, dtype, opts):
    """Setup, warm-up (compiles) and a timed interval without spike recording."""
    import brainsim
    t0 = time.perf_counter()
    sim = brainsim.Simulation(net, backend="cuda", seed=seed, dtype=dtype,
                              record={"spikes": False}, **opts)
    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sim.run(warmup_ms)
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = sim.run(t_ms)
    sim_s = time.perf_counter() - t0
    steps = int(round(t_ms / net.dt))
    kernels = sim.kernel_times(t_ms)
    rates = ds.rate.mean("time").values
    pop_n = np.array([p.n for p in net.populations.values()])
    out = {"setup_s": setup_s, "warmup_s": warmup_s, "warmup_ms": warmup_ms, "sim_s": sim_s,
           "t_ms": t_ms, "rtf": sim_s / (t_ms * 1e-3),
           "ns_per_neuron_step": sim_s / (net.n_neurons * steps) * 1e9,
           "kernel_ms_per_step": kernels, "gpu_arrays_gb": sim.device_memory() / 1e9,
           "gpu_used_gb": _gpu_used_gb(sim), "fixed_point_bits": sim.fixed_bits,
           "window_steps": sim.window,
           "rate_hz": float((rates * pop_n).sum() / pop_n.sum())}
    if len(rates) <= 16:
        out["rates"] = dict(zip(net.populations, np.round(rates, 3).tolist()))
    sim.close()
    return out


def agreement_run(net, backend, agree_ms, seed, dtype, opts):
    """Spikes of ``agree_ms`` from t = 0 (a few steps first, which compile;
    the rest timed)."""
    import brainsim
    sim = brainsim.Simulation(net, backend=backend, seed=seed, dtype=dtype,
                              record={"spikes": True, "rates": False}, **opts)
    n = int(round(agree_ms / net.dt))
    first = max(1, min(10, n // 2))
    parts = [sim.run(first * net.dt)]
    t0 = time.perf_counter()
    if n > first:
        parts.append(sim.run((n - first) * net.dt))
    wall = time.perf_counter() - t0
    steps = np.concatenate([np.rint(p.spike_time.values / net.dt).astype(np.int64) - 1
                            for p in parts])
    gids = np.concatenate([p.spike_neuron.values for p in parts])
    sim.close()
    return {"steps": steps, "gids": gids, "n_steps": n,
            "ns_per_neuron_step": (wall / (net.n_neurons * (n - first)) * 1e9
                                   if n > first else None)}


def agreement(cpu, gpu, dt):
    """Spike agreement of two runs (dicts of ``agreement_run``)."""
    a = set(zip(cpu["steps"].tolist(), cpu["gids"].tolist()))
    b = set(zip(gpu["steps"].tolist(), gpu["gids"].tolist()))
    diff = a ^ b
    identical = (np.array_equal(cpu["steps"], gpu["steps"])
                 and np.array_equal(cpu["gids"], gpu["gids"]))
    return {"t_ms": cpu["n_steps"] * dt, "cpu_spikes": len(a), "cuda_spikes": len(b),
            "identical": bool(identical),
            "common_share": len(a & b) / max(len(a), len(b), 1),
            "first_difference_ms": (min(s for s, _ in diff) + 1) * dt if diff else None}


def _gpu_used_gb(sim):
    try:
        free, total = sim.engine._cu.current_context().get_memory_info()
    except Exception:  # noqa: BLE001 - the simulator has no memory info
        return None
    used = total - free
    return used / 1e9 if np.isfinite(used) else None


def machine():
    from brainsim.backends.cuda import cuda_devices
    return {"gpus": cuda_devices(), "cores": os.cpu_count(),
            "python": platform.python_version(),
            "simulator": os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"}


def row_text(r):
    a = r["agreement"]
    kern = {k: round(v * 1e3, 2) for k, v in r["kernel_ms_per_step"].items() if k != "steps"}
    cpu = r["cpu_ns_per_neuron_step"]
    return (f"{r['model']:14} {r['network']:12} scale {r['scale']:<6} {r['mode']:10} "
            f"N {r['neurons']:7d} syn {r['synapses']:.3g}  {r['ns_per_neuron_step']:8.2f} "
            f"ns/neuron-step (cpu {cpu if cpu is None else round(cpu, 2)})  RTF "
            f"{r['rtf']:.3f}  kernel us/step {kern}  rate {r['rate_hz']:.2f} Hz  spikes cpu "
            f"{a['cpu_spikes']} cuda {a['cuda_spikes']} identical {a['identical']} common "
            f"{a['common_share']:.3f} (gpu_exact {r['gpu_exact']})")


def main(argv=None):
    from brainsim.kernels.neurons import BUILTIN
    names = [m.name for m in BUILTIN]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=names, choices=names)
    ap.add_argument("--scales", type=float, nargs="+", default=[0.1, 1.0])
    ap.add_argument("--input", default="poisson", choices=["poisson", "dc"],
                    help="microcircuit drive (iaf_psc_exp)")
    ap.add_argument("--k-scale", type=float, default=None,
                    help="microcircuit in-degree scale (default: the scale for Poisson input, "
                         "1.0 for DC)")
    ap.add_argument("--k-in", type=int, default=100, help="HCP network in-degree (lif_dtb)")
    ap.add_argument("--t-ms", type=float, default=1000.0)
    ap.add_argument("--warmup-ms", type=float, default=200.0)
    ap.add_argument("--agree-ms", type=float, default=100.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    ap.add_argument("--modes", nargs="+", default=["launch"], choices=["launch", "persistent"])
    ap.add_argument("--threads-per-block", type=int, default=128)
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(one_model(**json.loads(args.child))))
        return 0
    results = {"machine": machine(), "runs": []}
    failed = 0
    for model in args.models:
        for scale in args.scales:
            cfg = dict(model=model, scale=scale, inp=args.input, k_scale=args.k_scale,
                       k_in=args.k_in, t_ms=args.t_ms, warmup_ms=args.warmup_ms,
                       agree_ms=args.agree_ms, seed=args.seed, dtype=args.dtype,
                       modes=args.modes, threads_per_block=args.threads_per_block)
            out = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)],
                                 capture_output=True, text=True)
            if out.returncode:
                print(f"{model} scale {scale} failed:\n{out.stderr}", file=sys.stderr)
                results["runs"].append({"model": model, "scale": scale,
                                        "error": out.stderr[-2000:]})
                failed += 1
                continue
            for r in json.loads(out.stdout.strip().splitlines()[-1]):
                results["runs"].append(r)
                print(row_text(r), flush=True)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
