#!/usr/bin/env python3
"""One line per fact from a `kernelwright verify --json` or `kernelwright bench --json` result file.

usage: summarize.py RESULT.json
"""

import json
import sys


def verify_lines(d):
    verdict = "ACCEPTED" if d["accepted"] else "REJECTED"
    yield f"{verdict}: {d['task']} <- {d['candidate']} on {d['device']}, {len(d['cases'])} cases, {d['seconds']:.1f} s"
    for f in d["failures"][:10]:
        case = f.get("case") or {}
        repro = ", ".join(f"{k}={case[k]}" for k in ("knobs", "dtype", "distribution", "seed") if k in case)
        yield f"  x {f['check']}: {f['message']}" + (f"  [{repro}]" if repro else "")


def bench_lines(d):
    yield f"{'ok' if d['ok'] else 'FAILED re-check'}: {d['task']} <- {d['candidate']} on {d['device']}"
    if not d["timings_meaningful"]:
        yield "  timings are NOT meaningful here (Triton interpreter on a CPU): run on a GPU for numbers"
    for r in d["rows"]:
        best = r["fastest_baseline"]
        ms = r["timings"]["candidate"]["median_ms"]
        ratio = f"{r['speedup'][best]:.2f}x vs {best}" if best else "no baseline"
        copy = f", {100 * r['fraction_of_copy']:.0f}% of copy" if r["fraction_of_copy"] else ""
        yield f"  {r['knobs']} {r['dtype']}: {ms:.4f} ms, {ratio}, {r['gbps']:.0f} GB/s{copy}, {r['bound']}"
    for f in d["failures"]:
        yield f"  x {f['check']}: {f['message']}"


def main(path):
    with open(path) as fh:
        d = json.load(fh)
    lines = verify_lines(d) if d.get("schema", "").startswith("kernelwright.verify") else bench_lines(d)
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: summarize.py RESULT.json")
    main(sys.argv[1])
