"""The Siegert mean-field solver of populations of iaf_psc_exp neurons.

Stationary rates of a :class:`~.mean_field_model.PopulationModel` in the
diffusion approximation: the Siegert formula with the Fourcaud-Brunel
(2002) correction for exponential synapses, and the self-consistent fixed
point nu = Phi(nu). The theory and the public entry points are documented
in ``brainsim.analysis.meanfield``, which re-exports these functions and
adds models from Networks; the solver sits here, in generation, because the
canonical models need full-scale rates while they are built (the DC that
keeps the input of down-scaled networks).
"""
import math
import warnings

import numpy as np
import xarray as xr
from scipy import optimize, special

from brainsim.errors import ParameterError
from brainsim.validation import finite_array

from .mean_field_model import PopulationModel


#: |zeta(1/2)|, the Riemann zeta function at 1/2.
ZETA_HALF = 1.4603545088095868
#: Fourcaud-Brunel shift of the bounds in units of sqrt(tau_s / tau_m).
FB_SHIFT = ZETA_HALF / math.sqrt(2.0)
_SQRT_PI = math.sqrt(math.pi)


# ------------------------------------------------------------ Siegert formula
_GL_X, _GL_W = np.polynomial.legendre.leggauss(64)


def _gauss(f, lo, hi):
    """int_lo^hi f, 64-point Gauss-Legendre, vectorised over the bounds."""
    half, mid = 0.5 * (hi - lo), 0.5 * (hi + lo)
    return half * (f(mid[..., None] + half[..., None] * _GL_X) @ _GL_W)


def _erfcx_scaled(t):
    x = np.exp(t)
    return special.erfcx(x) * x


def erfcx_integral(x):
    """H(x) = int_0^x erfcx(u) du for x >= 0 (array): Gauss-Legendre on
    [0, min(x, 1)], and in log space on [1, x], where erfcx(u) ~ 1 / (u
    sqrt(pi)) makes the integrand u erfcx(u) nearly constant."""
    x = np.asarray(x, float)
    zero = np.zeros_like(x)
    return (_gauss(special.erfcx, zero, np.minimum(x, 1.0))
            + _gauss(_erfcx_scaled, zero, np.log(np.maximum(x, 1.0))))


def _exp_sq_integral(x):
    """int_0^x exp(u^2) du = exp(x^2) D(x) (Dawson's function), x >= 0;
    inf where it overflows."""
    with np.errstate(over="ignore"):
        return np.where(x * x > 700.0, np.inf, np.exp(np.minimum(x * x, 700.0)) *
                        special.dawsn(x))


def siegert_integral(y_r, y_th):
    """int_{y_r}^{y_th} exp(u^2) (1 + erf u) du (dimensionless), y_r <= y_th.

    The integrand is erfcx(-u): bounded for u < 0, where it is integrated
    numerically; for u > 0 it is 2 exp(u^2) - erfcx(u), the first part in
    closed form. Arrays broadcast.
    """
    y_r, y_th = np.broadcast_arrays(np.asarray(y_r, float), np.asarray(y_th, float))
    neg = np.where(y_r < 0.0, erfcx_integral(np.maximum(-y_r, 0.0))
                   - erfcx_integral(np.maximum(-y_th, 0.0)), 0.0)
    lo, hi = np.maximum(y_r, 0.0), np.maximum(y_th, 0.0)
    with np.errstate(invalid="ignore"):
        pos = (2.0 * (_exp_sq_integral(hi) - _exp_sq_integral(lo))
               - (erfcx_integral(hi) - erfcx_integral(lo)))
    pos = np.where(hi * hi > 700.0, np.inf, pos)  # exp(u^2) overflows: no firing
    return neg + np.where(y_th > 0.0, pos, 0.0)


