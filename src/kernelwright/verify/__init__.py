"""Verification: does a candidate compute the task's function on every shape, dtype and input?"""

from kernelwright.verify.result import SCHEMA, VerifyResult
from kernelwright.verify.verifier import verify

__all__ = ["SCHEMA", "VerifyResult", "verify"]
