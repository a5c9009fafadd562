"""Array-only numerics of brainsim: counter-based RNG, neuron model
descriptions (``neurons``), the loops compiled around them (``loops``),
input generators, CSR construction and the CUDA kernels.

Nothing here imports xarray, dask or zarr. A model's step is plain scalar
Python; Numba compiles it into the CPU loops and, as a device function, into
the CUDA kernels, so the physics is written once.
"""
from . import rng  # noqa: F401
from .inputs import ou_step, poisson_input  # noqa: F401
