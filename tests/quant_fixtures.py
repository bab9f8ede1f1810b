"""Shared int8 test settings."""

from __future__ import annotations

from lowbench.quant import calibrate

#: One synth-train pair, two 32x32 crops: enough to exercise calibration in well under a second.
TINY_CALIBRATION = calibrate.CalibrationSettings(pairs=1, crops=2, crop_packed=32, seed=0, batch=2)
