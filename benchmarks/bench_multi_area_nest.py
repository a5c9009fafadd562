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

Whole models at the notebooks' scales (issue 17; ``--areas all`` simulates
every area, ``--state`` picks the model's state, ``--k-scale 0`` the models'
own k_scale = scale)::

    python benchmarks/bench_multi_area_nest.py --models human --scale 0.004 --k-scale 0 \
        --areas all --state base --t-ms 2500 --t-discard 500 --seeds 1 2 3 4 \
        --report multi_area_nest_notebook_scales
    python benchmarks/bench_multi_area_nest.py --models macaque --scale 0.006 --k-scale 0 \
        --areas all --state metastable --t-ms 2500 --t-discard 500 --seeds 1 2 3 4 \
        --report multi_area_nest_notebook_scales --append

Per area as well: the neuron-weighted mean rate of the area (its spikes /
(neurons x time)) per seed, mean and SE across seeds, z, Welch and KS (of
the area's per-neuron rates), and the correlation of area rates between the
simulators.

Resources of both simulators in the same run, 1 process each (brainsim in
this process, NEST in its child), ``--threads`` threads each: build time
(brainsim: generate + ``net.build()``; NEST: ``Create`` + ``Connect`` of the
exported network, per seed), RTF (wall seconds of ``sim.run`` /
``nest.Simulate`` per simulated second; also the process CPU seconds per
simulated second, less sensitive to other load on the machine), memory
(resident set size from ``/proc/self/status``: before the build, peak
during the build, peak during the simulation (``VmHWM``, reset with
``/proc/self/clear_refs`` at the start of each phase), and the process's
peak, the largest VmHWM from its start to the end of its simulations;
``ru_maxrss`` is reported too but is not that peak: the reset lowers it, and
in the NEST child it starts at the parent's RSS), and brainsim's
``net.bytes_per_synapse()``. brainsim's build and simulations run
before the export, the mean field and the statistics, so that none of those
counts in its memory; the NEST child reloads the exported arrays from disk
for each build (counted in its build peak, reported) and frees them before
``Simulate``.

Outputs: Markdown on stdout and in ``benchmarks/out/<report>.md`` (``--report``,
default ``multi_area_nest``; ``--append`` appends to it), numbers in
``benchmarks/out/<report>.json``, exported networks and spikes under
``benchmarks/out/<report>/``.
"""
import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out")
PARAMS = ("C_m", "tau_m", "tau_syn_ex", "tau_syn_in", "t_ref", "E_L", "V_reset", "V_th", "I_e")
DEFAULT_AREAS = {"macaque": ["V1", "V2"], "human": ["bankssts", "fusiform"]}
ARRAYS = (*PARAMS, "V_m", "src", "tgt", "weight", "delay_ms", "poisson_rate", "poisson_weight",
          "poisson_delay_ms", "det_I_e")


# ================================================================= memory
class Memory:
    """Resident set size of this process, per phase (Linux), in MiB.

    ``start()`` resets the peak (``VmHWM``, via ``/proc/self/clear_refs``)
    and returns the RSS now; ``peak()`` returns the peak since ``start()``;
    ``process_peak()`` the largest VmHWM since the process started (over all
    resets). Not ``ru_maxrss``: in a child process it starts at the parent's
    RSS (Linux keeps the high-water mark of the image replaced by exec), and
    the reset lowers it as well."""

    def __init__(self):
        self.peak_so_far = self.status("VmHWM")
        self.resettable = True

    @staticmethod
    def status(key):
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith(key + ":"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def start(self):
        self.process_peak()
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            self.resettable = False
        return self.status("VmRSS")

    def peak(self):
        self.process_peak()
        return self.status("VmHWM") if self.resettable else float("nan")

    def process_peak(self):
        self.peak_so_far = max(self.peak_so_far, self.status("VmHWM"))
        return self.peak_so_far

    @staticmethod
    def ru_maxrss():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


# =============================================================== NEST child
def nest_child(d, seeds, threads, det_ms):
    """Runs in NEST's venv: build the exported network and simulate it.

    Reads ``d/meta.json`` and ``d/*.npy`` (again for every build; freed
    before ``Simulate``); writes per seed ``nest_spikes_<seed>_{neuron,time}.npy``
    and ``nest_timing.json`` (times, memory in MiB)."""
    mem = Memory()
    import nest

    try:
        nest.verbosity = nest.VerbosityLevel.ERROR
    except AttributeError:
        nest.set_verbosity("M_ERROR")
    with open(os.path.join(d, "meta.json")) as fh:
        meta = json.load(fh)
    n = int(meta["n_neurons"])
    timing = {"nest": nest.__version__, "threads": threads, "runs": {},
              "rss_after_import_mib": mem.status("VmRSS")}

    def build(seed, poisson):
        nest.ResetKernel()
        nest.set(resolution=meta["dt"], local_num_threads=threads, rng_seed=int(seed),
                 print_time=False)
        rss0 = mem.start()
        t0 = time.perf_counter()
        a = {k: np.load(os.path.join(d, f"{k}.npy")) for k in ARRAYS}
        arrays_mib = sum(v.nbytes for v in a.values()) / 2**20
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        nodes = nest.Create("iaf_psc_exp", n)
        first = nodes[0].global_id
        # all parameters in one call (E_L with absolute V_th / V_reset)
        status = {k: a[k].astype(float).tolist() for k in PARAMS}
        if not poisson:
            status["I_e"] = a["det_I_e"].tolist()
        status["V_m"] = a["V_m"].astype(float).tolist()
        nodes.set(status)
        del status
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
        rss_net = mem.status("VmRSS")
        sr = nest.Create("spike_recorder")
        nest.Connect(nodes, sr)
        build_s = time.perf_counter() - t0
        del a
        info = {"build_s": build_s, "load_arrays_s": t_load, "arrays_mib": arrays_mib,
                "rss_before_build_mib": rss0, "rss_after_network_mib": rss_net,
                "rss_peak_build_mib": mem.peak(),
                "rss_after_build_mib": mem.status("VmRSS")}
        return first, sr, n_gen, info

    def simulate(first, sr, t_ms, tag):
        rss0 = mem.start()
        t0, c0 = time.perf_counter(), time.process_time()
        nest.Simulate(float(t_ms))
        sim_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        info = {"sim_s": sim_s, "sim_cpu_s": cpu_s, "rss_before_sim_mib": rss0,
                "rss_peak_sim_mib": mem.peak()}
        ev = sr.get("events")
        np.save(os.path.join(d, f"nest_spikes_{tag}_neuron.npy"),
                np.asarray(ev["senders"], np.int64) - first)
        np.save(os.path.join(d, f"nest_spikes_{tag}_time.npy"), np.asarray(ev["times"], float))
        return info

    for seed in seeds:
        first, sr, n_gen, info = build(seed, True)
        info.update(connections=int(nest.num_connections), generators=int(n_gen))
        info.update(simulate(first, sr, meta["t_ms"], str(seed)))
        timing["runs"][str(seed)] = info
        print(f"nest seed {seed}: build {info['build_s']:.2f} s, simulate {info['sim_s']:.2f} s",
              file=sys.stderr)
    timing["process_peak_rss_mib"] = mem.process_peak()
    timing["ru_maxrss_mib"] = mem.ru_maxrss()
    if det_ms > 0:
        first, sr, _, info = build(seeds[0], False)
        info.update(simulate(first, sr, det_ms, "det"))
        timing["det"] = info
    with open(os.path.join(d, "nest_timing.json"), "w") as fh:
        json.dump(timing, fh, indent=1)


# ========================================================= brainsim side
def build_network(model, scale, k_scale, areas, seed, state=None, mem=None):
    """generate + build; ``areas`` None: all; ``state`` None: the model's default."""
    import brainsim.generation as gen
    f = {"macaque": gen.macaque_multi_area, "human": gen.human_multi_area}[model]
    kw = {} if state is None else {"state": state}
    rss0 = mem.start() if mem else np.nan
    t0 = time.perf_counter()
    net = f(scale=scale, k_scale=k_scale, areas=areas, seed=seed, **kw)
    t1 = time.perf_counter()
    net.build()
    t2 = time.perf_counter()
    return net, {"generate_s": t1 - t0, "build_s": t2 - t1, "rss_before_build_mib": rss0,
                 "rss_peak_build_mib": mem.peak() if mem else np.nan,
                 "rss_after_build_mib": mem.status("VmRSS") if mem else np.nan}


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
    pops = [{"name": p.name, "start": p.start, "n": p.n, "kind": p.kind,
             "region": p.region or p.name.split("/")[0]} for p in net.populations.values()]
    meta = {"n_neurons": n, "n_synapses": int(src.size), "dt": net.dt, "t_ms": t_ms,
            "populations": pops, "net_meta": {k: v for k, v in net.meta.items()
                                              if isinstance(v, (str, int, float, list))}}
    with open(os.path.join(d, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
    return arrays, meta


def run_brainsim(net, seed, t_ms, threads, mem=None):
    import brainsim
    rss0 = mem.start() if mem else np.nan
    t0 = time.perf_counter()
    sim = brainsim.Simulation(net, seed=seed, threads=threads,
                              record={"spikes": True, "rates": False})
    t1, c1 = time.perf_counter(), time.process_time()
    ds = sim.run(t_ms)
    t2, c2 = time.perf_counter(), time.process_time()
    out = (np.asarray(ds.spike_neuron.values, np.int64), np.asarray(ds.spike_time.values, float))
    peak = mem.peak() if mem else np.nan
    sim.close()
    return out, {"setup_s": t1 - t0, "sim_s": t2 - t1, "sim_cpu_s": c2 - c1,
                 "rss_before_sim_mib": rss0, "rss_peak_sim_mib": peak}


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
    warnings.filterwarnings("ignore", "ks_2samp", RuntimeWarning)
    n = meta["n_neurons"]
    rb = [per_neuron(*s, n, t0, t1) for s in bs]
    rn = [per_neuron(*s, n, t0, t1) for s in ns]
    secs = (t1 - t0) * 1e-3

    def group(idx, label, key):
        """Rate statistics of the neurons ``idx`` (rate = spikes / (neurons x time),
        i.e. the neuron-weighted mean)."""
        m = len(idx) if isinstance(idx, np.ndarray) else idx.stop - idx.start
        row = {key: label, "n": int(m)}
        for tag, res in (("brainsim", rb), ("nest", rn)):
            rates = [r[idx].mean() for r, _ in res]
            cvs = [np.nanmean(c[idx]) if np.isfinite(c[idx]).any() else np.nan for _, c in res]
            row[f"rate_{tag}"], se_seeds = mean_se(rates)
            # floor: the Poisson counting error of all spikes (at least one), so that a
            # group with the same spike count in every seed has no zero SE
            spikes = sum(rates) * m * secs
            se_count = np.sqrt(max(spikes, 1.0)) / (m * secs * len(rates))
            row[f"rate_se_{tag}"] = float(np.nanmax([se_seeds, se_count]))
            row[f"rate_sd_seeds_{tag}"] = float(np.std(rates, ddof=1)) if len(rates) > 1 \
                else np.nan
            row[f"cv_{tag}"], row[f"cv_se_{tag}"] = mean_se(cvs)
            row[f"rate_seeds_{tag}"] = [float(x) for x in rates]
            row[f"neuron_rates_{tag}"] = np.mean([r[idx] for r, _ in res], axis=0)
        se = np.hypot(row["rate_se_brainsim"], row["rate_se_nest"])
        row["z"] = float((row["rate_brainsim"] - row["rate_nest"]) / se)
        # Welch t test of the per-seed rates, with the floored SEs above (a plain Welch
        # test has no variance when a group has the same spike count in every seed):
        # t = z, Welch-Satterthwaite degrees of freedom
        k = len(row["rate_seeds_brainsim"])
        v = np.array([row["rate_se_brainsim"], row["rate_se_nest"]]) ** 2
        dof = v.sum() ** 2 / np.sum(v ** 2 / max(k - 1, 1)) if v.sum() > 0 else 1.0
        row["welch_p"] = float(2 * stats.t.sf(abs(row["z"]), dof)) if k > 1 else np.nan
        a, b = row.pop("neuron_rates_brainsim"), row.pop("neuron_rates_nest")
        ks = stats.ks_2samp(a, b) if (a.any() or b.any()) else None
        row["ks_p"] = float(ks.pvalue) if ks is not None else 1.0
        row["ks_D"] = float(ks.statistic) if ks is not None else 0.0
        row["neuron_r"] = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 \
            else np.nan
        return row

    rows = []
    for p in meta["populations"]:
        row = group(slice(p["start"], p["start"] + p["n"]), p["name"], "population")
        row["area"] = p.get("region") or p["name"].split("/")[0]
        row["meanfield"] = float(mf[p["name"]]) if mf is not None else np.nan
        rows.append(row)
    area_rows = []
    names = list(dict.fromkeys(r["area"] for r in rows))
    for area in names:
        pops = [p for p, r in zip(meta["populations"], rows) if r["area"] == area]
        idx = np.concatenate([np.arange(p["start"], p["start"] + p["n"]) for p in pops])
        row = group(idx, area, "area")
        row["populations"] = len(pops)
        row["meanfield"] = float(sum(r["meanfield"] * r["n"] for r in rows if r["area"] == area)
                                 / idx.size)
        area_rows.append(row)
    allb = np.mean([r for r, _ in rb], axis=0)
    alln = np.mean([r for r, _ in rn], axis=0)

    def split_half(res, groups):
        """Correlation of group rates between the first and second half of the seeds
        (the seed-to-seed reproducibility of one simulator); NaN below 2 seeds."""
        k = len(res) // 2
        if k == 0:
            return np.nan
        h = [np.mean([r for r, _ in part], axis=0) for part in (res[:k], res[k:2 * k])]
        x = [[hh[g].mean() for g in groups] for hh in h]
        return float(np.corrcoef(*x)[0, 1])

    def summarize(rows, key, groups):
        pb = np.array([r["rate_brainsim"] for r in rows])
        pn = np.array([r["rate_nest"] for r in rows])
        z = np.array([abs(r["z"]) for r in rows])
        ks = np.array([r["ks_p"] for r in rows])
        welch = np.array([r["welch_p"] for r in rows])
        worst = int(np.nanargmax(z))
        thr = 0.05 / len(rows)
        return {
            "rate_r": float(np.corrcoef(pb, pn)[0, 1]),
            "rate_spearman": float(stats.spearmanr(pb, pn).statistic),
            "split_half_r_nest": split_half(rn, groups),
            "split_half_r_brainsim": split_half(rb, groups),
            "max_abs_diff": float(np.max(np.abs(pb - pn))),
            "max_abs_diff_" + key: rows[int(np.argmax(np.abs(pb - pn)))][key],
            "max_rel_diff_above_1hz": float(np.max(np.abs(pb - pn)[pn >= 1.0] / pn[pn >= 1.0]))
            if np.any(pn >= 1.0) else np.nan,
            "worst_z": float(rows[worst]["z"]), "worst_z_" + key: rows[worst][key],
            "abs_z_above_2": int(np.sum(z > 2)), "abs_z_above_3": int(np.sum(z > 3)),
            "min_ks_p": float(ks.min()), "min_ks_" + key: rows[int(ks.argmin())][key],
            "min_welch_p": float(welch.min()),
            "min_welch_" + key: rows[int(welch.argmin())][key],
            "ks_below_bonferroni": int(np.sum(ks < thr)),
            "ks_below_bonferroni_" + key + "s": [r[key] for r in rows if r["ks_p"] < thr],
            "welch_below_bonferroni": int(np.sum(welch < thr)),
            "welch_below_bonferroni_" + key + "s": [r[key] for r in rows if r["welch_p"] < thr],
            "bonferroni_threshold": thr, "count": len(rows),
            "meanfield_r_brainsim": float(np.corrcoef(pb, [r["meanfield"] for r in rows])[0, 1])
            if mf is not None else np.nan,
        }

    pop_groups = [slice(p["start"], p["start"] + p["n"]) for p in meta["populations"]]
    area_groups = [np.concatenate([np.arange(p["start"], p["start"] + p["n"])
                                   for p, r in zip(meta["populations"], rows)
                                   if r["area"] == area]) for area in names]
    ps = summarize(rows, "population", pop_groups)
    ar = summarize(area_rows, "area", area_groups)
    summary = {
        # population-level keys as before (report, JSON readers)
        "pop_rate_r": ps["rate_r"], "pop_rate_max_abs_diff": ps["max_abs_diff"],
        "pop_rate_max_abs_diff_population": ps["max_abs_diff_population"],
        "pop_rate_max_rel_diff_above_1hz": ps["max_rel_diff_above_1hz"],
        "mean_rate_brainsim": float(allb.mean()), "mean_rate_nest": float(alln.mean()),
        "worst_z": ps["worst_z"], "worst_z_population": ps["worst_z_population"],
        "min_ks_p": ps["min_ks_p"], "min_ks_population": ps["min_ks_population"],
        "ks_below_bonferroni": ps["ks_below_bonferroni"],
        "welch_below_bonferroni": ps["welch_below_bonferroni"],
        "bonferroni_threshold": ps["bonferroni_threshold"],
        "neuron_rate_r": float(np.corrcoef(allb, alln)[0, 1]),
        "meanfield_r_brainsim": ps["meanfield_r_brainsim"],
        "populations": ps, "areas": ar,
    }
    return rows, area_rows, summary


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


def _ms(xs, nd=2):
    """mean ± SE of a list (plain value for one entry)."""
    m, se = mean_se(xs)
    return fmt(m, se, nd)


def resources(r, args):
    """Build / RTF / memory of both simulators (Markdown table lines)."""
    t, nt, m = r["timing"], r["nest"], r["meta"]
    T = args.t_ms * 1e-3
    runs = [nt["runs"][str(s)] for s in args.seeds]
    bs_build = t["generate_s"] + t["build_s"]
    mib = (lambda x: f"{x:.0f}" if np.isfinite(x) else "–")
    bs_bps = (t["rss_after_build_mib"] - t["rss_before_build_mib"]) * 2**20 / m["n_synapses"]
    r0 = runs[0]
    nest_bps = (r0["rss_after_network_mib"] - r0["rss_before_build_mib"]) * 2**20 \
        / m["n_synapses"]
    L = [f"Resources, same run, {args.threads} thread(s) each ({len(args.seeds)} seeds; ± = SE "
         "across seeds). RSS from /proc/self/status of the process that simulates (brainsim: "
         "this script; NEST: its child process); phase peaks are VmHWM reset at the start of "
         "the phase.", "",
         "| | brainsim | NEST |", "|---|---:|---:|",
         f"| build (s) | {bs_build:.2f} (generate {t['generate_s']:.2f} + build "
         f"{t['build_s']:.2f}) | {_ms([x['build_s'] for x in runs])} (Create + Connect; + "
         f"loading the exported arrays {_ms([x['load_arrays_s'] for x in runs])}) |",
         f"| Simulation() setup (s) | {_ms(t['brainsim_setup_s'])} | – |",
         f"| simulate {args.t_ms:g} ms, wall (s) | {_ms(t['brainsim_sim_s'])} | "
         f"{_ms([x['sim_s'] for x in runs])} |",
         f"| RTF, wall s per simulated s | {_ms([x / T for x in t['brainsim_sim_s']], 3)} | "
         f"{_ms([x['sim_s'] / T for x in runs], 3)} |",
         f"| RTF, process CPU s per simulated s | "
         f"{_ms([x / T for x in t['brainsim_sim_cpu_s']], 3)} | "
         f"{_ms([x['sim_cpu_s'] / T for x in runs], 3)} |",
         f"| RSS before the build (MiB) | {mib(t['rss_before_build_mib'])} (Python, numpy, "
         f"brainsim, scipy) | {mib(runs[0]['rss_before_build_mib'])} (Python, numpy, nest) |",
         f"| peak RSS during the build (MiB) | {mib(t['rss_peak_build_mib'])} | "
         f"{mib(runs[0]['rss_peak_build_mib'])} (incl. the exported arrays, "
         f"{runs[0]['arrays_mib']:.0f} MiB) |",
         f"| RSS after the build (MiB) | {mib(t['rss_after_build_mib'])} | "
         f"{mib(r0['rss_after_build_mib'])} (arrays freed; of the growth "
         f"{mib(r0['rss_after_build_mib'] - r0['rss_before_build_mib'])}, "
         f"{mib(r0['rss_after_build_mib'] - r0['rss_after_network_mib'])} in "
         "Connect(neurons, spike_recorder)) |",
         f"| peak RSS during the simulation (MiB; first seed, largest seed) | "
         f"{mib(t['rss_peak_sim_mib'][0])}, {mib(max(t['rss_peak_sim_mib']))} | "
         f"{mib(runs[0]['rss_peak_sim_mib'])}, "
         f"{mib(max(x['rss_peak_sim_mib'] for x in runs))} |",
         f"| process peak RSS (MiB; largest VmHWM) | {mib(t['process_peak_rss_mib'])} "
         f"(imports, generate, build, JIT, all seeds) | {mib(nt['process_peak_rss_mib'])} "
         f"(imports, all seeds' builds and simulations) |",
         f"| ru_maxrss (MiB) | {mib(t['ru_maxrss_mib'])} (since the last phase reset) | "
         f"{mib(nt['ru_maxrss_mib'])} (not NEST's: Linux starts a child's at its parent's "
         "RSS) |",
         f"| memory per synapse (bytes) | {t['bytes_per_synapse']:.2f} "
         f"(net.bytes_per_synapse()); RSS growth of the build / synapses {bs_bps:.1f} | "
         f"RSS growth of the first build before the recorder / synapses {nest_bps:.1f} "
         "(includes neurons, Poisson generators) |"]
    return L


def report(res, args, cmd, machine, heading=True):
    L = []
    if heading:
        L += [f"# Multi-area models: brainsim vs NEST {machine['nest']}", ""]
    L += [f"Command: `{cmd}`", "",
          f"Machine: {machine['cpu']}, nproc {machine['nproc']}, {machine['platform']}; "
          f"brainsim {machine['brainsim']} (git {machine['git']}), NEST {machine['nest']}, "
          f"numpy {machine['numpy']}; "
          f"load average before {machine['loadavg_start']}, after {machine['loadavg_end']}.", "",
          f"Simulated {args.t_ms:g} ms per seed (seeds {args.seeds}), rates and CVs over "
          f"({args.t_discard:g}, {args.t_ms:g}] ms; dt 0.1 ms; {args.threads} thread(s) each. "
          "± = standard error across seeds (at least the Poisson counting error); "
          "z = (brainsim - NEST) / combined SE; Welch t test of the per-seed rates; KS on the "
          "per-neuron rates (mean over seeds); r_neuron = correlation of per-neuron rates "
          "between the simulators (same network, so quenched heterogeneity shows in both); "
          "MF = brainsim mean-field rate of the built network (per area: neuron-weighted). "
          "Area rate = the area's spikes / (its neurons x time), i.e. the neuron-weighted mean. "
          "split-half r: correlation of the rates of seeds 1st half vs 2nd half of one "
          "simulator (its seed-to-seed reproducibility, the reference for r between the "
          "simulators).", ""]
    for model, r in res.items():
        m, s = r["meta"], r["summary"]
        sp, sa = s["populations"], s["areas"]
        L += [f"## {model}: `{r['call']}`", "",
              f"{m['n_neurons']} neurons, {m['n_synapses']} synapses, "
              f"{len(m['populations'])} populations in {len(r['area_rows'])} areas; "
              f"model meta: {r['model_meta']}.", ""]
        L += resources(r, args)
        L += ["", "### Summary", ""]
        for name, x, key in (("areas", sa, "area"), ("populations", sp, "population")):
            L += [f"- {name} ({x['count']}): rate r = {x['rate_r']:.4f} (Spearman "
                  f"{x['rate_spearman']:.4f}); split-half r NEST {x['split_half_r_nest']:.4f}, "
                  f"brainsim {x['split_half_r_brainsim']:.4f}; largest difference "
                  f"{x['max_abs_diff']:.3f} spikes/s ({x['max_abs_diff_' + key]}); largest "
                  f"relative difference where NEST >= 1 spikes/s "
                  f"{100 * x['max_rel_diff_above_1hz']:.1f} %; largest |z| {x['worst_z']:+.2f} "
                  f"({x['worst_z_' + key]}), |z| > 2: {x['abs_z_above_2']}, |z| > 3: "
                  f"{x['abs_z_above_3']}; Bonferroni threshold {x['bonferroni_threshold']:.2g}: "
                  f"Welch below {x['welch_below_bonferroni']} "
                  f"{x['welch_below_bonferroni_' + key + 's']} (smallest p "
                  f"{x['min_welch_p']:.3g}, {x['min_welch_' + key]}), KS below "
                  f"{x['ks_below_bonferroni']} {x['ks_below_bonferroni_' + key + 's']} "
                  f"(smallest p {x['min_ks_p']:.3g}, {x['min_ks_' + key]}); mean-field vs "
                  f"brainsim r = {x['meanfield_r_brainsim']:.4f}"]
        L += [f"- network mean rate {s['mean_rate_brainsim']:.4f} vs {s['mean_rate_nest']:.4f} "
              f"spikes/s; per-neuron rates, brainsim vs NEST: r = {s['neuron_rate_r']:.4f}"]
        if r.get("det"):
            d = r["det"]
            L.append(f"- deterministic check (Poisson input -> its mean current, + "
                     f"{args.det_dc:g} pA, {d['t_ms']:g} ms): {d['spikes_brainsim']} / "
                     f"{d['spikes_nest']} spikes, "
                     f"{d['identical']} identical (share {d['share_identical']:.4f}), first "
                     f"difference at {d['first_difference_ms']} ms")
        t = r["timing"]
        L.append(f"- other wall times: export {t['export_s']:.2f} s, mean field "
                 f"{t['meanfield_s']:.2f} s, brainsim 1 ms warm-up run (JIT) "
                 f"{t['brainsim_warmup_s']:.1f} s, NEST child process total "
                 f"{t['nest_process_s']:.1f} s")
        L += ["", "### Per area", "",
              "| area | N | rate brainsim | rate NEST | diff | z | Welch p | KS D | KS p | "
              "r_neuron | MF |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in r["area_rows"]:
            L.append(f"| {row['area']} | {row['n']} | "
                     f"{fmt(row['rate_brainsim'], row['rate_se_brainsim'], 3)} | "
                     f"{fmt(row['rate_nest'], row['rate_se_nest'], 3)} | "
                     f"{row['rate_brainsim'] - row['rate_nest']:+.3f} | {row['z']:+.2f} | "
                     f"{row['welch_p']:.3g} | {row['ks_D']:.3f} | {row['ks_p']:.3g} | "
                     f"{row['neuron_r']:.3f} | {row['meanfield']:.2f} |")
        L += ["", "### Per population", "",
              "| population | N | rate brainsim | rate NEST | z | Welch p | MF | CV brainsim "
              "| CV NEST | KS D | KS p | r_neuron |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in r["rows"]:
            L.append(f"| {row['population']} | {row['n']} | "
                     f"{fmt(row['rate_brainsim'], row['rate_se_brainsim'], 3)} | "
                     f"{fmt(row['rate_nest'], row['rate_se_nest'], 3)} | {row['z']:+.2f} | "
                     f"{row['welch_p']:.3g} | "
                     f"{row['meanfield']:.2f} | {fmt(row['cv_brainsim'], row['cv_se_brainsim'], 3)}"
                     f" | {fmt(row['cv_nest'], row['cv_se_nest'], 3)} | {row['ks_D']:.3f} | "
                     f"{row['ks_p']:.3g} | {row['neuron_r']:.3f} |")
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


def _areas(x):
    """None or ["all"]: every area."""
    return None if not x or [a.lower() for a in x] == ["all"] else list(x)


def main():
    mem = Memory()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nest-child", metavar="DIR", help=argparse.SUPPRESS)
    ap.add_argument("--models", nargs="+", default=["macaque", "human"],
                    choices=["macaque", "human"])
    ap.add_argument("--scale", type=float, default=0.01, help="neuron numbers x scale")
    ap.add_argument("--k-scale", type=float, default=0.1,
                    help="in-degrees x k_scale (0: = scale, the models' default)")
    ap.add_argument("--areas", nargs="+", default=None,
                    help="areas (with a single --models entry); 'all': every area")
    ap.add_argument("--macaque-areas", nargs="+", default=DEFAULT_AREAS["macaque"],
                    help="'all': every area")
    ap.add_argument("--human-areas", nargs="+", default=DEFAULT_AREAS["human"],
                    help="'all': every area")
    ap.add_argument("--state", default=None,
                    help="model state passed to the builder (macaque: ground, metastable "
                         "(chi 1.9, chi_I 2); human: base, best_fit); default: the model's")
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
    ap.add_argument("--report", default="multi_area_nest",
                    help="name of the outputs: benchmarks/out/<report>.md / .json / <report>/")
    ap.add_argument("--append", action="store_true",
                    help="append to the report's .md (and its .json's runs) instead of "
                         "overwriting them")
    ap.add_argument("--out", default=None,
                    help="folder of the exported networks and spikes (default "
                         "benchmarks/out/<report>/)")
    args = ap.parse_args()
    if args.nest_child:
        nest_child(args.nest_child, args.seeds, args.threads, args.det_ms)
        return
    if args.areas and len(args.models) != 1:
        ap.error("--areas needs exactly one model in --models "
                 "(else --macaque-areas / --human-areas)")
    if args.state and len(args.models) != 1:
        ap.error("--state needs exactly one model in --models")
    out_dir = args.out or os.path.join(OUT, args.report)
    os.environ.setdefault("NUMBA_NUM_THREADS", str(max(args.threads, 1)))
    from brainsim.analysis.meanfield import fixed_point

    cmd = "python " + " ".join(shlex.quote(a) for a in
                               [os.path.relpath(__file__, os.getcwd()), *sys.argv[1:]])
    machine = machine_info(args.nest_python)
    res = {}
    for model in args.models:
        areas = _areas(args.areas or (args.macaque_areas if model == "macaque"
                                      else args.human_areas))
        k_scale = args.k_scale or args.scale
        state = f", state={args.state!r}" if args.state else ""
        call = (f"{model}_multi_area(scale={args.scale}, k_scale={k_scale}, "
                f"areas={areas if areas else 'None (all)'}{state}, seed={args.net_seed})")
        print(f"== {call}", file=sys.stderr)
        # brainsim first, before the export, the mean field and the statistics, so that
        # its memory covers generate + build + simulate only
        net, timing = build_network(model, args.scale, k_scale, areas, args.net_seed,
                                    args.state, mem)
        timing["bytes_per_synapse"] = float(net.bytes_per_synapse())
        print(f"   {net.n_neurons} neurons, {net.n_synapses} synapses; generate "
              f"{timing['generate_s']:.1f} s, build {timing['build_s']:.1f} s", file=sys.stderr)
        # a 1 ms warm-up run compiles the kernels outside the timed runs
        timing["brainsim_warmup_s"] = sum(
            v for k, v in run_brainsim(net, 0, 1.0, args.threads)[1].items()
            if k in ("setup_s", "sim_s"))
        bs, tms = [], []
        for s in args.seeds:
            spk, tm = run_brainsim(net, s, args.t_ms, args.threads, mem)
            bs.append(spk)
            tms.append(tm)
            print(f"brainsim seed {s}: setup {tm['setup_s']:.2f} s, run {tm['sim_s']:.2f} s, "
                  f"peak RSS {tm['rss_peak_sim_mib']:.0f} MiB", file=sys.stderr)
        timing["process_peak_rss_mib"] = mem.process_peak()
        timing["ru_maxrss_mib"] = mem.ru_maxrss()
        for k in ("setup_s", "sim_s", "sim_cpu_s", "rss_before_sim_mib", "rss_peak_sim_mib"):
            timing["brainsim_" + k if k.endswith("_s") else k] = [tm[k] for tm in tms]
        d = os.path.join(out_dir, model)
        t0 = time.perf_counter()
        arrays, meta = export(net, d, args.t_ms, args.det_dc)
        timing["export_s"] = time.perf_counter() - t0
        for s, spk in zip(args.seeds, bs):
            np.save(os.path.join(d, f"brainsim_spikes_{s}_neuron.npy"), spk[0])
            np.save(os.path.join(d, f"brainsim_spikes_{s}_time.npy"), spk[1])
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
        rows, area_rows, summary = compare(meta, bs, ns, args.t_discard, args.t_ms, mf)
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
                      "model_meta": {k: meta["net_meta"][k] for k in
                                     ("state", "chi", "chi_I", "n_scale", "k_scale", "input")
                                     if k in meta["net_meta"]},
                      "rows": rows, "area_rows": area_rows, "summary": summary,
                      "timing": timing, "nest": nt, "det": det}
        del net, arrays
    machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    md = os.path.join(OUT, f"{args.report}.md")
    js = os.path.join(OUT, f"{args.report}.json")
    append = args.append and os.path.exists(md)
    text = report(res, args, cmd, machine, heading=not append)
    print(text)
    os.makedirs(OUT, exist_ok=True)
    with open(md, "a" if append else "w") as fh:
        fh.write(("\n" if append else "") + text + "\n")
    runs = []
    if args.append and os.path.exists(js):
        with open(js) as fh:
            old = json.load(fh)
        runs = old.get("runs", [old])
    runs.append({"command": cmd, "machine": machine, "args": vars(args), "results": res})
    with open(js, "w") as fh:
        json.dump({"runs": runs}, fh, indent=1, default=float)


if __name__ == "__main__":
    main()
