"""What a call cost, from a price table in US dollars per million tokens.

The defaults are list prices when this was written; prices change, so a user's file (JSON or TOML,
``--prices FILE``) overrides or extends them. A key matches a model by the longest prefix; a model
that matches nothing has an unknown cost (``None``) and a dollar budget cannot be enforced for it.

File format (JSON shown; TOML uses the same keys as tables)::

    {"claude-sonnet-4": {"input": 3.0, "output": 15.0}, "my-local-model": {"input": 0, "output": 0}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kernelwright.errors import UsageError

DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "claude-opus-4": (15.0, 75.0), "claude-sonnet-4": (3.0, 15.0), "claude-3-7-sonnet": (3.0, 15.0),
    "claude-3-5-sonnet": (3.0, 15.0), "claude-3-5-haiku": (0.8, 4.0), "claude-haiku-4": (1.0, 5.0),
    "gpt-4o-mini": (0.15, 0.6), "gpt-4o": (2.5, 10.0), "gpt-4.1-mini": (0.4, 1.6), "gpt-4.1-nano": (0.1, 0.4),
    "gpt-4.1": (2.0, 8.0), "o3-mini": (1.1, 4.4), "o4-mini": (1.1, 4.4), "o3": (2.0, 8.0),
    "gpt-5-mini": (0.25, 2.0), "gpt-5-nano": (0.05, 0.4), "gpt-5": (1.25, 10.0),
}


@dataclass(frozen=True)
class PriceTable:
    prices: dict[str, tuple[float, float]]
    local: bool = False  # a local OpenAI-compatible server: unknown models cost nothing

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        match = max((k for k in self.prices if model.startswith(k)), key=len, default=None)
        if match is None:
            return 0.0 if self.local else None
        price_in, price_out = self.prices[match]
        return (input_tokens * price_in + output_tokens * price_out) / 1e6


def load_prices(path: str | Path | None = None, *, local: bool = False) -> PriceTable:
    """The default table, overridden by ``path`` (JSON, or TOML when it ends in ``.toml``)."""
    prices = dict(DEFAULT_PRICES)
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text()
            if path.suffix == ".toml":
                try:
                    import tomllib
                except ImportError:  # Python 3.10
                    raise UsageError(f"TOML price files need Python 3.11 or later; write {path} as JSON.") from None
                data = tomllib.loads(text)
            else:
                data = json.loads(text)
            for model, entry in data.items():
                prices[model] = (float(entry["input"]), float(entry["output"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"Price file {path} is not a table of {{model: {{input: $/Mtok, output: $/Mtok}}}} "
                             f"({type(exc).__name__}: {exc}).") from None
    return PriceTable(prices, local=local)
