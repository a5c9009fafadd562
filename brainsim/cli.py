"""The ``brainsim`` command line.

    brainsim microcircuit --scale 0.1          # build, simulate, compare rates
    brainsim generate --source hcp --neurons 100000 --k-in 100 --out net.zarr
    brainsim simulate net.zarr --t-ms 1000     # simulate a saved network
    brainsim demo                              # HCP whole brain: build, simulate, BOLD, FC, figures
    brainsim assimilate net.zarr --bold hcp    # fit per-region g_AMPA scales to BOLD (HMDA)
    brainsim info net.zarr                     # describe a network or results store
    brainsim info                              # versions and CUDA devices
    brainsim --version

Exit status: 0 on success, 2 on bad input (a usage error, a missing store, a
store of another schema or version, a parameter out of range); the message
goes to stderr, without a traceback.
"""
import argparse
import math
import os
import shlex
import shutil
import sys
import time

from ._version import __version__
from .errors import BrainsimError, ParameterError, StoreError

EXIT_OK, EXIT_INPUT = 0, 2


def main(argv=None):
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return
    the exit status."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, usage errors
        return stop.code if isinstance(stop.code, int) else EXIT_INPUT
    bad = _stray_lists(parser, args)
    if bad:  # argparse turns "--opt=--" into [] past its type and choices checks
        print(f"brainsim {args.command}: error: argument --{bad.replace('_', '-')}: expected "
              f"one value", file=sys.stderr)
        return EXIT_INPUT
    args.command_line = shlex.join(["brainsim", *argv])
    try:
        return args.func(args)
    except BrainsimError as err:
        print(f"brainsim {args.command}: error: {err}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("brainsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `brainsim info x.zarr | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _stray_lists(parser, args):
    """The first option of the chosen command that holds a list although it
    takes one value (None if there is none)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for action in sub.choices[args.command]._actions:
        if action.nargs is None and not isinstance(action, argparse._AppendAction) and \
                isinstance(getattr(args, action.dest, None), list):
            return action.dest
    return None


def build_parser():
    parser = argparse.ArgumentParser(
        prog="brainsim",
        description="Build and simulate spiking networks (units: ms, mV, pA, Hz).")
    parser.add_argument("--version", action="version", version=f"brainsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("simulate", help="simulate a saved network store",
                       description="Load a network store, simulate it and write a results store.")
    p.add_argument("network", metavar="NETWORK_STORE", help="network store (Network.save)")
    p.add_argument("--t-ms", type=float, required=True, help="biological time to simulate (ms)")
    p.add_argument("--seed", type=int, default=1, help="simulation noise seed (default 1)")
    p.add_argument("--out", default="results.zarr", help="results store (default results.zarr)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="run on the Dask cluster of this scheduler (backend dask), e.g. "
                   "tcp://10.0.0.1:8786; the stores must be on a file system the workers share")
    p.add_argument("--scheduler-timeout", type=float, default=30.0, metavar="S",
                   help="seconds to reach the scheduler (default 30)")
    _common(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("demo", help="whole brain from the HCP connectome: build, simulate, "
                       "BOLD, FC, figures",
                       description="Generate a DTB-style network from the HCP group connectome, "
                       "simulate it, compute BOLD at TR 0.72 s and its FC against the HCP "
                       "group's, write the stores and PNG figures into --out, print a summary.")
    p.add_argument("--out", default="brainsim_demo",
                   help="output folder (default brainsim_demo); the demo's files are replaced")
    p.add_argument("--neurons", type=int, default=10_000, help="neurons (default 10000)")
    p.add_argument("--k-in", type=int, default=10, help="in-degree (default 10)")
    p.add_argument("--t-ms", type=float, default=300_000.0,
                   help="biological time (ms, default 300000: 5 min, 417 BOLD volumes)")
    p.add_argument("--model", choices=("calibrated", "dtb"), default="calibrated",
                   help="calibrated to the HCP group FC (default) or DTB's uncalibrated "
                        "defaults (the null)")
    p.add_argument("--seed", type=int, default=0, help="network seed; noise seed + 1 (default 0)")
    p.add_argument("--threads", type=int, default=None, help="Numba threads (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("microcircuit", help="the Potjans-Diesmann (2014) microcircuit",
                       description="Build the Potjans-Diesmann cortical microcircuit, simulate a "
                       "warm-up and a measured interval, print timings and rates next to the "
                       "published full-scale rates.")
    p.add_argument("--scale", type=float, default=0.1,
                   help="fraction of the 77,169 neurons (default 0.1)")
    p.add_argument("--k-scale", type=float, default=None,
                   help="fraction of the in-degrees (default: --scale)")
    _canonical_run_options(p)
    _canonical_outputs(p)
    _common(p)
    p.set_defaults(func=cmd_microcircuit)

    p = sub.add_parser("multi-area", help="the human or macaque multi-area model",
                       description="Build the human multi-area model (Pronold et al. 2024, 34 "
                       "Desikan-Killiany areas) or the macaque one (Schmidt et al. 2018, 32 "
                       "visual areas) down-scaled, simulate it and print the rate per area "
                       "next to the mean-field (Siegert) prediction of the same network.")
    p.add_argument("model", choices=("human", "macaque"))
    p.add_argument("--scale", type=float, default=None,
                   help="fraction of the neurons (default 0.004 human, 0.006 macaque, as in "
                   "the published notebooks)")
    p.add_argument("--k-scale", type=float, default=None,
                   help="fraction of the in-degrees (default: --scale)")
    p.add_argument("--state", default=None,
                   help="cortico-cortical weights: human base (default) or best_fit; "
                   "macaque ground (default) or metastable")
    p.add_argument("--areas", default=None,
                   help="comma-separated areas to simulate (default all; the others become "
                   "Poisson input)")
    _canonical_run_options(p)
    p.add_argument("--partitions", type=int, default=None,
                   help="partitions (default: one per simulated area; threads step whole "
                   "partitions)")
    _canonical_outputs(p)
    _common(p)
    p.set_defaults(func=cmd_multi_area)

    p = sub.add_parser("generate", help="a whole-brain network from a connectome (DTB)",
                       description="Generate a DTB-style whole-brain network from a connectome "
                       "and stream it into a network store, partition by partition.")
    p.add_argument("--source", default="hcp",
                   help="hcp, hcp:SUBJECT, gw, gw:SUBJECT, tvb66/68/76/96/192, or a weights "
                   "matrix file (.csv/.txt/.npy/.mat, weights[target, source]); default hcp")
    p.add_argument("--lengths", default=None, help="fibre lengths file (mm) for a file --source")
    p.add_argument("--region-size", default=None,
                   help="grey matter / region size file for a file --source")
    p.add_argument("--neurons", type=int, required=True, help="total number of neurons")
    p.add_argument("--k-in", type=int, default=100, help="in-degree of every neuron (default 100)")
    p.add_argument("--partitions", type=int, default=None,
                   help="partitions; the CPU backend steps each on its own thread "
                   "(default: the number of Numba threads)")
    p.add_argument("--seed", type=int, default=0, help="network seed (default 0)")
    p.add_argument("--model", choices=("lif_dtb", "iaf_psc_exp"), default="lif_dtb")
    p.add_argument("--dt", type=float, default=1.0, help="resolution in ms (default 1, DTB)")
    p.add_argument("--velocity", type=float, default=None,
                   help="conduction velocity in m/s for remote delays (default: none, DTB)")
    p.add_argument("--laminar", action="store_true", help="8 laminar populations per region")
    p.add_argument("--region-order", choices=("traffic", "given"), default="traffic")
    p.add_argument("--out", default="network.zarr", help="network store (default network.zarr)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store")
    p.add_argument("--threads", type=int, default=None, help="Numba threads (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("assimilate", help="fit per-region hyperparameters to BOLD (HMDA)",
                       description="Assimilate an observed BOLD signal into per-region "
                       "hyperparameters of a network (ensemble Kalman filter, DTB's HMDA), "
                       "then replay the assimilated series and run the model free, each compared "
                       "with the observation.")
    p.add_argument("network", metavar="NETWORK_STORE", help="network store (e.g. brainsim "
                   "generate --source hcp)")
    p.add_argument("--bold", default="hcp",
                   help="observed BOLD: hcp, hcp:SUBJECT, gw, gw:SUBJECT (the dataset's "
                   "recording), or a (region x time) .npy/.csv/.txt file (with --tr); default hcp")
    p.add_argument("--tr", type=float, default=None, help="repetition time in s (default: "
                   "the dataset's; required for a file)")
    p.add_argument("--hp", action="append", default=None, metavar="NAME=LO:HI",
                   help="hyperparameter: per-region scale of a neuron parameter and its bounds, "
                   "e.g. g_AMPA=0.5:2 (repeatable; default: the protocol's, g_AMPA=0.5:2 "
                   "for brainsim, g_AMPA=0.25:2 and g_GABA_A=0.25:2 for dtb)")
    p.add_argument("--protocol", choices=("brainsim", "dtb"), default="brainsim",
                   help="settings not given below: brainsim's (twin-tested) or the Digital "
                   "Twin Brain's resting-state procedure (default brainsim; see docs)")
    p.add_argument("--members", type=int, default=20, help="ensemble size (default 20)")
    p.add_argument("--n-tr", type=int, default=None, help="TRs to assimilate (default all)")
    p.add_argument("--spinup-tr", type=int, default=10, help="TRs before assimilation "
                   "(default 10)")
    p.add_argument("--sigma-walk", type=float, default=None,
                   help="random-walk sd per TR on the logit scale (default: brainsim 0.05, "
                   "dtb 0.1)")
    p.add_argument("--obs-noise", type=float, default=None,
                   help="observation error variance / variance of the observed BOLD "
                   "(default: brainsim 0.3)")
    p.add_argument("--obs-var", type=float, default=None,
                   help="observation error variance, absolute (default: dtb 1e-8)")
    p.add_argument("--method", choices=("stochastic", "etkf"), default="stochastic")
    p.add_argument("--inflation", type=float, default=1.0)
    p.add_argument("--global", dest="local", action="store_const", const=False, default=None,
                   help="global update (default: brainsim: each region updated by its own "
                   "BOLD; dtb: half that, half the mean of every region's update)")
    p.add_argument("--no-rescale", dest="rescale", action="store_const", const=False,
                   default=None, help="use the observation as it is (twin experiments)")
    p.add_argument("--no-open-loop", dest="open_loop", action="store_false",
                   help="skip the replay and the free run")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--out", default="hmda.zarr", help="result store (default hmda.zarr)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store")
    p.add_argument("--threads", type=int, default=None, help="Numba threads (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_assimilate)

    p = sub.add_parser("info", help="describe a network or results store, or this machine",
                       description="Print a summary of a brainsim network or results store; "
                                   "without PATH, the versions and the CUDA devices seen.")
    p.add_argument("path", metavar="PATH", nargs="?")
    p.set_defaults(func=cmd_info)
    return parser


def _canonical_run_options(p):
    """Drive, times and seed of the canonical models' commands (microcircuit,
    multi-area)."""
    p.add_argument("--input", choices=("dc", "poisson"), default="poisson",
                   help="external drive: Poisson sources or their mean as DC (default poisson)")
    p.add_argument("--t-ms", type=float, default=1000.0,
                   help="measured biological time (ms, default 1000)")
    p.add_argument("--warmup-ms", type=float, default=500.0,
                   help="warm-up simulated before the measured interval (ms, default 500)")
    p.add_argument("--seed", type=int, default=1,
                   help="seed of the network and of the simulation noise (default 1)")


def _canonical_outputs(p):
    p.add_argument("--out", default="results.zarr", help="results store (default results.zarr)")
    p.add_argument("--network-out", default=None, help="also save the network store here")


def _common(p):
    p.add_argument("--overwrite", action="store_true", help="replace existing output stores")
    p.add_argument("--threads", type=int, default=None, help="Numba threads (default: all)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="precision of the neuron state (default float64)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


# ------------------------------------------------------------------ commands
def cmd_simulate(args):
    from .simulation import Simulation
    from .store import load_network

    _check_out(args.out, args.overwrite, "--out")
    if args.scheduler:  # the workers load their partitions; this process only the header
        sim = Simulation(args.network, backend="dask", client=args.scheduler,
                         timeout=args.scheduler_timeout, seed=args.seed, store=args.out,
                         overwrite=args.overwrite, threads=args.threads, dtype=args.dtype)
        net, n_parts = sim.net, sim.n_partitions
    else:
        _check_threads(args.threads)
        net = load_network(args.network)
        sim = Simulation(net, seed=args.seed, store=args.out, overwrite=args.overwrite,
                         threads=args.threads, dtype=args.dtype)
        n_parts = len(net.partitions)
    sim.annotate(network_store=os.path.abspath(args.network), network_meta=net.meta,
                 command=args.command_line)
    try:
        wall, ds = _timed_run(sim, args.t_ms, args)
    except BrainsimError:
        # nothing simulated: remove the empty store only if this command created it (a bad
        # --t-ms fails before the store is touched, and an old store must survive that)
        if sim.step == 0 and getattr(sim.recorder, "writer", None) is not None:
            shutil.rmtree(args.out, ignore_errors=True)
        raise
    finally:
        if args.scheduler:
            sim.close()  # the Client it opened
    print(f"network: {net.n_neurons:,} neurons, {net.n_synapses:,} synapses, "
          f"{n_parts} partitions, dt {net.dt} ms")
    print(f"simulation: {args.t_ms:g} ms in {wall:.2f} s (incl. Numba compilation on a cold "
          f"cache), real-time factor {wall / (args.t_ms * 1e-3):.3g}")
    print(f"spikes: {ds.sizes['spike']:,}")
    print(rate_table(list(net.populations), [p.n for p in net.populations.values()],
                     ds.rate.mean("time").values))
    print(f"results: {args.out}")
    return EXIT_OK


def cmd_demo(args):
    import matplotlib
    matplotlib.use("Agg")  # files only, no window
    from .demo import DEFAULT_WARMUP_MS, run_demo

    _check_threads(args.threads)
    t0 = time.perf_counter()
    result = run_demo(args.out, n_neurons=args.neurons, t_ms=args.t_ms, seed=args.seed,
                      k_in=args.k_in, threads=args.threads, progress=not args.no_progress,
                      log=print, model=args.model)
    print(f"brainsim {__version__} demo: HCP group connectome, DTB-style network "
          f"(lif_dtb, dt 1 ms), seed {args.seed}")
    print(result.table())
    print(f"total: {time.perf_counter() - t0:.1f} s")
    print(f"note: the first {DEFAULT_WARMUP_MS:g} ms of activity (network start-up) are left "
          "out of the BOLD, and the Balloon model starts at each region's mean-rate steady "
          "state: from rest its first ~8 s are a transient (dashed in bold_traces.png). "
          "A stable FC needs minutes of BOLD; individual HCP subjects reach r ~0.8 "
          "against the group FC.")
    return EXIT_OK


def _check_run_options(args):
    """Threads, measured and warm-up times and output paths of a command
    that builds, warms up and simulates (microcircuit, multi-area)."""
    _check_threads(args.threads)
    _check_whole_ms("--t-ms", args.t_ms, allow_zero=False)
    _check_whole_ms("--warmup-ms", args.warmup_ms, allow_zero=True)
    _check_out(args.out, args.overwrite, "--out")
    if args.network_out:
        _check_out(args.network_out, args.overwrite, "--network-out")


def cmd_microcircuit(args):
    from .generation.potjans_diesmann import FULL_RATES, POPULATIONS, microcircuit
    from .simulation import Simulation

    _check_run_options(args)
    t0 = time.perf_counter()
    net = microcircuit(scale=args.scale, k_scale=args.k_scale, input=args.input,
                       seed=args.seed)
    net.build(args.threads)
    _report_build(args, net, time.perf_counter() - t0)
    sim = Simulation(net, seed=args.seed, store=args.out, overwrite=args.overwrite,
                     threads=args.threads, dtype=args.dtype)
    sim.annotate(network_meta=net.meta, warmup_ms=args.warmup_ms,
                 command=args.command_line)
    if args.warmup_ms > 0:
        wall, _ = _timed_run(sim, args.warmup_ms, args)
        print(f"warm-up: {args.warmup_ms:g} ms in {wall:.2f} s "
              "(includes Numba compilation on a cold cache)")
    wall, ds = _timed_run(sim, args.t_ms, args)
    import numba
    print(f"simulation: {args.t_ms:g} ms in {wall:.2f} s, real-time factor "
          f"{wall / (args.t_ms * 1e-3):.3g} (wall / biological time, "
          f"{numba.get_num_threads()} threads)")
    print(f"spikes in the measured interval: {ds.sizes['spike']:,}")
    print(rate_table(list(POPULATIONS), [p.n for p in net.populations.values()],
                     ds.rate.mean("time").values, reference=FULL_RATES))
    print("reference: Potjans & Diesmann (2014), full scale; down-scaled networks differ.")
    print(f"results: {args.out} (warm-up included; measured interval from "
          f"{args.warmup_ms:g} ms)")
    return EXIT_OK


def cmd_multi_area(args):
    import numba
    import numpy as np

    from .analysis import meanfield
    from .generation import human_multi_area, macaque_multi_area
    from .simulation import Simulation

    _check_run_options(args)
    human = args.model == "human"
    scale = args.scale if args.scale is not None else (0.004 if human else 0.006)
    state = args.state or ("base" if human else "ground")
    areas = None if args.areas is None else [a.strip() for a in args.areas.split(",")]
    build = human_multi_area if human else macaque_multi_area
    t0 = time.perf_counter()
    net = build(scale=scale, k_scale=args.k_scale, state=state, areas=areas, input=args.input,
                seed=args.seed)
    regions = list(dict.fromkeys(p.region for p in net.populations.values()))
    n_parts = args.partitions if args.partitions is not None else len(regions)
    net.build(n_parts)
    build_s = time.perf_counter() - t0
    title = ("human multi-area model (Pronold et al. 2024)" if human else
             "macaque multi-area model (Schmidt et al. 2018)")
    print(f"brainsim {__version__}: {title}, state {state}, scale {scale:g}, k_scale "
          f"{net.meta['k_scale']:g}, {len(regions)} areas, {args.input} input, seed {args.seed}")
    print(f"network: {net.n_neurons:,} neurons, {net.n_synapses:,} synapses, "
          f"{len(net.partitions)} partitions; build {build_s:.2f} s")
    if args.network_out:
        net.save(args.network_out, overwrite=args.overwrite)
        print(f"network store: {args.network_out}")
    t0 = time.perf_counter()
    nu = meanfield.fixed_point(net)
    print(f"mean field of this network: {time.perf_counter() - t0:.2f} s, "
          f"{'converged' if nu.attrs['converged'] else 'NOT converged'}")
    sim = Simulation(net, seed=args.seed, store=args.out, overwrite=args.overwrite,
                     threads=args.threads, dtype=args.dtype)
    sim.annotate(network_meta=net.meta, warmup_ms=args.warmup_ms, command=args.command_line)
    if args.warmup_ms > 0:
        wall, _ = _timed_run(sim, args.warmup_ms, args)
        print(f"warm-up: {args.warmup_ms:g} ms in {wall:.2f} s (includes Numba compilation "
              "on a cold cache)")
    wall, ds = _timed_run(sim, args.t_ms, args)
    print(f"simulation: {args.t_ms:g} ms in {wall:.2f} s, real-time factor "
          f"{wall / (args.t_ms * 1e-3):.3g} ({numba.get_num_threads()} threads)")
    sizes = np.array([p.n for p in net.populations.values()], float)
    region_of = np.array([regions.index(p.region) for p in net.populations.values()])
    rate = ds.rate.mean("time").values
    per_area = np.bincount(region_of, rate * sizes) / np.bincount(region_of, sizes)
    mf_area = np.bincount(region_of, nu.values * sizes) / np.bincount(region_of, sizes)
    print(rate_table(regions, np.bincount(region_of, sizes).astype(int).tolist(), per_area,
                     reference=mf_area).replace("population", "area      ", 1)
          .replace(" reference", "mean field", 1))
    total = float(np.sum(rate * sizes) / sizes.sum())
    total_mf = float(np.sum(nu.values * sizes) / sizes.sum())
    print(f"all areas: {total:.3f} spikes/s simulated, {total_mf:.3f} mean field")
    print(f"results: {args.out} (warm-up included; measured interval from "
          f"{args.warmup_ms:g} ms)")
    return EXIT_OK


def _report_build(args, net, build_s):
    print(f"brainsim {__version__}: Potjans-Diesmann microcircuit, scale {args.scale:g}, "
          f"k_scale {net.meta.get('k_scale', args.scale):g}, {args.input} input, "
          f"seed {args.seed}")
    print(f"network: {net.n_neurons:,} neurons, {net.n_synapses:,} synapses, "
          f"{len(net.partitions)} partitions, {net.bytes_per_synapse():.1f} bytes/synapse "
          f"in memory")
    print(f"build: {build_s:.2f} s")
    if args.network_out:
        t0 = time.perf_counter()
        net.save(args.network_out, overwrite=args.overwrite)
        print(f"network store: {args.network_out} ({time.perf_counter() - t0:.2f} s)")


def _timed_run(sim, t_ms, args):
    t0 = time.perf_counter()
    ds = sim.run(t_ms, progress=not args.no_progress)
    return time.perf_counter() - t0, ds


def load_source(source, lengths=None, region_size=None):
    """The Connectome named by a ``--source`` value."""
    from . import datasets
    name, _, subject = source.partition(":")
    if name in ("hcp", "gw"):
        load = datasets.load_hcp if name == "hcp" else datasets.load_gw
        return load(subject=subject or None)
    if name.startswith("tvb") and name[3:].isdigit():
        return datasets.load_tvb(int(name[3:]))
    if os.path.splitext(source)[1] or os.path.exists(source):
        return datasets.load_connectome(source, lengths=lengths, region_size=region_size)
    raise ParameterError(f"--source must be hcp, hcp:SUBJECT, gw, gw:SUBJECT, tvbNN or a "
                         f"matrix file, got {source!r}")


def cmd_generate(args):
    import numba

    from .generation import from_connectome
    from .store import network_info

    _check_threads(args.threads)
    if args.threads:
        numba.set_num_threads(args.threads)
    _check_out(args.out, args.overwrite, "--out")
    conn = load_source(args.source, args.lengths, args.region_size)
    parts = numba.get_num_threads() if args.partitions is None else args.partitions
    t0 = time.perf_counter()
    net = from_connectome(conn, args.neurons, args.k_in, partitions=parts,
                          seed=args.seed, store=args.out, model=args.model, dt=args.dt,
                          velocity=args.velocity, laminar=args.laminar,
                          region_order=args.region_order, overwrite=args.overwrite,
                          progress=not args.no_progress)
    wall = time.perf_counter() - t0
    info = network_info(args.out)
    rep = net.meta["partition_report"]
    print(f"brainsim {__version__}: {conn.source} ({conn.n_regions} regions), "
          f"{args.model}, seed {args.seed}")
    print(f"network: {net.n_neurons:,} neurons in {len(net.populations)} populations, "
          f"{net.n_synapses:,} synapses (k_in {args.k_in}), dt {net.dt} ms")
    took = net.meta["timings_s"]
    print(f"generated in {wall:.2f} s on {numba.get_num_threads()} threads: partitioning "
          f"{took['partitioning']:.2f} s, synapses {took['synapses']:.2f} s "
          f"({net.n_synapses / took['synapses']:.3g} synapses/s; a first run also compiles "
          f"the kernels)")
    print(f"partitions: {rep['n_partitions']}, load balance (max/mean) {rep['balance']:.3f}, "
          f"spike traffic across partitions {100 * rep['cut_fraction']:.1f} %")
    print(f"store: {args.out}, {info['bytes_per_synapse_disk']:.2f} bytes/synapse on disk")
    return EXIT_OK


def parse_hyperparameters(items):
    """``["g_AMPA=0.5:2", ...]`` -> ``{"g_AMPA": (0.5, 2.0)}``."""
    if not items:
        return None
    out = {}
    for item in items:
        name, sep, bounds = item.partition("=")
        lo, sep2, hi = bounds.partition(":")
        try:
            if not (sep and sep2 and name):
                raise ValueError
            out[name.strip()] = (float(lo), float(hi))
        except ValueError:
            raise ParameterError(f"--hp must be NAME=LO:HI (e.g. g_AMPA=0.5:2), "
                                 f"got {item!r}") from None
    return out


def load_bold(source, tr=None):
    """(observed BOLD, tr) named by a ``--bold`` value: a dataset's recording
    or a (region x time) array file."""
    import numpy as np
    name = source.partition(":")[0]
    if name in ("hcp", "gw"):
        return load_source(source), tr
    ext = os.path.splitext(source)[1].lower()
    if ext == ".npy":
        data = np.load(source, allow_pickle=False)
    elif ext in (".csv", ".txt"):
        data = np.loadtxt(source, delimiter="," if ext == ".csv" else None, ndmin=2)
    else:
        raise ParameterError(f"--bold must be hcp, hcp:SUBJECT, gw, gw:SUBJECT or a .npy/.csv/"
                             f".txt file, got {source!r}")
    if tr is None:
        raise ParameterError("--tr (s) is required when --bold is a file")
    return data, tr


def cmd_assimilate(args):
    import numba
    import numpy as np

    from .assimilation import hmda
    from .store import load_network

    _check_threads(args.threads)
    if args.threads:
        numba.set_num_threads(args.threads)
    _check_out(args.out, args.overwrite, "--out")
    hps = parse_hyperparameters(args.hp)
    observed, tr = load_bold(args.bold, args.tr)
    net = load_network(args.network)
    t0 = time.perf_counter()
    ds = hmda(net, observed, hps, n_members=args.members, protocol=args.protocol, tr=tr,
              n_tr=args.n_tr, sigma_walk=args.sigma_walk, obs_noise=args.obs_noise,
              obs_var=args.obs_var, rescale=args.rescale,
              method=args.method, inflation=args.inflation, local=args.local,
              spinup_tr=args.spinup_tr, open_loop=args.open_loop, seed=args.seed,
              store=args.out, overwrite=args.overwrite, progress=not args.no_progress)
    wall = time.perf_counter() - t0
    print(f"network: {net.n_neurons:,} neurons x {args.members} members, "
          f"{len(net.regions)} regions; {ds.sizes['time']} TRs of {ds.attrs['tr']:g} s")
    print(f"wall: {wall:.1f} s in all, {ds.attrs['wall_s_per_tr']:.2f} s per TR, "
          f"{ds.attrs['wall_s_per_tr_member']:.3f} s per TR and member")
    a = ds.attrs
    print(f"BOLD vs observed, median Pearson r over regions (volumes 2..n): one-step forecast "
          f"{_fmt(a['r_forecast_median'])}, persistence {_fmt(a['r_persistence_median'])}, "
          f"analysis {_fmt(a['r_analysis_median'])}; forecast beats persistence in "
          f"{100 * a['forecast_beats_persistence']:.0f} % of regions")
    if "r_replay" in ds:
        for kind, what in (("replay", "replay (assimilated series)"),
                           ("free", "free run (no assimilation)")):
            print(f"{what} vs observed: median Pearson r {_fmt(a[f'r_{kind}_median'])}, "
                  f"FC correlation {_fmt(a[f'fc_r_{kind}'])}")
    est = ds.hp_estimate
    for name in est.hyperparameter.values:
        v = est.sel(hyperparameter=name).values
        print(f"{name} scale (second-half mean): median {np.median(v):.3f}, "
              f"range {v.min():.3f} .. {v.max():.3f}")
    print(f"results: {args.out}")
    return EXIT_OK


def cmd_info(args):
    from .store import store_info

    if args.path is None:
        import numba

        from .backends.cuda import describe_devices
        print(f"brainsim {__version__}, numba {numba.__version__}, "
              f"threads {numba.config.NUMBA_NUM_THREADS}")
        print("\n".join(describe_devices()))
        return EXIT_OK
    info = store_info(args.path)
    lines = _network_lines(info) if info["kind"] == "network" else _results_lines(info)
    print("\n".join(lines))
    return EXIT_OK


# ------------------------------------------------------------------ helpers
def _fmt(value):
    """A score with three decimals, or "n/a" (None: every series constant)."""
    return "n/a" if value is None else f"{value:.3f}"


def rate_table(names, sizes, rates, reference=None):
    """Text table of per-population rates (spikes/s), with a reference
    column when given."""
    width = max([12, *(len(name) + 2 for name in names)])
    head = f"{'population':<{width}}{'n':>9}{'rate (spikes/s)':>18}"
    if reference is not None:
        head += f"{'reference':>12}"
    rows = [head]
    for k, (name, n, rate) in enumerate(zip(names, sizes, rates)):
        row = f"{name:<{width}}{n:>9,}{rate:>18.3f}"
        if reference is not None:
            row += f"{reference[k]:>12.3f}"
        rows.append(row)
    return "\n".join(rows)


def _network_lines(info):
    bps = info["bytes_per_synapse_disk"]
    lines = [
        f"network store {info['path']} (schema version {info['schema_version']}, "
        f"brainsim {info['brainsim_version']})",
        f"neurons: {info['n_neurons']}",
        f"synapses: {info['n_synapses']}",
        f"dt: {info['dt']} ms",
        f"seed: {info['seed']}",
        "bytes per synapse on disk: " + ("n/a (no synapses)" if bps is None else
                                         f"{bps:.2f} (uncompressed "
                                         f"{info['bytes_per_synapse_raw']:.2f})"),
        f"populations: {len(info['populations'])}",
        f"  {'name':<12}{'n':>9}  {'model':<14}{'region':<16}kind",
    ]
    lines += [f"  {p['name']:<12}{p['n']:>9}  {p['model']:<14}{p['region']:<16}{p['kind']}"
              for p in info["populations"]]
    lines.append(f"partitions: {len(info['partitions'])}")
    lines += [f"  {k}: neurons {p['lo']}..{p['hi'] - 1}, {p['n_synapses']} synapses"
              for k, p in enumerate(info["partitions"])]
    if info["columns"] or info["inputs"]:
        lines.append(f"per-neuron columns: {', '.join(info['columns']) or '-'}; "
                     f"inputs: {', '.join(info['inputs']) or '-'}")
    if info["meta"]:
        lines.append("meta: " + ", ".join(f"{k}={_short(v)}" for k, v in info["meta"].items()))
    return lines


def _short(value):
    """A meta value for one line: long lists and dicts are summarised."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)) and len(value) > 6:
        return f"[{len(value)} items]"
    return value


def _results_lines(info):
    lines = [
        f"results store {info['path']} (schema version {info['schema_version']})",
        f"time: {info['t_start']:g} .. {info['t_stop']:g} ms",
        f"spikes: {info['n_spikes']}",
        f"rate bins: {info['n_rate_bins']}",
        "populations: " + ", ".join(f"{name} ({n})" for name, n in info["populations"]),
        f"regions: {', '.join(info['regions'])}",
    ]
    if info["n_vm_neurons"]:
        lines.append(f"V_m recorded for {info['n_vm_neurons']} neurons")
    lines.append("provenance:")
    lines += [f"  {k}: {v}" for k, v in info["provenance"].items()]
    return lines


def _check_out(path, overwrite, flag):
    if os.path.lexists(path) and not overwrite:
        raise StoreError(f"{flag} {path!r} exists; pass --overwrite or another path")


def _check_threads(threads):
    import numba
    top = numba.config.NUMBA_NUM_THREADS
    if threads is not None and not 1 <= threads <= top:
        raise ParameterError(f"--threads must be in [1, {top}] on this machine, got {threads!r}")


def _check_whole_ms(flag, value, allow_zero):
    """Checked before the (slow) build: the microcircuit records 1 ms rate bins."""
    low = 0 if allow_zero else 1
    if not math.isfinite(value) or value != round(value) or value < low:
        raise ParameterError(f"{flag} must be a whole number of ms >= {low} (rates are binned "
                             f"in 1 ms), got {value!r}")
