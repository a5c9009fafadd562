"""brainsim's two canonical multi-area models side by side with NEST 3.10 on
the same network: macaque (Schmidt et al. 2018) and human (Pronold et al. 2024).

    python benchmarks/bench_multi_area_nest.py      # both models, ~6 min on 2 cores
    python benchmarks/bench_multi_area_nest.py --models human --areas bankssts fusiform \\
        --scale 0.01 --k-scale 0.1 --t-ms 3000 --seeds 1 2 3 4

Sizes: neuron numbers x ``--scale`` (0.01), in-degrees x ``--k-scale`` (0.1;
weights / sqrt(k_scale) and a DC keep every population's input mean and
variance, see the models' docstrings). The models' own default k_scale =
scale = 0.01 leaves the macaque V1 + V2 network silent (< 0.1 spikes/s in
both simulators; the mean-field fixed point from 0 Hz is 0 Hz as well: with
weights x 10 the diffusion approximation no longer holds), so the default
here is k_scale = 0.1, where both models are active (about 1 million / 2
million synapses) and the brainsim mean-field rates of the macaque network
are the full-scale ones; ``--k-scale 0`` uses k_scale = scale.

For each model brainsim builds a small down-scaled network
(``macaque_multi_area`` / ``human_multi_area``, ``net.build()``) and this
script exports it exactly to ``.npy`` files: every neuron's iaf_psc_exp
parameters (I_e holds the DC compensation) and initial V_m, every synapse
(source and target id, weight in pA as stored (float32), delay = steps x
dt), and every neuron's Poisson input (rate, weight, delay). The same
script, started in NEST's venv (``--nest-child DIR``, imports nest and numpy
only, never brainsim), builds that network in NEST (iaf_psc_exp with
per-neuron parameters, ``Connect`` of arrays one_to_one with static_synapse,
one poisson_generator per distinct (rate, weight, delay) connected to its
neurons: each target gets its own independent train, as brainsim's per-neuron
Poisson input), dt = 0.1 ms, and simulates it for every seed of the noise.
Data go through .npy and JSON files only.

Both simulators then run ``--t-ms`` for every seed in ``--seeds``; the first
``--t-discard`` ms (the transient from V_m(0) ~ N(-150, 50) mV) are dropped.
Per population: mean rate and mean CV of the ISI (neurons with >= 3 spikes)
with their standard error across seeds (the network, hence its quenched
heterogeneity, is the same in both simulators, so the spread across seeds is
the noise of the comparison), z = difference / combined SE, a two-sample KS
test of the per-neuron rates (averaged over seeds) and the brainsim
mean-field rate (``brainsim.analysis.meanfield.fixed_point(net)``). Summary:
correlation of population rates, largest |z|, smallest KS p (with the
Bonferroni threshold), correlation of per-neuron rates between the
simulators, wall times of build and simulation.

A deterministic check (``--det-ms``, 0 to skip) replaces every neuron's
Poisson input by its mean current (rate x weight x tau_syn, added to I_e,
plus ``--det-dc`` pA so that the network is active) in both simulators: the
network is then deterministic and, if the export and the dynamics agree,
both produce the same spikes (until rounding differences, e.g. of the
summation order, are amplified by the network's chaos). It reports the share
of identical spikes (same neuron, same step) in the first ``--det-ms`` ms.

Outputs: Markdown on stdout and in ``benchmarks/out/multi_area_nest.md``,
numbers in ``benchmarks/out/multi_area_nest.json``, exported networks and
spikes under ``benchmarks/out/multi_area_nest/``.
"""
import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out")
PARAMS = ("C_m", "tau_m", "tau_syn_ex", "tau_syn_in", "t_ref", "E_L", "V_reset", "V_th", "I_e")
DEFAULT_AREAS = {"macaque": ["V1", "V2"], "human": ["bankssts", "fusiform"]}


