"""Calibration: fit a scenario's free parameters to a shop's own weekly (or daily)
funnel numbers, with bootstrap intervals and diagnostics (``cvj calibrate``)::

    from cvj.calibrate import calibrate, load_calibration
    cal = load_calibration("scenarios/calibrate_handbag.toml")
    res = calibrate(cal, workers=2)
    res.estimate, res.interval, res.warnings

:func:`cvj.calibrate.output.observed_table` writes a run in the observed-data shape
(``cvj simulate-observed``), so data with a known truth can be made.
"""

from .fit import CalibrationResult, calibrate
from .metrics import metric_names
from .spec import Calibration, load_calibration, read_observed

__all__ = ["Calibration", "CalibrationResult", "calibrate", "load_calibration", "metric_names", "read_observed"]
