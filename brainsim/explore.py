"""Parameter exploration and fitting of whole-brain models on Dask.

Every parameter point is one task on a ``distributed.Client``: the task calls
an *objective* with the point's parameters and returns its metrics. Results
are written to a Zarr store point by point as they arrive, so a search that
is interrupted (a killed worker, a crashed or stopped driver) resumes from
the same store without recomputing the points already done::

    from brainsim import explore
    model = explore.WholeBrainFC(n_neurons=10_000, k_in=20, t_ms=240_000)
    ds = explore.evaluate(model, explore.grid({"coupling": (0.1, 0.6)}, n=6),
                          store="grid.zarr", client=client, progress=True)
    fit = explore.fit(model, {"coupling": (0.1, 0.6), "bg_mean": (600, 720)},
                      store="fit.zarr", maximize="fc_r", budget=40)

- :func:`grid` and :func:`random_points` make points from a *space*
  (``{name: (low, high)}``; a grid also takes ``{name: [values]}``);
- :func:`evaluate` runs given points, :func:`fit` searches with CMA-ES
  (the ``cma`` package, Hansen's maintained implementation) or with random
  sampling, both resumable; :func:`open_results` reads a store back.

The objective is any picklable callable ``objective(params) -> metrics``:
``params`` a dict of floats, ``metrics`` a dict of numbers or fixed-shape
arrays. An objective may list the names it accepts in ``objective.parameters``
(then unknown names are refused before anything runs). :class:`WholeBrainFC`
(in :mod:`brainsim.wholebrain`) is the built-in one: a spiking network from
the HCP connectome, BOLD, and FC r, FCD KS distance and rates.

Results are an ``xarray.Dataset`` over ``point``: one coordinate per
parameter and one variable per metric (NaN where a point is not done or
failed), ``done``, and for a fit ``generation``. A fit replays CMA-ES
deterministically from its seed and takes the results it finds in the store,
so a resumed fit asks for exactly the points the uninterrupted one would
have asked for and ends with identical results.
"""
import itertools
import math
import os

import numpy as np
import xarray as xr

from .errors import ParameterError, StoreError, UnknownNameError
from .validation import integer, number

#: Format tag written into the store's attributes.
FORMAT = "brainsim.explore"
FORMAT_VERSION = 1
METHODS = ("cmaes", "random")
_CHUNK = 256


# ------------------------------------------------------------------- spaces
def _check_name(name):
    if not isinstance(name, str) or not name:
        raise ParameterError(f"parameter names must be non-empty strings, got {name!r}")


def check_space(space, objective=None, values_allowed=False):
    """Validated ``{name: (low, high)}`` (or, with ``values_allowed``,
    ``{name: [values]}``), with names checked against
    ``objective.parameters`` when the objective lists them."""
    if not isinstance(space, dict):
        raise ParameterError(f"space must be a dict {{name: (low, high)}}, got "
                             f"{type(space).__name__} {space!r}")
    if not space:
        raise ParameterError("space is empty: give at least one parameter, e.g. "
                             "{'coupling': (0.1, 0.6)}")
    out = {}
    for name, spec in space.items():
        _check_name(name)
        out[name] = _check_range(name, spec, values_allowed)
    check_names(out, objective)
    return out


def _check_range(name, spec, values_allowed):
    if isinstance(spec, (str, bytes)) or not np.iterable(spec):
        raise ParameterError(f"space[{name!r}] must be (low, high), got {spec!r}")
    arr = np.asarray(spec, dtype=object)
    try:
        values = np.asarray([float(v) for v in arr.ravel()], float)
    except (TypeError, ValueError):
        raise ParameterError(f"space[{name!r}] must hold numbers, got {spec!r}") from None
    if arr.ndim != 1 or values.size == 0:
        raise ParameterError(f"space[{name!r}] must be (low, high), got {spec!r}")
    if not np.all(np.isfinite(values)):
        raise ParameterError(f"space[{name!r}] must be finite, got {spec!r}")
    if values_allowed and not (isinstance(spec, tuple) and len(spec) == 2):
        if len(np.unique(values)) != values.size:
            raise ParameterError(f"space[{name!r}] repeats values: {spec!r}")
        return values
    if values.size != 2:
        raise ParameterError(f"space[{name!r}] must be a (low, high) pair, got {spec!r}"
                             + (" (a list of values needs method='grid')"
                                if not values_allowed else ""))
    if not values[0] < values[1]:
        raise ParameterError(f"space[{name!r}] has inverted or empty bounds: low "
                             f"{values[0]:g} must be < high {values[1]:g}")
    return (float(values[0]), float(values[1]))


