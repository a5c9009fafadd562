"""Hierarchical mesoscale data assimilation (HMDA), the Digital Twin Brain's loop.

Lu et al., "Simulation and assimilation of the digital human brain", Nature
Computational Science 2024, doi 10.1038/s43588-024-00731-3.

An ensemble of ``n_members`` copies of a network (one network holding all of
them, :func:`brainsim.ensemble.replicate`, stepped by one Simulation) carries
per-region hyperparameters: scales of neuron parameters (e.g. ``g_AMPA``),
bounded in ``[lo, hi]`` and estimated as ``z = logit((x - lo) / (hi - lo))``.
Each neuron's value is ``base x scale[member, region] x h`` with a fixed
per-neuron factor ``h`` (DTB: Gamma(5, 1/5), mean 1) drawn once from the seed.

Every TR: a random walk of z; one TR of simulation; Balloon-Windkessel BOLD
from the spikes per neuron per step of each region; an ensemble Kalman analysis
of the member vectors ``[z, rate, s, ln f, ln v, ln q, BOLD]`` against the
observed BOLD; the analysed hemodynamic states written back (f, v, q through
their logarithms, so they stay positive). Afterwards the network is replayed
with the assimilated hyperparameter series and run free (no assimilation), each
compared with the observation (Pearson r per region, FC correlation).
"""
import numpy as np
import xarray as xr

from brainsim.ensemble import replicate
from brainsim.errors import ParameterError, UnknownNameError
from brainsim.validation import integer
from brainsim.neurons import canonical_name
from brainsim.simulation import Simulation

from .balloon import Balloon
from .enkf import EnKF, to_bounded, to_unbounded

#: Default hyperparameter: the per-region scale of the AMPA conductance.
DEFAULT_HYPERPARAMETERS = {"g_AMPA": (0.5, 2.0)}
SCHEMA = "brainsim-hmda"
_LOG_CLIP = 4.0  # ln f, ln v, ln q stay within e^-4 .. e^4 of rest after an analysis


# ------------------------------------------------------------------ input
def _observed(observed_bold, regions, tr):
    """(T, R) float array in the network's region order and the TR in s."""
    if hasattr(observed_bold, "bold") and hasattr(observed_bold, "names"):  # a Connectome
        if observed_bold.bold is None:
            raise ParameterError(f"the connectome {observed_bold.source!r} carries no BOLD")
        tr = observed_bold.tr if tr is None else tr
        observed_bold = xr.DataArray(observed_bold.bold, dims=("region", "time"),
                                     coords={"region": list(observed_bold.names)})
    if isinstance(observed_bold, xr.DataArray):
        if set(observed_bold.dims) != {"time", "region"}:
            raise ParameterError(f"observed_bold must have dims (time, region), "
                                 f"got {observed_bold.dims}")
        if tr is None and observed_bold.sizes["time"] > 1 and "time" in observed_bold.coords:
            tr = float(observed_bold.time[1] - observed_bold.time[0])
        if "region" in observed_bold.coords:
            have = observed_bold.region.values.tolist()
            missing = [r for r in regions if r not in have]
            if missing:
                raise ParameterError(f"observed_bold lacks {len(missing)} region(s) of the "
                                     f"network, e.g. {missing[:3]}")
            observed_bold = observed_bold.sel(region=regions)
        data = observed_bold.transpose("time", "region").values
    else:
        data = np.asarray(observed_bold, dtype=float)
        if data.ndim != 2 or data.shape[0] != len(regions):
            raise ParameterError(f"observed_bold must be a (region, time) array with "
                                 f"{len(regions)} regions, got shape {data.shape}")
        data = data.T
    if data.shape[1] != len(regions):
        raise ParameterError(f"observed_bold has {data.shape[1]} regions, the network "
                             f"{len(regions)}")
    if not np.all(np.isfinite(data)):
        raise ParameterError(f"observed_bold must be finite, found "
                             f"{int(np.sum(~np.isfinite(data)))} NaN or inf values")
    if tr is None or not np.isfinite(tr) or not tr > 0:
        raise ParameterError(f"tr must be given in s (> 0), got {tr!r}")
    return np.asarray(data, float), float(tr)


def _tr_steps(tr, dt):
    steps = tr * 1000.0 / dt
    if abs(steps - round(steps)) > 1e-6 * max(1.0, steps) or round(steps) < 1:
        raise ParameterError(f"tr ({tr!r} s) must be a whole number of steps of dt ({dt} ms)")
    return int(round(steps))


