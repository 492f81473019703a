"""Every bundled skill is valid under the Agent Skills specification, and the validator catches each break."""

from pathlib import Path

import pytest

from kernelwright.skills import bundled_names
from kernelwright.skills.spec import validate

BUNDLED = Path(__file__).parents[2] / "src/kernelwright/skills/bundled"


def test_the_four_skills_are_bundled():
    assert bundled_names() == ["cuda-kernels", "kernel-packaging", "kernelwright-harness", "triton-kernels"]


@pytest.mark.parametrize("name", bundled_names())
def test_bundled_skill_is_valid(name):
    assert validate(BUNDLED / name) == []


def _skill(tmp_path, front: str, body: str = "Body.\n", folder: str = "my-skill") -> Path:
    path = tmp_path / folder
    path.mkdir()
    (path / "SKILL.md").write_text(f"---\n{front}\n---\n{body}")
    return path


@pytest.mark.parametrize("front, body, folder, expected", [
    ("name: my-skill\ndescription: d\nallowed_tools: x", "b\n", "my-skill", "not in the specification"),
    ("name: other\ndescription: d", "b\n", "my-skill", "differs from its folder"),
    ("name: my--skill\ndescription: d", "b\n", "my--skill", "single inner hyphens"),
    ("name: My-skill\ndescription: d", "b\n", "My-skill", "lowercase"),
    ("name: my-skill\ndescription: ''", "b\n", "my-skill", "description is missing"),
    ("name: my-skill\ndescription: " + "x" * 1025, "b\n", "my-skill", "more than 1024"),
    ("name: my-skill\ndescription: d", "line\n" * 501, "my-skill", "more than 500"),
    ("name: my-skill\ndescription: d", "see references/a/b.md\n", "my-skill", "more than one level deep"),
    ("name: my-skill\ndescription: d", "see scripts/run.py\n", "my-skill", "missing"),
])
def test_validator_reports_each_break(tmp_path, front, body, folder, expected):
    problems = validate(_skill(tmp_path, front, body, folder))
    assert any(expected in p for p in problems), problems


def test_no_frontmatter_is_an_error(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "SKILL.md").write_text("# just markdown\n")
    assert "must start with" in validate(tmp_path / "s")[0]


def test_metadata_map_and_references_that_exist_pass(tmp_path):
    path = _skill(tmp_path, "name: my-skill\ndescription: d\nmetadata:\n  author: me\n  version: \"1\"",
                  "see references/notes.md\n")
    (path / "references").mkdir()
    (path / "references" / "notes.md").write_text("x")
    assert validate(path) == []
