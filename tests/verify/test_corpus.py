"""The corpus of known-bad candidates is rejected for the stated reason; every example is accepted."""

import re

import pytest

from conftest import CORPUS, EXAMPLES
from kernelwright.sandbox.runner import Limits
from kernelwright.tasks import bundled_names
from kernelwright.verify import verify


def header(path):
    lines = path.read_text().splitlines()[:6]
    fields = dict(re.match(r"#\s*(\w+):\s*(.+)", line).groups() for line in lines[1:] if re.match(r"#\s*\w+:", line))
    return lines[0], fields


BAD = sorted(p for p in CORPUS.glob("*.py") if not header(p)[1].get("gpu"))


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_candidate_is_rejected_for_its_reason(path):
    first_line, fields = header(path)
    assert first_line.startswith("# "), "the first line must say what the candidate does wrong"
    result = verify(fields["task"], path, device="cpu", limits=Limits(timeout_s=30))
    assert not result.accepted
    found = {f["check"] for f in result.failures}
    assert fields["expect"] in found, f"expected {fields['expect']}, got {sorted(found)}: {result.failures[:2]}"
    for failure in result.failures:
        assert failure["message"]


@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_example_is_accepted(name):
    result = verify(name, EXAMPLES / f"{name}.py", device="cpu")
    assert result.accepted, [f["message"] for f in result.failures[:3]]
    assert len({tuple(c["knobs"].values()) for c in result.cases}) >= 8
    assert {c["dtype"] for c in result.cases} == set(result.cases and {c["dtype"] for c in result.cases})
    distributions = {c["distribution"] for c in result.cases}
    assert {"task", "normal"} <= distributions
