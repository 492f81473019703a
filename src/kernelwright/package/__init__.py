"""Packaging: verified candidates as Hugging Face `kernels` repositories, kernelize, end-to-end numbers."""

from kernelwright.package.writer import CandidateRejected, PackageResult, package, validate_repository

__all__ = ["CandidateRejected", "PackageResult", "package", "validate_repository"]
