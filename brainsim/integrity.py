"""Checksums of stored arrays (CRC-32), written with each array and checked
whenever it is read (``docs/reliability.md``).

Used by the network store (``brainsim.network_format``), the results
store's state snapshots and the Dask checkpoints; it imports nothing of
brainsim but its errors, so every store module can use it.
"""
import zlib

import numpy as np

from .errors import StoreError

CHECKSUM = "crc32"
#: entries per chunk along the first dimension of arrays written here
_CHUNK = 1 << 22


def checksum(arr):
    """CRC-32 of an array's bytes (C order), as stored in its ``crc32`` attribute."""
    return zlib.crc32(memoryview(np.ascontiguousarray(arr)).cast("B"))


def put_array(group, name, arr, **kw):
    """Create array ``name`` in ``group`` from ``arr`` with its checksum."""
    arr = np.ascontiguousarray(arr)
    chunks = (max(1, min(_CHUNK, arr.size)),) if arr.ndim == 1 else arr.shape
    group.create_array(name, data=arr, chunks=chunks, attributes={CHECKSUM: checksum(arr)},
                       **kw)


def get_checked(group, name, where, dtype, shape):
    """Array ``name`` of ``group`` read whole, with exactly ``dtype`` and
    ``shape`` and the checksum written by :func:`put_array`; a StoreError
    naming ``where`` and the array otherwise (checkpoints use this)."""
    try:
        arr = group[name]
    except KeyError:
        raise StoreError(f"{where}: array {name!r} is missing") from None
    if str(arr.dtype) != str(np.dtype(dtype)) or tuple(arr.shape) != tuple(shape):
        raise StoreError(f"{where}: array {name!r} has dtype {arr.dtype} and shape "
                         f"{tuple(arr.shape)}, expected {np.dtype(dtype)} and {tuple(shape)}")
    return _read_verified(arr, name, where, True)


def _read_verified(arr, name, where, verify):
    try:
        data = arr[...]
    except Exception as err:  # a garbage chunk: the codec's own error, whichever it is
        raise StoreError(f"{where}: array {name!r} cannot be decoded (a corrupt chunk?): "
                         f"{type(err).__name__}: {err}") from err
    if verify:
        want = arr.attrs.get(CHECKSUM)
        if want is None or checksum(data) != want:
            raise StoreError(
                f"{where}: array {name!r} does not match the checksum written with it "
                f"({'none recorded' if want is None else 'crc32 differs'}): a chunk was "
                f"deleted, replaced or edited after writing")
    return data
