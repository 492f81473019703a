"""The corpus: every known-bad candidate is rejected for its stated reason, every control and every
bundled example is accepted.

Corpus files start with ``# <what it does wrong>`` then header lines ``# expect: <check>[|<check>...]``
(the named check that must be among the failures, or ``accepted``), ``# task: <bundled task>``, and
optionally ``# gpu: yes`` (GPU-only: run by tests/test_gpu.py) and ``# static: off`` (verify with the
static policy switched off, to show that a dynamic check catches the cheat on its own)."""

import re

import pytest

from conftest import CORPUS, EXAMPLES
from kernelwright.sandbox.runner import Limits
from kernelwright.tasks import bundled_names
from kernelwright.verify import verify

CONTROLS = CORPUS / "controls"
BAD_SHAPES = 4  # a bad candidate is caught on any shape; fewer shapes keep the corpus fast


def header(path):
    lines = path.read_text().splitlines()[:8]
    fields = dict(re.match(r"#\s*(\w+):\s*(.+)", line).groups() for line in lines[1:] if re.match(r"#\s*\w+:", line))
    return lines[0], fields


def corpus_files(folder, gpu=False):
    return sorted(p for p in folder.glob("*.py") if bool(header(p)[1].get("gpu")) == gpu)


def check_bad(path, device):
    first_line, fields = header(path)
    assert first_line.startswith("# ") and len(first_line) > 10, "the first line must say what the candidate does wrong"
    result = verify(fields["task"], path, device=device, limits=Limits(timeout_s=60), shapes=BAD_SHAPES,
                    static_policy=fields.get("static", "on") != "off")
    assert not result.accepted
    found = {f["check"] for f in result.failures}
    expected = set(fields["expect"].split("|"))
    assert expected & found, f"expected {sorted(expected)}, got {sorted(found)}: {result.failures[:2]}"
    for failure in result.failures:
        assert failure["message"]
    return result


def check_control(path, device):
    _, fields = header(path)
    assert fields["expect"] == "accepted"
    result = verify(fields["task"], path, device=device)
    assert result.accepted, [(f["check"], f["message"]) for f in result.failures[:3]]
    return result


@pytest.mark.parametrize("path", corpus_files(CORPUS), ids=lambda p: p.stem)
def test_bad_candidate_is_rejected_for_its_reason(path):
    check_bad(path, "cpu")


@pytest.mark.parametrize("path", corpus_files(CONTROLS), ids=lambda p: p.stem)
def test_control_is_accepted(path):
    check_control(path, "cpu")


def test_corpus_is_large_and_spread_over_tasks():
    bad = [header(p)[1] for p in CORPUS.glob("*.py")]
    controls = [header(p)[1] for p in CONTROLS.glob("*.py")]
    assert len(bad) >= 30 and len(controls) >= 10
    assert len({b["task"] for b in bad}) >= 6
    assert {b["task"] for b in bad} <= set(bundled_names()) and {c["task"] for c in controls} <= set(bundled_names())
    assert any(c.get("gpu") for c in controls) and any(b.get("gpu") for b in bad)


def test_static_policy_alone_would_miss_the_evasive_cheats_the_dynamic_checks_catch():
    from kernelwright.verify.static import check_source

    for name in ("cheat_patch_timer_evasive.py", "cheat_gc_evasive.py", "cheat_patch_do_bench_evasive.py"):
        assert check_source((CORPUS / name).read_text()) == [], name


@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_example_is_accepted(name):
    result = verify(name, EXAMPLES / f"{name}.py", device="cpu")
    assert result.accepted, [f["message"] for f in result.failures[:3]]
    assert len({tuple(c["knobs"].values()) for c in result.cases}) >= 8
    distributions = {c["distribution"] for c in result.cases}
    assert {"task", "normal"} <= distributions and {"extreme", "special"} <= distributions
    assert all(c["launches"] >= 1 for c in result.cases)