def check_names(names, objective):
    """Refuse names that ``objective.parameters`` (if it has one) lacks."""
    allowed = getattr(objective, "parameters", None)
    if allowed is None:
        return
    allowed = set(allowed)
    for name in names:
        if name not in allowed and not _accepts(objective, name):
            raise UnknownNameError(f"unknown parameter {name!r} for {type(objective).__name__}; "
                                   f"allowed: {sorted(allowed)}")


def _accepts(objective, name):
    accepts = getattr(objective, "accepts", None)
    return bool(accepts(name)) if callable(accepts) else False


def grid(space, n=5):
    """All combinations of each parameter's values (first name slowest).

    Parameters
    ----------
    space : dict
        ``{name: (low, high)}`` (then ``n`` evenly spaced values, both ends
        included) or ``{name: [values]}`` (a list, or an array, of values).
    n : int or dict
        Values per (low, high) parameter, or ``{name: n}``.

    Returns
    -------
    dict
        ``{name: 1-D float array}``, all of the same length.
    """
    space = check_space(space, values_allowed=True)
    axes = []
    for name, spec in space.items():
        if isinstance(spec, tuple):
            k = n.get(name) if isinstance(n, dict) else n
            if k is None:
                raise ParameterError(f"n has no entry for {name!r}: give n={{'{name}': int}}")
            k = integer(f"n[{name!r}]" if isinstance(n, dict) else "n", k, low=2)
            axes.append(np.linspace(spec[0], spec[1], k))
        else:
            axes.append(np.asarray(spec, float))
    combos = np.array(list(itertools.product(*axes)), float)
    return {name: combos[:, j].copy() for j, name in enumerate(space)}


def random_points(space, n, seed=0):
    """``n`` points drawn uniformly within the bounds of ``space``."""
    space = check_space(space)
    n = integer("n", n, low=1)
    rng = np.random.default_rng(integer("seed", seed, low=0))
    u = rng.random((n, len(space)))
    return {name: lo + (hi - lo) * u[:, j] for j, (name, (lo, hi)) in enumerate(space.items())}


