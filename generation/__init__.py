"""Network generation: canonical models and networks from MRI-derived data."""
from .microcircuit import microcircuit

__all__ = ["microcircuit"]
