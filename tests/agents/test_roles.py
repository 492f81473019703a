"""The LLM team's prompts carry the bundled skills' text: one source of truth for kernel knowledge."""

from kernelwright.agents import roles
from kernelwright.skills import section


def test_prompts_contain_the_skills_sections():
    rules = section("kernelwright-harness", "What the verifier rejects")
    for system in (roles.WRITER, roles.DEBUGGER):
        assert rules in system
    assert section("triton-kernels", "Tail masks") in roles.WRITER
    assert section("triton-kernels", "Dtype handling") in roles.DEBUGGER
    assert section("kernelwright-harness", "Reading a verdict") in roles.DEBUGGER
    assert section("triton-kernels", "Tuning knobs") in roles.PLANNER


def test_each_prompt_still_starts_with_its_role():
    for role, system in (("planner", roles.PLANNER), ("writer", roles.WRITER), ("debugger", roles.DEBUGGER)):
        assert system.startswith(f"You are the kernelwright {role}.")
