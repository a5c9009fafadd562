"""Results: the Zarr v3 results store and its xarray view.

Store layout (arrays carry zarr v3 ``dimension_names``, so xarray reads them
lazily with dask)::

    spike_step   (spike,)             int64   step in which the spike was emitted
    spike_neuron (spike,)             int32   global neuron id
    time         (time,)              float64 ms, start of each rate bin
    rate         (time, population)   float64 Hz
    rate_region  (time, region)       float64 Hz
    time_vm      (time_vm,)           float64 ms, sample times of V_m
    V_m          (time_vm, neuron)    float64 mV
    neuron       (neuron,)            int64   ids whose V_m is recorded
    attrs: schema, schema_version, dt, seed, populations, regions, ...

Spike times follow NEST: a spike emitted in step t is stamped (t + 1) dt.
"""
import json
import math
import os
import shutil

import numpy as np
import xarray as xr
import zarr

from ._version import __version__
from .errors import StoreError, StoreNotFoundError

SCHEMA = "brainsim-results"
SCHEMA_VERSION = 1
#: the arrays a run appends to, along their first dimension (spike, time, time_vm)
APPENDED = ("spike_step", "spike_neuron", "time", "rate", "rate_region", "time_vm", "V_m")

_UNITS = {
    "spike_time": ("ms", "spike time"),
    "spike_neuron": ("1", "global id of the spiking neuron"),
    "time": ("ms", "start of the rate bin"),
    "rate": ("Hz", "population firing rate (spikes per neuron per second)"),
    "rate_region": ("Hz", "region firing rate (spikes per neuron per second)"),
    "time_vm": ("ms", "membrane potential sample time"),
    "V_m": ("mV", "membrane potential"),
    "neuron": ("1", "global neuron id"),
}


def _annotate(ds):
    for name, (units, long_name) in _UNITS.items():
        if name in ds.variables:
            ds[name].attrs.update(units=units, long_name=long_name)
    return ds


def make_dataset(meta, spike_step, spike_neuron, t_bins, rate, rate_region, t_vm, vm, vm_ids):
    """Dataset of one interval (the layout open_results returns)."""
    dt = meta["dt"]
    ds = xr.Dataset(
        {
            "spike_time": ("spike", (np.asarray(spike_step) + 1) * dt),
            "spike_neuron": ("spike", np.asarray(spike_neuron)),
            "rate": (("time", "population"), rate),
            "rate_region": (("time", "region"), rate_region),
            "V_m": (("time_vm", "neuron"), vm),
        },
        coords={"time": t_bins, "population": meta["populations"], "region": meta["regions"],
                "time_vm": t_vm, "neuron": np.asarray(vm_ids, np.int64)},
        attrs=dict(meta),
    )
    return _annotate(ds)


def plain_json(value, where="attrs"):
    """``value`` as plain JSON types (dict with str keys, list, str, int,
    float, bool, None); numpy scalars and arrays are converted, anything else
    (objects that would need pickling) raises a StoreError naming ``where``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            raise StoreError(f"{where} must be finite to be stored as JSON, got {value!r}")
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise StoreError(f"{where} keys must be str to be stored as JSON, got {bad[0]!r}")
        return {k: plain_json(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise StoreError(f"{where} must be JSON data (str, number, bool, None, list, dict), "
                     f"got {type(value).__name__} {value!r}")


def check_path(path, schema, overwrite, what):
    """Raise unless a new store of ``schema`` may be written at ``path``: a
    free path, or with ``overwrite`` an empty folder or a store of the same
    schema (never an unrelated folder or file). Returns True if it exists."""
    path = os.fspath(path)
    if not os.path.lexists(path):
        return False
    if not overwrite:
        raise StoreError(f"{what} {path!r} exists; pass overwrite=True or another path")
    if os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path):
        return False
    found = _read_schema(path)
    if found != schema:
        raise StoreError(
            f"refusing to overwrite {path!r}: it is not a {schema} store (schema {found!r}); "
            "remove it yourself or choose another path")
    return True


def prepare_path(path, schema, overwrite, what):
    """``check_path``, then remove a store that is to be replaced."""
    if check_path(path, schema, overwrite, what):
        shutil.rmtree(path)
    return os.fspath(path)


def _read_schema(path):
    """The ``schema`` attribute of the Zarr v3 group at ``path``, or None."""
    try:
        with open(os.path.join(path, "zarr.json"), encoding="utf-8") as fh:
            return json.load(fh).get("attributes", {}).get("schema")
    except (OSError, ValueError, AttributeError):
        return None


def store_schema(path):
    """The brainsim schema name of the store at ``path`` ("brainsim-network"
    or "brainsim-results"); StoreNotFoundError / StoreError otherwise."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise StoreNotFoundError(f"store not found: {path!r}")
    schema = _read_schema(path)
    if schema is None:
        raise StoreError(f"{path!r} is not a brainsim Zarr v3 store (no schema attribute)")
    return schema


