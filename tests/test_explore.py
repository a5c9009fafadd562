"""brainsim.explore: grids, resumable evaluation on Dask, CMA-ES fits, bad input."""
import os
import signal

import numpy as np
import pytest

from brainsim import explore
from brainsim.errors import ParameterError, StoreError, UnknownNameError


class Bowl:
    """A quadratic bowl with its minimum at (0.3, -0.2); logs every call to a
    file (one line per evaluation, from whatever process ran it) and, while
    ``trap`` exists, kills its own process (or raises) at ``x == kill_x``."""

    parameters = ("x", "y")

    def __init__(self, log, trap=None, kill_x=None, how="kill"):
        self.log, self.trap, self.kill_x, self.how = log, trap, kill_x, how

    def __call__(self, p):
        if self.trap and os.path.exists(self.trap) and p["x"] == self.kill_x:
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError(f"trap at x={p['x']}")
        with open(self.log, "a") as f:
            f.write(f"{p['x']!r} {p['y']!r}\n")
        x, y = p["x"], p["y"]
        return {"loss": (x - 0.3) ** 2 + (y + 0.2) ** 2, "xy": np.array([x, y, x * y])}


def _calls(log):
    if not os.path.exists(log):
        return []
    with open(log) as f:
        return [tuple(float(v) for v in line.split()) for line in f]


def test_grid_is_the_cartesian_product_first_name_slowest():
    pts = explore.grid({"a": (0.0, 1.0), "b": [5, 7]}, n=3)
    np.testing.assert_array_equal(pts["a"], [0, 0, 0.5, 0.5, 1, 1])
    np.testing.assert_array_equal(pts["b"], [5, 7, 5, 7, 5, 7])
    assert len(explore.grid({"a": (0, 1), "b": (2, 3)}, n={"a": 2, "b": 4})["a"]) == 8


def test_random_points_lie_in_the_bounds_and_follow_the_seed():
    a = explore.random_points({"a": (1.0, 2.0), "b": (-5.0, -4.0)}, 200, seed=3)
    b = explore.random_points({"a": (1.0, 2.0), "b": (-5.0, -4.0)}, 200, seed=3)
    np.testing.assert_array_equal(a["a"], b["a"])
    assert 1 <= a["a"].min() and a["a"].max() <= 2 and -5 <= a["b"].min() and a["b"].max() <= -4
    assert a["a"].std() > 0.2  # spread over the range, not a constant


def test_evaluate_gives_the_objective_at_every_point(tmp_path):
    pts = explore.grid({"x": (0.0, 1.0), "y": [-1.0, 1.0]}, n=3)
    ds = explore.evaluate(Bowl(str(tmp_path / "log")), pts, client="serial")
    assert ds.sizes["point"] == 6 and bool(ds.done.all())
    np.testing.assert_allclose(ds.loss, (pts["x"] - 0.3) ** 2 + (pts["y"] + 0.2) ** 2)
    np.testing.assert_allclose(ds.xy[:, 2], pts["x"] * pts["y"])
    np.testing.assert_array_equal(ds.x, pts["x"])


def test_interrupted_exploration_resumes_without_recomputing(tmp_path):
    pts = explore.grid({"x": (0.0, 1.0), "y": (0.0, 1.0)}, n=4)
    log, trap, store = str(tmp_path / "log"), str(tmp_path / "trap"), str(tmp_path / "s.zarr")
    open(trap, "w").close()
    with pytest.raises(RuntimeError, match="trap"):
        explore.evaluate(Bowl(log, trap, kill_x=pts["x"][9], how="raise"), pts, store,
                         client="serial")
    first = _calls(log)
    assert len(first) == 8  # points 0-7 done, point 8 (x[9] == x[8]) raised
    assert int(explore.open_results(store).done.sum()) == 8
    os.remove(trap)
    ds = explore.evaluate(Bowl(log, trap, kill_x=pts["x"][9]), pts, store, client="serial")
    again = _calls(log)[len(first):]
    assert len(again) == 8 and not set(again) & set(first)
    whole = explore.evaluate(Bowl(str(tmp_path / "log2")), pts, client="serial")
    np.testing.assert_array_equal(ds.loss, whole.loss)
    np.testing.assert_array_equal(ds.xy, whole.xy)


