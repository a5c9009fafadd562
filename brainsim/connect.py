"""Connection rules and per-synapse value draws (NEST's semantics).

Each rule returns local (source, target) index arrays; the Network shifts
them to global ids. All draws come from the ``numpy.random.Generator`` the
Network passes in, so connectivity depends only on the network seed and the
order of ``connect`` calls, never on partitioning.
"""
import math

import numpy as np

from .errors import BuildError, ParameterError, UnknownNameError
from .validation import integer, number, numeric_array

RULES = ("fixed_indegree", "fixed_total_number", "pairwise_bernoulli", "one_to_one", "all_to_all")


def _shift_past_self(src, tgt):
    """Map draws from range(n_pre - 1) onto range(n_pre) minus the target."""
    return src + (src >= tgt)


def _count(name, value):
    return integer(name, value, low=0)


def fixed_indegree(rng, n_pre, n_post, same, autapses, multapses, indegree):
    k = _count("indegree", indegree)
    n_avail = n_pre - (1 if same and not autapses else 0)
    if not multapses and k > n_avail:
        raise ParameterError(
            f"indegree must be <= {n_avail} (available sources) without multapses, got {k}")
    if k > 0 and n_avail <= 0:
        raise ParameterError(f"indegree {k} needs sources, but none are allowed")
    tgt = np.repeat(np.arange(n_post, dtype=np.int64), k)
    src = rng.integers(0, n_avail, size=(n_post, k))
    if not multapses:
        src = _distinct_rows(rng, src, n_avail)
    src = src.ravel()
    if same and not autapses:
        src = _shift_past_self(src, tgt)
    return src, tgt


def _distinct_rows(rng, src, n_avail):
    """Redraw duplicates inside each row until every row holds distinct values."""
    if src.shape[1] > n_avail // 4:  # dense rows: exact permutation sampling per row
        return np.stack([rng.choice(n_avail, size=src.shape[1], replace=False) for _ in src])
    while True:
        src.sort(axis=1)
        dup = np.zeros(src.shape, bool)
        dup[:, 1:] = src[:, 1:] == src[:, :-1]
        n_dup = int(dup.sum())
        if n_dup == 0:
            return src
        src[dup] = rng.integers(0, n_avail, size=n_dup)


def fixed_total_number(rng, n_pre, n_post, same, autapses, multapses, n):
    total = _count("n", n)
    n_avail = n_pre - (1 if same and not autapses else 0)
    if not multapses and total > n_avail * n_post:
        raise ParameterError(
            f"n must be <= {n_avail * n_post} (possible pairs) without multapses, got {total}")
    if total > 0 and (n_avail <= 0 or n_post <= 0):
        raise ParameterError(
            f"n {total} needs sources and targets, but {max(n_avail, 0)} sources (pre "
            f"{n_pre} neurons{', no autapses' if same and not autapses else ''}) and "
            f"{n_post} targets are available")
    tgt = rng.integers(0, n_post, size=total)
    src = rng.integers(0, n_avail, size=total)
    if not multapses:
        key = np.unique(tgt * n_avail + src)
        while key.size < total:
            extra = rng.integers(0, n_post, size=total - key.size) * n_avail + rng.integers(
                0, n_avail, size=total - key.size)
            key = np.unique(np.concatenate([key, extra]))
        tgt, src = np.divmod(key, n_avail)
    if same and not autapses:
        src = _shift_past_self(src, tgt)
    return src, tgt


