"""Counter-based random numbers keyed by (seed, stream, neuron, step, k).

There is no generator state: every draw is a hash of its key, so a neuron's
noise does not depend on which partition, thread or device computes it. The
hash chains the splitmix64 finalizer (Steele, Lea & Flood 2014, doi
10.1145/2714064.2660195) over the key words; ``k`` numbers the draws one
neuron needs in one step (rejection samplers take several).

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


# ------------------------------------------------ normal deviates (ziggurat)
# Marsaglia & Tsang (2000), "The ziggurat method for generating random
# variables", J. Stat. Softw. 5(8), with 256 layers of equal area under
# f(x) = exp(-x**2 / 2) on x >= 0, and the layer index and the abscissa taken
# from disjoint bits of one hash (Doornik 2005 shows why they must not share
# bits). The arithmetic is +, -, *, / and comparisons only: log and exp, needed
# in the rare tail and wedge branches and for the tables, are computed below
# from those (no libm), so every device that rounds to nearest without FMA
# contraction (the CPU engine, the CUDA engine compiled with -fma=0, its
# simulator) draws bit-identical numbers.
ZIG_R = 3.654152885361009  # right edge of the base layer's rectangle
ZIG_V = 0.004928673233974658  # area of a layer: r f(r) + the tail beyond r
_LN2_HI = 6.93147180369123816490e-01  # ln 2 in two parts (Cody & Waite):
_LN2_LO = 1.90821492927058770002e-10  # e * _LN2_HI is exact for |e| < 2**20
_SQRT_HALF = 0.7071067811865476
_M8 = np.uint64(255)
_S8 = np.uint64(8)
_ONE = np.uint64(1)


@njit
def log_basic(x):
    """Natural log of a float64 x > 0 from +, -, *, / only (within 1e-16
    relative of libm's): x = m 2**e with m in [sqrt(1/2), sqrt(2)), then
    log m = 2 atanh(s), s = (m - 1) / (m + 1), by its series to s**23."""
    e = 0
    while x < 0.5:
        x *= 2.0
        e -= 1
    while x >= 1.0:
        x *= 0.5
        e += 1
    if x < _SQRT_HALF:
        x *= 2.0
        e -= 1
    s = (x - 1.0) / (x + 1.0)
    s2 = s * s
    p = 1.0 / 23.0
    for n in range(21, 0, -2):
        p = p * s2 + 1.0 / n
    return e * _LN2_HI + (e * _LN2_LO + 2.0 * s * p)


@njit
def exp_neg_basic(t):
    """exp(-t) for 0 <= t <= 700 from +, -, *, / only: t = n ln 2 + r with
    |r| <= ln(2) / 2, exp(-r) by its Taylor series to r**18, halved n times."""
    n = int(t * 1.4426950408889634 + 0.5)
    r = (t - n * _LN2_HI) - n * _LN2_LO
    p = 1.0
    for m in range(18, 0, -1):
        p = 1.0 - r * p / m
    for _ in range(n):
        p *= 0.5
    return p


def _ziggurat_tables():
    """x[0..256] (x[0] = v / f(r): the base layer's virtual width, x[1] = r,
    x[i + 1] = f^-1(f(x[i]) + v / x[i]), x[256] = 0) and f[i] = f(x[i]), in
    the same arithmetic as the kernels."""
    x = np.zeros(257)
    f = np.ones(257)
    fr = exp_neg_basic.py_func(0.5 * ZIG_R * ZIG_R)
    x[0], x[1] = ZIG_V / fr, ZIG_R
    f[0] = f[1] = fr
    for i in range(1, 255):
        f[i + 1] = f[i] + ZIG_V / x[i]
        x[i + 1] = math.sqrt(-2.0 * log_basic.py_func(f[i + 1]))
    return x, f


ZIG_X, ZIG_F = _ziggurat_tables()


@njit(inline="always")
def normal(seed, stream, neuron, step, k):
    """Standard normal by the ziggurat: one hash (draw k) gives the layer
    (bits 0-7), the sign (bit 8) and a uniform (bits 11-63); about 98.8 % of
    draws end here, inside a layer's rectangle. The rest continue with draws
    k + 1, k + 2, ... in ``normal_rest``."""
    h = hash_key(seed, stream, neuron, step, k)
    i, z = _zig_point(h)
    if z < ZIG_X[i + _ONE]:
        return -z if (h >> _S8) & _ONE else z
    return normal_rest(seed, stream, neuron, step, k, h)


@njit(inline="always")
def _zig_point(h):
    """Layer (bits 0-7 of a hash) and abscissa (its top 53 bits as a uniform
    times the layer's width) of a ziggurat candidate."""
    i = h & _M8
    return i, float(h >> _S11) * _TWO_M53 * ZIG_X[i]


@njit
def normal_rest(seed, stream, neuron, step, k, h):
    """The ziggurat's rare branches, from the hash ``h`` of draw k whose
    abscissa fell outside its layer's rectangle. Base layer: the tail beyond
    r by Marsaglia's (1964) method, pairs of draws until 2 y > x**2 with
    x = -log(u1) / r, y = -log(u2). Other layers: the wedge test
    f(x[i]) + v (f(x[i+1]) - f(x[i])) < f(z) with one more draw v; a rejected
    point starts over with the next draw. Draws are consumed in order."""
    j = k
    i, z = _zig_point(h)
    while True:
        if i == 0:
            while True:
                x = -log_basic(1.0 - uniform(seed, stream, neuron, step, j + 1)) / ZIG_R
                y = -log_basic(1.0 - uniform(seed, stream, neuron, step, j + 2))
                j += 2
                if y + y > x * x:
                    break
            z = ZIG_R + x
            break
        j += 1
        v = uniform(seed, stream, neuron, step, j)
        if ZIG_F[i] + v * (ZIG_F[i + _ONE] - ZIG_F[i]) < exp_neg_basic(0.5 * z * z):
            break
        j += 1
        h = hash_key(seed, stream, neuron, step, j)
        i, z = _zig_point(h)
        if z < ZIG_X[i + _ONE]:
            break
    return -z if (h >> _S8) & _ONE else z


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