def test_killed_worker_then_resume_on_dask_is_identical(tmp_path):
    dask = pytest.importorskip("dask")
    from distributed import Client, LocalCluster, KilledWorker
    pts = explore.grid({"x": (0.0, 1.0), "y": (0.0, 1.0)}, n=4)
    log, trap, store = str(tmp_path / "log"), str(tmp_path / "trap"), str(tmp_path / "s.zarr")
    open(trap, "w").close()
    kill_x = pts["x"][-1]  # the last 4 points kill their worker
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                         dashboard_address=":0") as cluster, Client(cluster) as client:
        with pytest.raises(KilledWorker):
            explore.evaluate(Bowl(log, trap, kill_x), pts, store, client=client)
    first = _calls(log)
    done = explore.open_results(store).done.values
    assert 0 < done.sum() <= 12 and not done[-4:].any()
    # (a result that a dying worker held before the driver stored it may
    # have been computed twice in this first run; stored points never are)
    os.remove(trap)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        ds = explore.evaluate(Bowl(log, trap, kill_x), pts, store, client=client)
    again = _calls(log)[len(first):]
    missing = {(pts["x"][i], pts["y"][i]) for i in np.flatnonzero(~done)}
    assert len(again) == len(missing) and set(again) == missing
    whole = explore.evaluate(Bowl(str(tmp_path / "log2")), pts, client="serial")
    np.testing.assert_array_equal(ds.loss, whole.loss)
    assert bool(ds.done.all())


def test_cmaes_finds_the_minimum_and_beats_random_sampling(tmp_path):
    space = {"x": (-1.0, 1.0), "y": (-1.0, 1.0)}
    cma_fit = explore.fit(Bowl(str(tmp_path / "a")), space, minimize="loss", budget=60,
                          client="serial")
    rnd = explore.fit(Bowl(str(tmp_path / "b")), space, minimize="loss", budget=60,
                      method="random", client="serial")
    assert cma_fit.attrs["n_evaluations"] == 60 and rnd.attrs["n_evaluations"] == 60
    best = explore.best(cma_fit)
    assert abs(best["x"] - 0.3) < 0.05 and abs(best["y"] + 0.2) < 0.05
    assert cma_fit.attrs["best_value"] < rnd.attrs["best_value"]
    assert cma_fit.attrs["best_value"] == float(cma_fit.loss.min())
    assert cma_fit.generation.max() >= 5  # popsize 6: ten generations
    up = explore.fit(lambda p: {"f": -(p["x"] - 0.3) ** 2 - (p["y"] + 0.2) ** 2}, space,
                     maximize="f", budget=60, client="serial")
    assert up.attrs["best_value"] == float(up.f.max()) and abs(explore.best(up)["x"] - 0.3) < 0.05


def test_interrupted_fit_resumes_with_the_same_points_and_result(tmp_path):
    space = {"x": (-1.0, 1.0), "y": (-1.0, 1.0)}
    log, store = str(tmp_path / "log"), str(tmp_path / "fit.zarr")
    whole = explore.fit(Bowl(str(tmp_path / "w")), space, minimize="loss", budget=36,
                        client="serial")
    trap = str(tmp_path / "trap")
    open(trap, "w").close()
    kill_x = float(whole.x[20])  # a point of the fourth generation
    with pytest.raises(RuntimeError, match="trap"):
        explore.fit(Bowl(log, trap, kill_x, how="raise"), space, store, minimize="loss",
                    budget=36, client="serial", on_error="raise")
    n_first = len(_calls(log))
    assert 18 <= n_first < 36
    os.remove(trap)
    ds = explore.fit(Bowl(log), space, store, minimize="loss", budget=36, client="serial")
    assert len(_calls(log)) == 36  # nothing computed twice
    np.testing.assert_array_equal(ds.x, whole.x)
    np.testing.assert_array_equal(ds.loss, whole.loss)
    assert ds.attrs["best_point"] == whole.attrs["best_point"]
    with pytest.raises(StoreError, match="different search"):
        explore.fit(Bowl(log), space, store, minimize="loss", budget=36, seed=1,
                    client="serial")