# =============================================================== NEST child
def nest_child(d, seeds, threads, det_ms):
    """Runs in NEST's venv: build the exported network and simulate it.

    Reads ``d/meta.json`` and ``d/*.npy``; writes per seed
    ``nest_spikes_<seed>_{neuron,time}.npy`` and ``nest_timing.json``."""
    import nest

    try:
        nest.verbosity = nest.VerbosityLevel.ERROR
    except AttributeError:
        nest.set_verbosity("M_ERROR")
    with open(os.path.join(d, "meta.json")) as fh:
        meta = json.load(fh)
    a = {k: np.load(os.path.join(d, f"{k}.npy")) for k in
         (*PARAMS, "V_m", "src", "tgt", "weight", "delay_ms", "poisson_rate", "poisson_weight",
          "poisson_delay_ms", "det_I_e")}
    n = int(meta["n_neurons"])
    timing = {"nest": nest.__version__, "threads": threads, "runs": {}}

    def build(seed, poisson):
        nest.ResetKernel()
        nest.set(resolution=meta["dt"], local_num_threads=threads, rng_seed=int(seed),
                 print_time=False)
        t0 = time.perf_counter()
        nodes = nest.Create("iaf_psc_exp", n)
        first = nodes[0].global_id
        # all parameters in one call (E_L with absolute V_th / V_reset)
        status = {k: a[k].astype(float).tolist() for k in PARAMS}
        if not poisson:
            status["I_e"] = a["det_I_e"].tolist()
        status["V_m"] = a["V_m"].astype(float).tolist()
        nodes.set(status)
        nest.Connect(a["src"].astype(np.int64) + first, a["tgt"].astype(np.int64) + first,
                     "one_to_one", {"synapse_model": "static_synapse",
                                    "weight": a["weight"].astype(float),
                                    "delay": a["delay_ms"].astype(float)})
        n_gen = 0
        if poisson:
            on = a["poisson_rate"] > 0
            keys = np.stack([a["poisson_rate"], a["poisson_weight"], a["poisson_delay_ms"]], 1)
            uniq, inv = np.unique(keys[on], axis=0, return_inverse=True)
            ids = np.flatnonzero(on)
            for g, (rate, w, dly) in enumerate(uniq):
                pg = nest.Create("poisson_generator", params={"rate": float(rate)})
                tg = ids[inv.ravel() == g] + first
                nest.Connect(np.full(tg.size, pg.global_id, np.int64), tg.astype(np.int64),
                             "one_to_one", {"synapse_model": "static_synapse",
                                            "weight": np.full(tg.size, float(w)),
                                            "delay": np.full(tg.size, float(dly))})
            n_gen = len(uniq)
        sr = nest.Create("spike_recorder")
        nest.Connect(nodes, sr)
        build_s = time.perf_counter() - t0
        return first, sr, build_s, n_gen

    def simulate(first, sr, t_ms, tag):
        t0 = time.perf_counter()
        nest.Simulate(float(t_ms))
        sim_s = time.perf_counter() - t0
        ev = sr.get("events")
        np.save(os.path.join(d, f"nest_spikes_{tag}_neuron.npy"),
                np.asarray(ev["senders"], np.int64) - first)
        np.save(os.path.join(d, f"nest_spikes_{tag}_time.npy"), np.asarray(ev["times"], float))
        return sim_s

    for seed in seeds:
        first, sr, build_s, n_gen = build(seed, True)
        n_conn = nest.num_connections
        sim_s = simulate(first, sr, meta["t_ms"], str(seed))
        timing["runs"][str(seed)] = {"build_s": build_s, "sim_s": sim_s,
                                     "connections": int(n_conn), "generators": int(n_gen)}
        print(f"nest seed {seed}: build {build_s:.2f} s, simulate {sim_s:.2f} s", file=sys.stderr)
    if det_ms > 0:
        first, sr, build_s, _ = build(seeds[0], False)
        timing["det"] = {"build_s": build_s, "sim_s": simulate(first, sr, det_ms, "det")}
    with open(os.path.join(d, "nest_timing.json"), "w") as fh:
        json.dump(timing, fh, indent=1)


# ========================================================= brainsim side
def build_network(model, scale, k_scale, areas, seed):
    import brainsim.generation as gen
    f = {"macaque": gen.macaque_multi_area, "human": gen.human_multi_area}[model]
    t0 = time.perf_counter()
    net = f(scale=scale, k_scale=k_scale, areas=areas, seed=seed)
    t1 = time.perf_counter()
    net.build()
    return net, {"generate_s": t1 - t0, "build_s": time.perf_counter() - t1}


