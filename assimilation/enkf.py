"""Generic ensemble Kalman filter: stochastic (perturbed observations), ETKF and LETKF.

Arrays only (numpy/scipy): an ensemble is an ``(M, n)`` array, one member per row.
One assimilation cycle is ``ensemble = f.forecast(ensemble, model)`` followed by
``ensemble = f.analysis(ensemble, y, H, R)``.

Analyses
--------
``"stochastic"``
    EnKF with perturbed observations (Burgers et al. 1998; Evensen 2003). The gain
    ``K = P_xy (P_yy + R)^-1`` uses the ensemble's sample covariances; each member is
    updated with its own observation ``y + eps_i``, ``eps_i ~ N(0, R)`` drawn from the
    filter's :class:`numpy.random.Generator` (re-centred to zero ensemble mean, as in
    DAPPER's ``PertObs``). Localisation: Schur product of ``P_xy`` with a
    Gaspari-Cohn taper of the state-observation distances.
``"etkf"``
    Ensemble transform Kalman filter, the deterministic square root with the symmetric
    transform of Hunt, Kostelich & Szunyogh (2007). Its analysis covariance equals
    ``(I - K H) P_f`` of the (inflated) forecast sample covariance exactly.
``"letkf"``
    Local ETKF (Hunt et al. 2007): every state variable gets its own ETKF analysis in
    which the inverse observation variances are multiplied by the Gaspari-Cohn taper of
    its distance to each observation (R-localisation). Requires ``localization`` and a
    diagonal observation error covariance.

Multiplicative inflation multiplies the forecast anomalies by ``inflation`` (the
covariance by ``inflation**2``) before the update, as DAPPER's ``infl``.

Bounded parameters (an augmented state ``[params, state]``) are estimated in the
unbounded variable ``z = logit((x - lo) / (hi - lo))``; see :func:`to_unbounded`,
:func:`to_bounded` and :class:`AugmentedState`.

References
----------
.. [1] G. Burgers, P. J. van Leeuwen, G. Evensen (1998), Analysis scheme in the
   ensemble Kalman filter. Mon. Wea. Rev. 126:1719-1724.
   doi:10.1175/1520-0493(1998)126<1719:ASITEK>2.0.CO;2
.. [2] G. Evensen (2003), The ensemble Kalman filter: theoretical formulation and
   practical implementation. Ocean Dynamics 53:343-367. doi:10.1007/s10236-003-0036-9
.. [3] B. R. Hunt, E. J. Kostelich, I. Szunyogh (2007), Efficient data assimilation for
   spatiotemporal chaos: a local ensemble transform Kalman filter. Physica D
   230:112-126. doi:10.1016/j.physd.2006.11.008
.. [4] G. Gaspari, S. E. Cohn (1999), Construction of correlation functions in two and
   three dimensions. Q. J. R. Meteorol. Soc. 125:723-757. doi:10.1002/qj.49712555417
.. [5] P. Sakov, P. R. Oke (2008), A deterministic formulation of the ensemble Kalman
   filter: an alternative to ensemble square root filters. Tellus A 60:361-371.
   doi:10.1111/j.1600-0870.2007.00299.x
"""
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.special

from brainsim.errors import DivergenceError, ParameterError
from brainsim.validation import number

__all__ = [
    "AugmentedState",
    "EnKF",
    "gaspari_cohn",
    "rmse",
    "spread",
    "to_bounded",
    "to_unbounded",
]

METHODS = ("stochastic", "etkf", "letkf")
_SMALL_EIGH = 16  # ensemble sizes up to which numpy's batched eigh is used
_LETKF_BLOCK_ELEMENTS = 2 ** 22  # bound on (block x M x p) floats held by one LETKF block