def siegert(mu, sigma, tau_m, tau_s, V_th, V_reset, t_ref):
    """Stationary rate of a LIF neuron with exponential synaptic currents.

    Parameters
    ----------
    mu : float or array, mV
        Mean free membrane potential (E_L + tau_m / C_m * mean current).
    sigma : float or array, mV
        Noise amplitude of the free membrane potential (>= 0); 0 gives the
        deterministic rate 1 / (t_ref + tau_m ln((mu - V_reset) / (mu - V_th))).
    tau_m, tau_s, t_ref : float or array, ms
        Membrane time constant, synaptic time constant (0 for the plain
        Siegert formula of delta synapses), refractory period.
    V_th, V_reset : float or array, mV

    Returns
    -------
    ndarray, Hz
        Broadcast shape of the inputs.
    """
    names = ("mu", "sigma", "tau_m", "tau_s", "V_th", "V_reset", "t_ref")
    args = np.broadcast_arrays(*(np.asarray(a, float) for a in
                                 (mu, sigma, tau_m, tau_s, V_th, V_reset, t_ref)))
    for name, a in zip(names, args):
        if not np.all(np.isfinite(a)):
            raise ParameterError(f"{name} must be finite, got {a[~np.isfinite(a)][:3]!r}")
    mu, sigma, tau_m, tau_s, v_th, v_r, t_ref = args
    if np.any(sigma < 0) or np.any(tau_m <= 0) or np.any(tau_s < 0) or np.any(t_ref < 0):
        raise ParameterError("siegert needs sigma >= 0 mV, tau_m > 0 ms, tau_s >= 0 ms and "
                             "t_ref >= 0 ms")
    if np.any(v_r >= v_th):
        raise ParameterError(f"V_reset must be < V_th, got V_reset {v_r.max()!r} mV")
    noisy = sigma > 0
    safe = np.where(noisy, sigma, 1.0)
    shift = FB_SHIFT * np.sqrt(tau_s / tau_m)
    integral = siegert_integral((v_r - mu) / safe + shift, (v_th - mu) / safe + shift)
    with np.errstate(divide="ignore", invalid="ignore"):
        period = np.where(noisy, t_ref + tau_m * _SQRT_PI * integral,
                          np.where(mu > v_th, t_ref + tau_m * np.log((mu - v_r) / (mu - v_th)),
                                   np.inf))
    return 1e3 / period