def export(net, d, t_ms, det_dc=0.0):
    """Write the built network to ``d`` (.npy + meta.json). Synapses come
    from the SynapseTable in partition / CSR order: sources by repeating
    each partition's ``sources`` over its ``indptr`` rows."""
    os.makedirs(d, exist_ok=True)
    syn = net.synapses
    src = np.concatenate([np.repeat(p.sources, np.diff(p.indptr)) for p in net.partitions])
    tgt = np.asarray(syn["targets"], np.int64)
    w = np.asarray(syn["weights"]).astype(np.float64)  # float32 values, exactly
    steps = np.asarray(syn["delays"]).astype(np.int64)
    delay_ms = np.round(steps * net.dt, 10)
    assert src.size == tgt.size == w.size == steps.size == net.n_synapses
    n = net.n_neurons
    arrays = {k: net.neuron_param(k) for k in (*PARAMS, "V_m")}
    for k, v in arrays.items():
        if not np.all(np.isfinite(v)):
            raise RuntimeError(f"parameter {k} not finite for some neuron")
    inp = net.inputs
    rate = np.asarray(inp.get("poisson_rate", np.zeros(n)), float)
    pw = np.asarray(inp.get("poisson_weight", np.zeros(n)), float)
    pdel = np.round(np.asarray(inp.get("poisson_delay", np.ones(n)), float) * net.dt, 10)
    # deterministic check: I_e + the mean current of the Poisson input (rate x w x
    # tau_syn) + det_dc
    tau = np.where(pw >= 0, arrays["tau_syn_ex"], arrays["tau_syn_in"])
    arrays.update(src=src, tgt=tgt, weight=w, delay_ms=delay_ms, poisson_rate=rate,
                  poisson_weight=pw, poisson_delay_ms=pdel,
                  det_I_e=arrays["I_e"] + rate * 1e-3 * pw * tau + det_dc)
    for k, v in arrays.items():
        np.save(os.path.join(d, f"{k}.npy"), v)
    pops = [{"name": p.name, "start": p.start, "n": p.n, "kind": p.kind}
            for p in net.populations.values()]
    meta = {"n_neurons": n, "n_synapses": int(src.size), "dt": net.dt, "t_ms": t_ms,
            "populations": pops, "net_meta": {k: v for k, v in net.meta.items()
                                              if isinstance(v, (str, int, float, list))}}
    with open(os.path.join(d, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
    return arrays, meta


def run_brainsim(net, seed, t_ms, threads):
    import brainsim
    t0 = time.perf_counter()
    sim = brainsim.Simulation(net, seed=seed, threads=threads,
                              record={"spikes": True, "rates": False})
    t1 = time.perf_counter()
    ds = sim.run(t_ms)
    t2 = time.perf_counter()
    out = (np.asarray(ds.spike_neuron.values, np.int64), np.asarray(ds.spike_time.values, float))
    sim.close()
    return out, {"setup_s": t1 - t0, "sim_s": t2 - t1}


def deterministic_brainsim(net, arrays, t_ms, threads):
    """Poisson input replaced by its mean current (+ det_dc; changes ``net``)."""
    net.inputs["poisson_rate"] = np.zeros(net.n_neurons)
    net.set_property(np.arange(net.n_neurons), "I_e", value=arrays["det_I_e"])
    return run_brainsim(net, 1, t_ms, threads)[0]


# ============================================================= statistics
def per_neuron(neuron, times, n, t0, t1):
    """Rates (spikes/s) in (t0, t1] and CV of the ISI (NaN below 3 spikes)."""
    keep = (times > t0) & (times <= t1)
    neuron, times = neuron[keep], times[keep]
    rate = np.bincount(neuron, minlength=n) / ((t1 - t0) * 1e-3)
    cv = np.full(n, np.nan)
    order = np.lexsort((times, neuron))
    neuron, times = neuron[order], times[order]
    bounds = np.searchsorted(neuron, np.arange(n + 1))
    for i in np.flatnonzero(np.diff(bounds) >= 3):
        isi = np.diff(times[bounds[i]:bounds[i + 1]])
        cv[i] = isi.std() / isi.mean()
    return rate, cv


def mean_se(x):
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.nan, np.nan
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else np.nan


def compare(meta, bs, ns, t0, t1, mf):
    """bs / ns: per seed (neuron, time) arrays of brainsim / NEST."""
    import warnings

    from scipy import stats
    warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
    n = meta["n_neurons"]
    rb = [per_neuron(*s, n, t0, t1) for s in bs]
    rn = [per_neuron(*s, n, t0, t1) for s in ns]
    rows = []
    for p in meta["populations"]:
        sl = slice(p["start"], p["start"] + p["n"])
        row = {"population": p["name"], "n": p["n"]}
        for tag, res in (("brainsim", rb), ("nest", rn)):
            rates = [r[sl].mean() for r, _ in res]
            cvs = [np.nanmean(c[sl]) if np.isfinite(c[sl]).any() else np.nan for _, c in res]
            row[f"rate_{tag}"], se_seeds = mean_se(rates)
            # floor: the Poisson counting error of all spikes (at least one), so that a
            # population with the same spike count in every seed has no zero SE
            spikes = sum(rates) * p["n"] * (t1 - t0) * 1e-3
            se_count = np.sqrt(max(spikes, 1.0)) / (p["n"] * (t1 - t0) * 1e-3 * len(rates))
            row[f"rate_se_{tag}"] = float(np.nanmax([se_seeds, se_count]))
            row[f"cv_{tag}"], row[f"cv_se_{tag}"] = mean_se(cvs)
            row[f"rate_seeds_{tag}"] = [float(x) for x in rates]
            row[f"neuron_rates_{tag}"] = np.mean([r[sl] for r, _ in res], axis=0)
        se = np.hypot(row["rate_se_brainsim"], row["rate_se_nest"])
        row["z"] = float((row["rate_brainsim"] - row["rate_nest"]) / se)
        sb, sn = row["rate_seeds_brainsim"], row["rate_seeds_nest"]
        row["welch_p"] = float(stats.ttest_ind(sb, sn, equal_var=False).pvalue) \
            if np.std(sb) + np.std(sn) > 0 else (1.0 if np.mean(sb) == np.mean(sn) else 0.0)
        a, b = row.pop("neuron_rates_brainsim"), row.pop("neuron_rates_nest")
        row["ks_p"] = float(stats.ks_2samp(a, b).pvalue) if (a.any() or b.any()) else 1.0
        row["ks_D"] = float(stats.ks_2samp(a, b).statistic) if (a.any() or b.any()) else 0.0
        row["neuron_r"] = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 \
            else np.nan
        row["meanfield"] = float(mf[p["name"]]) if mf is not None else np.nan
        rows.append(row)
    allb = np.mean([r for r, _ in rb], axis=0)
    alln = np.mean([r for r, _ in rn], axis=0)
    pb = np.array([r["rate_brainsim"] for r in rows])
    pn = np.array([r["rate_nest"] for r in rows])
    z = np.array([abs(r["z"]) for r in rows])
    ks = np.array([r["ks_p"] for r in rows])
    worst = int(np.nanargmax(z))
    summary = {
        "pop_rate_r": float(np.corrcoef(pb, pn)[0, 1]),
        "pop_rate_max_abs_diff": float(np.max(np.abs(pb - pn))),
        "pop_rate_max_abs_diff_population": rows[int(np.argmax(np.abs(pb - pn)))]["population"],
        "pop_rate_max_rel_diff_above_1hz": float(np.max((np.abs(pb - pn) / pn)[pn >= 1.0]))
        if np.any(pn >= 1.0) else np.nan,
        "mean_rate_brainsim": float(allb.mean()), "mean_rate_nest": float(alln.mean()),
        "worst_z": float(rows[worst]["z"]), "worst_z_population": rows[worst]["population"],
        "min_ks_p": float(ks.min()), "min_ks_population": rows[int(ks.argmin())]["population"],
        "ks_below_bonferroni": int(np.sum(ks < 0.05 / len(rows))),
        "welch_below_bonferroni": int(np.sum(np.array([r["welch_p"] for r in rows])
                                             < 0.05 / len(rows))),
        "bonferroni_threshold": 0.05 / len(rows),
        "neuron_rate_r": float(np.corrcoef(allb, alln)[0, 1]),
        "meanfield_r_brainsim": float(np.corrcoef(pb, [r["meanfield"] for r in rows])[0, 1])
        if mf is not None else np.nan,
    }
    return rows, summary


def det_compare(b, nst, det_ms, dt):
    """Share of identical (neuron, step) spikes; first time they differ."""
    kb = set(zip(b[0].tolist(), np.rint(b[1] / dt).astype(np.int64).tolist()))
    kn = set(zip(nst[0].tolist(), np.rint(nst[1] / dt).astype(np.int64).tolist()))
    diff = kb ^ kn
    first = min((s for _, s in diff), default=None)
    return {"t_ms": det_ms, "spikes_brainsim": len(kb), "spikes_nest": len(kn),
            "identical": len(kb & kn), "share_identical": len(kb & kn) / max(len(kb | kn), 1),
            "first_difference_ms": None if first is None else first * dt}


# ================================================================= report
def fmt(m, se, nd=2):
    if not np.isfinite(m):
        return "–"
    return f"{m:.{nd}f} ± {se:.{nd}f}" if np.isfinite(se) else f"{m:.{nd}f}"


def report(res, args, cmd, machine):
    L = [f"# Multi-area models: brainsim vs NEST {machine['nest']}", "",
         f"Command: `{cmd}`", "",
         f"Machine: {machine['cpu']}, nproc {machine['nproc']}, {machine['platform']}; "
         f"brainsim {machine['brainsim']} (git {machine['git']}), NEST {machine['nest']}, "
         f"numpy {machine['numpy']}; "
         f"load average before {machine['loadavg_start']}, after {machine['loadavg_end']}.", "",
         f"Simulated {args.t_ms:g} ms per seed (seeds {args.seeds}), rates and CVs over "
         f"({args.t_discard:g}, {args.t_ms:g}] ms; dt 0.1 ms; {args.threads} thread(s) each. "
         "± = standard error across seeds (at least the Poisson counting error); "
         "z = (brainsim - NEST) / combined SE; KS on the "
         "per-neuron rates (mean over seeds); r_neuron = correlation of per-neuron rates "
         "between the simulators (same network, so quenched heterogeneity shows in both); "
         "MF = brainsim mean-field rate of the built network.", ""]
    for model, r in res.items():
        m, s = r["meta"], r["summary"]
        L += [f"## {model}: `{r['call']}`", "",
              f"{m['n_neurons']} neurons, {m['n_synapses']} synapses, "
              f"{len(m['populations'])} populations.", "",
              "| population | N | rate brainsim | rate NEST | z | MF | CV brainsim | CV NEST "
              "| KS D | KS p | r_neuron |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in r["rows"]:
            L.append(f"| {row['population']} | {row['n']} | "
                     f"{fmt(row['rate_brainsim'], row['rate_se_brainsim'])} | "
                     f"{fmt(row['rate_nest'], row['rate_se_nest'])} | {row['z']:+.2f} | "
                     f"{row['meanfield']:.2f} | {fmt(row['cv_brainsim'], row['cv_se_brainsim'], 3)}"
                     f" | {fmt(row['cv_nest'], row['cv_se_nest'], 3)} | {row['ks_D']:.3f} | "
                     f"{row['ks_p']:.3g} | {row['neuron_r']:.3f} |")
        t = r["timing"]
        L += ["", f"- population rates: r = {s['pop_rate_r']:.4f} (brainsim vs NEST), "
              f"largest difference {s['pop_rate_max_abs_diff']:.3f} spikes/s "
              f"({s['pop_rate_max_abs_diff_population']}), largest relative difference where "
              f"NEST >= 1 spikes/s {100 * s['pop_rate_max_rel_diff_above_1hz']:.1f} %; "
              f"network mean rate {s['mean_rate_brainsim']:.3f} vs {s['mean_rate_nest']:.3f} "
              "spikes/s; mean-field vs brainsim r = "
              f"{s['meanfield_r_brainsim']:.4f}",
              f"- largest |z|: {s['worst_z']:+.2f} ({s['worst_z_population']}); Welch tests "
              f"below Bonferroni {s['bonferroni_threshold']:.4f}: {s['welch_below_bonferroni']}",
              f"- smallest KS p: {s['min_ks_p']:.3g} ({s['min_ks_population']}); KS tests below "
              f"Bonferroni: {s['ks_below_bonferroni']}",
              f"- per-neuron rates, brainsim vs NEST: r = {s['neuron_rate_r']:.4f}",
              f"- wall times: brainsim generate {t['generate_s']:.2f} s + build "
              f"{t['build_s']:.2f} s, export {t['export_s']:.2f} s, Simulation() "
              f"{t['brainsim_setup_s']} s, run {t['brainsim_sim_s']} s (after a 1 ms warm-up run "
              f"with JIT compilation: {t['brainsim_warmup_s']:.1f} s), mean-field "
              f"{t['meanfield_s']:.2f} s; NEST build (Create + "
              f"Connect) {t['nest_build_s']} s, Simulate {t['nest_sim_s']} s; NEST child "
              f"process total {t['nest_process_s']:.1f} s"]
        if r.get("det"):
            d = r["det"]
            L.append(f"- deterministic check (Poisson input -> its mean current, + "
                     f"{args.det_dc:g} pA, {d['t_ms']:g} ms): {d['spikes_brainsim']} / "
                     f"{d['spikes_nest']} spikes, "
                     f"{d['identical']} identical (share {d['share_identical']:.4f}), first "
                     f"difference at {d['first_difference_ms']} ms")
        L.append("")
    return "\n".join(L)


def machine_info(nest_python):
    import brainsim
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    nest_v = subprocess.run([nest_python, "-c", "import nest; print(nest.__version__)"],
                            capture_output=True, text=True).stdout.strip().splitlines()
    git = subprocess.run(["git", "-C", HERE, "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip() or "?"
    return {"cpu": cpu, "nproc": subprocess.run(["nproc"], capture_output=True,
                                                 text=True).stdout.strip(), "git": git,
            "platform": platform.platform(), "brainsim": brainsim.__version__,
            "nest": nest_v[-1] if nest_v else "?", "numpy": np.__version__,
            "loadavg_start": [round(x, 2) for x in os.getloadavg()]}


def round_list(xs, nd=2):
    return [round(float(x), nd) for x in xs]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nest-child", metavar="DIR", help=argparse.SUPPRESS)
    ap.add_argument("--models", nargs="+", default=["macaque", "human"],
                    choices=["macaque", "human"])
    ap.add_argument("--scale", type=float, default=0.01, help="neuron numbers x scale")
    ap.add_argument("--k-scale", type=float, default=0.1,
                    help="in-degrees x k_scale (0: = scale, the models' default)")
    ap.add_argument("--areas", nargs="+", default=None,
                    help="areas (with a single --models entry)")
    ap.add_argument("--macaque-areas", nargs="+", default=DEFAULT_AREAS["macaque"])
    ap.add_argument("--human-areas", nargs="+", default=DEFAULT_AREAS["human"])
    ap.add_argument("--net-seed", type=int, default=1, help="network (connectivity) seed")
    ap.add_argument("--t-ms", type=float, default=3000.0)
    ap.add_argument("--t-discard", type=float, default=500.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 9)))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--det-ms", type=float, default=500.0,
                    help="deterministic check length (0: skip)")
    ap.add_argument("--det-dc", type=float, default=150.0,
                    help="pA added to every neuron in the deterministic check (activity)")
    ap.add_argument("--nest-python", default="/work/peers-venv/bin/python")
    ap.add_argument("--out", default=os.path.join(OUT, "multi_area_nest"))
    args = ap.parse_args()
    if args.nest_child:
        nest_child(args.nest_child, args.seeds, args.threads, args.det_ms)
        return
    if args.areas and len(args.models) != 1:
        ap.error("--areas needs exactly one model in --models "
                 "(else --macaque-areas / --human-areas)")
    os.environ.setdefault("NUMBA_NUM_THREADS", str(max(args.threads, 1)))
    from brainsim.analysis.meanfield import fixed_point

    cmd = "python " + " ".join(shlex.quote(a) for a in
                               [os.path.relpath(__file__, os.getcwd()), *sys.argv[1:]])
    machine = machine_info(args.nest_python)
    res = {}
    for model in args.models:
        areas = args.areas or (args.macaque_areas if model == "macaque" else args.human_areas)
        k_scale = args.k_scale or args.scale
        call = (f"{model}_multi_area(scale={args.scale}, k_scale={k_scale}, areas={areas}, "
                f"seed={args.net_seed})")
        print(f"== {call}", file=sys.stderr)
        net, timing = build_network(model, args.scale, k_scale, areas, args.net_seed)
        d = os.path.join(args.out, model)
        t0 = time.perf_counter()
        arrays, meta = export(net, d, args.t_ms, args.det_dc)
        timing["export_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        mf = fixed_point(net)
        timing["meanfield_s"] = time.perf_counter() - t0
        mf = {str(k): float(v) for k, v in zip(mf.population.values, mf.values)}
        # NEST (own process, own venv)
        t0 = time.perf_counter()
        subprocess.run([args.nest_python, os.path.abspath(__file__), "--nest-child", d,
                        "--seeds", *map(str, args.seeds), "--threads", str(args.threads),
                        "--det-ms", str(args.det_ms)], check=True, stdout=subprocess.DEVNULL)
        timing["nest_process_s"] = time.perf_counter() - t0
        with open(os.path.join(d, "nest_timing.json")) as fh:
            nt = json.load(fh)
        ns = [(np.load(os.path.join(d, f"nest_spikes_{s}_neuron.npy")),
               np.load(os.path.join(d, f"nest_spikes_{s}_time.npy"))) for s in args.seeds]
        timing["nest_build_s"] = round_list([nt["runs"][str(s)]["build_s"] for s in args.seeds])
        timing["nest_sim_s"] = round_list([nt["runs"][str(s)]["sim_s"] for s in args.seeds])
        conn = nt["runs"][str(args.seeds[0])]["connections"]
        gens = nt["runs"][str(args.seeds[0])]["generators"]
        # brainsim: a 1 ms warm-up run compiles the kernels outside the timed runs
        timing["brainsim_warmup_s"] = sum(run_brainsim(net, 0, 1.0, args.threads)[1].values())
        bs, setup, sims = [], [], []
        for s in args.seeds:
            spk, tm = run_brainsim(net, s, args.t_ms, args.threads)
            bs.append(spk)
            setup.append(tm["setup_s"])
            sims.append(tm["sim_s"])
            np.save(os.path.join(d, f"brainsim_spikes_{s}_neuron.npy"), spk[0])
            np.save(os.path.join(d, f"brainsim_spikes_{s}_time.npy"), spk[1])
            print(f"brainsim seed {s}: setup {tm['setup_s']:.2f} s, run {tm['sim_s']:.2f} s",
                  file=sys.stderr)
        timing["brainsim_setup_s"] = round_list(setup)
        timing["brainsim_sim_s"] = round_list(sims)
        rows, summary = compare(meta, bs, ns, args.t_discard, args.t_ms, mf)
        summary["nest_connections"] = conn
        summary["nest_poisson_generators"] = gens
        det = None
        if args.det_ms > 0:
            b = deterministic_brainsim(net, arrays, args.det_ms, args.threads)
            nst = (np.load(os.path.join(d, "nest_spikes_det_neuron.npy")),
                   np.load(os.path.join(d, "nest_spikes_det_time.npy")))
            det = det_compare(b, nst, args.det_ms, meta["dt"])
        res[model] = {"call": call, "meta": {k: meta[k] for k in
                                             ("n_neurons", "n_synapses", "populations")},
                      "rows": rows, "summary": summary, "timing": timing, "det": det}
        del net
    machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    text = report(res, args, cmd, machine)
    print(text)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "multi_area_nest.md"), "w") as fh:
        fh.write(text + "\n")
    with open(os.path.join(OUT, "multi_area_nest.json"), "w") as fh:
        json.dump({"command": cmd, "machine": machine, "args": vars(args), "results": res}, fh,
                  indent=1, default=float)


if __name__ == "__main__":
    main()
