"""The one small interface every LLM provider implements, and the retry loop they share.

A provider turns ``(system, messages)`` into a :class:`Completion` with token counts. Transient
failures (rate limits, 5xx, dropped connections, timeouts) raise :class:`Transient`; :func:`with_retries`
retries those with exponential backoff and jitter, through an injectable ``sleep`` so tests run
instantly. Anything else a user must fix (a missing key, an unknown model, an endpoint that stays
unreachable) is a :class:`~kernelwright.errors.UsageError`: one sentence, exit 2.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, TypeVar

from kernelwright.errors import UsageError

T = TypeVar("T")


@dataclass(frozen=True)
class Completion:
    """One reply: its text and what it cost in tokens."""

    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str = ""
    attempts: int = 1


class Provider(Protocol):
    """``complete`` is the whole contract; ``label`` names the provider in logs and the store (never a key)."""

    label: str
    model: str

    def complete(self, system: str, messages: list[dict[str, str]], *, max_tokens: int,
                 temperature: float) -> Completion: ...


class Transient(Exception):
    """A failure worth retrying: HTTP 429, 5xx, a dropped connection or a timeout."""

    def __init__(self, message: str, *, retry_after: float | None = None, unreachable: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.unreachable = unreachable


@dataclass
class RetryPolicy:
    """Exponential backoff: ``base_s · 2^(attempt-1)`` capped at ``max_s``, plus up to 25 % jitter; a
    server's ``retry-after`` wins when it is longer."""

    attempts: int = 6
    base_s: float = 1.0
    max_s: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    slept: list[float] = field(default_factory=list, repr=False)  # what it waited, for logs and tests

    def delay(self, attempt: int, retry_after: float | None) -> float:
        wait = min(self.max_s, self.base_s * 2 ** (attempt - 1)) * (1 + 0.25 * random.random())
        return max(wait, retry_after or 0.0)


def with_retries(call: Callable[[], T], policy: RetryPolicy, *, what: str) -> tuple[T, int]:
    """``call()`` until it succeeds or ``policy.attempts`` transient failures; returns (value, attempts)."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return call(), attempt
        except Transient as exc:
            if attempt == policy.attempts:
                if exc.unreachable:
                    raise UsageError(f"Cannot reach {what} after {attempt} attempts ({exc}); check that the "
                                     "server is running and the URL is right.") from None
                raise UsageError(f"{what} kept failing after {attempt} attempts ({exc}); try again later or "
                                 "lower the parallelism (--samples).") from None
            wait = policy.delay(attempt, exc.retry_after)
            policy.slept.append(wait)
            policy.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def require_extra(module: str, provider: str):
    """Import an SDK lazily; a missing one is a usage error naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"The {provider} provider needs the `{module}` package; install it with "
                         "`pip install 'kernelwright[llm]'`.") from None


def retry_after_seconds(headers) -> float | None:
    """A ``retry-after`` header in seconds, when the server sent a number."""
    try:
        value = headers.get("retry-after") if headers is not None else None
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