def _hyperparameters(net, hyperparameters):
    """Canonical names and bound arrays (lo, hi) of the hyperparameters."""
    hyperparameters = DEFAULT_HYPERPARAMETERS if hyperparameters is None else hyperparameters
    if not isinstance(hyperparameters, dict) or not hyperparameters:
        raise ParameterError(f"hyperparameters must be a non-empty dict name -> (lo, hi), "
                             f"got {hyperparameters!r}")
    names, lo, hi = [], [], []
    models = {p.model for p in net.populations.values()}
    for name, bounds in hyperparameters.items():
        canon = {canonical_name(m, name) for m in models}
        if len(canon) != 1:
            raise ParameterError(f"hyperparameter {name!r} means different things in {canon}")
        try:
            a, b = (float(x) for x in bounds)
        except (TypeError, ValueError):
            raise ParameterError(f"bounds of {name!r} must be a pair (lo, hi), "
                                 f"got {bounds!r}") from None
        if not (np.isfinite(a) and np.isfinite(b) and 0.0 <= a < b):
            raise ParameterError(f"bounds of {name!r} must satisfy 0 <= lo < hi, got {bounds!r}")
        if not a < 1.0 < b:  # scales of the network's own value, the prior's centre
            raise ParameterError(f"bounds of {name!r} are scales of the network's own value "
                                 f"and must contain it (lo < 1 < hi), got {bounds!r}")
        names.append(canon.pop())
        lo.append(a)
        hi.append(b)
    for name in names:
        try:
            base = net.neuron_param(name)
        except (KeyError, UnknownNameError):
            raise UnknownNameError(f"hyperparameter {name!r} is not a parameter of the "
                                   f"network's neuron models {sorted(models)}") from None
        if not np.any(base != 0):
            raise ParameterError(f"hyperparameter {name!r} is 0 for every neuron; a scale "
                                 f"cannot change it (set a base value first)")
    return names, np.array(lo), np.array(hi)


def _check_int(name, value, low):
    return integer(name, value, low=low, strict=True)


# ---------------------------------------------------------------- members
class _Members:
    """``n`` copies of a network in one Simulation, with per-region scales of
    neuron parameters and the Balloon of each (member, region)."""

    def __init__(self, net, n, names, heterogeneity, seed, bold_params, backend="cpu",
                 backend_options=None):
        self.n, self.names = n, names
        self.n_regions = len(net.regions)
        self.net = replicate(net, n)
        self.member = np.repeat(np.arange(n), net.n_neurons)
        self.region = np.tile(net.region_index(), n)
        self.all = np.arange(self.net.n_neurons)
        h = _heterogeneity(net.n_neurons, heterogeneity, net.seed)
        self.base = {name: np.tile(net.neuron_param(name) * h, n) for name in names}
        self.sim = Simulation(self.net, backend=backend, seed=seed, record={"spikes": False},
                              rate_bin=net.dt, keep="aggregate",  # one TR per run: no bins
                              **(backend_options or {}))
        self.balloon = Balloon((n, self.n_regions), bold_params)
        self.dt = net.dt

    def apply(self, scales):
        """Set every neuron's parameters from ``scales`` (member, region, hp)."""
        for q, name in enumerate(self.names):
            value = self.base[name] * scales[self.member, self.region, q]
            self.net.set_property(self.all, name, value=value)

    def run_tr(self, steps):
        """Simulate one TR; return (rate (member, region) Hz, BOLD at the end)."""
        rate = self.sim.run(steps * self.dt).rate_region.values  # (steps, M R), Hz
        rate = rate.reshape(steps, self.n, self.n_regions)
        bold = self.balloon.step(rate * self.dt * 1e-3, self.dt)[-1]
        return rate.mean(axis=0), bold


def _heterogeneity(n, heterogeneity, seed):
    """Fixed per-neuron factor: Gamma(shape, scale) or 1, drawn from the
    network's seed (part of the network like its synapses: the same in every
    member, in a twin's truth and in the open loop)."""
    if heterogeneity is None:
        return np.ones(n)
    try:
        shape, scale = (float(x) for x in heterogeneity)
    except (TypeError, ValueError):
        raise ParameterError(f"heterogeneity must be (shape, scale) of a Gamma distribution "
                             f"or None, got {heterogeneity!r}") from None
    if not (shape > 0 and scale > 0):
        raise ParameterError(f"heterogeneity shape and scale must be > 0, got {heterogeneity!r}")
    return np.random.default_rng([seed, 7]).gamma(shape, scale, n)


