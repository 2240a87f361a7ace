"""Densities of the method: MM-SOLD's moment-matched stationary law as an explicit log-density."""

from .tilted import TiltedDensity, fixed_draws, log_blurred, smoothed_gradient, smoothed_potential

__all__ = ["TiltedDensity", "fixed_draws", "log_blurred", "smoothed_gradient", "smoothed_potential"]
