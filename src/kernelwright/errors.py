"""Errors that reach the user as one sentence and exit code 2."""


class KernelwrightError(Exception):
    """Base class of errors the CLI renders as one clear sentence."""


class UsageError(KernelwrightError):
    """Bad input or environment: a task that does not load, a missing GPU, a missing extra (exit 2)."""
