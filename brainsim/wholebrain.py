"""A whole-brain spiking model scored against empirical FC: the objective of
:mod:`brainsim.explore`.

:class:`WholeBrainFC` builds the DTB-style network of a connectome
(``generation.from_connectome``) with the parameters of one point, simulates
it, turns the region rates into BOLD (Balloon-Windkessel, DTB's parameters,
``demo_bold``: warm-up left out, haemodynamics started at the steady
state of each region's mean rate) and scores it against the empirical data.

Metrics (one definition each, see :mod:`brainsim.analysis`):

``fc_r``
    Pearson r between the upper triangles (diagonal excluded) of the
    simulated and the empirical FC; FC is the Pearson correlation of the
    regions' BOLD, with no global signal regression.
``fcd_ks``
    Kolmogorov-Smirnov distance between the distributions of the FCD
    entries (``analysis.fcd``: windows of ``fcd_window`` s, here 60 s by
    default, sliding by ``fcd_step`` s, 10 s) of the simulation and of the
    pooled empirical subjects; NaN when the BOLD is shorter than 3 windows.
``fc_mean``
    Mean of the simulated FC above the diagonal (the empirical HCP group
    FC: 0.22; near 1 means one global fluctuation, near 0 noise).
``rate_E``, ``rate_I``
    Mean rates (Hz) of all excitatory and all inhibitory neurons after the
    warm-up.

Nulls to print beside ``fc_r`` (the standards of the field): the SC-FC
correlation of the same connectome (:func:`sc_fc_r`) and the uncalibrated
model (the objective at its defaults).

Parameters of a point (any subset; the rest take the values given to the
constructor, else the defaults of ``from_connectome``):

``coupling``
    Share of each neuron's in-degree that comes from other regions
    (``fractions[2]``; DTB: 2/7; with ``remote="strength"`` the share of
    the region with the largest in-strength), in [0, 6/7): remote inputs
    take the place of local excitatory ones, the local inhibitory share
    stays DTB's 1/7 (a 4:1 local split would leave no local inhibition at
    small in-degrees).
``w_E``, ``w_I``
    Upper ends of the uniform weight ranges of excitatory and inhibitory
    synapses (lif_dtb: dimensionless trace increments; DTB: 1 and 3).
``bg_mean``, ``bg_sigma``, ``bg_tau``
    OU background current on every neuron (pA, pA, ms; DTB 660, 120, 10).
``velocity``
    Conduction velocity (mm/ms = m/s) for remote delays from fibre lengths.
any neuron parameter (e.g. ``g_NMDA``), or ``name@region``
    Set on all neurons, or on one region's neurons (``Network.set_property``).
"""
import numpy as np
import xarray as xr

from .errors import ParameterError, UnknownNameError
from .validation import integer, number

#: Parameters that shape the network itself (the rest are neuron parameters).
NETWORK_PARAMETERS = ("coupling", "w_E", "w_I", "bg_mean", "bg_sigma", "bg_tau", "velocity")
_DTB_LOCAL_I = 1 / 7  # DTB's local inhibitory share of the in-degree
#: Network start-up left out of BOLD and rates (ms), the demo's default.
WARMUP_MS = 500.0
#: Balloon spin-up on each region's mean rate before the first BOLD sample (s).
SPINUP_S = 30.24  # 42 TRs


def empirical_fc(hcp):
    """Mean FC (Pearson r) of the HCP subjects' resting-state BOLD, on the
    regions of ``hcp`` in its order."""
    from .analysis import functional_connectivity
    from .datasets import load_hcp

    subjects = hcp.meta.get("subjects") or [hcp.subject]
    fcs = []
    for s in subjects:
        data = hcp if hcp.subject is not None else load_hcp(subject=s)
        signal = xr.DataArray(data.bold.T, dims=("time", "region"),
                              coords={"region": list(hcp.names)})
        fcs.append(functional_connectivity(signal))
    fc = xr.concat(fcs, dim="subject").mean("subject")
    fc.attrs.update(units="1", long_name=f"empirical FC, mean of {len(fcs)} HCP subjects",
                    n_subjects=len(fcs))
    return fc


