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
    attrs: schema, schema_version, dt, seed, populations, regions, ...,
           committed (see below)

Spike times follow NEST: a spike emitted in step t is stamped (t + 1) dt.

Commits. A run's records are appended array by array, then committed: one
write of the root attributes sets ``committed`` = {"lengths": entries of
each appended array, "crc32": CRC-32 of each array's entries up to that
length}. Zarr writes each file atomically and appends never change entries
already written, so whatever is killed when, the last commit describes
entries that are on disk: readers take each array up to its committed
length (never a half-written append, never arrays of conflicting lengths),
and an appender first cuts the arrays back to it. :func:`open_results`
checks, before it returns, every array's dtype and trailing shape against
this layout and (``verify=True``) the CRC-32 of its committed entries: a
deleted chunk (read as fill values by Zarr), a garbage chunk, an edited
dtype or shape is a StoreError. Stores written before commits (no
``committed`` attribute) are read as their arrays' shapes say, with the
dtype and shape checks only.
"""
import json
import math
import os
import shutil
import zlib

import numpy as np
import xarray as xr
import zarr

from ._version import __version__
from .errors import CheckpointError, ParameterError, StoreError, StoreNotFoundError
from .integrity import CHECKSUM, _read_verified, put_array
from .validation import integer

SCHEMA = "brainsim-results"
SCHEMA_VERSION = 1
#: the arrays a run appends to, along their first dimension (spike, time, time_vm)
APPENDED = ("spike_step", "spike_neuron", "time", "rate", "rate_region", "time_vm", "V_m")
#: dtype and dimension names of every array of the layout
LAYOUT = {"spike_step": ("int64", ("spike",)), "spike_neuron": ("int32", ("spike",)),
          "time": ("float64", ("time",)), "rate": ("float64", ("time", "population")),
          "rate_region": ("float64", ("time", "region")),
          "time_vm": ("float64", ("time_vm",)), "V_m": ("float64", ("time_vm", "neuron")),
          "neuron": ("int64", ("neuron",))}

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


def read_root_attrs(path):
    """The attributes of the Zarr v3 group at ``path`` (its zarr.json read
    directly), or None where there is no readable group."""
    try:
        with open(os.path.join(path, "zarr.json"), encoding="utf-8") as fh:
            attrs = json.load(fh).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return None
    return attrs if isinstance(attrs, dict) else None


def _read_schema(path):
    """The ``schema`` attribute of the Zarr v3 group at ``path``, or None."""
    return (read_root_attrs(path) or {}).get("schema")


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
        self.group.update_attributes(plain_json(
            {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, **meta}, "results attrs"))
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
        put_array(g, "neuron", np.asarray(vm_ids, np.int64), dimension_names=["neuron"])
        self._crc = {name: 0 for name in APPENDED}
        self._state = None  # step of the last committed state snapshot
        self.commit()

    @classmethod
    def reopen(cls, path):
        """A writer appending to the existing results store at ``path``,
        cut back to its last commit."""
        self = cls.__new__(cls)
        self.group = zarr.open_group(os.fspath(path), mode="r+")
        self._arrays = {name: self.group[name] for name in APPENDED}
        committed = dict(self.group.attrs).get("committed")
        self._crc = dict(committed["crc32"]) if committed else None
        self._state = committed.get("state") if committed else None
        root = os.path.join(os.fspath(path), "state")
        if os.path.isdir(root):  # snapshots written after the last commit: never committed
            for name in os.listdir(root):
                if name != str(self._state) and name != "zarr.json":
                    shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        if committed:
            self.truncate(committed["lengths"], commit=False)
        else:  # a store written before commits: its checksums from what it holds
            self._crc = {name: _crc_of(arr, arr.shape[0]) for name, arr in self._arrays.items()}
        return self

    def append(self, t_stop=None, state=None, **records):
        """Append arrays by name (same names as the store's arrays), write
        the engine's ``state`` snapshot if given ({"step", "arrays",
        "attrs"}), then commit all of it (and ``t_stop``, ms) with one
        attribute write; the previous snapshot is removed after."""
        for name, data in records.items():
            if len(data):
                arr = self._arrays[name]
                data = np.ascontiguousarray(data, dtype=arr.dtype)
                arr.append(data)
                self._crc[name] = zlib.crc32(data.tobytes(), self._crc[name])
        old = self._state
        if state is not None and self._on_disk():
            step = int(state["step"])
            g = self.group.require_group("state").create_group(str(step), overwrite=True)
            for name, arr in state["arrays"].items():
                put_array(g, name, arr)
            g.update_attributes(plain_json({**state["attrs"], "lengths": self.lengths(),
                                            "crc32": self.checksums()}, "state attrs"))
            self._state = step
        self.commit(t_stop)
        if old is not None and old != self._state:
            self._drop_state(old)

    def commit(self, t_stop=None):
        """Write the commit record (lengths and checksums of the appended
        arrays, the step of the state snapshot, and ``t_stop`` in ms) in
        one attribute write: one atomic rewrite of the group's zarr.json
        (``attrs.update`` would rewrite it once per key, and a process killed
        in between left a commit record with the previous ``t_stop``)."""
        attrs = {"committed": {"lengths": self.lengths(), "crc32": self.checksums(),
                               "state": self._state}}
        if t_stop is not None:
            attrs["t_stop"] = t_stop
        self.group.update_attributes(plain_json(attrs, "results attrs"))

    def _on_disk(self):
        return isinstance(self.group.store, zarr.storage.LocalStore)

    def _drop_state(self, step):
        """Remove the snapshot of ``step`` (superseded by a newer commit)."""
        root = getattr(self.group.store, "root", None)
        if root is not None:
            shutil.rmtree(os.path.join(os.fspath(root), "state", str(step)), ignore_errors=True)

    def checksums(self):
        """CRC-32 of every appended array's entries (as the commit records)."""
        return dict(self._crc)

    def lengths(self):
        """Entries of every appended array (along its first dimension)."""
        return {name: int(arr.shape[0]) for name, arr in self._arrays.items()}

    def truncate(self, lengths=None, commit=True, t_stop=None, crc=None):
        """Cut the appended arrays back to ``lengths`` (None: empty) and
        commit that with ``t_stop`` (unless ``commit=False``). ``crc``: the
        checksums recorded for those lengths (a commit's or a snapshot's);
        without it they are computed from the entries kept."""
        for name, arr in self._arrays.items():
            n = 0 if lengths is None else int(lengths[name])
            if arr.shape[0] != n:
                arr.resize((n, *arr.shape[1:]))
            if crc is not None:
                self._crc[name] = int(crc[name])
            elif commit:  # (reopen keeps the committed checksums of what it cuts back to)
                self._crc[name] = _crc_of(arr, n)
        if commit:
            self.commit(t_stop)

    def update_attrs(self, **attrs):
        """Add JSON attributes (provenance) to the store."""
        self.group.update_attributes(plain_json(attrs, "results attrs"))


