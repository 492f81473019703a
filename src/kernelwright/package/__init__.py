"""Packaging: verified candidates as Hugging Face `kernels` repositories, kernelize, end-to-end numbers."""

from pathlib import Path

from kernelwright.errors import KernelwrightError
from kernelwright.package.writer import CandidateRejected, PackageResult, validate_repository
from kernelwright.package.writer import package as _write_package

__all__ = ["CandidateRejected", "PackageResult", "SlowerThanBaseline", "package", "validate_repository"]


class SlowerThanBaseline(KernelwrightError):
    """The run's best kernel is slower than its fastest baseline (exit 1, nothing written)."""


def package(source: Path, *, allow_slower: bool = False, **options) -> PackageResult:
    """``writer.package``, refused for a run whose best kernel is slower than its fastest baseline unless
    ``allow_slower``: a slower kernel is a finding, not a result (DESIGN.md, principle 6)."""
    from kernelwright.package.evidence import slower_than_baseline

    why = None if allow_slower else slower_than_baseline(Path(source))
    if why:
        raise SlowerThanBaseline(why)
    return _write_package(source, **options)
