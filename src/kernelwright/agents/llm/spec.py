"""``--agent`` values, parsed at the edge into a frozen :class:`AgentSpec`, and the provider each names."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from kernelwright.errors import UsageError

Kind = Literal["offline", "anthropic", "openai", "openai-compatible", "replay"]
FORMS = ("offline", "anthropic:MODEL", "openai:MODEL", "openai-compatible:URL:MODEL", "replay:RUN_DIR")
# scheme://host[:port][/path-without-colons] : model   (a model name may itself hold colons: llama3:8b)
_COMPATIBLE = re.compile(r"(https?://[^/:\s]+(?::\d+)?(?:/[^:\s]*)?):(.+)")


@dataclass(frozen=True)
class AgentSpec:
    kind: Kind
    model: str = ""
    base_url: str | None = None
    run_dir: str | None = None

    @classmethod
    def parse(cls, text: str) -> "AgentSpec":
        kind, _, rest = text.partition(":")
        if text == "offline":
            return cls("offline")
        if kind in ("anthropic", "openai") and rest:
            return cls(kind, model=rest)
        if kind == "openai-compatible":
            match = _COMPATIBLE.fullmatch(rest)
            if match:
                return cls("openai-compatible", model=match.group(2), base_url=match.group(1).rstrip("/"))
            raise UsageError(f"'{text}' is not openai-compatible:URL:MODEL (for example "
                             "openai-compatible:http://127.0.0.1:8000/v1:Qwen2.5-Coder-32B).")
        if kind == "replay" and rest:
            return cls("replay", run_dir=rest)
        raise UsageError(f"Unknown agent '{text}'; use one of: {', '.join(FORMS)}.")

    def __str__(self) -> str:
        if self.kind == "openai-compatible":
            return f"openai-compatible:{self.base_url}:{self.model}"
        if self.kind == "replay":
            return f"replay:{self.run_dir}"
        return f"{self.kind}:{self.model}" if self.model else self.kind


def make_provider(spec: AgentSpec, *, env: Mapping[str, str] = os.environ, http_client: Any = None,
                  timeout_s: float = 600.0, retry=None):
    """The provider for ``spec`` (SDKs imported only here, and only the one needed)."""
    if spec.kind == "anthropic":
        from kernelwright.agents.llm.anthropic_provider import AnthropicProvider

        return AnthropicProvider(spec.model, env=env, timeout_s=timeout_s, retry=retry, http_client=http_client)
    if spec.kind in ("openai", "openai-compatible"):
        from kernelwright.agents.llm.openai_provider import OpenAIProvider

        return OpenAIProvider(spec.model, base_url=spec.base_url, env=env, timeout_s=timeout_s, retry=retry,
                              http_client=http_client)
    if spec.kind == "replay":
        from kernelwright.agents.llm.journal import ReplayProvider

        return ReplayProvider(spec.run_dir)
    raise UsageError(f"'{spec}' is not an LLM agent.")
