"""Potjans-Diesmann microcircuit in brainsim, NEST 3.10 and Brian2 side by side (issue 4).

One driver, standard library only. Each simulator runs in its own subprocess and virtual
environment; the peers read only the parameter JSON that ``dump_pd14_params.py`` writes from
``brainsim.generation.microcircuit`` (brainsim builds the same model from its module,
``brainsim.generation.potjans_diesmann``):

- brainsim: ``brainsim_pd14.py`` in brainsim's venv (bench_microcircuit.py's protocol: Numba
  compilation before the timed region, cached on disk);
- NEST: ``nest_pd14.py --timed`` in ``--nest-python`` (Create + Connect + Prepare = build);
- Brian2: ``brian2_pd14.py`` (C++ standalone, OpenMP) in ``--brian2-python``; compile time
  is reported apart from the build.

Protocol (reference/pd14.md): same dt (0.1 ms) and threads, build, 500 ms warm-up
discarded, 1000 ms timed without spike recording (spikes are only counted: brainsim per
population and step, Brian2 ``SpikeMonitor(record=False)``, NEST a spike_recorder that records
only from 500 ms on), network seed = simulation seed = ``--seeds`` entry. Runs are interleaved
(for each seed, every simulator once, the order rotated from seed to seed), and the
load average is recorded before and after every run, since the machine may be shared.
Peak RSS is the child's own (``os.wait4``); for Brian2 it is the simulation binary's VmHWM
(its Python front end's peak is kept in the JSON). Job RSS is what the whole run holds at once:
for Brian2 the front end's resident memory when it starts the binary (it stays alive, holding
the drawn network, while the binary runs) plus the binary's peak; for the others their peak. A peer whose interpreter or package is
missing is reported and skipped.

    python benchmarks/peers/run_peers.py --scales 0.1 --inputs poisson dc --seeds 1 2 3 \
        --out benchmarks/out/peers.json --md benchmarks/out/peers.md

``--append`` merges into an existing ``--out`` (to split a long campaign into several
invocations); ``--report`` only rewrites the markdown from ``--out``. ``--sims
brainsim_before`` adds brainsim as it was before a change, from another venv
(``--before-python``, e.g. a worktree of the earlier commit installed editable), run with
the same child script: the report then compares brainsim/Brian2 with before/Brian2.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT_DIR = os.path.join(ROOT, "benchmarks", "out")
POPS = ("L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I")
SIMS = ("brainsim", "brainsim_before", "nest", "brian2")
PROBES = {"brainsim": "import brainsim; print(brainsim.__version__)",
          "brainsim_before": "import brainsim; print(brainsim.__version__)",
          "nest": "import nest; print(nest.__version__)",
          "brian2": "import brian2; print(brian2.__version__)"}


def first_existing(*paths):
    return next((p for p in paths if p and os.path.exists(p)), paths[-1])


def run_child(cmd, timeout, env=None):
    """Run ``cmd``; return (rc, stdout, stderr, own peak RSS in GB, wall s, timed_out)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT, env=env)
        timed_out = False
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                timed_out = True
                break
            time.sleep(0.2)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        # ru_maxrss (KiB) of the child, or of its largest waited-for descendant
        return p.returncode, out.read(), err.read(), ru.ru_maxrss * 1024 / 1e9, wall, timed_out


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in the child's output")


def probe(python):
    """Version of each simulator importable by its interpreter (None when missing)."""
    found = {}
    for sim, code in PROBES.items():
        py = python[sim]
        if not os.path.exists(py):
            found[sim] = None
            continue
        # not from the repository root, where `python -c` would import the source folder
        r = subprocess.run([py, "-c", code], capture_output=True, text=True, cwd=HERE)
        lines = r.stdout.strip().splitlines()  # NEST prints its banner first
        found[sim] = lines[-1].strip() if r.returncode == 0 and lines else None
    return found


def dump_params(python, scale, k_scale, inp):
    path = os.path.join(OUT_DIR, f"pd14_params_scale{scale}_k{k_scale}_{inp}.json")
    if not os.path.exists(path):
        subprocess.run([python, os.path.join(HERE, "dump_pd14_params.py"), "--scale",
                        str(scale), "--k-scale", str(k_scale), "--input", inp, "--out", path],
                       check=True, cwd=ROOT)
    return path


