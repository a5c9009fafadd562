"""brainsim: whole-brain spiking network models from MRI-derived data,
simulated with Numba kernels, with BOLD and ensemble-Kalman assimilation.

Units are NEST's: ms, mV, pA, pF, nS, Hz.
"""
from ._version import __version__
from .errors import (BrainsimError, BuildError, CheckpointError, DivergenceError, LinkError,
                     ParameterError, StoreError, StoreNotFoundError, UnknownNameError)
from .network import Network, Population
from .results import open_results
from .simulation import Simulation
from .store import load_network, load_partition

__all__ = ["__version__", "Network", "Population", "Simulation", "load_network",
           "load_partition", "open_results", "BrainsimError", "BuildError", "ParameterError",
           "StoreError", "StoreNotFoundError", "UnknownNameError", "DivergenceError",
           "LinkError", "CheckpointError"]