def _crc_of(arr, n, block=1 << 20):
    """CRC-32 of the first ``n`` entries of zarr array ``arr`` (read in
    blocks along the first dimension)."""
    crc, rows = 0, max(1, block // max(1, int(np.prod(arr.shape[1:], dtype=np.int64))))
    for lo in range(0, n, rows):
        crc = zlib.crc32(np.ascontiguousarray(arr[lo:min(n, lo + rows)]).tobytes(), crc)
    return crc


def checked_lengths(lengths, stored, where, error=CheckpointError):
    """A record of the results' lengths (a Dask checkpoint's, a state
    snapshot's; ``where`` names it) checked against the results store
    (``stored``: its arrays' lengths now): every appended array named, whole
    numbers within what is stored, spikes, rate bins and V_m samples each of
    one length. A forged record would cut the arrays to inconsistent sizes.
    Raises ``error`` (a checkpoint's or snapshot's by default)."""
    if not isinstance(lengths, dict) or set(lengths) != set(stored):
        raise error(f"{where}: its results lengths name {sorted(lengths or {})}, "
                              f"expected {sorted(stored)}")
    out = {}
    for name, n in lengths.items():
        try:  # the store's length is the most a record can name
            out[name] = integer(f"{where}: results length of {name!r}", n, low=0,
                                high=stored[name], strict=True)
        except ParameterError as err:
            raise error(str(err)) from None
    for group in (("spike_step", "spike_neuron"), ("time", "rate", "rate_region"),
                  ("time_vm", "V_m")):
        if len({out[g] for g in group}) != 1:
            raise error(f"{where}: results lengths of {list(group)} differ: "
                                  f"{[out[g] for g in group]}")
    return out


def open_results_group(path):
    """The Zarr group of the results store at ``path`` (a path or an
    in-memory zarr store; read-only, schema checked)."""
    where = path
    if isinstance(path, (str, os.PathLike)):
        path = where = os.fspath(path)
        if not os.path.exists(path):
            raise StoreNotFoundError(f"results store not found: {path!r}")
    try:
        group = zarr.open_group(path, mode="r")
    except Exception as err:  # not a zarr group
        raise StoreError(f"{where!r} is not a Zarr results store: {err}") from err
    check_schema(dict(group.attrs), SCHEMA, SCHEMA_VERSION, where)
    return group


def open_results(path, verify=True):
    """Open a results store as an ``xarray.Dataset`` (lazy, dask-backed).

    ``path``: the store's path (or an in-memory zarr store). Variables:
    spike_time (ms), spike_neuron along ``spike``; rate (Hz) on (time,
    population); rate_region (Hz) on (time, region); V_m (mV) on (time_vm,
    neuron). Attributes carry the provenance (seed, dt, backend, brainsim
    version). Each array is read up to the store's last commit, after its
    chunk files, dtypes and shapes are checked (module docstring, Commits):
    a store being appended to reads as of its last commit, a damaged one
    raises StoreError. ``verify=False`` skips reading every committed entry
    for its checksum (large stores open faster, unchecked).
    """
    import dask.array as dsa

    where = os.fspath(path) if isinstance(path, (str, os.PathLike)) else path
    group = open_results_group(path)
    attrs = dict(group.attrs)
    committed = attrs.get("committed")
    try:
        arrays, vm_ids = _checked_arrays(group, attrs, committed, where)
        if committed and verify:
            _check_committed(arrays, committed, where)
        lengths = committed["lengths"] if committed else {}
        data = {}
        for name, arr in arrays.items():
            lazy = dsa.from_zarr(arr)
            if name in lengths:
                lazy = lazy[:lengths[name]]
            data[name] = (LAYOUT[name][1], lazy)
        steps = data.pop("spike_step")[1]
        data["spike_time"] = (("spike",), (steps + 1) * attrs["dt"])
        ds = xr.Dataset(data, coords={"population": attrs["populations"],
                                      "region": attrs["regions"],
                                      "neuron": vm_ids,
                                      "time": data.pop("time"),
                                      "time_vm": data.pop("time_vm")})
        ds = ds[["spike_time", "spike_neuron", "rate", "rate_region", "V_m"]]
    except StoreError:
        raise
    except (KeyError, ValueError, TypeError) as err:
        raise StoreError(f"{where!r} is a malformed {SCHEMA} store: {err}") from err
    ds.attrs = {k: v for k, v in attrs.items() if k not in ("schema", "committed")}
    return _annotate(ds)


def _checked_arrays(group, attrs, committed, where):
    """(appended arrays, recorded neuron ids): every array with the layout's
    dtype and dimension names, trailing sizes matching the attrs
    (populations, regions, recorded neurons) and at least its committed
    length; the ids read and checked against their checksum."""
    sizes = {"population": len(attrs["populations"]), "region": len(attrs["regions"])}
    out = {}
    for name, (dtype, dims) in LAYOUT.items():
        try:
            arr = group[name]
        except KeyError:
            raise StoreError(f"{where!r}: array {name!r} is missing") from None
        if str(arr.dtype) != dtype or arr.ndim != len(dims):
            raise StoreError(f"{where!r}: array {name!r} has dtype {arr.dtype} and {arr.ndim} "
                             f"dimensions; the results schema has {dtype}, {len(dims)}")
        out[name] = arr
    ids = _read_verified(out.pop("neuron"), "neuron", repr(where),
                         CHECKSUM in group["neuron"].attrs)
    sizes["neuron"] = ids.shape[0]
    for name, arr in out.items():
        for dim, n in zip(LAYOUT[name][1][1:], arr.shape[1:]):
            if n != sizes[dim]:
                raise StoreError(f"{where!r}: array {name!r} has {n} {dim}s, the store "
                                 f"{sizes[dim]}")
    if committed:
        checked_lengths(committed["lengths"], {name: arr.shape[0] for name, arr in out.items()},
                        f"{where!r} (its commit record)", StoreError)
    return out, ids


def _check_committed(arrays, committed, where):
    """Every appended array's committed entries have their recorded CRC-32."""
    for name, n in committed["lengths"].items():
        try:
            crc = _crc_of(arrays[name], n)
        except Exception as err:  # a garbage chunk: the codec's own error, whichever it is
            raise StoreError(f"{where!r}: array {name!r} cannot be decoded (a corrupt chunk?): "
                             f"{type(err).__name__}: {err}") from err
        if crc != committed["crc32"][name]:
            raise StoreError(f"{where!r}: array {name!r} does not match the checksum of its "
                             f"{n} committed entries (a chunk deleted, replaced or edited)")


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