def input_moments(model, rates):
    """Mean, noise amplitude and colour shift of the free membrane potential.

    Parameters
    ----------
    model : PopulationModel
    rates : array (P,), Hz
        Rates of the source populations.

    Returns
    -------
    mu : ndarray (P,), mV
        E_L + tau_m / C_m (I_e + mean synaptic current).
    sigma : ndarray (P,), mV
    tau_s : ndarray (P,), ms
        Effective synaptic time constant of the Fourcaud-Brunel shift,
        (sum_c sigma_c^2 sqrt(tau_c))^2 / sigma^4 over the two channels; with
        equal tau_syn_ex and tau_syn_in it is that value.
    """
    nu = finite_array("rates", rates, (len(model),)) * 1e-3  # 1/ms
    nrn = model.neuron
    tau = np.stack([nrn["tau_syn_ex"], nrn["tau_syn_in"]])  # (channel, target)
    src_ch = np.array([0 if k == "E" else 1 for k in model.kinds])
    ext_ch = (model.ext_weight < 0).astype(int)
    mean = np.zeros((2, len(model)))  # pA ms / ms per channel
    var = np.zeros((2, len(model)))
    for c in (0, 1):
        sel = src_ch == c
        mean[c] = (model.K[:, sel] * model.J[:, sel]) @ nu[sel]
        var[c] = (model.K[:, sel] * model.J2[:, sel]) @ nu[sel]
        on = ext_ch == c
        mean[c, on] += model.ext_rate[on] * 1e-3 * model.ext_weight[on]
        var[c, on] += model.ext_rate[on] * 1e-3 * model.ext_weight2[on]
    mu = nrn["E_L"] + nrn["tau_m"] / nrn["C_m"] * (model.I_e + (mean * tau).sum(0))
    var_c = nrn["tau_m"] * var * (tau / nrn["C_m"]) ** 2  # mV^2 per channel
    sigma = np.sqrt(var_c.sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau_eff = np.where(sigma > 0, ((var_c * np.sqrt(tau)).sum(0) / sigma ** 2) ** 2,
                           tau[0])
    return mu, sigma, tau_eff


def transfer(model, rates):
    """Output rates Phi(rates) (Hz, array (P,)) for source rates ``rates`` (Hz)."""
    mu, sigma, tau_s = input_moments(model, rates)
    n = model.neuron
    return siegert(mu, sigma, n["tau_m"], tau_s, n["V_th"], n["V_reset"], n["t_ref"])


# ------------------------------------------------------------------ fixed point
def fixed_point(model, initial=None, tol=1e-6, damping=0.1, max_iter=2000):
    """Self-consistent stationary rates nu = Phi(nu) of a population network.

    A damped iteration nu <- nu + damping (Phi(nu) - nu) (the Euler step of
    the pseudo-dynamics d nu / dt = Phi(nu) - nu) brings the rates near the
    fixed point, then ``scipy.optimize.root`` (hybr) polishes them.

    Parameters
    ----------
    model : PopulationModel, Network, or an object with ``population_model()``
        (a multi-area specification); see :func:`as_model`.
    initial : array (P,), Hz, optional
        Starting rates (default: 0 Hz, the ground state the pseudo-dynamics
        reaches first; several fixed points may exist).
    tol : float, Hz
        Largest |Phi(nu) - nu| accepted.
    damping : float in (0, 1]
        Step of the pseudo-dynamics in units of its time constant (the
        undamped map, damping 1, oscillates in inhibition-dominated networks
        such as the microcircuit).
    max_iter : int
        Iterations of the damped stage.

    Returns
    -------
    xarray.DataArray (population,), Hz
        attrs: units, long_name, ``residual`` (max |Phi - nu|, Hz),
        ``iterations``, ``converged``; ``mu`` and ``sigma`` (mV) coords.
        A RuntimeWarning is issued when the residual exceeds ``tol``.
    """
    if not isinstance(model, PopulationModel):
        raise ParameterError(f"model must be a PopulationModel, got {type(model).__name__}")
    if not 0.0 < damping <= 1.0:
        raise ParameterError(f"damping must be in (0, 1], got {damping!r}")
    if not tol > 0:
        raise ParameterError(f"tol must be > 0 Hz, got {tol!r}")
    n_pops = len(model)
    nu = np.zeros(n_pops) if initial is None else finite_array("initial", initial, (n_pops,))
    nu, it = _damped(model, nu, damping, max(tol * 1e2, 1e-3), int(max_iter))
    nu = _polish(model, nu)
    residual = float(np.max(np.abs(transfer(model, nu) - nu)))
    if residual > tol:
        warnings.warn(f"mean-field fixed point not converged: max |Phi(nu) - nu| = "
                      f"{residual:.3g} Hz > tol {tol} Hz", RuntimeWarning, stacklevel=2)
    return _to_dataarray(model, nu, residual, it, residual <= tol)


def _damped(model, nu, damping, tol, max_iter):
    """Euler steps of d nu / dt = Phi(nu) - nu until |Phi(nu) - nu| < tol."""
    for it in range(1, max_iter + 1):
        step = transfer(model, nu) - nu
        if np.max(np.abs(step)) < tol:
            return nu, it
        nu = nu + damping * step
    return nu, max_iter


def _polish(model, nu):
    sol = optimize.root(lambda x: transfer(model, np.maximum(x, 0.0)) - x, nu, method="hybr",
                        options={"xtol": 1e-12})
    x = np.maximum(sol.x, 0.0)
    good = np.max(np.abs(transfer(model, x) - x)) <= np.max(np.abs(transfer(model, nu) - nu))
    return x if good else nu


def _to_dataarray(model, nu, residual, iterations, converged):
    mu, sigma, _ = input_moments(model, nu)
    out = xr.DataArray(nu, dims=("population",),
                       coords={"population": list(model.names),
                               "mu": ("population", mu), "sigma": ("population", sigma)},
                       name="rate")
    out.attrs.update(units="Hz", long_name="mean-field stationary firing rate",
                     method="Siegert + Fourcaud-Brunel (exponential synapses)",
                     residual=residual, iterations=int(iterations), converged=bool(converged))
    out["mu"].attrs.update(units="mV", long_name="mean free membrane potential")
    out["sigma"].attrs.update(units="mV", long_name="noise amplitude of the free membrane "
                                                    "potential")
    return out
