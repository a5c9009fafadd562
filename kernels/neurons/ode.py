"""Adaptive embedded Runge-Kutta integration of a neuron's ODEs over one step.

The conductance-based and Hodgkin-Huxley models (``iaf_cond_exp``,
``aeif_cond_exp``, ``hh_psc_alpha``) have no closed-form propagator; NEST
integrates them with GSL's adaptive Runge-Kutta-Fehlberg 4(5) stepper. Here
one integrator serves all of them: the Dormand-Prince 5(4) pair (Dormand &
Prince 1980, J. Comput. Appl. Math. 6:19, doi 10.1016/0771-050X(80)90013-3),
advancing the 5th-order solution (local extrapolation), with the "first same
as last" reuse of the last stage, and a step-size controller on the max-norm
of the embedded error estimate.

Error control: a sub-step of size h is accepted when, for every component i,
``|err_i| <= tol * (1 + max(|y_i|, |y_i_new|))``: an absolute tolerance of
``tol`` in the variable's unit (mV, nS, pA, ...) for small values and a
relative one of ``tol`` for large values. After each sub-step h is scaled by
``0.9 (1 / err)^(1/5)``, between 0.2 and 5 times (accepted) or 0.1 and 0.9
times (rejected). A sub-step never crosses the end of the simulation step.
The last accepted sub-step size is returned so that the model can keep it as
a state variable and start the next step with it (as NEST keeps
``IntegrationStep_``); a truncated last sub-step does not shrink it.

Everything here is allocation-free scalar code on tuples, so the functions
compile in Numba's CPU loops and as CUDA device functions. The per-model
functions:

``rhs(y, p, c) -> dy``
    derivatives (a tuple of n floats) of the state ``y`` (a tuple of n
    floats) for the parameter row ``p`` and a context tuple ``c`` of floats
    held over the step (e.g. the external current, a refractory flag);
``after(y, p, c) -> (y, c, changed)``
    called after every accepted sub-step (spike detection and reset inside
    the step, as NEST's aeif models do); ``changed`` says that ``y`` or ``c``
    was modified, so that the first stage is evaluated again.

``make_integrator(rhs, n, after)`` returns
``integrate(y, p, c, dt, h, tol) -> (y, c, h)``.
"""
import functools
import math

from numba import njit

# Dormand-Prince 5(4): nodes are not needed (the models' right-hand sides do
# not depend on time within a step); stage coefficients a_ij, the 5th-order
# weights b (= the last stage row, "first same as last") and the error
# weights e = b - b* (b*: the embedded 4th-order weights).
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
_E = tuple(b5 - b4 for b5, b4 in zip(_A[6] + (0.0,), _B4))

#: Sub-steps per simulation step after which the rest of the step is taken
#: in one sub-step (a guard against stalling on a pathological state).
MAX_SUBSTEPS = 100_000
#: Smallest sub-step, as a fraction of dt; such a sub-step is always accepted.
H_MIN_FRACTION = 1e-9


def _combo(i, h, terms):
    """Source of y[i] + h * (sum of coef * k[i])."""
    inner = " + ".join(f"{coef!r} * {k}[{i}]" for coef, k in terms if coef != 0.0)
    return f"y[{i}] + {h} * ({inner})"


def _attempt_source(n):
    """Source of ``attempt(y, h, k1, p, c) -> (y_new, k_last, err)``: one
    Dormand-Prince sub-step of size h for n variables, unrolled."""
    lines = ["def attempt(y, h, k1, p, c):"]
    for stage in range(1, 7):
        terms = [(a, f"k{j + 1}") for j, a in enumerate(_A[stage])]
        comps = ", ".join(_combo(i, "h", terms) for i in range(n))
        target = f"y{stage + 1}" if stage < 6 else "yn"
        lines.append(f"    {target} = ({comps},)")
        lines.append(f"    k{stage + 1} = rhs({target}, p, c)")
    lines.append("    err = 0.0")
    for i in range(n):
        est = " + ".join(f"{e!r} * k{j + 1}[{i}]" for j, e in enumerate(_E) if e != 0.0)
        lines.append(f"    e = abs(h * ({est})) / (1.0 + max(abs(y[{i}]), abs(yn[{i}])))")
        lines.append("    if not e <= err:")  # NaN propagates into err
        lines.append("        err = e")
    lines.append("    return yn, k7, err")
    return "\n".join(lines)


@functools.lru_cache(maxsize=None)
def _attempt(rhs, n):
    ns = {"rhs": rhs}
    code = compile(_attempt_source(n), f"<brainsim Dormand-Prince step, n={n}>", "exec")
    exec(code, ns)  # noqa: S102
    return njit(ns["attempt"])


@njit
def no_event(y, p, c):
    """``after`` for models without events inside the step."""
    return y, c, False


@njit(inline="always")
def _factor(err, accepted):
    """Step-size factor 0.9 err^(-1/5), in [0.2, 5] after an accepted
    sub-step and in [0.1, 0.9] after a rejected one."""
    f = 0.9 * math.pow(max(err, 1e-12), -0.2)
    if accepted:
        return min(5.0, max(0.2, f))
    return min(0.9, max(0.1, f))


@functools.lru_cache(maxsize=None)
def make_integrator(rhs, n, after=no_event):
    """``integrate(y, p, c, dt, h, tol) -> (y, c, h)``: advance the state
    tuple ``y`` (n floats) by ``dt`` (ms) with adaptive Dormand-Prince 5(4)
    sub-steps, the first of size ``h`` (ms; a non-positive or larger-than-dt
    value starts with dt), each accepted one followed by ``after``; returns
    the new state and context and the sub-step size to start the next step
    with. See the module docstring for ``rhs``, ``after`` and ``tol``."""
    attempt = _attempt(rhs, n)

    @njit
    def integrate(y, p, c, dt, h, tol):
        if not (h > 0.0 and h <= dt):
            h = dt
        h_min = dt * H_MIN_FRACTION
        k1 = rhs(y, p, c)
        t = 0.0
        n_sub = 0
        while t < dt:
            rest = dt - t
            last = h >= rest
            hu = rest if last else h
            n_sub += 1
            if n_sub > MAX_SUBSTEPS:
                hu = rest
                last = True
            yn, kn, err = attempt(y, hu, k1, p, c)
            err = err / tol
            if err <= 1.0 or hu <= h_min or n_sub > MAX_SUBSTEPS or err != err:
                t = dt if last else t + hu
                y = yn
                k1 = kn
                y, c, changed = after(y, p, c)
                if changed:
                    k1 = rhs(y, p, c)
                h_new = hu * _factor(err, True)
                if not (last and hu < h and h_new < h):
                    h = h_new  # a truncated last sub-step does not shrink h
            else:
                h = hu * _factor(err, False)
        return y, c, min(h, dt)

    return integrate
