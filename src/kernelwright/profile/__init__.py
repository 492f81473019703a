"""Model profiling: ops mapped to the modules that issued them, ranked by the savings at the roofline,
and the top memory-bound ones written out as tasks."""

from kernelwright.profile.run import PHASES, ProfileResult, load, profile_model

__all__ = ["PHASES", "ProfileResult", "load", "profile_model"]
