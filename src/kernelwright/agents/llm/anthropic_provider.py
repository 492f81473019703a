"""Anthropic models through the official ``anthropic`` SDK (the ``llm`` extra)."""

from __future__ import annotations

import inspect
import os
from typing import Any, Mapping

from kernelwright.agents.llm.base import Completion, RetryPolicy, require_extra, with_retries
from kernelwright.agents.llm.sdk_errors import translate
from kernelwright.errors import UsageError

KEY_ENV = "ANTHROPIC_API_KEY"


class AnthropicProvider:
    """``anthropic:MODEL``. The key comes from ``ANTHROPIC_API_KEY``; the SDK's own retries are off so
    that :func:`with_retries` (testable, logged) is the only retry loop."""

    def __init__(self, model: str, *, env: Mapping[str, str] = os.environ, timeout_s: float = 600.0,
                 retry: RetryPolicy | None = None, http_client: Any = None, base_url: str | None = None):
        self.sdk = require_extra("anthropic", "anthropic")
        key = env.get(KEY_ENV)
        if not key:
            raise UsageError(f"The anthropic provider needs an API key; set {KEY_ENV}.")
        self.model = model
        self.label = f"anthropic:{model}"
        self.retry = retry or RetryPolicy()
        self._client = self.sdk.Anthropic(api_key=key, timeout=timeout_s, max_retries=0, http_client=http_client,
                                          base_url=base_url)
        # Newer SDKs (and models) no longer take a temperature; sampling at their default still varies samples.
        self._takes_temperature = "temperature" in inspect.signature(self._client.messages.create).parameters

    def complete(self, system: str, messages: list[dict[str, str]], *, max_tokens: int,
                 temperature: float) -> Completion:
        def call():
            try:
                extra = {"temperature": temperature} if self._takes_temperature else {}
                return self._client.messages.create(model=self.model, system=system, messages=messages,
                                                    max_tokens=max_tokens, **extra)
            except self.sdk.APIError as exc:
                raise translate(self.sdk, exc, label="Anthropic", model=self.model, key_env=KEY_ENV) from None

        reply, attempts = with_retries(call, self.retry, what=f"the Anthropic API ({self.model})")
        text = "".join(getattr(block, "text", "") for block in reply.content)
        return Completion(text=text, model=reply.model or self.model, input_tokens=reply.usage.input_tokens or 0,
                          output_tokens=reply.usage.output_tokens or 0, stop_reason=reply.stop_reason or "",
                          attempts=attempts)