def _check_points(points, objective):
    if not isinstance(points, dict) or not points:
        raise ParameterError(f"points must be a non-empty dict {{name: values}} (see grid()), "
                             f"got {points!r}")
    out, n = {}, None
    for name, values in points.items():
        _check_name(name)
        v = np.atleast_1d(np.asarray(values, float))
        if v.ndim != 1 or v.size == 0:
            raise ParameterError(f"points[{name!r}] must be a non-empty 1-D sequence, "
                                 f"got shape {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ParameterError(f"points[{name!r}] must be finite, got {values!r}")
        if n is not None and v.size != n:
            raise ParameterError(f"points must all have the same length: {name!r} has "
                                 f"{v.size}, the first parameter {n}")
        n = v.size
        out[name] = v
    check_names(out, objective)
    return out


# -------------------------------------------------------------------- store
class _Store:
    """The Zarr group of a search: ``param_<name>``, ``metric_<name>``,
    ``done``, ``generation``; attributes ``parameters``, ``metrics``,
    ``kind``, ``settings`` and ``errors`` ({point: message})."""

    def __init__(self, path, names, kind, settings, overwrite):
        import zarr
        self.path = os.fspath(path) if path is not None else None
        self.names = list(names)
        if self.path is not None and os.path.exists(self.path) and not overwrite:
            self.group = _open_group(self.path, "r+")
            self._check(kind, settings)
        else:
            if self.path is not None and os.path.exists(self.path):
                try:
                    other = _open_group(self.path, "r").attrs.get("format")
                except StoreError:
                    other = None
                if other != FORMAT:
                    raise StoreError(f"overwrite=True replaces only an exploration store; "
                                     f"{self.path!r} is something else (left as it is)")
            self.group = zarr.open_group(self.path if self.path is not None
                                         else zarr.storage.MemoryStore(), mode="w")
            self.group.update_attributes(dict(
                format=FORMAT, version=FORMAT_VERSION, kind=kind, parameters=self.names,
                metrics={}, settings=settings, errors={}))
            for name in self.names:
                self._create("param_" + name, (), np.float64, np.nan)
            self._create("done", (), bool, False)
            self._create("generation", (), np.int64, -1)

    def _check(self, kind, settings):
        a = dict(self.group.attrs)
        if a.get("format") != FORMAT:
            raise StoreError(f"{self.path!r} is not a brainsim exploration store (format "
                             f"{a.get('format')!r}); give another store or overwrite=True")
        if a.get("parameters") != self.names or a.get("kind") != kind \
                or a.get("settings") != settings:
            raise StoreError(
                f"{self.path!r} holds a different search (kind {a.get('kind')!r}, parameters "
                f"{a.get('parameters')}, settings {a.get('settings')}); this one is kind "
                f"{kind!r}, parameters {self.names}, settings {settings}. Use a new store or "
                f"overwrite=True")

    def _create(self, name, shape, dtype, fill):
        n = self.n
        self.group.create_array(name, shape=(n, *shape), chunks=(_CHUNK, *shape),
                                dtype=dtype, fill_value=fill)

    @property
    def n(self):
        return self.group["done"].shape[0] if "done" in self.group else 0

    def params(self):
        return {k: self.group["param_" + k][:] for k in self.names}

    def done(self):
        return self.group["done"][:]

    def extend(self, points, generation=-1):
        """Append points (dict of arrays); returns their indices."""
        start, m = self.n, len(next(iter(points.values())))
        for key in list(self.group.array_keys()):
            arr = self.group[key]
            arr.resize((start + m, *arr.shape[1:]))
        for k in self.names:
            self.group["param_" + k][start:] = points[k]
        self.group["generation"][start:] = generation
        return np.arange(start, start + m)

    def write(self, i, metrics):
        known = dict(self.group.attrs["metrics"])
        for key, value in metrics.items():
            shape = list(np.shape(value))
            if key not in known:
                self._create("metric_" + key, tuple(shape), np.float64, np.nan)
                known[key] = shape
                self.group.attrs["metrics"] = known
            elif known[key] != shape:
                raise ParameterError(f"metric {key!r} changed shape: {known[key]} at earlier "
                                     f"points, {shape} at point {i}")
            self.group["metric_" + key][i] = value
        self.group["done"][i] = True  # last: a point is done once all its metrics are in

    def fail(self, i, message):
        errors = dict(self.group.attrs["errors"])
        errors[str(i)] = message
        self.group.attrs["errors"] = errors
        self.group["done"][i] = True

    def metric(self, key):
        arr = "metric_" + key
        return self.group[arr][:] if arr in self.group else np.full(self.n, np.nan)

    def dataset(self):
        return _as_dataset(self.group)


def _as_dataset(group):
    a = dict(group.attrs)
    n = group["done"].shape[0]
    coords = {k: ("point", group["param_" + k][:]) for k in a["parameters"]}
    coords["point"] = np.arange(n)
    data = {"done": ("point", group["done"][:])}
    gen = group["generation"][:]
    if np.any(gen >= 0):
        coords["generation"] = ("point", gen)
    for key, shape in a["metrics"].items():
        dims = ("point", *(f"{key}_dim_{j}" for j in range(len(shape))))
        data[key] = (dims, group["metric_" + key][:])
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(kind=a["kind"], parameters=list(a["parameters"]),
                    n_failed=len(a["errors"]), errors=str(a["errors"]) if a["errors"] else "")
    for key, value in a.get("settings", {}).items():
        ds.attrs[key] = value if isinstance(value, (str, int, float)) else str(value)
    return ds


def _open_group(path, mode):
    import zarr
    try:
        return zarr.open_group(path, mode=mode)
    except (FileNotFoundError, ValueError, KeyError, TypeError) as err:
        raise StoreError(f"{path!r} exists but is not a Zarr store ({type(err).__name__}: "
                         f"{err}); give another store or overwrite=True") from None


def open_results(store):
    """The results in an exploration store, as an xarray Dataset."""
    path = os.fspath(store)
    if not os.path.exists(path):
        raise StoreError(f"no exploration store at {path!r}")
    group = _open_group(path, "r")
    if group.attrs.get("format") != FORMAT:
        raise StoreError(f"{path!r} is not a brainsim exploration store")
    return _as_dataset(group)


# ---------------------------------------------------------------- execution
def _call(objective, params):
    """Run on a worker: the objective's metrics, as floats / float arrays."""
    metrics = objective(dict(params))
    return _check_metrics(metrics)


def _check_metrics(metrics):
    if not isinstance(metrics, dict) or not metrics:
        raise ParameterError(f"the objective must return a non-empty dict of metrics, got "
                             f"{type(metrics).__name__}")
    out = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ParameterError(f"metric names must be identifiers, got {key!r}")
        try:
            out[key] = np.asarray(value, float)
        except (TypeError, ValueError):
            raise ParameterError(f"metric {key!r} must be a number or a numeric array, got "
                                 f"{type(value).__name__}") from None
    return out


class _Runner:
    """Submits points to the client (or runs them here) and stores results."""

    def __init__(self, objective, client, on_error, progress):
        if not callable(objective):
            raise ParameterError(f"objective must be callable, got {type(objective).__name__}")
        if on_error not in ("raise", "nan"):
            raise ParameterError(f"on_error must be 'raise' or 'nan', got {on_error!r}")
        self.objective, self.on_error, self.progress = objective, on_error, progress
        self._close = []
        self.client = self._connect(client)

    def _connect(self, client):
        if isinstance(client, str) and client == "serial":
            return None
        from distributed import Client
        if isinstance(client, Client):
            return client
        if client is not None:
            raise ParameterError(f"client must be a distributed.Client, 'serial' or None (a "
                                 f"LocalCluster), got {type(client).__name__} {client!r}")
        from distributed import LocalCluster
        cluster = LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1,
                               processes=True, dashboard_address=":0")
        own = Client(cluster)
        self._close += [own.close, cluster.close]
        return own

    def close(self):
        for close in self._close:
            close()

    def run(self, store, indices, points):
        """Evaluate ``points`` (rows ``indices`` of the store); results stored."""
        from tqdm.auto import tqdm
        names = list(points)
        todo = [(int(i), {k: float(points[k][j]) for k in names})
                for j, i in enumerate(indices)]
        with tqdm(total=len(todo), unit="point", disable=not self.progress,
                  desc="explore") as bar:
            if self.client is None:
                for i, params in todo:
                    self._store(store, i, *self._serial(params))
                    bar.update()
                return
            from distributed import as_completed
            futures = {self.client.submit(_call, self.objective, params, pure=False): i
                       for i, params in todo}
            try:
                for fut in as_completed(list(futures)):
                    i = futures.pop(fut)
                    if fut.status == "error" and self.on_error == "nan" \
                            and not _infrastructure(fut.exception()):
                        self._store(store, i, None, repr(fut.exception()))
                    else:
                        self._store(store, i, fut.result(), None)
                    fut.release()  # stored: a lost worker must not recompute it
                    bar.update()
            finally:
                self.client.cancel(list(futures))

    def _serial(self, params):
        try:
            return _call(self.objective, params), None
        except Exception as err:  # noqa: BLE001 - stored when on_error="nan"
            if self.on_error == "raise":
                raise
            return None, repr(err)

    @staticmethod
    def _store(store, i, metrics, error):
        if error is None:
            store.write(i, metrics)
        else:
            store.fail(i, error)


