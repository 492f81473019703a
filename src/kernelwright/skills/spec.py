"""Checks of the Agent Skills specification (agentskills.io), the ones ``skills-ref validate`` makes.

Frontmatter is parsed without a YAML library (core depends on none): flat ``key: value`` lines and one
nested ``metadata:`` map of strings, which is all the specification allows.
"""

from __future__ import annotations

import re
from pathlib import Path

ALLOWED_KEYS = {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
MAX_NAME, MAX_DESCRIPTION, MAX_COMPATIBILITY, MAX_BODY_LINES = 64, 1024, 500, 500
FILE_DIRS = ("scripts", "references", "assets")
# A relative path the body points at: `references/x.md`, (scripts/y.py), or deeper ones, which are errors.
LINK_RE = re.compile(r"(?<![\w./-])((?:scripts|references|assets)/[\w./-]*[\w])")


def _scalar(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    return raw


def frontmatter(text: str) -> tuple[dict[str, object], str]:
    """(keys, body) of a SKILL.md; raises ValueError when there is no well-formed frontmatter."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise ValueError("SKILL.md must start with a '---' line of YAML frontmatter")
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        raise ValueError("SKILL.md frontmatter has no closing '---' line")
    keys: dict[str, object] = {}
    nested: dict[str, str] | None = None
    for line in lines[1:end]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith((" ", "\t")):
            if nested is None or ":" not in line:
                raise ValueError(f"frontmatter line {line!r} is indented outside a map")
            k, v = line.strip().split(":", 1)
            nested[k.strip()] = _scalar(v)
            continue
        if ":" not in line:
            raise ValueError(f"frontmatter line {line!r} is not 'key: value'")
        k, v = line.split(":", 1)
        if v.strip():
            keys[k.strip()], nested = _scalar(v), None
        else:
            nested = keys[k.strip()] = {}
    return keys, "\n".join(lines[end + 1:])


def validate(folder: Path) -> list[str]:
    """Every way the skill in ``folder`` breaks the specification; empty when it is valid."""
    folder = Path(folder)
    skill_md = folder / "SKILL.md"
    if not skill_md.is_file():
        return [f"{folder} has no SKILL.md"]
    try:
        keys, body = frontmatter(skill_md.read_text(encoding="utf-8"))
    except ValueError as exc:
        return [str(exc)]
    problems = [f"frontmatter key {k!r} is not in the specification" for k in keys if k not in ALLOWED_KEYS]
    problems += _name_problems(keys.get("name"), folder.name)
    problems += _description_problems(keys.get("description"))
    compat = keys.get("compatibility")
    if compat is not None and not (isinstance(compat, str) and 0 < len(compat) <= MAX_COMPATIBILITY):
        problems.append(f"compatibility must be 1 to {MAX_COMPATIBILITY} characters")
    meta = keys.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        problems.append("metadata must be a map of string keys to string values")
    n_lines = len(body.strip("\n").splitlines())
    if n_lines > MAX_BODY_LINES:
        problems.append(f"body has {n_lines} lines, more than {MAX_BODY_LINES}")
    problems += _reference_problems(folder, body)
    return problems


def _name_problems(name: object, folder_name: str) -> list[str]:
    if not isinstance(name, str) or not name:
        return ["name is missing"]
    problems = []
    if len(name) > MAX_NAME:
        problems.append(f"name is longer than {MAX_NAME} characters")
    if not NAME_RE.fullmatch(name):
        problems.append(f"name {name!r} must be lowercase letters, digits and single inner hyphens")
    if name != folder_name:
        problems.append(f"name {name!r} differs from its folder {folder_name!r}")
    return problems


def _description_problems(description: object) -> list[str]:
    if not isinstance(description, str) or not description.strip():
        return ["description is missing or empty"]
    if len(description) > MAX_DESCRIPTION:
        return [f"description has {len(description)} characters, more than {MAX_DESCRIPTION}"]
    return []


def _reference_problems(folder: Path, body: str) -> list[str]:
    problems = []
    for ref in sorted(set(LINK_RE.findall(body))):
        if ref.count("/") != 1:
            problems.append(f"{ref} is more than one level deep below the skill folder")
        elif not (folder / ref).is_file():
            problems.append(f"{ref} is referenced from SKILL.md but missing")
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if path.is_file() and "__pycache__" not in rel.parts and len(rel.parts) > 2:
            problems.append(f"{rel} is more than one level deep below the skill folder")
        if path.is_file() and len(rel.parts) == 2 and rel.parts[0] not in FILE_DIRS:
            problems.append(f"{rel} is in {rel.parts[0]}/, not one of {', '.join(FILE_DIRS)}")
    return problems
