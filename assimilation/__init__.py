"""Balloon-Windkessel BOLD and ensemble-Kalman assimilation.

``bold`` turns region activity (xarray, time in ms) into BOLD (time in s);
``Balloon`` is its online form with a readable and writable state. The
generic ensemble Kalman filter is ``EnKF``. ``hmda`` is the Digital Twin
Brain's loop: an ensemble of network copies whose per-region
hyperparameters follow an observed BOLD signal; ``simulate_bold`` is its
forward model (twin experiments, replay); ``PROTOCOLS`` its presets (brainsim's,
the DTB's) and ``mixed_update`` the DTB's ensemble update. Modules:
``balloon``, ``enkf`` and ``hmda_loop`` (named apart from the function
``hmda``, so that ``import brainsim.assimilation.hmda_loop`` gives the module).
"""
from .balloon import PARAMETER_SETS, Balloon, BalloonParams, bold, bold_signal, get_params
from .enkf import AugmentedState, EnKF, gaspari_cohn, rmse, spread, to_bounded, to_unbounded
from .hmda_loop import (PROTOCOLS, fc_correlation, hmda, mixed_update, open_hmda,
                        simulate_bold, tracking_scores)

__all__ = ["PARAMETER_SETS", "Balloon", "BalloonParams", "bold", "bold_signal", "get_params",
           "AugmentedState", "EnKF", "gaspari_cohn", "rmse", "spread", "to_bounded",
           "to_unbounded", "fc_correlation", "hmda", "open_hmda", "simulate_bold",
           "tracking_scores", "PROTOCOLS", "mixed_update"]
