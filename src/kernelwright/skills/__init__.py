"""The bundled Agent Skills and their installer (``kernelwright skills add`` / ``skills list``).

Skills ship inside the package (``bundled/<name>/SKILL.md``, ``scripts/``, ``references/``) and are read
through importlib.resources, so installing them needs no network. The LLM team's prompts read the same
texts (``section``), so outside agents and the team learn from one place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kernelwright.errors import UsageError

AGENTS = ("claude", "codex", "opencode")
TARGET_FLAGS = "--claude, --codex, --opencode or --dest DIR"


def _root():
    return resources.files("kernelwright.skills") / "bundled"


def bundled_names() -> list[str]:
    return sorted(p.name for p in _root().iterdir() if p.is_dir() and (p / "SKILL.md").is_file())


def skill_files(name: str) -> dict[str, bytes]:
    """Every file of a bundled skill, by path relative to its folder (caches left out)."""
    files: dict[str, bytes] = {}

    def walk(node, prefix: str) -> None:
        for child in node.iterdir():
            if child.name == "__pycache__" or child.name.endswith(".pyc"):
                continue
            rel = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, rel + "/")
            else:
                files[rel] = child.read_bytes()

    walk(_root() / name, "")
    return files


def skill_text(name: str) -> str:
    return (_root() / name / "SKILL.md").read_text(encoding="utf-8")


def section(skill: str, heading: str) -> str:
    """The body of the ``## heading`` section of a bundled skill's SKILL.md (up to the next ``## ``)."""
    lines = skill_text(skill).splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == f"## {heading}"), None)
    if start is None:
        raise KeyError(f"skill {skill!r} has no section {heading!r}")
    body = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        body.append(line)
    return "\n".join(body).strip()


def agent_dir(agent: str, *, global_: bool) -> Path:
    """Where an agent looks for skills: the project folder (cwd) or the user's, with ``global_``."""
    home = Path.home()
    if agent == "claude":
        config = os.environ.get("CLAUDE_CONFIG_DIR")
        return (Path(config) if config else home / ".claude") / "skills" if global_ else Path(".claude/skills")
    if agent == "codex":
        return home / ".agents/skills" if global_ else Path(".agents/skills")
    if agent == "opencode":
        return home / ".config/opencode/skills" if global_ else Path(".opencode/skills")
    raise UsageError(f"unknown agent {agent!r}: use one of {', '.join(AGENTS)}.")


def targets(agents: list[str], dest: Path | None, *, global_: bool) -> list[Path]:
    found = [agent_dir(a, global_=global_) for a in agents]
    if dest is not None:
        found.append(Path(dest))
    if not found:
        raise UsageError(f"say where to install the skills: {TARGET_FLAGS} (add --global for your user's folder).")
    return found


@dataclass(frozen=True)
class Installed:
    skill: str
    path: Path
    files: int


def add(agents: list[str], dest: Path | None = None, *, global_: bool = False, skills: list[str] | None = None,
        force: bool = False) -> list[Installed]:
    """Copy bundled skills into every target. Every target is checked before anything is written."""
    bundled = bundled_names()
    chosen = list(dict.fromkeys(skills or bundled))
    unknown = [s for s in chosen if s not in bundled]
    if unknown:
        raise UsageError(f"no bundled skill named {', '.join(unknown)}: choose from {', '.join(bundled)}.")
    places = targets(agents, dest, global_=global_)
    existing = [str(p / s) for p in places for s in chosen if (p / s).exists() or (p / s).is_symlink()]
    if existing and not force:
        raise UsageError(f"already installed: {', '.join(existing)}; pass --force to replace (nothing was written).")
    return [_install(s, p) for p in places for s in chosen]


def _install(skill: str, place: Path) -> Installed:
    # Written beside the target, then renamed: an agent never sees half a skill.
    files = skill_files(skill)
    place.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{skill}.", dir=place))
    try:
        for rel, data in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            if rel.startswith("scripts/"):
                path.chmod(0o755)
        final = place / skill
        if final.is_symlink() or final.is_file():
            final.unlink()
        elif final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{skill}.old.", dir=place))
            final.rename(old / skill)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
            return Installed(skill, final, len(files))
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Installed(skill, final, len(files))


def description(name: str) -> str:
    from kernelwright.skills.spec import frontmatter

    return str(frontmatter(skill_text(name))[0].get("description", ""))
