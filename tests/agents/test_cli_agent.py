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