# ---------------------------------------------------------- forward model
def simulate_bold(network, scales=None, n_tr=100, tr=0.8, heterogeneity=(5.0, 0.2), seed=0,
                  spinup_tr=10, bold_params="dtb", progress=False):
    """BOLD of a network whose neuron parameters are scaled per region.

    The forward model of :func:`hmda` for one member: a twin experiment's
    observation, or the open-loop re-simulation with assimilated values.

    Parameters
    ----------
    network : Network
    scales : dict, optional
        Parameter name -> per-region scale, an array (region,) held constant
        or (n_tr, region) changed at the start of every TR. Default: no change.
    n_tr : int
        TRs recorded (after ``spinup_tr`` TRs that are not).
    tr : float, s
        Repetition time, a whole number of steps of ``network.dt``.
    heterogeneity : (shape, scale) or None
        Gamma distribution of the fixed per-neuron factor, drawn from the
        network's seed: :func:`hmda` on the same network uses the same factors.
    seed : int
        Simulation seed.
    spinup_tr : int
        TRs simulated first (with the first TR's scales) and discarded.
    bold_params : str
        Balloon-Windkessel set ("dtb", "friston2003", "obata2004").

    Returns
    -------
    xarray.DataArray
        BOLD (1) on (time [s], region), sampled at the end of every TR, with
        the coordinate ``rate`` (time, region): the mean rate (Hz) over each TR.
    """
    from tqdm.auto import tqdm
    net = network.build()
    n_tr, spinup_tr = _check_int("n_tr", n_tr, 1), _check_int("spinup_tr", spinup_tr, 0)
    steps = _tr_steps(float(tr), net.dt)
    scales = {} if scales is None else dict(scales)
    names, series = _scale_series(net, scales, n_tr)
    mem = _Members(net, 1, names, heterogeneity, seed, bold_params)
    bold, rates = [], []
    for t in tqdm(range(spinup_tr + n_tr), disable=not progress, desc="simulate_bold",
                  unit="TR"):
        k = max(0, t - spinup_tr)
        if names:
            mem.apply(series[k][None])
        rate, b = mem.run_tr(steps)
        if t >= spinup_tr:
            bold.append(b[0])
            rates.append(rate[0])
    time = (np.arange(n_tr) + 1) * float(tr)
    return xr.DataArray(
        np.array(bold), dims=("time", "region"),
        coords={"time": ("time", time, {"units": "s"}), "region": list(net.regions),
                "rate": (("time", "region"), np.array(rates),
                         {"units": "Hz", "long_name": "mean rate over the TR"})},
        attrs={"units": "1", "long_name": "BOLD", "tr": float(tr), "seed": int(seed),
               "bold_params": str(bold_params)})


def _scale_series(net, scales, n_tr):
    """Names and an (n_tr, region, hp) array of scales."""
    names = [canonical_name(next(iter(net.populations.values())).model, k) for k in scales]
    n_reg = len(net.regions)
    out = np.ones((n_tr, n_reg, len(names)))
    for q, (key, value) in enumerate(scales.items()):
        v = np.asarray(value, dtype=float)
        if v.shape == (n_reg,):
            v = np.broadcast_to(v, (n_tr, n_reg))
        if v.shape != (n_tr, n_reg) or not np.all(np.isfinite(v)) or np.any(v < 0):
            raise ParameterError(f"scales[{key!r}] must be finite, >= 0 and of shape "
                                 f"({n_reg},) or ({n_tr}, {n_reg}), got shape {v.shape}")
        out[:, :, q] = v
    return names, out