def command(sim, python, params, cfg, a):
    if sim in ("brainsim", "brainsim_before"):
        return [python, os.path.join(HERE, "brainsim_pd14.py"), "--scale", str(cfg["scale"]),
                "--k-scale", str(cfg["k_scale"]), "--input", cfg["input"], "--seed",
                str(cfg["seed"]), "--threads", str(a.threads), "--dtype", a.dtype]
    if sim == "nest":
        return [python, os.path.join(HERE, "nest_pd14.py"), "--params", params, "--timed",
                "--seeds", str(cfg["seed"]), "--threads", str(a.threads)]
    return [python, os.path.join(HERE, "brian2_pd14.py"), "--params", params, "--seed",
            str(cfg["seed"]), "--threads", str(a.threads), "--connect", a.brian2_connect]


def normalise(sim, version, r, child_rss):
    """Common record: simulator, version, timings, memory, rates."""
    rec = {"simulator": sim, "version": version, "neurons": r["neurons"],
           "synapses": r["synapses"], "build_s": r["build_s"], "sim_s": r["sim_s"],
           "rtf": r["sim_s"] / 1.0, "sim_cpu_s": r["sim_cpu_s"], "warmup_s": r["warmup_s"],
           "child_peak_rss_gb": child_rss,
           "rates": {p: r["rates"][p] for p in POPS}}
    if sim == "brian2":
        rec.update(peak_rss_gb=r["peak_rss_gb"], compile_s=r["compile_s"],
                   python_peak_rss_gb=r["python_peak_rss_gb"], connect=r["connect"],
                   construct_s=r["construct_s"], python_build_s=r["python_build_s"])
        # the front end stays alive, holding the drawn network, while the binary runs
        rec["job_peak_rss_gb"] = r["python_rss_at_run_gb"] + r["peak_rss_gb"]
    else:
        rec["peak_rss_gb"] = rec["job_peak_rss_gb"] = child_rss
    if sim in ("brainsim", "brainsim_before"):
        rec["structure_bytes_per_synapse"] = r["bytes_per_synapse"]
    if sim == "nest":
        rec.update(prepare_s=r["prepare_s"], create_connect_s=r["create_connect_s"])
    rec["rss_bytes_per_synapse"] = rec["peak_rss_gb"] * 1e9 / max(rec["synapses"], 1)
    return rec


