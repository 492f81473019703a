"""`kernelwright skills add` writes exactly the bundled files into each agent's folder; refusals write nothing."""

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernelwright.cli import app
from kernelwright.skills import bundled_names, skill_files

runner = CliRunner()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.chdir(tmp_path / "project" if (tmp_path / "project").mkdir() is None else tmp_path)
    return tmp_path


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _expected(skills) -> dict[str, bytes]:
    return {f"{s}/{rel}": data for s in skills for rel, data in skill_files(s).items()}


@pytest.mark.parametrize("flags, folder", [
    (["--claude"], "project/.claude/skills"),
    (["--codex"], "project/.agents/skills"),
    (["--opencode"], "project/.opencode/skills"),
    (["--claude", "--global"], "home/.claude/skills"),
    (["--codex", "--global"], "home/.agents/skills"),
    (["--opencode", "--global"], "home/.config/opencode/skills"),
    (["--dest", "elsewhere"], "project/elsewhere"),
])
def test_add_writes_exactly_the_bundled_files(home, flags, folder):
    result = runner.invoke(app, ["skills", "add", *flags])
    assert result.exit_code == 0, result.output
    assert _tree(home / folder) == _expected(bundled_names())
    assert os.access(home / folder / "kernelwright-harness/scripts/verify.sh", os.X_OK)


def test_global_claude_honours_claude_config_dir(home, monkeypatch):
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home / "cfg"))
    result = runner.invoke(app, ["skills", "add", "--claude", "--global", "--skill", "triton-kernels"])
    assert result.exit_code == 0, result.output
    assert _tree(home / "cfg/skills") == _expected(["triton-kernels"])
    assert not (home / "home").exists()


def test_no_target_is_a_usage_error(home):
    result = runner.invoke(app, ["skills", "add"])
    assert result.exit_code == 2
    assert "--claude, --codex, --opencode or --dest" in result.output
    assert _tree(home) == {}


def test_an_existing_skill_refuses_every_target_and_force_replaces(home):
    (home / "project/.opencode/skills/cuda-kernels").mkdir(parents=True)
    (home / "project/.opencode/skills/cuda-kernels/mine.md").write_text("keep me")
    result = runner.invoke(app, ["skills", "add", "--claude", "--opencode"])
    assert result.exit_code == 2 and "--force" in result.output
    assert _tree(home) == {"project/.opencode/skills/cuda-kernels/mine.md": b"keep me"}  # nothing else written
    result = runner.invoke(app, ["skills", "add", "--claude", "--opencode", "--force"])
    assert result.exit_code == 0, result.output
    assert _tree(home / "project/.opencode/skills") == _expected(bundled_names())
    assert not [p for p in (home / "project/.opencode/skills").iterdir() if p.name.startswith(".")]  # no temp left


def test_an_unknown_skill_is_a_usage_error(home):
    result = runner.invoke(app, ["skills", "add", "--codex", "--skill", "nope"])
    assert result.exit_code == 2 and "kernelwright-harness" in result.output
    assert _tree(home) == {}


def test_list_names_every_skill_and_folder(home):
    result = runner.invoke(app, ["skills", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for text in [*bundled_names(), ".claude/skills", ".agents/skills", ".opencode/skills", ".config/opencode/skills"]:
        assert text in result.output