def test_failed_points_are_recorded_with_on_error_nan(tmp_path):
    trap = str(tmp_path / "trap")
    open(trap, "w").close()
    pts = {"x": [0.0, 0.5, 1.0], "y": [0.0, 0.0, 0.0]}
    ds = explore.evaluate(Bowl(str(tmp_path / "log"), trap, 0.5, how="raise"), pts,
                          client="serial", on_error="nan")
    assert bool(ds.done.all()) and ds.attrs["n_failed"] == 1 and "trap" in ds.attrs["errors"]
    assert np.isnan(ds.loss[1]) and np.isfinite(ds.loss[[0, 2]]).all()


@pytest.mark.parametrize("space, match", [
    ({}, "space is empty"),
    ({"x": (1.0, 0.0)}, "inverted or empty bounds: low 1 must be < high 0"),
    ({"x": (0.5, 0.5)}, "inverted or empty bounds"),
    ({"x": (0.0, float("nan"))}, "must be finite"),
    ({"x": ("a", "b")}, "must hold numbers"),
    ({"x": 3.0}, "must be \\(low, high\\)"),
    ({"x": (0.0, 1.0, 2.0)}, "a list of values needs method='grid'"),
    ([("x", 0, 1)], "space must be a dict"),
])
def test_bad_search_spaces_are_named(space, match):
    with pytest.raises(ParameterError, match=match):
        explore.fit(Bowl("unused"), space, minimize="loss", client="serial")


def test_unknown_parameters_and_bad_settings_are_named(tmp_path):
    bowl = Bowl(str(tmp_path / "log"))
    with pytest.raises(UnknownNameError, match="unknown parameter 'z'.*allowed: \\['x', 'y'\\]"):
        explore.fit(bowl, {"x": (0, 1), "z": (0, 1)}, minimize="loss", client="serial")
    with pytest.raises(UnknownNameError, match="unknown parameter 'z'"):
        explore.evaluate(bowl, {"z": [1.0]}, client="serial")
    with pytest.raises(ParameterError, match="exactly one of maximize= or minimize="):
        explore.fit(bowl, {"x": (0, 1), "y": (0, 1)}, client="serial")
    with pytest.raises(ParameterError, match="method must be one of"):
        explore.fit(bowl, {"x": (0, 1), "y": (0, 1)}, minimize="loss", method="anneal",
                    client="serial")
    with pytest.raises(ParameterError, match="at least 2 parameters"):
        explore.fit(bowl, {"x": (0, 1)}, minimize="loss", client="serial")
    with pytest.raises(UnknownNameError, match="no metric 'fc_r'.*\\['loss', 'xy'\\]"):
        explore.fit(bowl, {"x": (0, 1), "y": (0, 1)}, maximize="fc_r", budget=6,
                    client="serial")
    with pytest.raises(ParameterError, match="same length"):
        explore.evaluate(bowl, {"x": [0.0, 1.0], "y": [0.0]}, client="serial")
    with pytest.raises(ParameterError, match="client must be"):
        explore.evaluate(bowl, {"x": [0.0], "y": [0.0]}, client="local")
    with pytest.raises(ParameterError, match="dict of metrics"):
        explore.evaluate(lambda p: 1.0, {"x": [0.0]}, client="serial")
    store = str(tmp_path / "s.zarr")
    explore.evaluate(bowl, {"x": [0.0, 1.0], "y": [0.0, 0.0]}, store, client="serial")
    with pytest.raises(StoreError, match="other points"):
        explore.evaluate(bowl, {"x": [0.5, 1.0], "y": [0.0, 0.0]}, store, client="serial")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not a (Zarr|brainsim exploration) store"):
        explore.evaluate(bowl, {"x": [0.0], "y": [0.0]}, str(tmp_path / "folder"),
                         client="serial")
    with pytest.raises(StoreError, match="replaces only an exploration store"):
        explore.evaluate(bowl, {"x": [0.0], "y": [0.0]}, str(tmp_path / "folder"),
                         client="serial", overwrite=True)
    assert (tmp_path / "folder" / "notes.txt").read_text() == "mine"
    with pytest.raises(StoreError, match="no exploration store"):
        explore.open_results(str(tmp_path / "missing.zarr"))
