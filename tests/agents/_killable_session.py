"""A scripted session slow enough to be killed mid-run (run as a script by test_resume.py)."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fakes import EXAMPLE, fake_bench, fake_verify, kernel, scripted_answer  # noqa: E402

from kernelwright.agents import Budget, ScriptedProvider, Strategy, run_session  # noqa: E402
from kernelwright.agents.evaluate import Evaluator  # noqa: E402


def slow(fn, seconds):
    def wrapped(*args):
        time.sleep(seconds)
        return fn(*args)
    return wrapped


def main(out: str, delay: float) -> None:
    evaluator = Evaluator("relu_squared", "cpu", verify_fn=slow(fake_verify(), delay), bench_fn=fake_bench())
    run_session("relu_squared", provider=ScriptedProvider(slow(scripted_answer, delay)), out=out, evaluator=evaluator,
                seeds=[("examples/relu_squared.py", kernel(EXAMPLE, 0.9))], budget=Budget(candidates=20),
                strategy=Strategy(samples=2, rounds=3, variants=1))


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
