"""Balloon-Windkessel BOLD and ensemble-Kalman assimilation (to come: issue 7).

This subpackage is installed as ``brainsim.assimilation`` and holds no code yet.
"""
