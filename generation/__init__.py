"""Network generation: canonical models and networks from MRI-derived data."""
from .connectome import from_connectome, partition
from .mam import convert_mam
from .microcircuit import microcircuit
from .multi_area import example_spec, load_spec, multi_area

__all__ = ["convert_mam", "example_spec", "from_connectome", "load_spec", "microcircuit",
           "multi_area", "partition"]