class ResultsWriter:
    """Appends each run's records to a Zarr v3 group (a path or in memory)."""

    def __init__(self, store, meta, n_pop, n_reg, vm_ids, overwrite=False):
        if store is None:
            store = zarr.storage.MemoryStore()
        elif isinstance(store, (str, os.PathLike)):
            store = prepare_path(store, SCHEMA, overwrite, "results store")
        self.group = zarr.open_group(store, mode="w", zarr_format=3)
        self.group.attrs.update(plain_json({"schema": SCHEMA, "schema_version": SCHEMA_VERSION,
                                            **meta}, "results attrs"))
        g = self.group
        self._arrays = {
            "spike_step": g.create_array("spike_step", shape=(0,), dtype="int64",
                                         chunks=(1 << 20,), dimension_names=["spike"]),
            "spike_neuron": g.create_array("spike_neuron", shape=(0,), dtype="int32",
                                           chunks=(1 << 20,), dimension_names=["spike"]),
            "time": g.create_array("time", shape=(0,), dtype="float64", chunks=(1 << 16,),
                                   dimension_names=["time"]),
            "rate": g.create_array("rate", shape=(0, n_pop), dtype="float64",
                                   chunks=(4096, n_pop), dimension_names=["time", "population"]),
            "rate_region": g.create_array("rate_region", shape=(0, n_reg), dtype="float64",
                                          chunks=(4096, n_reg),
                                          dimension_names=["time", "region"]),
            "time_vm": g.create_array("time_vm", shape=(0,), dtype="float64", chunks=(1 << 16,),
                                      dimension_names=["time_vm"]),
            "V_m": g.create_array("V_m", shape=(0, len(vm_ids)), dtype="float64",
                                  chunks=(4096, max(len(vm_ids), 1)),
                                  dimension_names=["time_vm", "neuron"]),
        }
        g.create_array("neuron", data=np.asarray(vm_ids, np.int64), dimension_names=["neuron"])

    @classmethod
    def reopen(cls, path):
        """A writer appending to the existing results store at ``path``."""
        self = cls.__new__(cls)
        self.group = zarr.open_group(os.fspath(path), mode="r+")
        self._arrays = {name: self.group[name] for name in APPENDED}
        return self

    def append(self, **records):
        """Append arrays by name (same names as the store's arrays)."""
        for name, data in records.items():
            if len(data):
                self._arrays[name].append(np.asarray(data))

    def lengths(self):
        """Entries of every appended array (along its first dimension)."""
        return {name: int(arr.shape[0]) for name, arr in self._arrays.items()}

    def truncate(self, lengths=None):
        """Cut the appended arrays back to ``lengths`` (None: empty)."""
        for name, arr in self._arrays.items():
            n = 0 if lengths is None else int(lengths[name])
            if arr.shape[0] != n:
                arr.resize((n, *arr.shape[1:]))

    def update_attrs(self, **attrs):
        """Add JSON attributes (provenance) to the store."""
        self.group.attrs.update(plain_json(attrs, "results attrs"))


def open_results(path):
    """Open a results store as an ``xarray.Dataset`` (lazy, dask-backed).

    ``path``: the store's path (or an in-memory zarr store). Variables:
    spike_time (ms), spike_neuron along ``spike``; rate (Hz) on (time,
    population); rate_region (Hz) on (time, region); V_m (mV) on (time_vm,
    neuron). Attributes carry the provenance (seed, dt, backend, brainsim
    version).
    """
    if isinstance(path, (str, os.PathLike)):
        path = os.fspath(path)
        if not os.path.exists(path):
            raise StoreNotFoundError(f"results store not found: {path!r}")
    try:
        group = zarr.open_group(path, mode="r")
    except Exception as err:  # not a zarr group
        raise StoreError(f"{path!r} is not a Zarr results store: {err}") from err
    attrs = dict(group.attrs)
    check_schema(attrs, SCHEMA, SCHEMA_VERSION, path)
    try:
        ds = xr.open_zarr(path, consolidated=False)
        ds = ds.assign_coords(population=attrs["populations"], region=attrs["regions"])
        ds["spike_time"] = (ds["spike_step"] + 1) * attrs["dt"]
        ds = ds.drop_vars("spike_step")[["spike_time", "spike_neuron", "rate", "rate_region",
                                         "V_m"]]
    except (KeyError, ValueError) as err:
        raise StoreError(f"{path!r} is a malformed {SCHEMA} store: {err}") from err
    ds.attrs = {k: v for k, v in attrs.items() if k not in ("schema",)}
    return _annotate(ds)


def results_info(path):
    """Summary of a results store (dict of plain values): time span (ms),
    spike count, populations with sizes, provenance attributes."""
    path = os.fspath(path)
    ds = open_results(path)
    attrs = dict(ds.attrs)
    n_bins = ds.sizes.get("time", 0)
    return {
        "kind": "results", "path": path, "schema_version": attrs.get("schema_version"),
        "t_start": 0.0, "t_stop": float(attrs.get("t_stop", 0.0)),
        "n_spikes": int(ds.sizes.get("spike", 0)), "n_rate_bins": int(n_bins),
        "populations": list(zip(attrs.get("populations", []),
                                attrs.get("population_sizes", []))),
        "regions": list(attrs.get("regions", [])),
        "n_vm_neurons": int(ds.sizes.get("neuron", 0)),
        "provenance": {k: v for k, v in attrs.items()
                       if k not in ("populations", "population_sizes", "regions",
                                    "schema_version")},
    }


def check_schema(attrs, schema, version, path):
    """Raise a StoreError unless the attrs name ``schema`` at ``version``."""
    if attrs.get("schema") != schema:
        raise StoreError(f"{path!r} is not a {schema} store (schema {attrs.get('schema')!r})")
    if attrs.get("schema_version") != version:
        raise StoreError(
            f"{path!r} has {schema} schema version {attrs.get('schema_version')!r}; this "
            f"brainsim ({__version__}) reads version {version}")