# ------------------------------------------------------------------ HMDA
def hmda(network, observed_bold, hyperparameters=None, n_members=20, *, protocol="brainsim",
         tr=None, n_tr=None, sigma_walk=None, heterogeneity=(5.0, 0.2), obs_noise=None,
         obs_var=None, rescale=None, bold_params="dtb", method="stochastic", inflation=1.0,
         local=None, spinup_tr=10, prior=None, open_loop=True, seed=0, store=None,
         overwrite=False, progress=True, backend="cpu", backend_options=None):
    """Assimilate observed BOLD into per-region hyperparameters of a network.

    Parameters
    ----------
    network : Network
        The base network (e.g. from :func:`brainsim.generation.from_connectome`);
        its regions are matched to the observation by name.
    observed_bold : Connectome, DataArray (time [s], region) or array (region, time)
        The empirical BOLD (a Connectome's ``bold`` and ``tr``).
    hyperparameters : dict
        Neuron parameter -> (lo, hi) bounds of its per-region scale, 0 <= lo < hi;
        default: the protocol's (``{"g_AMPA": (0.5, 2.0)}``; "dtb": g_AMPA and
        g_GABA_A, each (0.25, 2.0)). Any neuron parameter of the network's
        model can be one, e.g. ``I_e`` (an external current, for task data;
        give the network a nonzero base value to scale).
    n_members : int >= 2
        Ensemble size (DTB: 30-100).
    protocol : {"brainsim", "dtb"}
        The settings of the arguments below left at None
        (:data:`PROTOCOLS`): "brainsim" (twin-tested defaults: sigma_walk
        0.05, obs_noise 0.3, z-score rescaling, per-region update with the
        analysis kept near the forecast ensemble) or "dtb", the Digital Twin
        Brain's resting-state procedure: g_AMPA and g_GABA_A within
        prior/4 .. 2 x prior, sigma_walk 0.1 (DTB's walk of variance 1 of a
        logit argument divided by 10), obs_var 1e-8, the observation min-max
        rescaled to [0.02, 0.05] (after a per-region z-score, see
        ``rescale``), ``local=0.5``, the logit clamped at +-4.
    tr : float, s
        Repetition time (default: from the observation); a whole number of dt.
    n_tr : int, optional
        TRs to assimilate, >= 3 (default: all; the observation must have 3 or more).
    sigma_walk : float
        Standard deviation per TR of the random walk of z (the logit scale);
        larger values follow faster changes and give noisier estimates (twin
        experiment: 0.05 within 5 %, 0.1 within 16 %).
    heterogeneity : (shape, scale) or None
        Gamma distribution of the fixed per-neuron factor (DTB: (5, 0.2)).
    obs_var : float, optional
        Observation error variance, absolute (replaces ``obs_noise``).
    obs_noise : float
        Observation error variance as a fraction of the variance of the
        (rescaled) observed BOLD over time and regions. It stands for the
        intrinsic variability of a finite network's BOLD, which a twin
        experiment shows to be large: 0.3 recovers twin scales within 5 %,
        0.01 makes the filter overconfident (collapse at the bounds).
    rescale : bool or (lo, hi)
        Map the observed BOLD to the model's range. True: z-score each
        region, then scale to the mean and standard deviation of the BOLD of
        the prior ensemble at the end of the spin-up. (lo, hi): z-score each
        region, then map the whole array (one minimum and maximum) onto
        [lo, hi], DTB's rescaling (the z-score first, because raw scanner
        BOLD has region means thousands of times its fluctuations). False
        for twin experiments (the observation comes from the model).
    bold_params : str
        Balloon-Windkessel set ("dtb", "friston2003", "obata2004").
    method, inflation : EnKF analysis ("stochastic", "etkf") and inflation (>= 1).
    local : bool or float in [0, 1]
        True: each region's hyperparameters and states are updated by its
        own BOLD only (localisation; DTB's per-region update). False: a
        global update in which every region's BOLD informs every region
        (spurious correlations at small ensembles). A weight w in (0, 1):
        DTB's mixed gain, w x the per-region update + (1 - w) x the mean over
        regions of each region's scalar update applied to every entry
        (:func:`mixed_update`; stochastic). With ``local`` True the analysis
        is the stochastic one ("etkf" is global by definition). Whatever
        the update, a (member, region) whose analysed hemodynamic state
        would diverge (:meth:`Balloon.admissible`) keeps its forecast state;
        attrs ``hemodynamic_updates_rejected`` counts them.
    spinup_tr : int
        TRs simulated with the prior before assimilation (not recorded).
    prior : array (n_members, region, hp), optional
        Initial scales; default uniform in the bounds.
    open_loop : bool
        Replay: re-simulate one member driven by the assimilated
        hyperparameter series (ensemble mean per TR); and a free run of the
        unassimilated model (every scale 1); both compared with the
        observation.
    seed : int
        Seeds the simulation noise, the prior, the walk and the filter (the
        per-neuron factors come from the network's seed).
    store : path, optional
        Write the result Dataset to this Zarr store (``overwrite`` to replace).
    progress : bool
        Progress bar per TR.
    backend, backend_options : str, dict
        Engine of the ensemble's Simulation and its options, e.g.
        ``backend="dask", backend_options={"client": client, "workers": 4}``
        spreads the members' partitions over Dask workers; the results are
        the same as with "cpu". The replay and free run use the cpu backend.

    Returns
    -------
    xarray.Dataset
        ``hp`` (time, member, region, hyperparameter), ``hp_mean``, ``hp_spread``
        (ensemble standard deviation), ``hp_estimate`` (region, hyperparameter:
        time mean of ``hp_mean`` over the second half), ``rate`` (time, member,
        region; Hz), ``bold_forecast`` (time, member, region), ``bold_analysis``
        and ``bold_observed`` (time, region); the tracking scores per region
        (:func:`tracking_scores`: ``r_forecast``, ``r_analysis``,
        ``r_persistence``, ``r_change``) with their medians and ``forecast_beats_persistence``
        in attrs; with ``open_loop``: ``bold_replay`` and ``bold_free``
        (time, region), ``r_replay`` and ``r_free`` (region; Pearson r with the
        observation), attrs ``r_replay_median``, ``r_free_median``,
        ``fc_r_replay`` and ``fc_r_free`` (FC correlation with the observed
        over the assimilated TRs). Time is in s (end of each TR).
        attrs also hold ``wall_s_per_tr`` and ``wall_s_per_tr_member``.
    """
    from brainsim.results import check_path
    o = _protocol(protocol, hyperparameters=hyperparameters, sigma_walk=sigma_walk,
                  obs_noise=obs_noise, obs_var=obs_var, rescale=rescale, local=local)
    net = network.build()
    names, lo, hi = _hyperparameters(net, o["hyperparameters"])
    n_members = _check_int("n_members", n_members, 2)
    spinup_tr = _check_int("spinup_tr", spinup_tr, 0)
    regions = list(net.regions)
    obs, tr = _observed(observed_bold, regions, tr)
    steps = _tr_steps(tr, net.dt)
    # the tracking scores (Pearson r over time, persistence) need 3 volumes
    n_tr = obs.shape[0] if n_tr is None else min(_check_int("n_tr", n_tr, 3), obs.shape[0])
    if n_tr < 3:
        raise ParameterError(f"observed_bold must have at least 3 volumes to assimilate "
                             f"and score, got {n_tr}")
    if store is not None:
        check_path(store, SCHEMA, overwrite, "hmda store")
    rng = np.random.default_rng([seed, 2])
    n_reg, n_hp = len(regions), len(names)
    z = to_unbounded(_prior(prior, rng, lo, hi, (n_members, n_reg, n_hp)), lo, hi)
    mem = _Members(net, n_members, names, heterogeneity, seed, bold_params, backend,
                   backend_options)
    try:
        return _assimilate(mem, net, obs, o, names, lo, hi, z, rng, n_tr, steps, spinup_tr,
                           method, inflation, seed, heterogeneity, bold_params, open_loop,
                           store, progress, protocol, regions, tr)
    finally:
        mem.sim.close()