def pairwise_bernoulli(rng, n_pre, n_post, same, autapses, multapses, p):
    p = number("p", p, low=0.0, high=1.0)
    srcs, tgts = [], []
    step = max(1, int(2**24 // max(n_pre, 1)))
    for lo in range(0, n_post, step):
        hi = min(n_post, lo + step)
        mask = rng.random((hi - lo, n_pre)) < p
        if same and not autapses:
            idx = np.arange(lo, hi)
            mask[idx - lo, idx] = False
        t, s = np.nonzero(mask)
        srcs.append(s)
        tgts.append(t + lo)
    return np.concatenate(srcs), np.concatenate(tgts)


def one_to_one(rng, n_pre, n_post, same, autapses, multapses):
    if n_pre != n_post:
        raise ParameterError(
            f"one_to_one needs equal population sizes, got pre {n_pre} and post {n_post}")
    if same and not autapses:
        raise ParameterError("one_to_one of a population onto itself needs allow_autapses=True")
    ids = np.arange(n_pre, dtype=np.int64)
    return ids, ids.copy()


def all_to_all(rng, n_pre, n_post, same, autapses, multapses):
    tgt, src = np.divmod(np.arange(n_pre * n_post, dtype=np.int64), n_pre)
    if same and not autapses:
        keep = src != tgt
        src, tgt = src[keep], tgt[keep]
    return src, tgt


_RULE_FUNCS = {f.__name__: f for f in (fixed_indegree, fixed_total_number, pairwise_bernoulli,
                                       one_to_one, all_to_all)}
_RULE_ARGS = {"fixed_indegree": "indegree", "fixed_total_number": "n", "pairwise_bernoulli": "p"}


def make_pairs(rng, rule, n_pre, n_post, same, autapses, multapses, rule_arg):
    """Dispatch to a rule; ``rule_arg`` is the rule's single parameter or None."""
    if rule not in _RULE_FUNCS:
        raise UnknownNameError(f"rule must be one of {list(RULES)}, got {rule!r}")
    needed = _RULE_ARGS.get(rule)
    if needed is None:
        src, tgt = _RULE_FUNCS[rule](rng, n_pre, n_post, same, autapses, multapses)
        _check_pairs(rule, src, tgt, n_pre, n_post, same and not autapses)
        return src, tgt
    if rule_arg is None:
        raise ParameterError(f"rule {rule!r} needs the argument {needed}=...")
    src, tgt = _RULE_FUNCS[rule](rng, n_pre, n_post, same, autapses, multapses, rule_arg)
    _check_pairs(rule, src, tgt, n_pre, n_post, same and not autapses)
    return src, tgt


def _check_pairs(rule, src, tgt, n_pre, n_post, no_autapses):
    """Every pair a rule returns must name existing neurons (and no autapse
    where they are excluded) before it reaches the CSR build's kernels,
    which index arrays with these ids unchecked: a rule's bug becomes an
    error here, never an out-of-bounds write."""
    if src.shape != tgt.shape or src.ndim != 1:
        raise BuildError(f"connection rule {rule!r} returned sources of shape {src.shape} "
                         f"and targets of shape {tgt.shape} (a bug: please report it)")
    if src.size == 0:
        return
    bad = ((src.min() < 0 or src.max() >= n_pre) and "source") or (
        (tgt.min() < 0 or tgt.max() >= n_post) and "target")
    if bad:
        raise BuildError(f"connection rule {rule!r} drew a {bad} id outside the population "
                         f"(pre {n_pre}, post {n_post} neurons; a bug: please report it)")
    if no_autapses and np.any(src == tgt):
        raise BuildError(f"connection rule {rule!r} drew an autapse although "
                         f"allow_autapses=False (a bug: please report it)")


def truncated_normal(rng, mean, sd, size, low, high, name):
    """Normal draws redrawn until inside [low, high] (NEST's ``redraw``)."""
    if sd < 0 or not np.isfinite(sd):
        raise ParameterError(f"{name} sd must be finite and >= 0, got {sd!r}")
    if not low <= mean <= high:
        raise ParameterError(f"{name} mean {mean!r} must lie within [{low}, {high}]")
    out = rng.normal(mean, sd, size=size)
    bad = (out < low) | (out > high)
    while bad.any():
        out[bad] = rng.normal(mean, sd, size=int(bad.sum()))
        bad = (out < low) | (out > high)
    return out


DISTRIBUTIONS = ("normal", "lognormal")
BOUNDS = ("redraw", "clip")


def _lognormal(rng, mean, sd, size):
    """Lognormal draws with the given mean and sd of the values themselves
    (not of their logarithm): sigma^2 = ln(1 + sd^2 / mean^2),
    mu = ln(mean) - sigma^2 / 2."""
    sigma2 = math.log1p((sd / mean) ** 2)
    return rng.lognormal(math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2), size=size)


def draw_values(rng, spec, size, low, high, name):
    """Values for ``size`` synapses from a constant, an array of that size or
    a distribution ``{"distribution": "normal" or "lognormal", "mean": m,
    "sd": s, "bounds": "redraw" or "clip"}``: ``mean`` and ``sd`` are those
    of the values (a lognormal's mu and sigma follow from them; its mean
    must be > 0, so a negative lognormal weight is drawn as minus a lognormal
    of |mean|); draws outside [low, high] are redrawn (default, NEST's
    ``redraw``) or clipped to the bound (NEST's ``min``/``max``)."""
    if isinstance(spec, dict):
        dist = spec.get("distribution", "normal")
        if dist not in DISTRIBUTIONS:
            raise UnknownNameError(f"{name} distribution must be one of {list(DISTRIBUTIONS)}, "
                                   f"got {dist!r}")
        unknown = set(spec) - {"distribution", "mean", "sd", "bounds"}
        if unknown or "mean" not in spec or "sd" not in spec:
            raise ParameterError(
                f"{name} must be a number or {{'distribution': {dist!r}, 'mean': m, 'sd': s}} "
                f"(optionally 'bounds': 'redraw' or 'clip'), got {spec!r}")
        bounds = spec.get("bounds", "redraw")
        if not isinstance(bounds, str) or bounds not in BOUNDS:
            raise ParameterError(f"{name} bounds must be one of {list(BOUNDS)}, got {bounds!r}")
        mean = number(f"{name} mean", spec["mean"])
        sd = number(f"{name} sd", spec["sd"], low=0)
        if dist == "normal":
            if bounds == "clip":
                if not low <= mean <= high:
                    raise ParameterError(f"{name} mean {mean!r} must lie within [{low}, {high}]")
                return np.clip(rng.normal(mean, sd, size=size), low, high)
            return truncated_normal(rng, mean, sd, size, low, high, name)
        if mean == 0 or not low <= mean <= high:
            raise ParameterError(f"{name} lognormal mean must be != 0 and lie within "
                                 f"[{low}, {high}], got {mean!r}")
        sign = 1.0 if mean > 0 else -1.0
        out = sign * _lognormal(rng, abs(mean), sd, size)
        if bounds == "clip":
            return np.clip(out, low, high)
        bad = (out < low) | (out > high)
        for _ in range(1000):
            if not bad.any():
                return out
            out[bad] = sign * _lognormal(rng, abs(mean), sd, int(bad.sum()))
            bad = (out < low) | (out > high)
        raise ParameterError(f"{name}: lognormal draws (mean {mean!r}, sd {sd!r}) keep falling "
                             f"outside [{low}, {high}]; use bounds='clip'")
    try:
        arr = numeric_array(name, spec)
    except ParameterError as err:
        if "finite" in str(err):
            raise
        raise ParameterError(
            f"{name} must be a number, an array or {{'distribution': 'normal', 'mean': m, "
            f"'sd': s}}, got {spec!r}") from None
    if arr.ndim == 0:
        return np.full(size, float(arr))
    if arr.shape != (size,):
        raise ParameterError(
            f"{name} array must have shape ({size},) (one per synapse), got {arr.shape}")
    return arr
