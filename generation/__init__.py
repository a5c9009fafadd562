"""Network generation: canonical models and networks from MRI-derived data.

Modules: ``connectome`` (networks from MRI-derived connectomes),
``potjans_diesmann`` (the PD14 microcircuit, :func:`microcircuit`),
``multi_area_spec`` (multi-area models from a specification,
:func:`multi_area`), ``mam`` (conversion of the MAM code's output),
``partitioning`` and ``mean_field_model`` (the population-level model the
mean-field solver reads). No module shares its name with a function
exported here, so ``import brainsim.generation.<module>`` gives the module.
"""
from .connectome import from_connectome, partition
from .mam import convert_mam
from .multi_area_spec import example_spec, load_spec, multi_area
from .potjans_diesmann import microcircuit

__all__ = ["convert_mam", "example_spec", "from_connectome", "load_spec", "microcircuit",
           "multi_area", "partition"]