def run_config(cfg, sims, python, versions, a, results):
    params = dump_params(python["brainsim"], cfg["scale"], cfg["k_scale"], cfg["input"])
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), NUMBA_NUM_THREADS=str(a.threads))
    k = cfg["seed"] % len(sims)
    for sim in sims[k:] + sims[:k]:  # rotate the order from seed to seed
        load0 = os.getloadavg()
        rc, out, err, rss, wall, timed_out = run_child(
            command(sim, python[sim], params, cfg, a), a.timeout, env)
        load1 = os.getloadavg()
        base = {**cfg, "simulator": sim, "version": versions[sim], "threads": a.threads,
                "loadavg_before": list(load0), "loadavg_after": list(load1),
                "child_wall_s": wall,
                "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
        if rc != 0:
            why = "timeout" if timed_out else f"exit {rc}"
            print(f"  {sim:8s} FAILED ({why}); stderr tail:\n{err[-2000:]}", file=sys.stderr)
            results["failures"].append({**base, "error": why, "stderr_tail": err[-2000:]})
            continue
        rec = {**base, **normalise(sim, versions[sim], last_json(out), rss)}
        results["runs"].append(rec)
        print(f"  {sim:8s} seed {cfg['seed']}: build {rec['build_s']:7.2f} s  "
              f"sim {rec['sim_s']:7.2f} s  RSS {rec['peak_rss_gb']:5.2f} GB  "
              f"job RSS {rec['job_peak_rss_gb']:5.2f} GB  "
              f"load {load0[0]:.2f}->{load1[0]:.2f}  rates "
              + " ".join(f"{rec['rates'][p]:.2f}" for p in POPS), flush=True)


# ---------------------------------------------------------------- report

def median(xs):
    return statistics.median(xs) if xs else float("nan")


def groups(runs):
    out = {}
    for r in runs:
        out.setdefault((r["scale"], r["k_scale"], r["input"]), {}).setdefault(
            r["simulator"], []).append(r)
    return out


def fmt_range(xs, fmt="{:.2f}"):
    if len(xs) == 1:
        return fmt.format(xs[0])
    return (fmt + " ({}-{})").format(median(xs), fmt.format(min(xs)), fmt.format(max(xs)))


def table(results):
    names = {"brainsim": "brainsim", "brainsim_before": "brainsim before (--before-python)",
             "nest": "NEST", "brian2": "Brian2 C++ standalone"}
    lines = ["| simulator | version | input | scale | K scale | neurons | synapses | runs | "
             "build s | sim s = RTF | sim CPU s | peak RSS GB | job RSS GB | RSS B/syn | "
             "load 1-min before-after | rates " + " ".join(POPS) + " (spikes/s, median) |",
             "|" + "---|" * 17]
    ratios = ["", "| input | scale | K scale | brainsim/NEST build | brainsim/NEST RTF | "
              "brainsim/NEST RSS | brainsim/NEST sim CPU | brainsim/Brian2 build | "
              "brainsim/Brian2 RTF | brainsim/Brian2 RSS | brainsim/Brian2 sim CPU | "
              "brainsim/NEST job RSS | brainsim/Brian2 job RSS |",
              "|" + "---|" * 13]
    before_rows = ["", "| input | scale | K scale | brainsim/Brian2 RTF | before/Brian2 RTF | "
                   "(brainsim/Brian2) / (before/Brian2) | brainsim/before RTF |",
                   "|" + "---|" * 7]
    for (scale, k, inp), by_sim in sorted(groups(results["runs"]).items()):
        med = {}
        for sim in SIMS:
            rs = by_sim.get(sim, [])
            if not rs:
                continue
            build = [r["build_s"] for r in rs]
            rtf = [r["rtf"] for r in rs]
            rss = [r["peak_rss_gb"] for r in rs]
            cpu = [r.get("sim_cpu_s") for r in rs if r.get("sim_cpu_s") is not None]
            job = [r.get("job_peak_rss_gb") for r in rs if r.get("job_peak_rss_gb")]
            med[sim] = (median(build), median(rtf), median(rss), median(cpu), median(job))
            extra = ""
            if sim == "brian2":  # compiled once per configuration; later seeds reuse it
                extra = (f" (+{max(r['compile_s'] for r in rs):.0f} compile, "
                         f"{rs[0]['connect']})")
            load = f"{min(r['loadavg_before'][0] for r in rs):.1f}-" \
                   f"{max(r['loadavg_after'][0] for r in rs):.1f}"
            rates = " ".join(f"{median([r['rates'][p] for r in rs]):.2f}" for p in POPS)
            lines.append(
                f"| {names[sim]} | {rs[0]['version']} | {inp} | {scale} | {k} | "
                f"{rs[0]['neurons']:,} | {median([r['synapses'] for r in rs]):.3g} | "
                f"{len(rs)} | {fmt_range(build)}{extra} | {fmt_range(rtf)} | "
                f"{fmt_range(cpu) if cpu else '-'} | "
                f"{median(rss):.2f} | {median(job) if job else float('nan'):.2f} | "
                f"{median(rss) * 1e9 / median([r['synapses'] for r in rs]):.0f} | "
                f"{load} | {rates} |")
        if "brainsim" in med:
            b = med["brainsim"]
            cells = []
            for peer in ("nest", "brian2"):
                if peer in med:
                    cells += [f"{b[i] / med[peer][i]:.2f}" for i in range(4)]
                else:
                    cells += ["-"] * 4
            for peer in ("nest", "brian2"):
                cells.append(f"{b[4] / med[peer][4]:.2f}" if peer in med else "-")
            ratios.append(f"| {inp} | {scale} | {k} | " + " | ".join(cells) + " |")
        if "brainsim_before" in med and "brian2" in med and "brainsim" in med:
            now = med["brainsim"][1] / med["brian2"][1]
            before = med["brainsim_before"][1] / med["brian2"][1]
            before_rows.append(f"| {inp} | {scale} | {k} | {now:.3f} | {before:.3f} | "
                               f"{now / before:.3f} | "
                               f"{med['brainsim'][1] / med['brainsim_before'][1]:.3f} |")
    if len(before_rows) > 2:
        ratios += before_rows
    return "\n".join(lines + ratios)


def rate_check(results, nest_ref):
    """brainsim's (and Brian2's) rates against NEST's seed-to-seed spread, scale 0.1 Poisson."""
    try:
        with open(nest_ref) as f:
            ref = json.load(f)["runs"]["poisson"]
    except (OSError, KeyError):
        return ""
    nest = {p: [s["rates_hz"][p] for s in ref["seeds"]] for p in POPS}
    lines = ["", f"Rates against NEST's seed-to-seed spread ({len(ref['seeds'])} NEST seeds, "
             f"scale {ref['scale']}, K scale {ref['k_scale']}, Poisson; "
             "z = (rate - NEST mean) / NEST sd):", "",
             "| simulator | seed | " + " | ".join(POPS) + " | max abs z |",
             "|" + "---|" * 11]
    mean = {p: statistics.mean(nest[p]) for p in POPS}
    sd = {p: statistics.stdev(nest[p]) for p in POPS}
    lines.append("| NEST ref mean +- sd | - | " + " | ".join(
        f"{mean[p]:.3f} +- {sd[p]:.3f}" for p in POPS) + " | - |")
    for r in results["runs"]:
        if (r["scale"], r["k_scale"], r["input"]) != (ref["scale"], ref["k_scale"], "poisson"):
            continue
        z = [(r["rates"][p] - mean[p]) / sd[p] for p in POPS]
        lines.append(f"| {r['simulator']} | {r['seed']} | " + " | ".join(
            f"{r['rates'][p]:.3f} ({zz:+.1f})" for p, zz in zip(POPS, z))
            + f" | {max(abs(v) for v in z):.1f} |")
    return "\n".join(lines)


def machine():
    def sh(cmd):
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    lscpu = {ln.split(":", 1)[0].strip(): ln.split(":", 1)[1].strip()
             for ln in sh("lscpu").splitlines() if ":" in ln}
    keep = ("Model name", "CPU(s)", "Thread(s) per core", "L2 cache", "L3 cache",
            "Hypervisor vendor")
    return {"lscpu": {k: lscpu.get(k) for k in keep}, "mem_total_gb": round(
        os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "gxx": sh("g++ --version | head -1"), "platform": platform.platform(),
        "python": platform.python_version(), "nproc": os.cpu_count(),
        "brainsim_commit": sh(f"git -C {ROOT} rev-parse --short HEAD") + (
            " (working tree modified)" if sh(f"git -C {ROOT} status --short -uno") else "")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", type=float, nargs="+", default=[0.1])
    ap.add_argument("--inputs", nargs="+", default=["poisson", "dc"], choices=["poisson", "dc"])
    ap.add_argument("--k-scale", type=float, default=None,
                    help="in-degree scale (default: the scale for Poisson input, 1.0 for DC, "
                         "as in bench_microcircuit.py: the K-scaled DC network is silent)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sims", nargs="+", default=["brainsim", "nest", "brian2"], choices=SIMS)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                    help="brainsim's state dtype")
    ap.add_argument("--brian2-connect", default="fixed_total",
                    choices=["fixed_total", "bernoulli"])
    ap.add_argument("--brainsim-python", default=first_existing("/work/venv/bin/python",
                                                                sys.executable))
    ap.add_argument("--before-python", default="/work/venv-base/bin/python",
                    help="a venv holding brainsim before a change (sim brainsim_before)")
    ap.add_argument("--nest-python", default="/work/peers-venv/bin/python")
    ap.add_argument("--brian2-python", default="/work/peers-venv-brian2/bin/python")
    ap.add_argument("--timeout", type=float, default=600.0, help="per run, s")
    ap.add_argument("--out", default=os.path.join(OUT_DIR, "peers.json"))
    ap.add_argument("--md", default=None, help="markdown table (default: --out with .md)")
    ap.add_argument("--nest-ref", default=os.path.join(HERE, "nest_pd14_scale0.1.json"))
    ap.add_argument("--append", action="store_true", help="merge into an existing --out")
    ap.add_argument("--report", action="store_true", help="only rewrite the table from --out")
    a = ap.parse_args(argv)
    md = a.md or os.path.splitext(a.out)[0] + ".md"
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    results = {"runs": [], "failures": [], "skipped": {}}
    if (a.append or a.report) and os.path.exists(a.out):
        with open(a.out) as f:
            results = json.load(f)
    if not a.report:
        python = {"brainsim": a.brainsim_python, "brainsim_before": a.before_python,
                  "nest": a.nest_python, "brian2": a.brian2_python}
        versions = probe(python)
        sims = [s for s in a.sims if versions[s]]
        for s in a.sims:
            if not versions[s]:
                print(f"{s}: not found with {python[s]}; skipped", file=sys.stderr)
                results["skipped"][s] = f"not importable with {python[s]}"
        if not versions["brainsim"]:  # it writes the peers' parameter files
            ap.error("brainsim itself must be importable (--brainsim-python)")
        results["machine"] = machine()
        results.setdefault("invocations", []).append(" ".join(sys.argv))
        for scale in a.scales:
            for inp in a.inputs:
                k = a.k_scale if a.k_scale is not None else (scale if inp == "poisson" else 1.0)
                print(f"scale {scale} K scale {k} input {inp}", flush=True)
                for seed in a.seeds:
                    cfg = {"scale": scale, "k_scale": k, "input": inp, "seed": seed}
                    run_config(cfg, sims, python, versions, a, results)
                    with open(a.out, "w") as f:  # after every seed: a crash keeps the rest
                        json.dump(results, f, indent=1)
    text = table(results) + "\n" + rate_check(results, a.nest_ref) + "\n"
    with open(md, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
