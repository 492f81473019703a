from typer.testing import CliRunner

from kernelwright.cli import app


def test_missing_key_and_bad_agent_are_exit_2_with_one_sentence(monkeypatch, tmp_path):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["optimize", "relu_squared", "--agent", "anthropic:claude-x", "--out",
                                 str(tmp_path / "run")])
    assert result.exit_code == 2 and "ANTHROPIC_API_KEY" in result.output
    assert not (tmp_path / "run").exists()  # nothing written half-way
    result = runner.invoke(app, ["optimize", "relu_squared", "--agent", "gpt:4"])
    assert result.exit_code == 2 and "Unknown agent" in result.output
    result = runner.invoke(app, ["optimize", "relu_squared", "--agent", f"replay:{tmp_path}"])
    assert result.exit_code == 2 and "run.sqlite" in result.output


def test_budget_flags_reach_the_conductor(monkeypatch, tmp_path):
    """The CLI calls the one entry point; it picks the LLM team, which gets every budget flag."""
    from kernelwright.run.result import OptimizeResult

    seen = {}

    def fake(task, **kwargs):
        seen.update(kwargs)
        return OptimizeResult(task=task.name, agent=kwargs["agent"], out=tmp_path, device="cpu", best_path=None,
                              accepted=False, message="no candidate was accepted", verdict={"status": "none"},
                              session={"stop_reason": "tokens", "candidates": 0, "accepted": 0,
                                       "totals": {"dollars": 0.0, "calls_without_price": 0, "calls": 0, "tokens": 0}})

    monkeypatch.setattr("kernelwright.agents.session.run_llm_team", fake)
    result = CliRunner().invoke(app, ["optimize", "rmsnorm", "--agent", "replay:x", "--budget", "5", "--max-tokens",
                                      "1000", "--max-dollars", "0.5", "--max-minutes", "3", "--samples", "2",
                                      "--rounds", "4", "--device", "cpu"])
    assert result.exit_code == 1  # no accepted kernel in the fake result
    assert {k: seen[k] for k in ("candidates", "tokens", "dollars", "minutes", "samples", "rounds")} == dict(
        candidates=5, tokens=1000, dollars=0.5, minutes=3.0, samples=2, rounds=4)
    assert "stopped: tokens" in result.output and "NO VERIFIED KERNEL" in result.output
