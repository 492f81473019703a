"""SIGKILL in the middle of a session, then a resume that repeats no finished LLM call or evaluation."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from _killable_session import main as run_uninterrupted
from fakes import EXAMPLE, Counter, fake_bench, fake_verify, kernel, scripted_answer

from kernelwright.agents import Budget, ScriptedProvider, Strategy, run_session
from kernelwright.agents.evaluate import Evaluator
from kernelwright.agents.llm.scripted import _role_of
from kernelwright.store import sha256

SCRIPT = Path(__file__).with_name("_killable_session.py")


def counts(db: Path) -> tuple[set, set]:
    if not db.exists():
        return set(), set()
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        keys = {k for (k,) in con.execute("SELECT call_key FROM llm_calls")}
        evaluated = set(con.execute("SELECT c.source_sha, e.kind FROM evaluations e JOIN candidates c "
                                    "ON c.id = e.candidate_id").fetchall())
        return keys, evaluated
    except sqlite3.OperationalError:
        return set(), set()
    finally:
        con.close()


def test_sigkill_then_resume_repeats_nothing_finished(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(out), "0.4"], start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # kill once round 1 has calls and evaluations on record
            keys, evaluated = counts(out / "run.sqlite")
            if len(keys) >= 4 and len(evaluated) >= 3:
                break
            assert proc.poll() is None, "the session ended before it could be killed"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    done_keys, done_evals = counts(out / "run.sqlite")
    assert done_keys and done_evals

    asked, verified, benched = [], Counter(), Counter()

    class Recording(ScriptedProvider):
        def complete(self, system, messages, **kw):
            asked.append(_role_of(system))
            return super().complete(system, messages, **kw)

    # same label as the killed session's provider, so the session is found and resumed
    provider = Recording(scripted_answer)
    evaluator = Evaluator("relu_squared", "cpu", verify_fn=fake_verify(verified), bench_fn=fake_bench(benched))
    result = run_session("relu_squared", provider=provider, out=out, evaluator=evaluator,
                         seeds=[("examples/relu_squared.py", kernel(EXAMPLE, 0.9))], budget=Budget(candidates=20),
                         strategy=Strategy(samples=2, rounds=3, variants=1))
    con = sqlite3.connect(out / "run.sqlite")
    assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1  # resumed, not restarted
    keys_after = [k for (k,) in con.execute("SELECT call_key FROM llm_calls")]
    assert len(keys_after) == len(set(keys_after))
    assert asked and len(asked) == len(set(keys_after) - done_keys)  # only unfinished calls were made
    redone = {(sha256(s), "verify") for s in verified.calls} | {(sha256(s), "bench") for s in benched.calls}
    assert not (redone & done_evals)  # no finished evaluation was repeated

    # and the resumed session ends where an uninterrupted one ends
    run_uninterrupted(str(tmp_path / "whole"), 0.0)
    whole = sqlite3.connect(tmp_path / "whole" / "run.sqlite")
    assert (out / "best.py").read_text() == (tmp_path / "whole" / "best.py").read_text()
    assert result.best == "r02-s00"
    assert sorted(keys_after) == sorted(k for (k,) in whole.execute("SELECT call_key FROM llm_calls"))
