"""Brian2 (C++ standalone, OpenMP) run of brainsim's Potjans-Diesmann microcircuit, timed.

Runs in the Brian2 peer environment (``/work/peers-venv-brian2``, requirements-brian2.txt),
never in brainsim's. Every model number comes from the JSON written by
``dump_pd14_params.py``: population sizes, iaf_psc_exp parameters incl. the DC ``I_e``,
initial V (normal), synapse numbers, weight and delay distributions, the Poisson drive.

Model: one NeuronGroup, ``dv/dt = (E_L - v)/tau_m + (I_ex + I_in + I_e)/C_m`` (unless
refractory), exponential currents, ``method="exact"`` (the same propagators as NEST's
iaf_psc_exp), threshold ``v >= V_th``, reset to V_reset, refractory t_ref. Recurrent
synapses: one Synapses object per distinct (weight, delay) distribution (3 for PD14:
E, the doubled L4E->L23E, I), ``on_pre`` adds the weight to I_ex or I_in. Connectivity:

- ``fixed_total`` (default): for each projection, n_syn (source, target) pairs drawn
  uniformly with numpy (autapses and multapses allowed) -- NEST's and brainsim's rule
  exactly; the draws are part of the Python build time and go to the binary as files.
- ``bernoulli``: Brian2's usual stand-in, pairwise Bernoulli with p = n_syn / (N_pre N_post)
  drawn inside the binary (no multapses; the count is n_syn only on average).

Weights normal (clipped at 0 to keep the sign: 10 sd away, never reached), delays normal
redrawn below delay_min (5 conditional redraws, then clipped; Brian2 rounds delays to steps).
Poisson drive: ``PoissonInput`` (K_ext sources at 8 Hz per neuron, binomial draw per step)
on each population's subgroup; DC drive is ``I_e``.

Protocol: build (Python: description, code generation, array files; binary: construction),
compile (``make``, reported separately, reused across seeds when the code is unchanged),
500 ms warm-up, 1000 ms timed; spikes are only counted (``SpikeMonitor(record=False)``,
active in the timed run only). Timestamps come from std::chrono lines inserted into the
binary (wall and process CPU time); its peak RSS is VmHWM read inside the binary; the seed
(PEER_SEED) is read by the binary at start. Prints one JSON line.

    /work/peers-venv-brian2/bin/python benchmarks/peers/brian2_pd14.py \
        --params benchmarks/out/pd14_params_scale0.1_k0.1_poisson.json --seed 1 --threads 2
"""
import argparse
import json
import os
import resource
import time

import numpy as np

WARMUP_MS, MEASURE_MS = 500.0, 1000.0
# wall time and process CPU time (all threads) at a point of main()
STAMP = ('{{ std::ofstream _f("%s", std::ios::app); _f << "%s " << std::setprecision(17) << '
         'std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())'
         '.count() << " " << (double)std::clock() / CLOCKS_PER_SEC << "\\n"; }}')
# VmHWM of the binary itself (ru_maxrss would start from the forking Python's RSS)
RSS = ('{{ std::ifstream _s("/proc/self/status"); std::string _l; std::ofstream _f("%s", '
       'std::ios::app); while (std::getline(_s, _l)) if (_l.rfind("VmHWM:", 0) == 0) '
       '_f << "vmhwm_kb " << std::stol(_l.substr(6)) << "\\n"; }}')
# the seed comes from the environment so that a new seed needs no recompilation
SEED = ('{{ const char* _s = std::getenv("PEER_SEED"); unsigned long _v = _s ? '
        'std::strtoul(_s, 0, 10) : 1UL; for (int _i = 0; _i < %d; _i++) '
        'brian::_random_generators[_i].seed(1000UL * _v + _i); }}')


def synapse_classes(projections):
    """Group projections that share their weight and delay distribution."""
    classes = {}
    for c in projections:
        key = (c["weight_mean"], c["weight_sd"], c["weight_min"], c["weight_max"],
               c["delay_mean"], c["delay_sd"], c["delay_min"])
        classes.setdefault(key, []).append(c)
    return classes


def draw_pairs(rng, n_syn, src, tgt):
    """fixed_total_number with autapses and multapses: uniform (pre, post) pairs."""
    i = rng.integers(src[0], src[1], size=n_syn, dtype=np.int32)
    j = rng.integers(tgt[0], tgt[1], size=n_syn, dtype=np.int32)
    return i, j