# ------------------------------------------------------------------ taper, transforms
def gaspari_cohn(d, c):
    """Gaspari-Cohn 5th-order piecewise rational taper (compactly supported correlation).

    Parameters
    ----------
    d : array_like
        Distances (any unit, >= 0; the absolute value is used).
    c : float
        Half-width, same unit as ``d``: the taper is ``5/24`` at ``d = c`` and ``0`` for
        ``d >= 2 c``. (DAPPER's ``loc_rad`` r corresponds to ``c = 1.82 r``.)

    Returns
    -------
    numpy.ndarray
        Taper values in [0, 1], 1 at ``d = 0``, the shape of ``d``.

    References
    ----------
    Gaspari & Cohn (1999), eq. (4.10). doi:10.1002/qj.49712555417
    """
    c = _positive_scalar(c, "c (Gaspari-Cohn half-width)")
    d = np.asarray(d, dtype=float)
    if np.isnan(d).any():
        raise ParameterError(f"d (distances) must not contain NaN, got {d!r}")
    r = np.abs(d) / c
    out = np.zeros_like(r)
    inner = r <= 1.0
    ri = r[inner]
    out[inner] = (((-0.25 * ri + 0.5) * ri + 0.625) * ri - 5.0 / 3.0) * ri ** 2 + 1.0
    outer = (r > 1.0) & (r < 2.0)
    ro = r[outer]
    out[outer] = ((((ro / 12.0 - 0.5) * ro + 0.625) * ro + 5.0 / 3.0) * ro - 5.0) * ro \
        + 4.0 - 2.0 / (3.0 * ro)
    return out


def _bounds(lo, hi):
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ParameterError(f"bounds lo, hi must be finite, got lo={lo!r}, hi={hi!r}")
    if not np.all(lo < hi):
        raise ParameterError(f"bounds must satisfy lo < hi, got lo={lo!r}, hi={hi!r}")
    return lo, hi


def to_unbounded(x, lo, hi):
    """Map bounded values to the real line: ``logit((x - lo) / (hi - lo))``.

    Parameters
    ----------
    x : array_like
        Values strictly inside ``(lo, hi)`` (parameter units).
    lo, hi : float or array_like
        Bounds, broadcast against ``x``; finite with ``lo < hi``.

    Returns
    -------
    numpy.ndarray
        Unbounded values; :func:`to_bounded` inverts the map.
    """
    lo, hi = _bounds(lo, hi)
    x = np.asarray(x, dtype=float)
    if not np.all((x > lo) & (x < hi)):
        raise ParameterError(
            f"x must lie strictly inside (lo, hi) = ({lo!r}, {hi!r}), got {x!r}")
    return scipy.special.logit((x - lo) / (hi - lo))


def to_bounded(z, lo, hi):
    """Inverse of :func:`to_unbounded`: ``lo + (hi - lo) * logistic(z)``.

    Parameters
    ----------
    z : array_like
        Unbounded values (no NaN).
    lo, hi : float or array_like
        Bounds, broadcast against ``z``; finite with ``lo < hi``.

    Returns
    -------
    numpy.ndarray
        Values in ``[lo, hi]`` (open interval for finite ``z``).
    """
    lo, hi = _bounds(lo, hi)
    z = np.asarray(z, dtype=float)
    if np.isnan(z).any():
        raise ParameterError(f"z must not contain NaN, got {z!r}")
    return lo + (hi - lo) * scipy.special.expit(z)


