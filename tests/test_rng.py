"""Counter-based RNG: exact agreement with the pure-Python reference, and
statistics against closed forms.

Statistical bounds are stated in standard errors (SE) of the estimator under
the exact distribution; 5 SE is a two-sided false-alarm probability of
about 6e-7 per check (the seeds are fixed, so the tests are deterministic).
"""
import math

import numpy as np
import pytest
import scipy.stats
from numba import njit

import reference
from brainsim.kernels import rng

N_STAT = 1_000_000
Z = 5.0  # bound in standard errors


# --------------------------------------------------- compiled wrappers
def _vectorised(draw, dtype):
    """Compiled loop applying the scalar kernel ``draw`` to key arrays."""
    @njit
    def many(seed, stream, neuron, step, k):
        out = np.empty(seed.size, dtype)
        for j in range(seed.size):
            out[j] = draw(seed[j], stream[j], neuron[j], step[j], k[j])
        return out
    return many


_hash_many = _vectorised(rng.hash_key, np.uint64)
_uniform_many = _vectorised(rng.uniform, np.float64)
_normal_many = _vectorised(rng.normal, np.float64)


@njit
def _poisson_many(lam, seed, stream, neuron, step):
    out = np.empty(seed.size, np.int64)
    for j in range(seed.size):
        out[j] = rng.poisson(lam[j], seed[j], stream[j], neuron[j], step[j])
    return out


@njit
def _uniform_block(seed, stream, n, step, k):
    out = np.empty(n)
    for i in range(n):
        out[i] = rng.uniform(seed, stream, i, step, k)
    return out


@njit
def _normal_block(seed, stream, n, step):
    out = np.empty(n)
    for i in range(n):
        out[i] = rng.normal(seed, stream, i, step, 0)
    return out


@njit
def _poisson_block(lam, seed, n):
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = rng.poisson(lam, seed, rng.STREAM_POISSON, i, 7)
    return out


def _random_keys(n, seed=0):
    """Random keys (seed, stream, neuron, step, k) over the whole range the
    engine uses, plus edge values (0 and 2**63 - 1)."""
    g = np.random.default_rng(seed)
    top = np.iinfo(np.int64).max
    keys = [g.integers(0, 2**32, n), g.integers(0, 4, n), g.integers(0, 2**40, n),
            g.integers(0, 2**40, n), g.integers(0, 64, n)]
    keys[0][:4] = [0, 1, top, 2**32]
    keys[2][:4] = [0, top, 1, 2**31]
    keys[3][:4] = [0, 0, top, 2**62]
    keys[1][:4] = [0, 3, 0, 2**31 - 1]
    return [k.astype(np.int64) for k in keys]


def _z(estimate, expected, se):
    return abs(estimate - expected) / se


# ---------------------------------------------------- exact agreement
def test_reference_mix64_is_splitmix64():
    # splitmix64 seeded with 0 (state += golden; output = mix(state)) gives
    # 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f (the
    # published reference sequence of Vigna's splitmix64.c).
    state, out = 0, []
    for _ in range(3):
        state = (state + reference.GOLDEN) & reference.MASK64
        out.append(reference.mix64(state))
    assert out == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


def test_mix64_matches_reference():
    g = np.random.default_rng(1)
    for z in [0, 1, 2**63, 2**64 - 1, *map(int, g.integers(0, 2**63, 200, dtype=np.uint64))]:
        assert int(rng.mix64(np.uint64(z))) == reference.mix64(z)


def test_hash_matches_reference():
    keys = _random_keys(5000)
    fast = _hash_many(*keys)
    for j in range(keys[0].size):
        key = [int(a[j]) for a in keys]
        assert int(fast[j]) == reference.hash_key(*key), key


def test_hash_sensitive_to_every_key_word():
    # a key word the hash ignored would make neighbouring keys collide
    base = [12345, 1, 678, 910, 0]
    h0 = reference.hash_key(*base)
    for pos in range(5):
        key = list(base)
        key[pos] += 1
        assert reference.hash_key(*key) != h0
        assert int(_hash_many(*[np.array([x], np.int64) for x in key])[0]) != h0


