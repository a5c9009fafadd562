"""Array-only numerics of brainsim: counter-based RNG, scalar neuron updates,
input generators and propagators.

Nothing here imports xarray, dask or zarr. The scalar functions are compiled
with ``numba.njit(inline="always")``; Numba compiles the same functions for
CUDA when they are called from a ``numba.cuda.jit`` kernel, so the physics is
written once.
"""
from . import iaf_psc_exp, lif_dtb, rng  # noqa: F401
from .inputs import ou_step, poisson_input  # noqa: F401