def _infrastructure(err):
    """Lost workers and cancellations are not the objective's failures."""
    from distributed import KilledWorker
    from concurrent.futures import CancelledError
    return isinstance(err, (KilledWorker, CancelledError, OSError))


def evaluate(objective, points, store=None, *, client=None, progress=False, overwrite=False,
             on_error="raise"):
    """Evaluate ``objective`` at ``points``, one Dask task per point.

    Parameters
    ----------
    objective : callable
        ``objective(params: dict) -> dict`` of metrics (numbers or
        fixed-shape arrays); picklable (a module-level function or object),
        since it travels to the workers.
    points : dict
        ``{name: values}`` of equal lengths (e.g. from :func:`grid`).
    store : path, optional
        Zarr store of the results. If it exists and holds the same points
        (or a prefix of them), only the points not yet done are computed.
    client : distributed.Client, "serial" or None
        Where to run: a client (one task per point; size the objective's own
        threads to the workers), "serial" (here, one after another), or None
        (a LocalCluster with one single-threaded worker process per core,
        closed afterwards).
    progress : bool
        Progress bar over the points.
    overwrite : bool
        Replace an existing store instead of resuming it.
    on_error : {"raise", "nan"}
        An exception of the objective stops the exploration ("raise"; the
        points done so far stay in the store), or is recorded in the store's
        ``errors`` and the point's metrics stay NaN ("nan"). Lost workers
        always raise.

    Returns
    -------
    xarray.Dataset
        Over ``point``: the parameters as coordinates, the metrics, ``done``.
    """
    points = _check_points(points, objective)
    runner = _Runner(objective, client, on_error, progress)
    try:
        st = _Store(store, list(points), "points", {}, overwrite)
        n_new = len(next(iter(points.values())))
        old = st.params()
        n_old = st.n
        if n_old > n_new or any(
                not np.array_equal(old[k], points[k][:n_old]) for k in points):
            raise StoreError(f"{st.path!r} holds {n_old} other points; resuming needs the same "
                             f"points (extra ones may follow). Use a new store or overwrite=True")
        if n_new > n_old:
            st.extend({k: v[n_old:] for k, v in points.items()})
        todo = np.flatnonzero(~st.done())
        runner.run(st, todo, {k: v[todo] for k, v in points.items()})
        return st.dataset()
    finally:
        runner.close()


