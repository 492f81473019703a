"""Mapping the two official SDKs' exceptions (they share one shape) onto retry-or-stop decisions."""

from __future__ import annotations

from types import ModuleType

from kernelwright.agents.llm.base import Transient, retry_after_seconds
from kernelwright.errors import UsageError


def translate(sdk: ModuleType, exc: Exception, *, label: str, model: str, key_env: str | None) -> Exception:
    """The exception to raise instead of ``exc``: :class:`Transient` to retry, ``UsageError`` to stop."""
    status = getattr(exc, "status_code", None)
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if isinstance(exc, sdk.APITimeoutError):
        return Transient("the request timed out")
    if isinstance(exc, sdk.APIConnectionError):
        return Transient(f"connection failed: {exc.__cause__ or exc}", unreachable=True)
    if isinstance(exc, sdk.RateLimitError) or status == 429:
        return Transient("rate limited (HTTP 429)", retry_after=retry_after_seconds(headers))
    if status is not None and (status >= 500 or status in (408, 409)):
        return Transient(f"server error (HTTP {status})", retry_after=retry_after_seconds(headers))
    if isinstance(exc, (sdk.AuthenticationError, sdk.PermissionDeniedError)):
        where = f"; check {key_env}" if key_env else ""
        return UsageError(f"{label} refused the API key (HTTP {status}){where}.")
    if isinstance(exc, sdk.NotFoundError) or (status == 400 and "model" in str(exc).lower()):
        return UsageError(f"{label} does not know the model '{model}' (HTTP {status}); check the model name.")
    if status is not None:
        return UsageError(f"{label} rejected the request (HTTP {status}): {_short(exc)}.")
    return exc


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:200]
