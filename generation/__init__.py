"""Network generation: canonical models and networks from MRI-derived data."""
from .connectome import from_connectome, partition
from .microcircuit import microcircuit

__all__ = ["from_connectome", "microcircuit", "partition"]
