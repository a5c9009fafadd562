"""Counter-based random numbers keyed by (seed, stream, neuron, step, k).

There is no generator state: every draw is a hash of its key, so a neuron's
noise does not depend on which partition, thread or device computes it. The
hash chains the splitmix64 finalizer (Steele, Lea & Flood 2014, doi
10.1145/2714064.2660195) over the key words; ``k`` numbers the draws one
neuron needs in one step (Box-Muller needs two, rejection samplers more).

Streams used by the engine are the constants ``STREAM_*`` below.
"""
import math

import numpy as np
from numba import njit

STREAM_POISSON = 1  # external Poisson input
STREAM_OU = 2  # Ornstein-Uhlenbeck background current
STREAM_NEURON = 3  # a neuron model's own noise (the uniform ``u`` of its step)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_S32 = np.uint64(32)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2**-53


@njit(inline="always")
def mix64(z):
    """splitmix64 finalizer of a uint64 (a bijection with good avalanche)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(inline="always")
def stream_key(seed, stream, k):
    """The part of the hash that depends on (seed, stream, k) only; kernels
    compute it once per call instead of once per draw."""
    h = mix64(np.uint64(seed) + _GOLDEN)
    return mix64(h ^ ((np.uint64(stream) << _S32) + np.uint64(k)))


@njit(inline="always")
def hash_key(seed, stream, neuron, step, k):
    """uint64 hash of the key (seed, stream, neuron, step, k); all >= 0 ints."""
    return keyed_hash(stream_key(seed, stream, k), neuron, step)


@njit(inline="always")
def keyed_hash(key, neuron, step):
    """``hash_key`` from a precomputed ``stream_key``."""
    return mix64(neuron_key(key, neuron) ^ np.uint64(step))


@njit(inline="always")
def neuron_key(key, neuron):
    """The part of ``keyed_hash`` that does not depend on the step (kernels
    that draw for the same neurons at many steps keep it per neuron)."""
    return mix64(key ^ np.uint64(neuron))


@njit(inline="always")
def step_uniform(nkey, step):
    """``keyed_uniform`` from a precomputed ``neuron_key``."""
    return float(mix64(nkey ^ np.uint64(step)) >> _S11) * _TWO_M53


@njit(inline="always")
def keyed_uniform(key, neuron, step):
    """``uniform`` from a precomputed ``stream_key``."""
    return float(keyed_hash(key, neuron, step) >> _S11) * _TWO_M53


@njit(inline="always")
def uniform(seed, stream, neuron, step, k):
    """Uniform float64 in [0, 1) with 53 random bits."""
    return keyed_uniform(stream_key(seed, stream, k), neuron, step)


@njit(inline="always")
def normal(seed, stream, neuron, step, k):
    """Standard normal by Box-Muller from draws k and k + 1."""
    u1 = 1.0 - uniform(seed, stream, neuron, step, k)  # in (0, 1]
    u2 = uniform(seed, stream, neuron, step, k + 1)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


POISSON_INVERSION_MAX = 12.0


@njit(inline="always")
def poisson(lam, seed, stream, neuron, step):
    """Poisson count of mean ``lam`` (>= 0).

    Inversion by sequential search for lam < 12 (one uniform, k = 0); above,
    the transformed rejection sampler PTRS of Hoermann (1993, Insurance Math.
    Econom. 12:39) with pairs of uniforms k = (1, 2), (3, 4), ...
    """
    if lam <= 0.0:
        return 0
    if lam < POISSON_INVERSION_MAX:
        u = uniform(seed, stream, neuron, step, 0)
        p = math.exp(-lam)
        return _search_from(u, lam, 0, p, p)
    return _ptrs(lam, seed, stream, neuron, step)


#: Entries of a tabulated inversion: cdf(0) .. cdf(TABLE_LEN - 1), then p(TABLE_LEN - 1).
TABLE_LEN = 16


@njit(inline="always")
def poisson_tabulated(lam, row, key0, seed, stream, neuron, step):
    """``poisson`` with the first TABLE_LEN cdf values of the inversion read
    from ``row`` (made by ``poisson_tables``) and ``key0 = stream_key(seed,
    stream, 0)``: the same draws without the chain of divisions and
    mispredicted branches of the search."""
    if lam <= 0.0:
        return 0
    if lam < POISSON_INVERSION_MAX:
        u = keyed_uniform(key0, neuron, step)
        last = TABLE_LEN - 1
        x = 0
        for j in range(last):  # branch-free: the cdf is monotone, count entries < u
            x += u > row[j]
        if x < last:
            return x
        return _search_from(u, lam, last, row[TABLE_LEN], row[last])
    return _ptrs(lam, seed, stream, neuron, step)


@njit(inline="always")
def _search_from(u, lam, x, p, cdf):
    """Continue the inversion search at count x with P(x) = p, cdf(x) = cdf."""
    while u > cdf and x < 1000:
        x += 1
        p *= lam / x
        cdf += p
    return x


@njit(inline="always")
def _ptrs(lam, seed, stream, neuron, step):
    slam = math.sqrt(lam)
    loglam = math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2.0)
    k = 1
    while True:
        uu = uniform(seed, stream, neuron, step, k) - 0.5
        v = uniform(seed, stream, neuron, step, k + 1)
        k += 2
        us = 0.5 - abs(uu)
        x = math.floor((2.0 * a / us + b) * uu + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return int(x)
        if x < 0.0 or (us < 0.013 and v > us):
            continue
        lhs = math.log(v) + math.log(invalpha) - math.log(a / (us * us) + b)
        if lhs <= -lam + x * loglam - math.lgamma(x + 1.0):
            return int(x)


def poisson_tables(lam):
    """Host side of ``poisson_tabulated``: (table (n_unique, TABLE_LEN + 1),
    index (n,) int32) for the per-neuron means ``lam``. Rows hold the cdf
    computed with the kernel's own float64 recurrence (math.exp, then
    p *= lam / x), so tabulated and computed draws are identical."""
    values, index = np.unique(np.asarray(lam, np.float64), return_inverse=True)
    table = np.zeros((values.size, TABLE_LEN + 1))
    for r, v in enumerate(values):
        if not 0.0 < v < POISSON_INVERSION_MAX:
            continue
        p = math.exp(-float(v))
        cdf = p
        table[r, 0] = cdf
        for x in range(1, TABLE_LEN):
            p *= float(v) / x
            cdf += p
            table[r, x] = cdf
        table[r, TABLE_LEN] = p
    return table, index.astype(np.int32).reshape(np.shape(lam))