@dataclass(frozen=True)
class AugmentedState:
    """Augmented ensemble ``[z(params), state]`` for joint parameter-state estimation.

    The first ``n_params`` columns of an augmented ensemble hold the parameters in the
    unbounded variable ``z = to_unbounded(p, lo, hi)``; the filter updates them like any
    state variable through their ensemble correlation with the observed state, and
    :meth:`split` maps them back inside ``(lo, hi)``.

    Parameters
    ----------
    lo, hi : sequence of float
        Lower and upper bound of each parameter (parameter units), ``lo < hi``.

    Examples
    --------
    >>> aug = AugmentedState(lo=[4.0], hi=[12.0])
    >>> ens = aug.join(params, state)             # (M, 1 + n)
    >>> def model(ens):
    ...     p, x = aug.split(ens)
    ...     return aug.join(p, step(x, p))         # forecast; parameters persist
    >>> ens = f.analysis(ens, y, np.hstack([np.zeros((n, 1)), H]), R)
    """

    lo: tuple
    hi: tuple

    def __post_init__(self):
        lo = np.atleast_1d(np.asarray(self.lo, dtype=float))
        hi = np.atleast_1d(np.asarray(self.hi, dtype=float))
        if lo.ndim != 1 or lo.shape != hi.shape:
            raise ParameterError(
                f"lo and hi must be 1-D of equal length, got lo={self.lo!r}, hi={self.hi!r}")
        _bounds(lo, hi)
        object.__setattr__(self, "lo", tuple(lo.tolist()))
        object.__setattr__(self, "hi", tuple(hi.tolist()))

    @property
    def n_params(self):
        """Number of parameters (leading columns)."""
        return len(self.lo)

    def join(self, params, state):
        """Augmented ensemble ``(M, n_params + n)`` from ``params`` (M, n_params), bounded,
        and ``state`` (M, n)."""
        params = np.atleast_2d(np.asarray(params, dtype=float))
        state = np.atleast_2d(np.asarray(state, dtype=float))
        if params.shape[1] != self.n_params or params.shape[0] != state.shape[0]:
            raise ParameterError(
                f"params must have shape (M, {self.n_params}) with M = state rows "
                f"{state.shape[0]}, got {params.shape}")
        return np.hstack([to_unbounded(params, self.lo, self.hi), state])

    def split(self, augmented):
        """``(params, state)``: bounded parameters (M, n_params) and state (M, n)."""
        augmented = np.atleast_2d(np.asarray(augmented, dtype=float))
        k = self.n_params
        if augmented.shape[1] <= k:
            raise ParameterError(
                f"augmented ensemble must have more than {k} columns, got {augmented.shape}")
        return to_bounded(augmented[:, :k], self.lo, self.hi), augmented[:, k:]


# ------------------------------------------------------------------ diagnostics
def rmse(ensemble_mean, truth):
    """Root-mean-square error ``sqrt(mean((ensemble_mean - truth)**2))`` over the state.

    Parameters
    ----------
    ensemble_mean, truth : array_like, shape (n,) or (T, n)
        Estimate and true state (state units). For 2-D input one value per row.

    Returns
    -------
    float or numpy.ndarray
    """
    a = np.asarray(ensemble_mean, dtype=float)
    b = np.asarray(truth, dtype=float)
    if a.shape != b.shape:
        raise ParameterError(
            f"ensemble_mean and truth must have the same shape, got {a.shape} and {b.shape}")
    return np.sqrt(np.mean((a - b) ** 2, axis=-1))


def spread(ensemble):
    """Ensemble spread ``sqrt(mean_j var_j)``: root of the mean sample variance (ddof=1).

    Parameters
    ----------
    ensemble : array_like, shape (M, n)

    Returns
    -------
    float
    """
    ens = _ensemble(ensemble)
    return float(np.sqrt(np.mean(np.var(ens, axis=0, ddof=1))))


# ------------------------------------------------------------------ validation helpers
def _positive_scalar(value, name):
    return number(name, value, low=0, low_open=True)


def _ensemble(ensemble):
    ens = np.asarray(ensemble, dtype=float)
    if ens.ndim != 2 or ens.shape[0] < 2 or ens.shape[1] < 1:
        raise ParameterError(
            f"ensemble must have shape (M, n) with M >= 2 members, got shape {ens.shape}")
    if not np.all(np.isfinite(ens)):
        raise ParameterError("ensemble must be finite, got NaN or inf values")
    return ens


def _obs_cov(obs_cov, p):
    """Return (R as (p, p), whitening factor L with R = L L^T, diagonal flag)."""
    R = np.asarray(obs_cov, dtype=float)
    if not np.all(np.isfinite(R)):
        raise ParameterError(f"obs_cov must be finite, got {obs_cov!r}")
    if R.shape == (p,):
        if not np.all(R > 0):
            raise ParameterError(
                f"obs_cov variances must be > 0 (positive definite), got {obs_cov!r}")
        return np.diag(R), np.diag(np.sqrt(R)), True
    if R.shape != (p, p):
        raise ParameterError(
            f"obs_cov must have shape ({p},) (variances) or ({p}, {p}), got {R.shape}")
    if not np.allclose(R, R.T, rtol=1e-10, atol=0.0):
        raise ParameterError("obs_cov must be symmetric")
    try:
        L = np.linalg.cholesky(R)
    except np.linalg.LinAlgError:
        raise ParameterError(
            f"obs_cov must be positive definite, got eigenvalues "
            f"{np.linalg.eigvalsh(R)!r}") from None
    return R, L, bool(np.count_nonzero(R - np.diag(np.diag(R))) == 0)


