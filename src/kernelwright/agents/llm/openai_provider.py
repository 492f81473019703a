"""OpenAI models, and any OpenAI-compatible server (vLLM, Ollama, llama.cpp, OpenRouter), through the
official ``openai`` SDK (the ``llm`` extra)."""

from __future__ import annotations

import os
from typing import Any, Mapping
from urllib.parse import urlparse

from kernelwright.agents.llm.base import Completion, RetryPolicy, require_extra, with_retries
from kernelwright.agents.llm.sdk_errors import translate
from kernelwright.errors import UsageError

KEY_ENV = "OPENAI_API_KEY"
# A compatible server gets its own key variable: OPENAI_API_KEY is never sent to a third-party URL.
COMPATIBLE_KEY_ENV = "OPENAI_COMPATIBLE_API_KEY"
OPENROUTER_KEY_ENV = "OPENROUTER_API_KEY"
NO_KEY = "no-key"  # local servers ignore the key, the SDK insists on one


class OpenAIProvider:
    """``openai:MODEL`` (key from ``OPENAI_API_KEY``) or, with ``base_url``, ``openai-compatible:URL:MODEL``
    (key from ``OPENAI_COMPATIBLE_API_KEY``, or ``OPENROUTER_API_KEY`` for openrouter.ai, or none)."""

    def __init__(self, model: str, *, base_url: str | None = None, env: Mapping[str, str] = os.environ,
                 timeout_s: float = 600.0, retry: RetryPolicy | None = None, http_client: Any = None,
                 check_model: bool = True):
        self.sdk = require_extra("openai", "openai")
        self.model = model
        self.base_url = base_url
        if base_url is None:
            key, self.key_env = env.get(KEY_ENV), KEY_ENV
            if not key:
                raise UsageError(f"The openai provider needs an API key; set {KEY_ENV}.")
            self.label = f"openai:{model}"
        else:
            host = urlparse(base_url).hostname or ""
            self.key_env = OPENROUTER_KEY_ENV if host.endswith("openrouter.ai") else COMPATIBLE_KEY_ENV
            key = env.get(self.key_env) or env.get(COMPATIBLE_KEY_ENV) or NO_KEY
            self.label = f"openai-compatible:{base_url}:{model}"
        self.retry = retry or RetryPolicy()
        self._client = self.sdk.OpenAI(api_key=key, base_url=base_url, timeout=timeout_s, max_retries=0,
                                       http_client=http_client)
        if base_url is not None and check_model:
            self._check_model()

    def _check_model(self) -> None:
        """Fail early, in one sentence, when a compatible server is down or does not serve the model.
        Servers without a model list (a 404 on /models) are given the benefit of the doubt."""
        def call():
            try:
                return [m.id for m in self._client.models.list()]
            except self.sdk.NotFoundError:
                return None
            except self.sdk.APIError as exc:
                raise translate(self.sdk, exc, label=self.base_url, model=self.model, key_env=self.key_env) from None

        short = RetryPolicy(attempts=min(3, self.retry.attempts), base_s=self.retry.base_s, sleep=self.retry.sleep)
        served, _ = with_retries(call, short, what=f"the OpenAI-compatible server at {self.base_url}")
        if served and self.model not in served:
            raise UsageError(f"The server at {self.base_url} does not serve model '{self.model}'; it serves: "
                             f"{', '.join(served[:10])}.")

    def complete(self, system: str, messages: list[dict[str, str]], *, max_tokens: int,
                 temperature: float) -> Completion:
        # OpenAI's newer models take max_completion_tokens; compatible servers know max_tokens.
        limit = {"max_tokens": max_tokens} if self.base_url else {"max_completion_tokens": max_tokens}
        params = {} if self.base_url is None and self.model.startswith(("o1", "o3", "o4", "gpt-5")) else {
            "temperature": temperature}

        def call():
            try:
                return self._client.chat.completions.create(
                    model=self.model, messages=[{"role": "system", "content": system}, *messages], **limit, **params)
            except self.sdk.APIError as exc:
                raise translate(self.sdk, exc, label=self.base_url or "OpenAI", model=self.model,
                                key_env=self.key_env) from None

        reply, attempts = with_retries(call, self.retry, what=self.base_url or f"the OpenAI API ({self.model})")
        if not reply.choices:
            raise UsageError(f"{self.label} answered with no choices; check that the server implements chat completions.")
        choice = reply.choices[0]
        usage = reply.usage
        return Completion(text=choice.message.content or "", model=reply.model or self.model,
                          input_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                          output_tokens=getattr(usage, "completion_tokens", 0) or 0,
                          stop_reason=choice.finish_reason or "", attempts=attempts)