def mean_rates(ds, net, warmup_ms):
    """Mean rate (Hz) of all E and of all I neurons after the warm-up, from
    the 1 ms population rates."""
    rate = ds["rate"].isel(time=ds["time"].values >= ds.attrs["t_start"] + warmup_ms)
    mean = rate.mean("time").values
    sizes = np.array([p.n for p in net.populations.values()], float)
    kinds = np.array([p.kind for p in net.populations.values()])
    return tuple(float(np.sum(mean[kinds == k] * sizes[kinds == k]) / sizes[kinds == k].sum())
                 for k in ("E", "I"))


def demo_bold(rate_region, warmup_ms=WARMUP_MS, spinup_s=SPINUP_S, tr=0.72):
    """BOLD of region rates, without the Balloon model's onset transient.

    Parameters
    ----------
    rate_region : xarray.DataArray
        Rates (Hz) on (time ms, region) in bins of dt (``rate_region`` of
        the results).
    warmup_ms : float, ms
        Activity before ``t_start + warmup_ms`` is left out.
    spinup_s : float, s
        Before the first kept bin, each region is driven at its mean rate
        for this long (rounded to whole TRs), which brings the haemodynamic
        state to the steady state of that rate; 0 starts from rest.
    tr : float, s
        Sampling interval.

    Returns
    -------
    xarray.Dataset
        ``bold`` (time s, region): samples at the end of each whole TR after
        the warm-up (time measured from the start of the simulation);
        ``bold_from_rest`` the same computed from rest (its first seconds
        are the onset transient); attrs give tr, warm-up and spin-up.
    """
    from .assimilation import bold

    t = rate_region["time"].values
    kept = rate_region.isel(time=t >= t[0] + warmup_ms)
    dt = float(t[1] - t[0])
    n_spin = int(round(spinup_s / tr)) * int(round(tr * 1e3 / dt))
    spin = kept.mean("time").expand_dims(time=n_spin).transpose("time", ...)
    t_kept = kept["time"].values
    spin = spin.assign_coords(time=("time", t_kept[0] - dt * np.arange(n_spin, 0, -1),
                                    {"units": "ms"}))
    padded = xr.concat([spin, kept], dim="time")
    padded.attrs.update(kept.attrs)
    y = bold(padded, tr=tr)
    y = y.isel(time=y["time"].values > t_kept[0] * 1e-3 + 1e-9)
    y_rest = bold(kept, tr=tr)
    y = y.assign_coords(time=y_rest["time"])  # the same instants, without rounding noise
    out = xr.Dataset({"bold": y, "bold_from_rest": y_rest})
    out["bold_from_rest"].attrs["long_name"] = "BOLD signal from rest (onset transient)"
    out.attrs.update(tr=tr, warmup_ms=warmup_ms, spinup_s=n_spin * dt * 1e-3,
                     params="dtb", units_time="s")
    return out


def sc_fc_r(connectome, fc):
    """Pearson r between the upper triangles of the structural weights
    (symmetrised: mean of both directions) and an FC matrix: the null that a
    model's FC r must beat."""
    from .analysis import fc_correlation
    w = np.asarray(connectome.weights, float)
    sc = 0.5 * (w + w.T)
    return fc_correlation(sc, np.asarray(getattr(fc, "values", fc), float))


def _check_fc(fc, n):
    """A target FC as a float array: square, n x n, finite, in [-1, 1]."""
    arr = np.asarray(getattr(fc, "values", fc), dtype=float)
    if arr.shape != (n, n):
        raise ParameterError(f"fc must be a square matrix of the connectome's {n} regions, got "
                             f"shape {arr.shape}")
    bad = ~np.isfinite(arr) | (np.abs(arr) > 1 + 1e-9)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ParameterError(f"fc must hold finite correlations in [-1, 1], got {float(arr[i, j])!r} "
                             f"at [{i}, {j}]")
    return fc


def empirical_fcd(connectome, window=60.0, step=10.0):
    """FCD of each HCP subject's BOLD of ``connectome`` (list of DataArrays)."""
    from .analysis import fcd
    from .datasets import load_hcp
    out = []
    for s in connectome.meta.get("subjects") or [connectome.subject]:
        data = connectome if connectome.subject is not None else load_hcp(subject=s)
        tr = float(data.tr)
        sig = xr.DataArray(data.bold.T, dims=("time", "region"),
                           coords={"time": ("time", tr * np.arange(data.bold.shape[1]),
                                            {"units": "s"})})
        out.append(fcd(sig, window, step))
    return out