def build_model(b2, par, seed, connect, stamp_file):
    """Describe the network for the standalone device (nothing runs yet)."""
    mV, ms, pA, pF, Hz = b2.mV, b2.ms, b2.pA, b2.pF, b2.Hz
    pops = par["populations"]
    p0 = pops[0]["params"]
    for p in pops:
        same = {k: v for k, v in p["params"].items() if k != "I_e"}
        if p["model"] != "iaf_psc_exp" or same != {k: v for k, v in p0.items() if k != "I_e"}:
            raise ValueError(f"only one iaf_psc_exp parameter set (up to I_e) supported: {p}")
    ns = {"E_L": p0["E_L"] * mV, "V_th": p0["V_th"] * mV, "V_reset": p0["V_reset"] * mV,
          "tau_m": p0["tau_m"] * ms, "C_m": p0["C_m"] * pF,
          "tau_syn_ex": p0["tau_syn_ex"] * ms, "tau_syn_in": p0["tau_syn_in"] * ms}
    eqs = """
    dv/dt = (E_L - v)/tau_m + (I_ex + I_in + I_e)/C_m : volt (unless refractory)
    dI_ex/dt = -I_ex/tau_syn_ex : amp
    dI_in/dt = -I_in/tau_syn_in : amp
    I_e : amp (constant)
    """
    b2.device.insert_code("main", STAMP % (stamp_file, "construct_start"))
    n_total = sum(p["n"] for p in pops)
    G = b2.NeuronGroup(n_total, eqs, threshold="v >= V_th", reset="v = V_reset",
                       refractory=p0["t_ref"] * ms, method="exact", namespace=ns)
    ranges, start = {}, 0
    for p in pops:
        ranges[p["name"]] = (start, start + p["n"])
        sub = G[start:start + p["n"]]
        sub.I_e = p["params"]["I_e"] * pA
        sub.v = f"({p['V0_mean']} + {p['V0_sd']} * randn()) * mV"
        start += p["n"]
    rng = np.random.default_rng([seed, 2])
    objects = [G]
    for k, (key, projs) in enumerate(synapse_classes(par["projections"]).items()):
        wm, wsd, wmin, wmax, dm, dsd, dmin = key
        var = "I_ex" if wm >= 0 else "I_in"
        S = b2.Synapses(G, G, "w : amp (constant)", on_pre=f"{var}_post += w",
                        name=f"syn{k}")
        if connect == "fixed_total":
            pairs = [draw_pairs(rng, c["n_syn"], ranges[c["source"]], ranges[c["target"]])
                     for c in projs]
            S.connect(i=np.concatenate([q[0] for q in pairs]),
                      j=np.concatenate([q[1] for q in pairs]))
        else:
            for c in projs:
                (a, b), (lo, hi) = ranges[c["source"]], ranges[c["target"]]
                p = c["n_syn"] / ((b - a) * (hi - lo))
                S.connect(j=f"k for k in sample({lo}, {hi}, p={p!r}) if i >= {a} and i < {b}")
        lo = "-inf" if wmin is None else f"{wmin}"
        hi = "inf" if wmax is None else f"{wmax}"
        S.w = f"clip({wm!r} + {wsd!r} * randn(), {lo}, {hi}) * pA"
        S.delay = f"({dm!r} + {dsd!r} * randn()) * ms"
        for _ in range(5):  # redraw below delay_min, as NEST's redraw() and brainsim
            S.delay[f"delay < {dmin!r} * ms"] = f"({dm!r} + {dsd!r} * randn()) * ms"
        S.delay[f"delay < {dmin!r} * ms"] = f"{dmin!r} * ms"
        objects.append(S)
    for q in par["poisson"]:
        a, b = ranges[q["target"]]
        objects.append(b2.PoissonInput(G[a:b], "I_ex", N=q["indegree"],
                                       rate=q["rate_per_source_hz"] * Hz,
                                       weight=f"{q['weight']!r} * pA"))
    mon = b2.SpikeMonitor(G, record=False)
    objects.append(mon)
    return objects, mon, ranges


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", required=True, help="JSON from dump_pd14_params.py")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connect", choices=("fixed_total", "bernoulli"), default="fixed_total")
    ap.add_argument("--build-dir", default=None, help="standalone project directory "
                    "(default: benchmarks/out/brian2_build/<params name>_<connect>_t<threads>; a "
                    "directory shared between thread counts left stale objects: segfault)")
    a = ap.parse_args()
    t_start = time.perf_counter()
    import brian2 as b2

    with open(a.params) as f:
        par = json.load(f)
    name = os.path.splitext(os.path.basename(a.params))[0]
    bdir = os.path.abspath(a.build_dir or os.path.join(
        os.path.dirname(__file__), "..", "out", "brian2_build",
        f"{name}_{a.connect}_t{a.threads}"))
    os.makedirs(bdir, exist_ok=True)
    stamp_file = os.path.join(bdir, "timing.txt")
    if os.path.exists(stamp_file):
        os.remove(stamp_file)
    b2.set_device("cpp_standalone", directory=bdir, build_on_run=False)
    # one thread: Brian2's serial code (its OpenMP code with 1 thread crashed here)
    b2.prefs.devices.cpp_standalone.openmp_threads = a.threads if a.threads > 1 else 0
    # Brian2's default "make -j" starts one compiler per file (~70) on a 2-core machine
    b2.prefs.devices.cpp_standalone.extra_make_args_unix = [f"-j{max(a.threads, 1)}"]
    b2.prefs.codegen.cpp.headers += ["<chrono>", "<fstream>", "<iomanip>", "<string>", "<cstdlib>"]
    b2.prefs.logging.console_log_level = "ERROR"
    b2.defaultclock.dt = par["dt"] * b2.ms
    b2.device.insert_code("main", SEED % max(a.threads, 1))
    os.environ["PEER_SEED"] = str(a.seed)
    objects, mon, ranges = build_model(b2, par, a.seed, a.connect, stamp_file)
    net = b2.Network(*objects)
    mon.active = False
    b2.device.insert_code("main", STAMP % (stamp_file, "warmup_start"))
    net.run(WARMUP_MS * b2.ms)
    mon.active = True
    b2.device.insert_code("main", STAMP % (stamp_file, "measure_start"))
    net.run(MEASURE_MS * b2.ms)
    b2.device.insert_code("main", STAMP % (stamp_file, "measure_end"))
    b2.device.insert_code("main", RSS % stamp_file)
    t_py0 = time.perf_counter()
    b2.device.build(directory=bdir, compile=False, run=False)  # code generation, array files
    t_codegen = time.perf_counter()
    b2.device.compile_source(bdir, compiler=None, debug=False, clean=False)
    t_compile = time.perf_counter()
    # resident memory of this front end while the binary runs (it holds the drawn network)
    with open("/proc/self/status") as f:
        front_kb = next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:"))
    b2.device.run(bdir, with_output=False)
    t_run = time.perf_counter()
    stamps, cpu = {}, {}
    with open(stamp_file) as f:
        for line in f:
            key, *vals = line.split()
            stamps[key] = float(vals[0])
            if len(vals) > 1:
                cpu[key] = float(vals[1])
    counts = np.asarray(mon.count[:])
    rates = {p: float(counts[lo:hi].sum()) / ((hi - lo) * MEASURE_MS * 1e-3)
             for p, (lo, hi) in ranges.items()}
    n_syn = int(sum(len(o) for o in objects if isinstance(o, b2.Synapses)))
    binary_s = t_run - t_compile
    construct_s = stamps["warmup_start"] - stamps["construct_start"]
    out = {
        "simulator": "Brian2 C++ standalone", "version": b2.__version__, "seed": a.seed,
        "threads": a.threads, "connect": a.connect,
        "neurons": int(sum(p["n"] for p in par["populations"])), "synapses": n_syn,
        "python_build_s": t_codegen - t_start, "compile_s": t_compile - t_codegen,
        "construct_s": construct_s, "build_s": (t_codegen - t_start) + construct_s,
        "warmup_s": stamps["measure_start"] - stamps["warmup_start"],
        "sim_s": stamps["measure_end"] - stamps["measure_start"],
        "sim_cpu_s": cpu["measure_end"] - cpu["measure_start"],
        "binary_wall_s": binary_s,
        "binary_overhead_s": binary_s - (stamps["measure_end"] - stamps["construct_start"]),
        "peak_rss_gb": stamps["vmhwm_kb"] * 1024 / 1e9,
        "python_peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
        "python_rss_at_run_gb": front_kb * 1024 / 1e9,
        "rates": rates, "build_dir": bdir, "codegen_s": t_codegen - t_py0,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