def test_uniform_and_normal_match_reference():
    keys = _random_keys(5000, seed=2)
    u = _uniform_many(*keys)
    x = _normal_many(*keys)
    for j in range(keys[0].size):
        key = [int(a[j]) for a in keys]
        assert u[j] == reference.uniform(*key), key
        # the reference's tables and branches use libm; the kernel's own log
        # and exp are within 2 ulp of it, so the draws agree to a few ulp
        assert x[j] == pytest.approx(reference.normal(*key), rel=1e-14, abs=1e-300), key
    # 53 bits: u * 2**53 is an integer in [0, 2**53)
    assert np.all(u >= 0.0) and np.all(u < 1.0)
    assert np.all(np.floor(u * 2.0**53) == u * 2.0**53)


def test_normal_rare_branches_match_reference():
    # keys whose first draw falls outside its layer's rectangle: the tail
    # (layer 0) and wedge draws, with their retries, against the reference
    seed, stream, neuron, step, k = _random_keys(200_000, seed=12)
    h = _hash_many(seed, stream, neuron, step, k)
    layer = (h & np.uint64(255)).astype(np.int64)
    z = (h >> np.uint64(11)).astype(np.float64) * 2.0**-53 * rng.ZIG_X[layer]
    rare = np.flatnonzero(z >= rng.ZIG_X[layer + 1])
    tail = rare[layer[rare] == 0]
    assert rare.size > 1000 and tail.size > 10
    x = _normal_many(seed[rare], stream[rare], neuron[rare], step[rare], k[rare])
    for j, r in enumerate(rare):
        key = (int(seed[r]), int(stream[r]), int(neuron[r]), int(step[r]), int(k[r]))
        assert x[j] == pytest.approx(reference.normal(*key), rel=1e-14), key
    assert np.all(np.abs(x[np.isin(rare, tail)]) > rng.ZIG_R)


def test_ziggurat_tables_against_their_definition():
    # every layer has the same area v; the base layer's rectangle plus the
    # tail beyond r also v (closed form with erfc); the top layer reaches f = 1
    x, f = rng.ZIG_X, rng.ZIG_F
    v = rng.ZIG_V
    tail = math.sqrt(math.pi / 2) * math.erfc(rng.ZIG_R / math.sqrt(2))
    assert rng.ZIG_R * math.exp(-rng.ZIG_R**2 / 2) + tail == pytest.approx(v, rel=1e-14)
    assert x[0] * f[0] == pytest.approx(v, rel=1e-14) and x[1] == rng.ZIG_R
    np.testing.assert_allclose(x[1:256] * (f[2:257] - f[1:256]), v, rtol=1e-12)
    np.testing.assert_allclose(f[1:256], np.exp(-x[1:256] ** 2 / 2), rtol=1e-13)
    assert np.all(np.diff(x[1:]) < 0) and x[256] == 0.0 and f[256] == 1.0
    ref_x, ref_f = reference.ziggurat_tables()
    np.testing.assert_allclose(x, ref_x, rtol=1e-13)
    np.testing.assert_allclose(f, ref_f, rtol=1e-13)


def test_basic_log_and_exp_against_libm():
    # the kernel's log and exp use +, -, *, / only (identical on every
    # device); here within 2 ulp of libm over their whole working range
    g = np.random.default_rng(4)
    xs = np.concatenate([g.uniform(0, 1, 3000), 2.0 ** -g.uniform(0, 60, 3000),
                         g.uniform(0.999, 1, 500), g.uniform(1, 1e6, 500), [1.0, 2.0**-53]])
    for x in xs:
        want = math.log(x)
        assert abs(rng.log_basic(x) - want) <= 2 * math.ulp(want), x
    for t in np.concatenate([g.uniform(0, 50, 3000), [0.0, 1e-12, 700.0]]):
        want = math.exp(-t)
        assert abs(rng.exp_neg_basic(t) - want) <= 2 * math.ulp(want), t