def _assimilate(mem, net, obs, o, names, lo, hi, z, rng, n_tr, steps, spinup_tr, method,
                inflation, seed, heterogeneity, bold_params, open_loop, store, progress,
                protocol, regions, tr):
    import time as _time
    from tqdm.auto import tqdm
    n_members, n_reg, n_hp = z.shape
    mem.apply(to_bounded(z, lo, hi))
    for _ in range(spinup_tr):
        _, b = mem.run_tr(steps)
    if o["rescale"] == "zscore":
        ref = mem.balloon.bold
        obs = _rescale(obs, float(ref.mean()), float(ref.std()))
    elif o["rescale"] is not None:
        obs = _minmax(obs, *o["rescale"])
    if o["obs_var"] is not None:
        var = o["obs_var"]
    else:
        var = o["obs_noise"] * float(obs[:n_tr].var())
        var = var if var > 0 else o["obs_noise"] * max(float(np.abs(obs).mean()) ** 2, 1e-12)
    weight = o["local"]
    kf = EnKF(method="stochastic" if weight == 1.0 and method == "etkf" else method,
              inflation=inflation, rng=np.random.default_rng([seed, 1]),
              localization=_local_distance(n_reg, n_hp) if weight == 1.0 else None)
    owner = _owner(n_reg, n_hp)
    rec = {k: [] for k in ("hp", "rate", "fc", "an")}
    rejected = 0
    t0 = _time.perf_counter()
    for t in tqdm(range(n_tr), disable=not progress, desc="hmda", unit="TR"):
        z = z + rng.normal(0.0, o["sigma_walk"], z.shape)
        mem.apply(to_bounded(z, lo, hi))
        rate, forecast = mem.run_tr(steps)
        hemo = mem.balloon.state
        x = _pack(z, rate, hemo, forecast)
        if weight in (0.0, 1.0):
            xa = kf.analysis(x, obs[t], lambda e: e[:, -n_reg:], np.full(n_reg, var))
        else:
            xa = mixed_update(x, obs[t], var, owner, weight, kf.rng)
        z_new, new = _unpack(xa, z.shape)
        if o["clip"]:
            z, new = _within(z_new, z, axis=0), _within(new, hemo, axis=1)
        else:
            z = np.clip(z_new, -_Z_BOUND, _Z_BOUND)
        bad = ~mem.balloon.admissible(new, dt_ms=mem.dt)  # (member, region), at the run's dt
        rejected += int(bad.sum())
        new[:, bad] = hemo[:, bad]  # keep the forecast where the update is unphysical
        mem.balloon.state = new
        rec["hp"].append(to_bounded(z, lo, hi))
        rec["rate"].append(rate)
        rec["fc"].append(forecast)
        rec["an"].append(mem.balloon.bold.mean(axis=0))  # what the next TR starts from
    wall = (_time.perf_counter() - t0) / n_tr
    hp = np.array(rec["hp"])
    ds = _dataset(hp, np.array(rec["rate"]), np.array(rec["fc"]), np.array(rec["an"]),
                  obs[:n_tr], regions, names, lo, hi, tr)
    ds.attrs.update(wall_s_per_tr=wall, wall_s_per_tr_member=wall / n_members,
                    n_members=n_members, seed=int(seed), method=method, protocol=protocol,
                    inflation=float(inflation), sigma_walk=o["sigma_walk"], obs_var=var,
                    rescale=str(o["rescale"]), local=weight, bold_params=str(bold_params),
                    hemodynamic_updates_rejected=rejected,
                    neurons_per_member=int(net.n_neurons), dt=float(net.dt),
                    schema=SCHEMA)
    if open_loop:
        _add_open_loop(ds, net, names, heterogeneity, seed, spinup_tr, bold_params, progress)
    if store is not None:
        _write(ds, store)
    return ds


#: Settings of each ``protocol`` of :func:`hmda` (arguments given explicitly win).
PROTOCOLS = {
    # brainsim's defaults: a twin experiment recovers per-region scales within 5 %.
    "brainsim": {"hyperparameters": DEFAULT_HYPERPARAMETERS, "sigma_walk": 0.05,
                 "obs_noise": 0.3, "obs_var": None, "rescale": "zscore", "local": 1.0,
                 "clip": True},
    # The Digital Twin Brain's resting-state procedure (Lu et al. 2024, its
    # public code): g_AMPA and g_GABA_A per region within prior/4 .. 2 x prior;
    # a random walk of variance 1 of a logit argument divided by 10 (sd 0.1 of
    # z here); observation variance 1e-8; the observed BOLD min-max rescaled
    # to [0.02, 0.05] as a whole; half per-region, half global gain; the
    # logit clamped (|z| <= 4) but no other limit on the update.
    "dtb": {"hyperparameters": {"g_AMPA": (0.25, 2.0), "g_GABA_A": (0.25, 2.0)},
            "sigma_walk": 0.1, "obs_noise": None, "obs_var": 1e-8, "rescale": (0.02, 0.05),
            "local": 0.5, "clip": False},
}
_Z_BOUND = 4.0


