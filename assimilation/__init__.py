"""Balloon-Windkessel BOLD and ensemble-Kalman assimilation.

``bold`` turns region activity (xarray, time in ms) into BOLD (time in s);
``Balloon`` is its online form with a readable and writable state. The
generic ensemble Kalman filter is ``EnKF``. The DTB assimilation loop (HMDA)
is still to come (issue 7).
"""
from .balloon import PARAMETER_SETS, Balloon, BalloonParams, bold, bold_signal, get_params
from .enkf import AugmentedState, EnKF, gaspari_cohn, rmse, spread, to_bounded, to_unbounded

__all__ = ["PARAMETER_SETS", "Balloon", "BalloonParams", "bold", "bold_signal", "get_params",
           "AugmentedState", "EnKF", "gaspari_cohn", "rmse", "spread", "to_bounded",
           "to_unbounded"]
