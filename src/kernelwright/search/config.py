"""One launch configuration of a generated kernel, frozen: the search ranks configurations and compares
them by value, so one must not change after it is ranked, and a misspelt field must fail where it is
written, not turn into a key that the kernel's ``config.get(...)`` silently ignores.

Outside Python (the run store's ``meta``, ``tuning_plan.json``, a generated file's ``CONFIGS``) a
configuration stays the plain dict of :meth:`LaunchConfig.as_dict`; :meth:`LaunchConfig.from_dict`
reads it back, including dicts stored by earlier versions (old run directories resume).
The fields are described in :mod:`kernelwright.search.variants`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Written only when they differ from their defaults, in this order (after the fields every configuration
# writes): the dicts the search stored before this class existed had exactly that form.
OPTIONAL = ("column", "split", "online", "accurate")


@dataclass(frozen=True)
class LaunchConfig:
    one_pass: bool = True
    block: int = 4096
    rows: int = 1
    warps: int = 4
    stages: int = 2
    programs_per_sm: int = 0
    column: bool = False
    split: int = 0
    online: bool = True
    accurate: bool = False

    def __post_init__(self) -> None:
        # a JSON string or float read back as a block size would only fail inside the kernel, much later
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = bool if f.type == "bool" else int
            if type(value) is not kind:
                raise TypeError(f"launch config field {f.name!r} must be {kind.__name__}, got {value!r}")

    def as_dict(self) -> dict[str, Any]:
        """The stored form: the six fields every configuration has, then the optional ones that are set."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in OPTIONAL}
        out.update((name, getattr(self, name)) for name in OPTIONAL if getattr(self, name) != _DEFAULTS[name])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LaunchConfig:
        """A stored configuration; a key that is no field is an error (a misspelling), a missing one takes
        its default (an optional field was written only when set)."""
        unknown = sorted(set(data) - set(_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown launch config key(s) {', '.join(map(repr, unknown))}; "
                             f"known: {', '.join(_DEFAULTS)}")
        return cls(**data)

    def replace(self, **changes: Any) -> LaunchConfig:
        """A variant of this configuration (an unknown field is a TypeError)."""
        return dataclasses.replace(self, **changes)


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(LaunchConfig)}


def as_config(cfg: LaunchConfig | Mapping[str, Any]) -> LaunchConfig:
    """A configuration from either form: callers outside the search may still hold a stored dict."""
    return cfg if isinstance(cfg, LaunchConfig) else LaunchConfig.from_dict(cfg)
