"""Engines step a built Network for a Simulation: ``cpu`` (Numba threads in
this process), ``cuda`` (a GPU) and ``dask`` (partitions held by Dask
workers). A Simulation holds one engine; engines share one flattening of the
network (``flatten.KernelNetwork``) and one recording path
(``brainsim.recording``), and contain no model names.

The interface every engine implements:

- ``name``; ``n_partitions``; ``spike_capacity`` (spikes a RunRecord holds)
- ``sync()``: apply parameter changes of the network (``Network.version``)
- ``advance(t0, n, run) -> steps done``: simulate steps t0 .. t0 + n - 1,
  recording into the RunRecord ``run`` (may stop early when its spike
  buffer is full)
- ``chunk_steps(dt)``: steps per ``advance`` call in a run loop
- ``get_state(name, ids=None)``, ``set_state(name, ids, values)``
- ``close()``

An engine may instead own the run loop with ``run(sim, run, n, bar)``
(the dask engine does: checkpoints and recovery): simulate ``n`` steps from
``sim.step``, advance ``sim.step`` and the progress bar ``bar``, append the
records to ``sim.recorder`` (``Recorder.append``) as they come, and leave
the whole interval in the RunRecord ``run`` (``add_spikes``, ``rate_pop``,
``rate_reg``, ``vm``), from which ``Simulation.run`` returns the Dataset
without appending it again. ``threads_in_process = False`` marks an engine
whose ``threads`` are not this process's Numba threads.
"""
import importlib

from ..errors import UnknownNameError

BACKENDS = ("cpu", "cuda", "dask")
# backend -> (module, class) of its engine; imported on first use so that
# numba-cuda and distributed stay optional
_ENGINES = {"cpu": ("brainsim.backends.cpu", "CpuEngine"),
            "cuda": ("brainsim.backends.cuda", "CudaEngine"),
            "dask": ("brainsim.backends.dask", "DaskEngine")}


def check_backend(name):
    if not isinstance(name, str) or name not in BACKENDS:
        raise UnknownNameError(f"backend must be one of {list(BACKENDS)}, got {name!r}")
    return name


def engine_class(name):
    """The engine class of backend ``name`` (imported lazily)."""
    module, cls = _ENGINES[check_backend(name)]
    return getattr(importlib.import_module(module), cls)
