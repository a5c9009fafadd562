"""Scalar external-input generators driven by the counter-based RNG.

Both are exact per step: the Poisson count of a step is drawn from its key,
and the Ornstein-Uhlenbeck current is updated with its exact discretisation
(Gillespie 1996, Phys. Rev. E 54:2084)
``I <- I + (1 - e)(mu - I) + sqrt(1 - e^2) sigma xi`` with ``e = exp(-dt/tau)``.
"""
from numba import njit

from .rng import STREAM_OU, STREAM_POISSON, normal, poisson_tabulated


@njit(inline="always")
def ou_step(i_ou, mu, decay, amp, seed, neuron, step):
    """Advance an OU current (pA) by one step; ``decay = exp(-dt/tau)`` and
    ``amp = sigma sqrt(1 - decay**2)`` come from the host."""
    return i_ou + (1.0 - decay) * (mu - i_ou) + amp * normal(seed, STREAM_OU, neuron, step, 0)


@njit(inline="always")
def poisson_input(lam, row, key0, weight, delay, seed, neuron, step):
    """Summed weight arriving at ``step`` from a Poisson source of mean
    ``lam`` events per step (``row``: its inversion table from
    ``rng.poisson_tables``; ``key0 = rng.stream_key(seed, STREAM_POISSON,
    0)``), emitted ``delay`` steps earlier (none before ``step == delay``, as
    in NEST where the generator starts at t = 0)."""
    if step < delay:
        return 0.0
    count = poisson_tabulated(lam, row, key0, seed, STREAM_POISSON, neuron, step - delay)
    return count * weight