def _protocol(protocol, **given):
    """The settings of ``protocol`` with the arguments given (not None) in
    their place, validated."""
    if not isinstance(protocol, str) or protocol not in PROTOCOLS:
        raise ParameterError(f"protocol must be one of {sorted(PROTOCOLS)}, got {protocol!r}")
    o = dict(PROTOCOLS[protocol])
    if given["obs_noise"] is not None and given["obs_var"] is None:
        o["obs_var"] = None  # a relative noise given replaces the preset's absolute one
    o.update({k: v for k, v in given.items() if v is not None})
    o["sigma_walk"] = _nonneg("sigma_walk", o["sigma_walk"])
    if o["obs_var"] is not None:
        o["obs_var"] = _nonneg("obs_var", o["obs_var"], strict=True)
    else:
        o["obs_noise"] = _nonneg("obs_noise", o["obs_noise"], strict=True)
    o["rescale"] = _rescale_setting(o["rescale"])
    local = o["local"]
    if isinstance(local, (bool, np.bool_)):
        local = float(local)
    try:
        ok = not isinstance(local, str) and 0.0 <= float(local) <= 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ParameterError(f"local must be True, False or a weight in [0, 1] of the "
                             f"per-region update, got {o['local']!r}")
    o["local"] = float(local)
    return o


def _rescale_setting(rescale):
    if rescale is True or rescale == "zscore":
        return "zscore"
    if rescale is False or rescale is None:
        return None
    try:
        a, b = (float(x) for x in rescale)
    except (TypeError, ValueError):
        a = b = np.nan
    if not (np.isfinite(a) and np.isfinite(b) and a < b):
        raise ParameterError(f"rescale must be True (z-score to the model's BOLD), False, or "
                             f"a range (lo, hi) with lo < hi for a min-max rescaling, got "
                             f"{rescale!r}")
    return (a, b)


def _minmax(obs, lo, hi):
    """Each region's series z-scored, then the whole array mapped (one
    minimum and maximum over time and regions, as DTB does) onto [lo, hi].
    The z-score comes first because raw scanner BOLD has region means
    (thousands) that dwarf its fluctuations (tens); a whole-array min-max of
    the raw signal would keep the means and flatten the fluctuations."""
    z = _rescale(obs, 0.0, 1.0)
    a, b = float(z.min()), float(z.max())
    if not b > a:
        raise ParameterError("observed_bold is constant in every region; it cannot be "
                             "min-max rescaled (pass rescale=False)")
    return lo + (hi - lo) * (z - a) / (b - a)


def _owner(n_reg, n_hp):
    """Region of each entry of the packed member vector (see _pack)."""
    return np.concatenate([np.repeat(np.arange(n_reg), n_hp)] + [np.arange(n_reg)] * 6)


def mixed_update(x, y, var, owner, weight, rng):
    """DTB's ensemble update: ``weight`` x the per-region update plus
    (1 - ``weight``) x the mean over regions of the single-observation updates.

    Each region's BOLD (the last ``R`` entries of a member vector) is an
    observation with error variance ``var``. The per-region update moves the
    entries of region r (``owner == r``) by the scalar Kalman gain of r's
    BOLD alone; the global part applies every region's scalar gain to all
    entries and averages over regions. Observations are perturbed (stochastic
    EnKF).

    Parameters
    ----------
    x : (M, N) array
        Forecast member vectors; the last R entries are the predicted BOLD.
    y : (R,) array
        Observed BOLD.
    var : float
        Observation error variance.
    owner : (N,) int array
        Region of every entry.
    weight : float in [0, 1]
    rng : numpy Generator

    Returns
    -------
    (M, N) array
    """
    m, n_reg = x.shape[0], y.size
    a = x - x.mean(axis=0)
    hx = a[:, -n_reg:]
    gain = hx / ((hx * hx).sum(axis=0) / (m - 1) + var) / (m - 1)  # (M, R)
    d = y + np.sqrt(var) * rng.standard_normal((m, n_reg)) - x[:, -n_reg:]  # innovations
    cov = (gain[:, owner] * a).sum(axis=0)  # (N,): cov(entry, own BOLD) / (var + R)
    own = d[:, owner] * cov
    mean_of_all = (d @ gain.T / n_reg) @ a
    return x + weight * own + (1.0 - weight) * mean_of_all


def _write(ds, store):
    """Zarr v3 store; names as variable-length strings (a specified dtype)."""
    out = ds.assign_coords({k: np.array(ds[k].values.tolist(), dtype=object)
                            for k in ("region", "hyperparameter")})
    out.to_zarr(store, mode="w", consolidated=False)


def open_hmda(path):
    """The Dataset written by :func:`hmda` (``store=``), read lazily."""
    from brainsim.results import store_schema
    schema = store_schema(path)
    if schema != SCHEMA:
        from brainsim.errors import StoreError
        raise StoreError(f"{path!r} is a {schema!r} store, not an HMDA result ({SCHEMA!r})")
    return xr.open_zarr(path, consolidated=False)


