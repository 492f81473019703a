"""Launch configurations are frozen records: a misspelt field fails where it is written, a ranked one
cannot change, and the stored dict form (run store, tuning_plan.json, CONFIGS) is what it was before."""

import dataclasses
import json
from pathlib import Path

import pytest

from kernelwright.search import variants
from kernelwright.search.capture import capture
from kernelwright.search.codegen import generate
from kernelwright.search.config import LaunchConfig
from kernelwright.tasks.task import load_task

TASKS = Path(__file__).parent / "tasks"

# Configurations as run stores written before LaunchConfig hold them (taken from the search's output then):
# every optional field alone and combined, in the order they were written
STORED = """[
 {"one_pass": true, "block": 4096, "rows": 4, "warps": 4, "stages": 2, "programs_per_sm": 8},
 {"one_pass": false, "block": 64, "rows": 8, "warps": 4, "stages": 2, "programs_per_sm": 1, "accurate": true},
 {"one_pass": false, "block": 4096, "rows": 1, "warps": 8, "stages": 2, "programs_per_sm": 0, "online": false},
 {"one_pass": false, "block": 16, "rows": 16, "warps": 4, "stages": 2, "programs_per_sm": 1, "column": true,
  "split": 1},
 {"one_pass": false, "block": 4096, "rows": 1, "warps": 8, "stages": 2, "programs_per_sm": 0, "split": 16,
  "online": false, "accurate": true},
 {"one_pass": false, "block": 32, "rows": 64, "warps": 8, "stages": 2, "programs_per_sm": 0, "column": true,
  "split": 4, "online": false, "accurate": true}
]"""


@pytest.mark.parametrize("stored", json.loads(STORED), ids=lambda d: "+".join(list(d)[6:]) or "plain")
def test_a_config_stored_before_loads_and_writes_back_the_same_json(stored):
    cfg = LaunchConfig.from_dict(stored)
    assert json.dumps(cfg.as_dict()) == json.dumps(stored)  # same keys, same values, same order


def test_an_older_stored_dict_with_an_optional_field_at_its_default_loads():
    """Defaults written out (or left out) read back as the same configuration."""
    assert LaunchConfig.from_dict({"one_pass": True, "rows": 2, "online": True, "split": 0}) == \
        variants.config(one_pass=True, rows=2)


def test_every_config_the_search_ranks_round_trips():
    shapes = [("rows", 16, 1 << 22, 1), ("rows", 2 * 64, 1 << 20, 64), ("rows", 128 * 4095, 4096, 4095),
              ("rows", 8192, 128, 1), ("rows", 4096, 151936, 1), ("pointwise", 4096, 4096, 1)]
    configs = [c for kind, r, c_, inner in shapes for c in variants.ranked(kind, r, c_, inner=inner, split_ok=True)]
    configs += [c for kind in ("rows", "pointwise") for dev in ("cpu", "cuda")
                for _, c in variants.probes(kind, dev, inner=6, split=True)]
    assert {c.split > 0 for c in configs} == {c.column for c in configs} == {c.accurate for c in configs} == \
        {c.online for c in configs} == {True, False}  # every optional field both ways
    for cfg in configs:
        assert LaunchConfig.from_dict(json.loads(json.dumps(cfg.as_dict()))) == cfg
        assert list(cfg.as_dict())[:6] == ["one_pass", "block", "rows", "warps", "stages", "programs_per_sm"]


def test_a_misspelt_field_is_an_error_wherever_it_is_written():
    with pytest.raises(ValueError, match="'blok'"):
        LaunchConfig.from_dict({"one_pass": False, "blok": 64})
    with pytest.raises(TypeError):
        variants.config(one_pass=False, blok=64)
    with pytest.raises(TypeError):
        variants.config().replace(acurate=True)


def test_a_wrongly_typed_field_is_an_error():
    with pytest.raises(TypeError, match="block"):
        LaunchConfig(block="4096")  # e.g. tuning_plan.json's display form read back as a config
    with pytest.raises(TypeError, match="one_pass"):
        LaunchConfig(one_pass=1)
    with pytest.raises(TypeError, match="split"):
        LaunchConfig(split=True)


def test_a_ranked_config_cannot_be_changed_only_replaced():
    ranked = variants.ranked("rows", 16, 1 << 22, split_ok=True)
    first = ranked[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.warps = 32
    faster = first.replace(warps=32)
    assert faster.warps == 32 and ranked[0] is first and first.warps != 32
    assert len(set(ranked)) == len(ranked)  # hashable, and ranked without duplicates


def test_generate_reads_a_stored_dict_as_its_config_and_rejects_a_misspelt_one():
    """An old run's stored table regenerates the same source; a misspelt key fails before any source."""
    program = capture(load_task(TASKS / "log_softmax_rows.py"))
    stored = json.loads(STORED)[4]
    assert generate(program, [((1, 1), stored)]) == generate(program, [((1, 1), LaunchConfig.from_dict(stored))])
    with pytest.raises(ValueError, match="'split_'"):
        generate(program, [((1, 1), {**stored, "split_": 4})])


def test_the_configs_literal_is_the_stored_dict():
    program = capture(load_task(TASKS / "log_softmax_rows.py"))
    cfg = variants.config(one_pass=False, block=64, split=16, online=False)
    source = generate(program, [((3, 5), cfg)])
    assert ("((3, 5), dict(block=64, one_pass=False, online=False, programs_per_sm=0, rows=1, split=16, "
            "stages=2, warps=4))") in source
