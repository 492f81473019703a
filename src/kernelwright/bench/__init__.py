"""Benchmarking: device-event timing, baselines and the roofline."""
