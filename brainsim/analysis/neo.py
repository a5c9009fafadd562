"""Export of spike trains to Neo (https://neuralensemble.org/neo/), the data
model of Elephant and other electrophysiology tools. Neo is optional:
``pip install brainsim[neo]``.
"""
import numpy as np

from ..errors import BrainsimError
from . import _common


class MissingDependencyError(BrainsimError, ImportError):
    """An optional dependency is not installed (the message gives the pip line)."""


def _import_neo():
    try:
        import neo
        import quantities
    except ImportError as err:
        raise MissingDependencyError(
            f"to_neo needs the optional package neo ({err}); install it with "
            "`pip install brainsim[neo]`") from err
    return neo, quantities


def to_neo(ds, neurons=None, t_window=None, network=None):
    """Spike trains of a results Dataset as ``neo.SpikeTrain`` objects.

    Parameters
    ----------
    ds : xarray.Dataset
        Simulation results.
    neurons : str, list of str or array of int, optional
        Population name(s) or global neuron ids; default all neurons
        (one train per neuron, silent ones included).
    t_window : (float, float), ms, optional
        Default (t_start, t_stop) of ``ds``; the trains hold the spike
        stamps in (t0, t1] (NEST stamps: end of the emitting step) and have
        ``t_start = t0``, ``t_stop = t1``.
    network : Network, optional
        Adds each train's region when ``ds`` lacks the population -> region map.

    Returns
    -------
    list of neo.SpikeTrain
        Times in ms, in neuron id order; annotations ``neuron`` (global id),
        ``population`` and, where known, ``region``.

    Raises
    ------
    MissingDependencyError
        (an ImportError and a BrainsimError) if neo is not installed.
    """
    neo, pq = _import_neo()
    t0, t1 = _common.window(ds, t_window)
    times, ids = _common.spikes(ds)
    chosen = _common.select_neurons(ds, neurons, network)
    keep = _common.in_window(times, t0, t1)
    per_neuron = _common.trains(times[keep], ids[keep], chosen)
    coords = _common.neuron_coords(ds, chosen, network)
    labels = {k: v[1] for k, v in coords.items() if k in ("population", "region")}
    out = []
    for k, (gid, train) in enumerate(zip(chosen, per_neuron)):
        st = neo.SpikeTrain(np.clip(train, t0, t1),  # edge stamps within rounding
                            units=pq.ms, t_start=t0 * pq.ms, t_stop=t1 * pq.ms)
        st.annotate(neuron=int(gid), **{name: str(v[k]) for name, v in labels.items()})
        out.append(st)
    return out
