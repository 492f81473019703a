"""Faults on a real device: how long a hanging candidate takes to be rejected, and whether any worker
outlives a kernelwright that is interrupted (SIGINT, SIGTERM, SIGHUP) or killed (SIGKILL).

    python scripts/faults.py [--device cuda] [--out DIR]

Prints one line per check and writes faults.json under --out. The CPU tests (tests/sandbox) cover the
same on the interpreter; this is the GPU run of it, where a hung kernel cannot be interrupted from Python.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HANG = ROOT / "tests" / "corpus" / "crash_hangs.py"


def workers(scratch: Path) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and b"kernelwright.sandbox.worker" in argv and str(scratch).encode() in argv:
            found.append(int(pid))
    return found


def start(device: str, scratch: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(scratch)}
    return subprocess.Popen([sys.executable, "-m", "kernelwright", "verify", "rmsnorm", str(HANG), "--device", device,
                             *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def hang_verdict(device: str) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        started = time.monotonic()
        proc = start(device, Path(scratch), "--json")
        out, _ = proc.communicate(timeout=600)
        seconds = time.monotonic() - started
    try:
        failures = json.loads(out)["failures"]
    except (ValueError, KeyError):
        failures = [{"check": "unparsed", "message": out.decode(errors="replace")[-300:]}]
    return {"check": "hang_verdict", "exit": proc.returncode, "seconds": round(seconds, 1),
            "reason": failures[0]["check"] if failures else None,
            "message": failures[0]["message"][:300] if failures else ""}


def interrupted(device: str, sig: signal.Signals) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        proc = start(device, root)
        until = time.monotonic() + 120
        while not workers(root) and time.monotonic() < until and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(3)  # inside the candidate's hanging call
        before = len(workers(root))
        proc.send_signal(sig)
        time.sleep(5)
        after = workers(root)
        for pid in after:  # leave the machine clean whatever the verdict
            os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()
    return {"check": f"SIG{sig.name.removeprefix('SIG')}", "workers_before": before, "workers_5s_after": len(after)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=Path("out/faults"))
    args = parser.parse_args()
    rows = [hang_verdict(args.device)]
    print(json.dumps(rows[-1]), flush=True)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL):
        rows.append(interrupted(args.device, sig))
        print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "faults.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