def _nonneg(name, value, strict=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = np.nan
    if not np.isfinite(v) or v < 0 or (strict and v == 0):
        raise ParameterError(f"{name} must be a finite number {'>' if strict else '>='} 0, "
                             f"got {value!r}")
    return v


def _prior(prior, rng, lo, hi, shape):
    if prior is None:
        return rng.uniform(lo, hi, shape)
    prior = np.asarray(prior, dtype=float)
    if prior.shape != shape:
        raise ParameterError(f"prior must have shape (member, region, hp) = {shape}, "
                             f"got {prior.shape}")
    out = (prior <= lo) | (prior >= hi)
    if np.any(out):
        m, r, q = np.argwhere(out)[0]
        raise ParameterError(f"prior values must lie strictly inside the bounds (lo, hi) of "
                             f"their hyperparameter; {int(out.sum())} do not, e.g. "
                             f"prior[{m}, {r}, {q}] = {float(prior[m, r, q])!r} outside "
                             f"({float(lo[q])!r}, {float(hi[q])!r})")
    return prior


def _rescale(obs, mu, sd):
    """Each region z-scored, then mapped to mean ``mu`` and sd ``sd``."""
    s = obs.std(axis=0)
    return (obs - obs.mean(axis=0)) / np.where(s > 0, s, 1.0) * max(sd, 1e-6) + mu


def _pack(z, rate, hemo, bold):
    """Member vectors [z, rate, s, ln f, ln v, ln q, BOLD]."""
    m = z.shape[0]
    h = hemo.copy()
    h[1:] = np.log(h[1:])
    return np.concatenate([z.reshape(m, -1), rate, h.transpose(1, 0, 2).reshape(m, -1), bold],
                          axis=1)


def _unpack(x, z_shape):
    """(z, hemodynamic state (4, member, region)) from analysed vectors."""
    m, n_reg = z_shape[0], z_shape[1]
    n_z = int(np.prod(z_shape[1:]))
    z = x[:, :n_z].reshape(z_shape)
    h = x[:, n_z + n_reg:n_z + 5 * n_reg].reshape(m, 4, n_reg).transpose(1, 0, 2).copy()
    h[1:] = np.exp(np.clip(h[1:], -_LOG_CLIP, _LOG_CLIP))
    return z, h


def _local_distance(n_reg, n_hp):
    """(state, observation) distances: 0 between a region's own entries and
    its BOLD, 1 otherwise (with radius 0.5 the Gaspari-Cohn taper is 1 and 0)."""
    own = _owner(n_reg, n_hp)
    return (own[:, None] != np.arange(n_reg)[None, :]).astype(float), 0.5


def _within(new, old, axis):
    """Analysed values kept inside the forecast ensemble's range (over the
    member ``axis``) widened by half that range on each side: the linear
    update must not extrapolate the nonlinear model (logit scales, Balloon
    states, where f, v or q could turn negative within a TR) far beyond
    the states the ensemble came from."""
    lo, hi = old.min(axis=axis, keepdims=True), old.max(axis=axis, keepdims=True)
    pad = 0.5 * (hi - lo)
    return np.clip(new, lo - pad, hi + pad)


def _pearson(a, b):
    """Pearson r per column of two (time, column) arrays (NaN where constant)."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    return np.where(den > 0, (a * b).sum(0) / np.where(den > 0, den, 1.0), np.nan)


def fc_correlation(x, y):
    """Pearson r between the upper triangles of the region x region FC
    (correlation) matrices of two (time, region) signals."""
    fa, fb = np.corrcoef(np.asarray(x).T), np.corrcoef(np.asarray(y).T)
    iu = np.triu_indices(fa.shape[0], 1)
    ok = np.isfinite(fa[iu]) & np.isfinite(fb[iu])
    return float(np.corrcoef(fa[iu][ok], fb[iu][ok])[0, 1]) if ok.sum() > 2 else float("nan")


def _dataset(hp, rate, forecast, analysis, observed, regions, names, lo, hi, tr):
    n_tr = hp.shape[0]
    time = (np.arange(n_tr) + 1) * tr
    coords = {"time": ("time", time, {"units": "s"}), "region": regions,
              "hyperparameter": names, "member": np.arange(hp.shape[1]),
              "lo": ("hyperparameter", lo), "hi": ("hyperparameter", hi)}
    tr_ = ("time", "region")
    mean = hp.mean(axis=1)
    ds = xr.Dataset({
        "hp": (("time", "member", "region", "hyperparameter"), hp,
               {"units": "1", "long_name": "hyperparameter scale per member (analysis)"}),
        "hp_mean": (("time", "region", "hyperparameter"), mean,
                    {"units": "1", "long_name": "ensemble mean of the scale"}),
        "hp_spread": (("time", "region", "hyperparameter"), hp.std(axis=1, ddof=1),
                      {"units": "1", "long_name": "ensemble standard deviation of the scale"}),
        "hp_estimate": (("region", "hyperparameter"), mean[n_tr // 2:].mean(axis=0),
                        {"units": "1",
                         "long_name": "time mean of hp_mean over the second half"}),
        "rate": (("time", "member", "region"), rate,
                 {"units": "Hz", "long_name": "forecast mean rate over the TR"}),
        "bold_forecast": (("time", "member", "region"), forecast,
                          {"units": "1", "long_name": "forecast BOLD"}),
        "bold_analysis": (tr_, analysis, {"units": "1", "long_name": "analysis BOLD (mean)"}),
        "bold_observed": (tr_, observed, {"units": "1",
                                          "long_name": "observed BOLD (as assimilated)"}),
    }, coords=coords)
    ds.attrs["tr"] = float(tr)
    scores = tracking_scores(observed, forecast.mean(axis=1), analysis)
    for name, r in scores.items():
        ds[name] = ("region", r, {"units": "1", "long_name": _SCORE_NAMES[name]})
        ds.attrs[f"{name}_median"] = _median_or_none(r)
    beats = scores["r_forecast"] > scores["r_persistence"]
    ds.attrs["forecast_beats_persistence"] = float(beats.mean())
    return ds


_SCORE_NAMES = {
    "r_analysis": "Pearson r of the analysis BOLD (ensemble mean) with the observed, volumes 2..n",
    "r_forecast": "Pearson r of the one-step forecast BOLD (ensemble mean, before the update) "
                  "with the observed, volumes 2..n",
    "r_persistence": "Pearson r of the previous observed volume with the observed (the "
                     "persistence forecast), volumes 2..n",
    "r_change": "Pearson r of the forecast's change over one TR (forecast at t minus the "
                "analysis at t - 1) with the observed change, volumes 2..n",
}


def tracking_scores(observed, forecast, analysis):
    """How well an assimilation tracks the observed BOLD, per region, all
    on the same volumes 2..n (the first has no previous volume):

    - ``r_forecast``: Pearson r of the one-step forecast (the ensemble mean
      BOLD at volume t before the update with volume t; the DTB's reported
      number) with the observation;
    - ``r_analysis``: the same for the analysis (after the update), which
      has seen the observation;
    - ``r_persistence``: Pearson r of volume t - 1 with volume t, the
      forecast that predicts no change; an assimilation is worth its cost
      where ``r_forecast`` beats it;
    - ``r_change``: Pearson r of the model's own change over one TR (the
      forecast at t minus the analysis at t - 1, from which it started)
      with the observed change (volume t minus volume t - 1): whether what
      the model adds to its starting point goes the observation's way.

    Parameters
    ----------
    observed, forecast, analysis : array_like
        (time, region) BOLD, dimensionless.

    Returns
    -------
    dict of numpy arrays
        (region,) r for each name above; NaN where a series is constant.
    """
    obs = np.asarray(observed, np.float64)
    fc = np.asarray(forecast, np.float64)
    an = np.asarray(analysis, np.float64)
    if obs.ndim != 2 or obs.shape[0] < 3 or fc.shape != obs.shape or an.shape != obs.shape:
        raise ParameterError(f"observed, forecast and analysis must be (time, region) arrays "
                             f"of one shape with at least 3 volumes, got {obs.shape}, "
                             f"{fc.shape} and {an.shape}")
    return {"r_analysis": _pearson(an[1:], obs[1:]),
            "r_forecast": _pearson(fc[1:], obs[1:]),
            "r_persistence": _pearson(obs[:-1], obs[1:]),
            "r_change": _pearson(fc[1:] - an[:-1], obs[1:] - obs[:-1])}


def _median_or_none(r):
    """Median over regions, or None (not NaN: JSON attrs) when every
    region's r is NaN (constant series)."""
    return float(np.nanmedian(r)) if np.isfinite(r).any() else None


