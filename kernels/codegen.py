"""Compiling model descriptions: glue code and cached machine code.

A model's step works on namedtuples; the engines keep state and parameters
in 2-D arrays. ``glue`` generates, per model, three tiny functions that move
one neuron's values between the arrays and the tuples (the only generated
source in brainsim: indexing, no physics). Numba inlines them, so the
compiled loops read and write the arrays directly.

State layout: every model's state variables are rows of one array ``X``
(n_state, N): its membrane potential in row 0 (V_m recording reads row 0 for
every model), its other variables in rows 1, 2, ... in declaration order.
Parameter layout: one table ``Q`` (rows, columns), a row per distinct
parameter set, the model's ``param_fields`` in its first columns.

Caching. Loops specialised for a model are closures over its step; Numba's
own cache keys a closure on a pickle of its cells, which for compiled
functions differs from process to process, so they would never be found
again. ``keyed_njit`` gives such a function a cache keyed on a fingerprint
instead (the models' code and this package's sources), so compiled loops are
reused across processes (Dask workers, notebooks, CI) and recompiled when
any of that code changes.
"""
import functools
import hashlib
import os

from numba import njit
from numba.core.caching import FunctionCache

_HERE = os.path.dirname(os.path.abspath(__file__))


def state_rows(model):
    """X row of each of the model's state variables (declaration order):
    the membrane potential in row 0, the others from row 1 in order."""
    rows, k = [], 1
    for name in model.state_names:
        if name == model.membrane:
            rows.append(0)
        else:
            rows.append(k)
            k += 1
    return tuple(rows)


def glue(model):
    """(load, store, row) for ``model``, inlined Numba functions:
    ``load(X, i)`` -> the state namedtuple of neuron i, ``store(X, i, s)``
    writes a state tuple back, ``row(Q, r)`` -> the parameter namedtuple of
    table row r."""
    return _glue(model)


@functools.lru_cache(maxsize=None)
def _glue(model):
    rows = state_rows(model)
    src = "\n".join([
        "def load(X, i):",
        f"    return State({', '.join(f'X[{r}, i]' for r in rows)},)",
        "def store(X, i, s):",
        *(f"    X[{r}, i] = s[{k}]" for k, r in enumerate(rows)),
        "def row(Q, r):",
        f"    return Params({', '.join(f'Q[r, {k}]' for k in range(model.n_fields))},)",
        "def row_of(q):",
        f"    return Params({', '.join(f'q[{k}]' for k in range(model.n_fields))},)",
    ])
    ns = {"State": model.State, "Params": model.Params}
    exec(compile(src, f"<brainsim glue for {model.name}>", "exec"), ns)  # noqa: S102
    return tuple(njit(inline="always")(ns[name]) for name in ("load", "store", "row", "row_of"))


@functools.lru_cache(maxsize=None)
def sources_hash():
    """Hash of this package's sources (the loops inline functions of other
    files, which Numba's per-file check would not notice)."""
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(_HERE)):
        for name in sorted(files):
            if name.endswith(".py"):
                with open(os.path.join(dirpath, name), "rb") as fh:
                    h.update(name.encode())
                    h.update(fh.read())
    return h.hexdigest()


class _KeyedCache(FunctionCache):
    """Numba's function cache with an index key from a fingerprint instead
    of a pickle of the closure's cells."""

    def __init__(self, py_func, key):
        self._brainsim_key = key
        super().__init__(py_func)

    def _index_key(self, sig, codegen):
        return (sig, codegen.magic_tuple(), ("brainsim", self._brainsim_key))


def keyed_njit(py_func, key, **options):
    """``njit(**options)(py_func)`` cached on disk under ``key`` (plus this
    package's sources hash). Falls back to no disk cache where Numba cannot
    locate one (e.g. a function defined in an interactive session)."""
    digest = hashlib.sha256((key + sources_hash()).encode()).hexdigest()
    # the key in the name: closures of one qualname compiled in different
    # processes otherwise share symbol names (Numba's per-process unique ids),
    # and two such entries loaded into one process clash (their environments)
    py_func.__qualname__ = f"{py_func.__qualname__}_{digest[:16]}"
    disp = njit(**options)(py_func)
    try:
        disp._cache = _KeyedCache(py_func, digest)
    except Exception:  # no cache locator for this source file: compile each time
        pass
    return disp
