"""Samplers: MM-SOLD, naive SOLD and σ-CFDM, their integrators, schedules and starts."""