def _add_open_loop(ds, net, names, heterogeneity, seed, spinup_tr, bold_params, progress):
    """Replay: a fresh run driven by the ensemble-mean hyperparameters of
    every TR; free run: the same network with every scale 1 (the model
    before assimilation). Both are compared with the observation per region
    (Pearson r) and by FC (Pearson r of the FC upper triangles)."""
    series = ds.hp_mean.values  # (time, region, hp)
    obs = ds.bold_observed.values
    runs = {"replay": {name: series[:, :, q] for q, name in enumerate(names)}, "free": {}}
    for kind, scales in runs.items():
        b = simulate_bold(net, scales, n_tr=series.shape[0], tr=ds.attrs["tr"],
                          heterogeneity=heterogeneity, seed=seed + 1, spinup_tr=spinup_tr,
                          bold_params=bold_params, progress=progress).values
        what = ("replay: a fresh run driven by the assimilated series" if kind == "replay"
                else "free run: every scale 1, no assimilation")
        ds[f"bold_{kind}"] = (("time", "region"), b, {"units": "1", "long_name": what})
        r = _pearson(b, obs)
        ds[f"r_{kind}"] = (("region",), r, {"units": "1", "long_name":
                                            f"Pearson r with the observed, {kind}"})
        ds.attrs[f"r_{kind}_median"] = _median_or_none(r)
        fc = fc_correlation(b, obs)
        ds.attrs[f"fc_r_{kind}"] = fc if np.isfinite(fc) else None