@pytest.mark.parametrize("lam", [0.0, 1e-3, 0.5, 3.0, 11.999, 12.0, 12.0001, 30.0, 500.0, 1e5])
def test_poisson_matches_reference(lam):
    seed, stream, neuron, step, _ = _random_keys(1500, seed=3)
    lams = np.full(seed.size, lam)
    fast = _poisson_many(lams, seed, stream, neuron, step)
    for j in range(seed.size):
        key = (int(seed[j]), int(stream[j]), int(neuron[j]), int(step[j]))
        assert fast[j] == reference.poisson(lam, *key), (lam, key)


def test_poisson_draw_indices():
    # inversion uses uniform k = 0 only; PTRS starts at k = 1 (pairs 1, 2; 3, 4 ...)
    seed, stream, step = 5, 1, 99
    lam = 2.0
    cdf = np.cumsum(scipy.stats.poisson.pmf(np.arange(60), lam))
    for neuron in range(40):
        u0 = reference.uniform(seed, stream, neuron, step, 0)
        want = int(np.searchsorted(cdf, u0))  # smallest x with u0 <= cdf[x]
        assert rng.poisson(lam, seed, stream, neuron, step) == want
    lam, checked = 100.0, 0
    b = 0.931 + 2.53 * math.sqrt(lam)
    a = -0.059 + 0.02483 * b
    for neuron in range(40):
        u1, u2 = (reference.uniform(seed, stream, neuron, step, k) for k in (1, 2))
        us = 0.5 - abs(u1 - 0.5)
        if us >= 0.07 and u2 <= 0.9277 - 3.6224 / (b - 2.0):  # accepted at the first pair
            x = math.floor((2 * a / us + b) * (u1 - 0.5) + lam + 0.43)
            assert rng.poisson(lam, seed, stream, neuron, step) == x
            checked += 1
    assert checked > 20


# --------------------------------------------------------- statistics
def test_uniform_moments():
    u = _uniform_block(11, 5, N_STAT, 3, 0)
    n = u.size
    assert _z(u.mean(), 0.5, math.sqrt(1 / 12 / n)) < Z
    # Var(sample variance) = (mu4 - sigma^4)/n, mu4 = 1/80 for U(0, 1)
    assert _z(u.var(), 1 / 12, math.sqrt((1 / 80 - 1 / 144) / n)) < Z
    counts = np.bincount((u * 100).astype(np.int64), minlength=100)
    assert scipy.stats.chisquare(counts).pvalue > 1e-4


def test_normal_moments():
    x = _normal_block(11, 6, N_STAT, 4)
    n = x.size
    assert _z(x.mean(), 0.0, math.sqrt(1 / n)) < Z
    assert _z(x.var(), 1.0, math.sqrt(2 / n)) < Z
    assert _z(scipy.stats.skew(x), 0.0, math.sqrt(6 / n)) < Z
    assert _z(scipy.stats.kurtosis(x), 0.0, math.sqrt(24 / n)) < Z  # excess kurtosis
    assert scipy.stats.kstest(x[:200_000], "norm").pvalue > 1e-4


def test_normal_density_in_layers_wedges_and_tail():
    # a ziggurat's usual faults (a wrong layer edge, a wedge test, a tail)
    # bend the density locally: chi-square over 200 bins of 0.05 on [-5, 5]
    # with both tails pooled, and the counts beyond r and beyond 4.5
    n = 4 * N_STAT
    x = _normal_block(13, 7, n, 9)
    edges = np.concatenate([[-np.inf], np.linspace(-5.0, 5.0, 201), [np.inf]])
    counts = np.histogram(x, edges)[0]
    want = np.diff(scipy.stats.norm.cdf(edges)) * n
    assert scipy.stats.chisquare(counts, want).pvalue > 1e-4
    for edge in (rng.ZIG_R, 4.5):
        p = 2 * scipy.stats.norm.sf(edge)
        assert _z(np.sum(np.abs(x) > edge), n * p, math.sqrt(n * p * (1 - p))) < Z, edge
    # the sign and the layer come from different bits: |x| has the same
    # half-normal mean on both sides (SD sqrt(1 - 2/pi) over n/2 draws each)
    se = math.sqrt(2 * (1 - 2 / math.pi) / (n / 2))
    assert _z(np.mean(x[x > 0]) + np.mean(x[x < 0]), 0.0, se) < Z