def fit(objective, space, store=None, *, maximize=None, minimize=None, method="cmaes",
        budget=50, popsize=None, sigma0=0.3, x0=None, seed=0, client=None, progress=False,
        overwrite=False, on_error="nan"):
    """Search ``space`` for the parameters that maximise (or minimise) a metric.

    Parameters
    ----------
    objective : callable
        As in :func:`evaluate`.
    space : dict
        ``{name: (low, high)}``; the search works on each range mapped to
        [0, 1].
    store : path, optional
        Zarr store; an existing one with the same settings is resumed: the
        search is replayed from its seed and takes the stored results, so
        only unfinished points run and the outcome is identical.
    maximize, minimize : str
        The metric to optimise (exactly one), e.g. ``maximize="fc_r"``.
    method : {"cmaes", "random"}
        CMA-ES (``cma`` package; bounds handled by its boundary transform;
        at least 2 parameters) or uniform random sampling (a baseline).
    budget : int
        Objective evaluations at most (whole generations for CMA-ES).
    popsize : int, optional
        Points per generation, run in parallel (CMA-ES default
        4 + 3 ln(n_parameters); random: 2 x the workers).
    sigma0 : float
        CMA-ES initial step size, as a fraction of each range.
    x0 : dict, optional
        CMA-ES starting point (default the middle of each range).
    seed : int
        Seed of the search (>= 0).
    client, progress, overwrite, on_error
        As in :func:`evaluate`; failed points ("nan") count as the worst.

    Returns
    -------
    xarray.Dataset
        All points evaluated, with ``generation``; attributes ``best_point``,
        ``best_value``, ``best_<name>`` and ``n_evaluations``.
    """
    space = check_space(space, objective)
    if (maximize is None) == (minimize is None):
        raise ParameterError("give exactly one of maximize= or minimize= (a metric name)")
    target = maximize if minimize is None else minimize
    if not isinstance(target, str):
        raise ParameterError(f"the metric to optimise must be a name, got {target!r}")
    sign = -1.0 if minimize is None else 1.0
    if method not in METHODS:
        raise ParameterError(f"method must be one of {METHODS}, got {method!r}")
    budget = integer("budget", budget, low=1)
    seed = integer("seed", seed, low=0)
    sigma0 = number("sigma0", sigma0, low=0, high=1, low_open=True)
    names = list(space)
    lo = np.array([space[k][0] for k in names])
    hi = np.array([space[k][1] for k in names])
    start = _start(x0, space, lo, hi)
    settings = {"method": method, "target": target, "sense": "max" if sign < 0 else "min",
                "budget": budget, "seed": seed, "sigma0": sigma0, "popsize": popsize,
                "space": {k: list(v) for k, v in space.items()}, "x0": start.tolist()}
    runner = _Runner(objective, client, on_error, progress)
    if popsize is None:
        popsize = (4 + int(3 * math.log(len(names))) if method == "cmaes"
                   else 2 * max(1, _n_workers(runner.client)))
    popsize = integer("popsize", popsize, low=2 if method == "cmaes" else 1)
    try:
        st = _Store(store, names, "fit", settings, overwrite)
        search = (_cmaes if method == "cmaes" else _random)(start, sigma0, popsize, seed, budget)
        cursor, gen = 0, 0
        for u in search:
            if cursor >= budget:
                break
            u = u[:budget - cursor]
            pts = {k: lo[j] + (hi[j] - lo[j]) * u[:, j] for j, k in enumerate(names)}
            idx = np.arange(cursor, cursor + len(u))
            if idx[-1] >= st.n:
                st.extend({k: v[max(0, st.n - cursor):] for k, v in pts.items()}, gen)
            stored = st.params()
            if any(not np.array_equal(stored[k][idx], pts[k]) for k in names):
                raise StoreError(f"{st.path!r} was written by another search (its points "
                                 f"differ at generation {gen}); use a new store or "
                                 f"overwrite=True")
            done = st.done()[idx]
            runner.run(st, idx[~done], {k: v[~done] for k, v in pts.items()})
            values = sign * st.metric(target)[idx]
            if target not in st.group.attrs["metrics"]:
                raise UnknownNameError(f"the objective returned no metric {target!r}; it "
                                       f"returned {sorted(st.group.attrs['metrics'])}")
            search.send(np.where(np.isfinite(values), values, np.inf))
            cursor, gen = cursor + len(u), gen + 1
        ds = st.dataset()
    finally:
        runner.close()
    return _with_best(ds, target, sign)