def _predicted(ensemble, obs_operator, p):
    """Predicted observations (M, p) of the ensemble."""
    M, n = ensemble.shape
    if callable(obs_operator):
        hx = np.asarray(obs_operator(ensemble), dtype=float)
        if hx.shape != (M, p):
            raise ParameterError(
                f"obs_operator(ensemble) must return shape ({M}, {p}), got {hx.shape}")
        if not np.all(np.isfinite(hx)):
            raise ParameterError("obs_operator(ensemble) returned NaN or inf values")
        return hx
    H = np.asarray(obs_operator, dtype=float)
    if H.shape != (p, n):
        raise ParameterError(
            f"obs_operator must be a callable or a ({p}, {n}) matrix, got shape {H.shape}")
    if not np.all(np.isfinite(H)):
        raise ParameterError("obs_operator matrix must be finite")
    return ensemble @ H.T


def _rng(rng):
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(rng)
    raise ParameterError(f"rng must be a numpy.random.Generator, an int seed or None, "
                         f"got {rng!r}")


# ------------------------------------------------------------------ the filter
class EnKF:
    """Ensemble Kalman filter with stochastic, ETKF and LETKF analyses.

    Parameters
    ----------
    method : {"stochastic", "etkf", "letkf"}
        Analysis scheme (see the module docstring).
    inflation : float, >= 1
        Multiplicative inflation of the forecast anomalies (covariance x inflation**2),
        applied at the start of each :meth:`analysis`.
    localization : tuple (distance, radius) or None
        ``distance``: (n, p) array of state-observation distances (>= 0, user unit);
        ``radius``: Gaspari-Cohn half-width ``c`` (same unit, > 0; the taper vanishes
        beyond ``2 c``). Used by "stochastic" (Schur product on ``P_xy``) and required by
        "letkf" (R-localisation). "etkf" is global and takes none.
    rng : numpy.random.Generator, int or None
        Random source of the perturbed observations ("stochastic"); an int seeds
        ``numpy.random.default_rng``. The global numpy state is never used.

    Attributes
    ----------
    last_diagnostics : dict
        Written by each :meth:`analysis`: ``spread_forecast`` (after inflation),
        ``spread_analysis``, ``innovation_rms`` (rms of ``y - mean(H x)``) and, when
        ``truth`` is given, ``rmse_forecast`` and ``rmse_analysis``.

    Examples
    --------
    >>> f = EnKF("etkf", inflation=1.02)
    >>> for y in observations:
    ...     ens = f.forecast(ens, step)
    ...     ens = f.analysis(ens, y, np.eye(n), np.ones(n))

    References
    ----------
    Burgers et al. (1998) doi:10.1175/1520-0493(1998)126<1719:ASITEK>2.0.CO;2;
    Evensen (2003) doi:10.1007/s10236-003-0036-9; Hunt et al. (2007)
    doi:10.1016/j.physd.2006.11.008; Gaspari & Cohn (1999) doi:10.1002/qj.49712555417;
    Sakov & Oke (2008) doi:10.1111/j.1600-0870.2007.00299.x
    """

    def __init__(self, method="stochastic", inflation=1.0, localization=None, rng=None):
        if method not in METHODS:
            raise ParameterError(f"method must be one of {METHODS}, got {method!r}")
        try:
            infl = float(inflation)
        except (TypeError, ValueError):
            infl = np.nan
        if not (np.isfinite(infl) and infl >= 1.0):
            raise ParameterError(f"inflation must be a finite number >= 1, got {inflation!r}")
        self.method = method
        self.inflation = infl
        self.taper = None
        if localization is not None:
            self.taper = self._taper(localization)
        elif method == "letkf":
            raise ParameterError(
                "method='letkf' requires localization=(distance, radius), got None")
        if method == "etkf" and localization is not None:
            raise ParameterError(
                "method='etkf' is the global filter and takes no localization; "
                "use method='letkf' for local analyses")
        self.rng = _rng(rng)
        self.last_diagnostics = {}

    @staticmethod
    def _taper(localization):
        try:
            distance, radius = localization
        except (TypeError, ValueError):
            raise ParameterError(
                f"localization must be a (distance, radius) pair, got {localization!r}") from None
        radius = _positive_scalar(radius, "localization radius")
        d = np.asarray(distance, dtype=float)
        if d.ndim != 2 or not np.all(np.isfinite(d)) or np.any(d < 0):
            raise ParameterError(
                f"localization distance must be a finite (n, p) array >= 0, "
                f"got shape {d.shape}")
        return gaspari_cohn(d, radius)

    # -------------------------------------------------------------- forecast
    def forecast(self, ensemble, model, *args, **kwargs):
        """Propagate every member: ``model(ensemble, *args, **kwargs)``.

        Parameters
        ----------
        ensemble : array_like, shape (M, n)
        model : callable
            Vectorised over members: maps an (M, n) array to an (M, n) array.

        Returns
        -------
        numpy.ndarray, shape (M, n)
        """
        ens = _ensemble(ensemble)
        out = np.asarray(model(ens, *args, **kwargs), dtype=float)
        if out.shape != ens.shape:
            raise ParameterError(
                f"model must return the ensemble shape {ens.shape}, got {out.shape}")
        if not np.all(np.isfinite(out)):
            raise ParameterError("model returned NaN or inf values (diverged?)")
        return out

    # -------------------------------------------------------------- analysis
    def analysis(self, ensemble, observations, obs_operator, obs_cov, truth=None):
        """One analysis step.

        Parameters
        ----------
        ensemble : array_like, shape (M, n)
            Forecast ensemble, M >= 2 members.
        observations : array_like, shape (p,)
        obs_operator : array_like, shape (p, n), or callable
            Linear ``H`` or a callable mapping an (M, n) ensemble to (M, p) predicted
            observations (applied to the inflated forecast ensemble).
        obs_cov : array_like, shape (p,) or (p, p)
            Observation error variances (diagonal) or covariance (positive definite).
        truth : array_like, shape (n,), optional
            If given, forecast and analysis RMSE are added to :attr:`last_diagnostics`.

        Returns
        -------
        numpy.ndarray, shape (M, n)
            Analysis ensemble.
        """
        ens = _ensemble(ensemble)
        n = ens.shape[1]
        y = np.asarray(observations, dtype=float)
        if y.ndim != 1 or y.size < 1 or not np.all(np.isfinite(y)):
            raise ParameterError(
                f"observations must be a finite 1-D array, got shape {y.shape}")
        p = y.size
        R, L, diagonal = _obs_cov(obs_cov, p)
        if self.taper is not None and self.taper.shape != (n, p):
            raise ParameterError(
                f"localization distance must have shape (n, p) = ({n}, {p}), "
                f"got {self.taper.shape}")
        if self.method == "letkf" and not diagonal:
            raise ParameterError("method='letkf' (R-localisation) needs a diagonal obs_cov")

        xbar = ens.mean(axis=0)
        if self.inflation != 1.0:
            ens = xbar + self.inflation * (ens - xbar)
        hx = _predicted(ens, obs_operator, p)
        if self.method == "stochastic":
            out = self._stochastic(ens, hx, y, R, L)
        else:
            out = self._etkf(ens, hx, y, L)
        if not np.all(np.isfinite(out)):
            raise DivergenceError(
                "the analysis ensemble is not finite (an ill-conditioned update: check "
                "obs_cov against the spread of the predicted observations)")
        self._record(ens, out, hx, y, truth)
        return out

    def _stochastic(self, ens, hx, y, R, L):
        M = ens.shape[0]
        A = ens - ens.mean(axis=0)
        Y = hx - hx.mean(axis=0)
        pxy = A.T @ Y / (M - 1)
        if self.taper is not None:
            pxy = pxy * self.taper
        S = Y.T @ Y / (M - 1) + R
        eps = self.rng.standard_normal((M, y.size)) @ L.T
        eps -= eps.mean(axis=0)
        gain_t = scipy.linalg.solve(S, pxy.T, assume_a="pos")  # K^T, (p, n)
        return ens + (y + eps - hx) @ gain_t

    def _etkf(self, ens, hx, y, L):
        M, n = ens.shape
        xbar = ens.mean(axis=0)
        A = ens - xbar
        ybar = hx.mean(axis=0)
        Yw = scipy.linalg.solve_triangular(L, (hx - ybar).T, lower=True).T  # R^-1/2 Y
        dw = scipy.linalg.solve_triangular(L, y - ybar, lower=True)
        if self.taper is None:
            return xbar + A + _global_update(Yw, dw, A)
        out = np.empty_like(ens)
        block = max(1, _LETKF_BLOCK_ELEMENTS // (M * y.size))
        for j0 in range(0, n, block):
            w = self.taper[j0:j0 + block]  # (b, p) weights on R^-1
            T = _transform(Yw[None] * np.sqrt(w)[:, None, :],
                           dw[None] * np.sqrt(w), M)  # (b, M, M)
            out[:, j0:j0 + block] = xbar[j0:j0 + block] + np.einsum(
                "bim,mb->ib", T, A[:, j0:j0 + block])
        return out

    def _record(self, forecast, analysis, hx, y, truth):
        diag = {"method": self.method,
                "spread_forecast": spread(forecast),
                "spread_analysis": spread(analysis),
                "innovation_rms": float(np.sqrt(np.mean((y - hx.mean(axis=0)) ** 2)))}
        if truth is not None:
            diag["rmse_forecast"] = float(rmse(forecast.mean(axis=0), truth))
            diag["rmse_analysis"] = float(rmse(analysis.mean(axis=0), truth))
        self.last_diagnostics = diag


def _global_update(Yw, dw, A):
    """ETKF increment ``(W - I + wbar) A`` through the thin SVD ``Yw = U S V^T``.

    ``C = (M-1) I + Yw Yw^T`` has eigenvectors U (eigenvalues ``M-1+s^2``) and their
    complement (eigenvalue ``M-1``), so the symmetric transform of Hunt et al. (2007),
    ``W = sqrt(M-1) C^-1/2``, is ``I + U diag(sqrt((M-1)/(M-1+s^2)) - 1) U^T`` and
    ``wbar = C^-1 Yw dw``: no M x M matrix is formed (cost O(M p r + M n r)).
    """
    M = A.shape[0]
    U, s, _ = np.linalg.svd(Yw, full_matrices=False)
    lam = (M - 1) + s ** 2
    b = Yw @ dw
    wbar = b / (M - 1) + U @ ((1.0 / lam - 1.0 / (M - 1)) * (U.T @ b))
    g = np.sqrt((M - 1) / lam) - 1.0
    return U @ (g[:, None] * (U.T @ A)) + wbar @ A


def _transform(Yw, dw, M):
    """Symmetric ETKF transforms ``W + wbar`` (Hunt et al. 2007, eqs. 20-24), batched.

    ``Yw`` (b, M, p): whitened predicted-observation anomalies; ``dw`` (b, p): whitened
    innovation. Returns ``T`` (b, M, M) with analysis member i = xbar + sum_m T[i, m] A[m].
    """
    C = Yw @ np.swapaxes(Yw, 1, 2)
    C += (M - 1) * np.eye(M)
    evals, V = _eigh(C)
    Pa = (V / evals[:, None, :]) @ np.swapaxes(V, 1, 2)
    wbar = (Pa @ (Yw @ dw[:, :, None]))[:, :, 0]
    W = (V * np.sqrt((M - 1) / evals)[:, None, :]) @ np.swapaxes(V, 1, 2)
    return W + wbar[:, None, :]


def _eigh(C):
    """Batched symmetric eigendecomposition of (b, M, M).

    numpy's batched ``eigh`` (LAPACK ``syevd``) is fastest for small M; from M ~ 20 on,
    threaded OpenBLAS ``syevd`` can be 10-100x slower than ``syev`` on a busy machine,
    so larger matrices go one by one through scipy's ``syev`` driver.
    """
    if C.shape[1] <= _SMALL_EIGH:
        return np.linalg.eigh(C)
    evals = np.empty(C.shape[:2])
    V = np.empty_like(C)
    for b in range(C.shape[0]):
        evals[b], V[b] = scipy.linalg.eigh(C[b], driver="ev", check_finite=False)
    return evals, V
