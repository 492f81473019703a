"""A provider that answers from a script: how tests (and dry runs) drive the agent team without a model.

``ScriptedProvider(answer)`` calls ``answer(role, system, messages)`` for each request; it also keeps
every request so a test can assert what a prompt carried.
"""

from __future__ import annotations

import threading
from typing import Callable

from kernelwright.agents.llm.base import Completion


class ScriptedProvider:
    label = "scripted"

    def __init__(self, answer: Callable[[str, str, list[dict[str, str]]], str], *, model: str = "scripted"):
        self.answer = answer
        self.model = model
        self.requests: list[tuple[str, list[dict[str, str]]]] = []
        self._lock = threading.Lock()

    def complete(self, system: str, messages: list[dict[str, str]], *, max_tokens: int,
                 temperature: float) -> Completion:
        with self._lock:
            self.requests.append((system, messages))
        text = self.answer(_role_of(system), system, messages)
        words = lambda s: max(1, len(s) // 4)  # noqa: E731 -- a rough, deterministic token count
        return Completion(text, self.model, sum(words(m["content"]) for m in messages) + words(system), words(text),
                          "end_turn")


def _role_of(system: str) -> str:
    """Each role's system prompt starts with 'You are the kernelwright <role>'."""
    marker = "You are the kernelwright "
    return system[len(marker):].split()[0].strip(".,:") if system.startswith(marker) else ""
