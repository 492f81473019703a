"""The tuner: parameter variants of the best kernel (``candidate_variants.json``).

It works on the source: block sizes, ``num_warps`` and ``num_stages`` that appear as literals are halved
and doubled one at a time, within sane bounds. Each variant is a full candidate file, verified and
benchmarked like any other, so a variant that breaks the kernel is just a rejection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WARPS = re.compile(r"\bnum_warps\s*=\s*(\d+)")
_STAGES = re.compile(r"\bnum_stages\s*=\s*(\d+)")
_BLOCK_LINE = re.compile(r"block|BLOCK|Block")
_POW2 = re.compile(r"(?<![\w.])(\d+)(?![\w.])")


@dataclass(frozen=True)
class Variant:
    source: str
    changes: tuple[dict, ...]

    @property
    def label(self) -> str:
        return ",".join(f"{c['what']}:{c['from']}->{c['to']}" for c in self.changes)


def _sites(source: str) -> list[tuple[str, int, int, int, list[int]]]:
    """(what, start, end, value, alternatives) for every tunable literal."""
    sites = []
    for what, pattern, alternatives in (("num_warps", _WARPS, lambda v: [v // 2, v * 2]),
                                        ("num_stages", _STAGES, lambda v: [v - 1, v + 1])):
        for m in pattern.finditer(source):
            v = int(m.group(1))
            sites.append((what, m.start(1), m.end(1), v, alternatives(v)))
    offset = 0
    for line in source.splitlines(keepends=True):
        if _BLOCK_LINE.search(line) and not line.lstrip().startswith("#"):
            for m in _POW2.finditer(line):
                v = int(m.group(1))
                inside_warps = any(s[1] <= offset + m.start(1) < s[2] for s in sites)
                if v >= 64 and v & (v - 1) == 0 and not inside_warps:
                    sites.append(("block", offset + m.start(1), offset + m.end(1), v, [v // 2, v * 2]))
        offset += len(line)
    bounds = {"num_warps": (1, 32), "num_stages": (1, 6), "block": (16, 65536)}
    return [(w, s, e, v, [a for a in alts if bounds[w][0] <= a <= bounds[w][1]]) for w, s, e, v, alts in sites]


def variants(source: str, *, limit: int = 4) -> list[Variant]:
    """Up to ``limit`` one-change variants, alternating between sites so each knob gets tried."""
    found = []
    sites = _sites(source)
    for step in range(2):
        for what, start, end, value, alts in sites:
            if step < len(alts):
                new = source[:start] + str(alts[step]) + source[end:]
                line = source.count("\n", 0, start) + 1
                found.append(Variant(new, ({"what": what, "line": line, "from": value, "to": alts[step]},)))
    unique: dict[str, Variant] = {}
    for v in found:
        unique.setdefault(v.source, v)
    return list(unique.values())[:limit]