@pytest.mark.parametrize("lam", [0.5, 3.0, 11.9, 12.1, 50.0, 500.0])
def test_poisson_moments(lam):
    x = _poisson_block(lam, 21, N_STAT).astype(float)
    n = x.size
    assert x.min() >= 0
    assert _z(x.mean(), lam, math.sqrt(lam / n)) < Z
    # Var(sample variance) = (mu4 - sigma^4)/n with mu4 = lam (1 + 3 lam)
    assert _z(x.var(), lam, math.sqrt((lam + 2 * lam * lam) / n)) < Z


@pytest.mark.parametrize("lam", [3.0, 50.0])
def test_poisson_chisquare(lam):
    # 3: inversion; 50: PTRS. Bins with expected count >= 20, tails pooled.
    n = 200_000
    x = _poisson_block(lam, 22, n)
    pmf = scipy.stats.poisson.pmf(np.arange(x.max() + 1), lam)
    lo = int(np.argmax(pmf * n >= 20))
    hi = int(len(pmf) - np.argmax(pmf[::-1] * n >= 20))
    edges = np.arange(lo, hi)
    obs = np.array([np.sum(x <= lo)] + [np.sum(x == k) for k in edges[1:]] + [np.sum(x >= hi)])
    exp = np.concatenate([[scipy.stats.poisson.cdf(lo, lam)], pmf[lo + 1:hi],
                          [scipy.stats.poisson.sf(hi - 1, lam)]]) * n
    assert obs.sum() == n and exp.sum() == pytest.approx(n)
    assert scipy.stats.chisquare(obs, exp).pvalue > 1e-4


def test_streams_neurons_steps_uncorrelated():
    # neighbouring keys (next neuron, next step, next k, other stream, other
    # seed) must give uncorrelated uniforms: |r| < 5 / sqrt(n)
    n = 200_000
    base = _uniform_block(3, 1, n + 1, 10, 0)
    others = {"neuron+1": base[1:],
              "step+1": _uniform_block(3, 1, n + 1, 11, 0),
              "k+1": _uniform_block(3, 1, n + 1, 10, 1),
              "stream+1": _uniform_block(3, 2, n + 1, 10, 0),
              "seed+1": _uniform_block(4, 1, n + 1, 10, 0)}
    for name, y in others.items():
        r = np.corrcoef(base[:n], y[:n])[0, 1]
        assert abs(r) < Z / math.sqrt(n), (name, r)


@njit
def _tabulated_vs_computed(lam, table, n, seed):
    """Counts from both Poisson paths for keys (seed, stream 1, i, 0)."""
    a = np.empty(n, np.int64)
    b = np.empty(n, np.int64)
    for i in range(n):
        a[i] = rng.poisson(lam, seed, 1, i, 0)
        b[i] = rng.poisson_tabulated(lam, table, rng.stream_key(seed, 1, 0), seed, 1, i, 0)
    return a, b


@pytest.mark.parametrize("lam", [0.05, 1.28, 7.0, 11.99, 12.0, 40.0])
def test_tabulated_poisson_equals_computed(lam):
    table, index = rng.poisson_tables(np.array([lam, lam]))
    assert table.shape == (1, rng.TABLE_LEN + 1) and np.all(index == 0)
    n = 2_000_000 if lam == 11.99 else 200_000
    a, b = _tabulated_vs_computed(lam, table[0], n, 9)
    np.testing.assert_array_equal(a, b)
    if lam == 11.99:  # the search runs past the table and continues the recurrence
        assert (a >= rng.TABLE_LEN - 1).sum() >= 1