def _start(x0, space, lo, hi):
    if x0 is None:
        return np.full(len(space), 0.5)
    if not isinstance(x0, dict) or set(x0) != set(space):
        raise ParameterError(f"x0 must give a value for each of {list(space)}, got {x0!r}")
    u = np.array([(number(f"x0[{k!r}]", x0[k], low=lo[j], high=hi[j]) - lo[j]) / (hi[j] - lo[j])
                  for j, k in enumerate(space)])
    return u


def _n_workers(client):
    return 1 if client is None else len(client.scheduler_info(n_workers=-1)["workers"])


class _Search:
    """A generator-like ask/tell loop: iterate to get a generation's points
    (in [0, 1]), ``send`` their values (lower is better)."""

    def __init__(self, gen):
        self._gen = gen
        self._next = next(gen, None)
        self._pending = None

    def __iter__(self):
        while self._next is not None:
            yield self._next
            self._next = self._pending

    def send(self, values):
        try:
            self._pending = self._gen.send(values)
        except StopIteration:
            self._pending = None


def _cmaes(start, sigma0, popsize, seed, budget):
    if len(start) < 2:
        raise ParameterError("method='cmaes' needs at least 2 parameters; search one "
                             "parameter with grid() and evaluate(), or method='random'")
    try:
        import cma
    except ImportError:
        raise ImportError("method='cmaes' needs the cma package: pip install cma") from None

    # cma draws from numpy's global generator (and seeds it): the search
    # keeps its own copy of that state so that nothing else draws from it
    # between generations (which would break the replay of a resumed fit)
    # and the caller's global state is left as it was.
    own = {}

    def private(f):
        outer = np.random.get_state()
        if own:
            np.random.set_state(own["state"])
        try:
            return f()
        finally:
            own["state"] = np.random.get_state()
            np.random.set_state(outer)

    def gen():
        es = private(lambda: cma.CMAEvolutionStrategy(
            list(start), sigma0, {"bounds": [0.0, 1.0], "popsize": popsize,
                                  "seed": seed + 1, "verbose": -9, "maxfevals": budget,
                                  "tolfun": 0, "tolx": 1e-6}))
        while not es.stop():
            xs = private(es.ask)
            values = yield np.clip(np.array(xs, float), 0.0, 1.0)
            private(lambda: es.tell(xs, list(values)))
    return _Search(gen())


def _random(start, sigma0, popsize, seed, budget):
    def gen():
        rng = np.random.default_rng(seed)
        while True:
            yield rng.random((popsize, len(start)))
    return _Search(gen())


def _with_best(ds, target, sign):
    if target in ds:
        values = ds[target].values
        finite = np.isfinite(values)
        if finite.any():
            best = int(np.flatnonzero(finite)[np.argmin(sign * values[finite])])
            ds.attrs.update(best_point=best, best_value=float(ds[target].values[best]))
            for k in ds.attrs["parameters"]:
                ds.attrs["best_" + k] = float(ds[k].values[best])
    ds.attrs["n_evaluations"] = int(ds["done"].sum())
    return ds


def best(ds):
    """The best point of a :func:`fit` result as ``{name: value}``."""
    if "best_point" not in ds.attrs:
        raise ParameterError("this result has no best point (no finite value of the target)")
    return {k: ds.attrs["best_" + k] for k in ds.attrs["parameters"]}


__all__ = ["grid", "random_points", "evaluate", "fit", "open_results", "best", "check_space"]
