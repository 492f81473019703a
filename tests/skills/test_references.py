"""The skills' reference files are what the code produces now: examples, controls, generator, build.toml."""

import ast

from kernelwright.skills import references


def test_copied_references_and_build_toml_match_the_code():
    for path, text in references.generated(with_offline=False).items():
        assert path.read_text() == text, f"{path.name} drifted: run python -m kernelwright.skills.references"


def test_generated_kernel_matches_the_offline_generator():
    path = references.BUNDLED / "triton-kernels/references/generated-gelu-tanh.py"
    text = references.offline_kernel()
    assert path.read_text() == text, "run python -m kernelwright.skills.references"
    tree = ast.parse(text)
    assert any(isinstance(n, ast.ClassDef) and n.name == "ModelNew" for n in tree.body)
