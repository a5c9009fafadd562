"""Network generation: canonical models and networks from MRI-derived data.

Modules: ``connectome`` (networks from MRI-derived connectomes),
``potjans_diesmann`` (the PD14 microcircuit, :func:`microcircuit`),
``multi_area_spec`` (multi-area models from a specification,
:func:`multi_area`), ``macaque_model`` (the macaque multi-area model of
Schmidt et al. 2018, :func:`macaque_multi_area`), ``human_model`` and
``human_multi_area_tables`` (the human multi-area model of Pronold et al.
2024 built from its raw tables, :func:`human_multi_area`), ``mam``
(conversion of the MAM code's output),
``partitioning`` and ``mean_field_model`` (the population-level model the
mean-field solver reads). No module shares its name with a function
exported here, so ``import brainsim.generation.<module>`` gives the module.
"""
from .connectome import from_connectome, partition
from .human_model import human_multi_area, human_rates, human_spec, human_tables
from .macaque_model import macaque_multi_area, macaque_rates, macaque_spec, macaque_tables
from .mam import convert_mam
from .multi_area_spec import example_spec, load_spec, multi_area
from .potjans_diesmann import microcircuit

__all__ = ["convert_mam", "example_spec", "from_connectome", "human_multi_area", "human_rates",
           "human_spec", "human_tables", "load_spec", "macaque_multi_area", "macaque_rates",
           "macaque_spec", "macaque_tables", "microcircuit", "multi_area", "partition"]