class WholeBrainFC:
    """The objective ``params -> metrics`` of a whole-brain spiking model.

    Parameters
    ----------
    n_neurons, k_in : int
        Network size and in-degree (see ``from_connectome``).
    t_ms : float, ms
        Biological time simulated per point (warm-up included).
    warmup_ms : float, ms
        Start-up left out of BOLD and rates.
    seed : int
        Network seed; the simulation uses ``seed + 1``. Every point uses
        the same seeds, so points differ only by their parameters.
    threads : int
        Numba threads per point (1 when each Dask worker has one core).
    fixed : dict, optional
        Values of parameters that are not searched (same names as points).
    connectome : brainsim.datasets.Connectome, optional
        Default: the HCP group connectome (``datasets.load_hcp()``).
    fc : xarray.DataArray, optional
        Target FC; default the mean FC of the HCP subjects.
    fcd_window, fcd_step : float, s
        FCD windows (default 60 s sliding by 10 s).
    return_fc : bool
        Also return the simulated FC matrix (metric ``fc``).
    spinup_s : float, s
        Balloon spin-up on each region's mean rate (``demo_bold``).
    remote : {"uniform", "strength"}
        Remote share of the in-degree: ``coupling`` in every region, or
        ``coupling`` x the region's in-strength over the largest
        (``from_connectome``).
    """

    def __init__(self, n_neurons=10_000, k_in=20, t_ms=120_000.0, warmup_ms=2_000.0, seed=0,
                 threads=1, fixed=None, connectome=None, fc=None, fcd_window=60.0,
                 fcd_step=10.0, return_fc=False, spinup_s=30.24, remote="uniform"):
        from .datasets import load_hcp
        self.connectome = load_hcp() if connectome is None else connectome
        self.n_neurons = integer("n_neurons", n_neurons, low=1)
        self.k_in = integer("k_in", k_in, low=1)
        self.t_ms = number("t_ms", t_ms, low=0, low_open=True, unit="ms")
        self.warmup_ms = number("warmup_ms", warmup_ms, low=0, high=self.t_ms, unit="ms")
        self.seed = integer("seed", seed, low=0)
        self.threads = integer("threads", threads, low=1)
        self.spinup_s = number("spinup_s", spinup_s, low=0, unit="s")
        self.fcd_window = number("fcd_window", fcd_window, low=0, low_open=True, unit="s")
        self.fcd_step = number("fcd_step", fcd_step, low=0, low_open=True, unit="s")
        self.return_fc = bool(return_fc)
        if remote not in ("uniform", "strength"):
            raise ParameterError(f"remote must be 'uniform' or 'strength', got {remote!r}")
        self.remote = remote
        self.fc = empirical_fc(self.connectome) if fc is None else _check_fc(
            fc, self.connectome.n_regions)
        self._fcd = None
        self.parameters = NETWORK_PARAMETERS + self._neuron_parameters()
        self.fixed = {}
        for name, value in (fixed or {}).items():
            self._check_name(name)
            self.fixed[name] = number(f"fixed[{name!r}]", value)

    @staticmethod
    def _neuron_parameters():
        from .neurons import get_model
        return tuple(p.name for p in get_model("lif_dtb").parameters
                     if not p.size and p.name != "V_m")

    def accepts(self, name):
        """True for a known name, or ``neuron_parameter@region``."""
        if name in self.parameters:
            return True
        par, sep, region = name.partition("@")
        return bool(sep) and par in self._neuron_parameters() and \
            region in list(self.connectome.names)

    def _check_name(self, name):
        if not self.accepts(name):
            raise UnknownNameError(f"unknown parameter {name!r}; allowed: "
                                   f"{sorted(NETWORK_PARAMETERS + self._neuron_parameters())} "
                                   f"or 'parameter@region'")

    # ---------------------------------------------------------------- build
    def network_kwargs(self, params=None):
        """``from_connectome`` keyword arguments of one point (fractions,
        weights, background, velocity, neuron params, remote) and the
        per-region settings ``{(parameter, region): value}``."""
        from .generation.connectome import DEFAULT_WEIGHTS, DTB_BACKGROUND
        p = dict(self.fixed)
        for name, value in (params or {}).items():
            self._check_name(name)
            p[name] = float(value)
        coupling = p.pop("coupling", 2 / 7)
        if not 0 <= coupling < 1 - _DTB_LOCAL_I:
            raise ParameterError(f"coupling must be in [0, 6/7) (the local inhibitory share "
                                 f"1/7 stays), got {coupling!r}")
        w = DEFAULT_WEIGHTS["lif_dtb"]
        kwargs = dict(
            fractions=(1 - _DTB_LOCAL_I - coupling, _DTB_LOCAL_I, coupling),
            weights={"E": (0.0, p.pop("w_E", w["E"][1])), "I": (0.0, p.pop("w_I", w["I"][1]))},
            background={"mean": p.pop("bg_mean", DTB_BACKGROUND["mean"]),
                        "sigma": p.pop("bg_sigma", DTB_BACKGROUND["sigma"]),
                        "tau": p.pop("bg_tau", DTB_BACKGROUND["tau"])},
            velocity=p.pop("velocity", None), remote=self.remote,
            params={k: v for k, v in p.items() if "@" not in k} or None)
        regional = {tuple(k.split("@", 1)): v for k, v in p.items() if "@" in k}
        return kwargs, regional

    def build(self, params=None, **options):
        """The network of one point (built, not simulated); ``options`` go
        to ``from_connectome`` (e.g. ``partitions``, ``store``)."""
        from .generation import from_connectome
        kwargs, regional = self.network_kwargs(params)
        options.setdefault("partitions", 1)
        net = from_connectome(self.connectome, self.n_neurons, self.k_in, seed=self.seed,
                              **kwargs, **options)
        for (par, region), value in regional.items():
            net.set_property({"region": region}, par, value=value)
        return net

    # ------------------------------------------------------------- evaluate
    def __call__(self, params):
        from .simulation import Simulation
        net = self.build(params)
        # rates only: the scores need no spikes (at 10,000 neurons and 10 Hz a
        # spike record costs 12 bytes x 1e5 per s)
        sim = Simulation(net, seed=self.seed + 1, threads=self.threads,
                         record={"spikes": False})
        try:
            ds = sim.run(self.t_ms)
        finally:
            sim.close()
        return self.score(ds, net)

    def score(self, ds, net):
        """Metrics of a simulation result ``ds`` of network ``net``."""
        from .analysis import fc_correlation, fcd, fcd_ks, functional_connectivity
        names = list(self.connectome.names)
        bold = demo_bold(ds.rate_region.sel(region=names), self.warmup_ms, self.spinup_s)["bold"]
        rate_e, rate_i = mean_rates(ds, net, self.warmup_ms)
        out = {"rate_E": rate_e, "rate_I": rate_i, "fc_r": np.nan, "fc_mean": np.nan,
               "fcd_ks": np.nan, "n_bold": bold.sizes["time"]}
        fc = np.full((len(names), len(names)), np.nan)
        if bold.sizes["time"] >= 3 and np.all(bold.std("time").values > 0):
            fc_da = functional_connectivity(bold)
            fc = fc_da.values
            out["fc_r"] = fc_correlation(fc_da, self.fc)
            out["fc_mean"] = float(np.mean(fc[np.triu_indices(len(names), 1)]))
            t = bold["time"].values
            if t[-1] - t[0] >= self.fcd_window + 2 * self.fcd_step:
                sim_fcd = fcd(bold, self.fcd_window, self.fcd_step)
                out["fcd_ks"] = fcd_ks(sim_fcd, self._empirical_fcd())
        if self.return_fc:
            out["fc"] = fc
        return out

    def _empirical_fcd(self):
        if self._fcd is None:
            pooled = [m.values[np.triu_indices(m.shape[0], 1)]
                      for m in empirical_fcd(self.connectome, self.fcd_window, self.fcd_step)]
            v = np.concatenate(pooled)
            n = int(np.ceil(np.sqrt(2 * v.size))) + 1
            # as a square matrix whose upper triangle holds the pooled entries
            # (fcd_ks reads the upper triangle; the rest is NaN, left out)
            m = np.full((n, n), np.nan)
            iu = np.triu_indices(n, 1)
            m[iu[0][:v.size], iu[1][:v.size]] = v
            self._fcd = m
        return self._fcd
