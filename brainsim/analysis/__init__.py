"""Analysis of simulation results: rates, spike-train statistics,
functional connectivity, spectra, and export to Neo.

Inputs and outputs are xarray objects; times in ms (BOLD in s), rates in
Hz; every output DataArray sets ``attrs["units"]`` and ``attrs["long_name"]``.
"""
from .neo import MissingDependencyError, to_neo
from .rates import mean_rate, rate_histogram, rates_by_area
from .signals import (fc_correlation, fcd, fcd_ks, functional_connectivity, pearson_r,
                      power_spectrum)
from .spikes import cv_isi, lvr, spike_count_correlation, summarize, synchrony

__all__ = ["MissingDependencyError", "cv_isi", "fc_correlation", "fcd", "fcd_ks",
           "functional_connectivity",
           "lvr", "mean_rate", "pearson_r", "power_spectrum", "rate_histogram", "rates_by_area",
           "spike_count_correlation", "summarize", "synchrony", "to_neo"]
