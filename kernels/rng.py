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
def hash_key(seed, stream, neuron, step, k):
    """uint64 hash of the key (seed, stream, neuron, step, k); all >= 0 ints."""
    h = mix64(np.uint64(seed) + _GOLDEN)
    h = mix64(h ^ ((np.uint64(stream) << _S32) + np.uint64(k)))
    h = mix64(h ^ np.uint64(neuron))
    return mix64(h ^ np.uint64(step))


@njit(inline="always")
def uniform(seed, stream, neuron, step, k):
    """Uniform float64 in [0, 1) with 53 random bits."""
    return float(hash_key(seed, stream, neuron, step, k) >> _S11) * _TWO_M53


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

    Inversion by sequential search for lam < 12 (one uniform); above, the
    transformed rejection sampler PTRS of Hoermann (1993, Insurance Math.
    Econom. 12:39) with pairs of uniforms k = (1, 2), (3, 4), ...
    """
    if lam <= 0.0:
        return 0
    return poisson_p0(lam, math.exp(-lam), seed, stream, neuron, step)


@njit(inline="always")
def poisson_p0(lam, p0, seed, stream, neuron, step):
    """``poisson`` with ``p0 = exp(-lam)`` given (computed once on the host
    with the same libm exp, so the draws are identical)."""
    if lam <= 0.0:
        return 0
    if lam < POISSON_INVERSION_MAX:
        u = uniform(seed, stream, neuron, step, 0)
        p = p0
        cdf = p
        x = 0
        while u > cdf and x < 1000:
            x += 1
            p *= lam / x
            cdf += p
        return x
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
