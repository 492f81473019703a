"""`kernelwright package`: the repository passes kernels' own validation, loads with get_local_kernel,
its layer swaps into transformers models, and bad input writes nothing.

The example RMSNorm is packaged once per module (verification on CPU, ~10 s). The Triton kernel itself runs
only in child processes started with TRITON_INTERPRET=1: the interpreter must be on before Triton is
imported, and this test process may already have imported it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("kernels")
pytest.importorskip("transformers")

from typer.testing import CliRunner  # noqa: E402

from conftest import CORPUS, EXAMPLES, ROOT  # noqa: E402
from kernelwright.cli import app  # noqa: E402
from kernelwright.errors import UsageError  # noqa: E402
from kernelwright.package import package, validate_repository  # noqa: E402

runner = CliRunner()


def _interpreted(args, **kw):
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=240, **kw)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pkg") / "rmsnorm-kw"
    result = package(EXAMPLES / "rmsnorm.py", name="rmsnorm-kw", out=out, device="cpu")
    assert result.path == out and result.layer == "LlamaRMSNorm" and result.function == "rmsnorm"
    return out


def test_repository_passes_kernels_validation(repo):
    from kernels._rust import Build, Digest, Metadata

    assert (repo / "build.toml").read_text().count("[torch-noarch]") == 1
    assert [str(b) for b in Build.open(repo).general.backends] == ["cuda"]
    variants = validate_repository(repo)
    assert list(variants) == ["torch-cuda"]
    meta = Metadata.read_from_file(repo / "build/torch-cuda/metadata.json")
    assert str(meta.name) == "rmsnorm-kw" and meta.version == 1 and meta.license == "apache-2.0"
    assert meta.id.startswith("_rmsnorm_kw_cuda_") and meta.id.isidentifier() and meta.python_depends == []
    assert str(meta.backend.backend_type) == "cuda"
    assert meta.digest is not None
    meta.digest.validate(Digest.hash_variant(meta.digest.algorithm, repo / "build/torch-cuda"))
    raw = json.loads((repo / "build/torch-cuda/metadata.json").read_text())
    assert {"name", "id", "version", "license", "python-depends", "backend", "digest"} <= set(raw)
    # Tampering with a shipped file must break the digest.
    (repo / "build/torch-cuda/op.py").write_text((repo / "build/torch-cuda/op.py").read_text() + "\n# x\n")
    try:
        with pytest.raises(Exception):
            meta.digest.validate(Digest.hash_variant(meta.digest.algorithm, repo / "build/torch-cuda"))
    finally:
        (repo / "build/torch-cuda/op.py").write_text((repo / "build/torch-cuda/op.py").read_text()[:-5])


def test_variant_lookup_follows_kernels_rules(repo):
    """A CUDA build of torch picks build/torch-cuda from the repository root; a CPU build finds no variant."""
    from packaging.version import Version

    from kernels.backends import CPU, CUDA
    from kernels.variants import _resolve_variant_for_system, get_variants_local

    variants = get_variants_local(repo / "build")
    chosen, _ = _resolve_variant_for_system(variants, CUDA(version=Version("12.8")), "x86_64", "linux",
                                            Version("2.8"), True, None)
    assert [v.variant_str for v in chosen] == ["torch-cuda"]
    chosen, trace = _resolve_variant_for_system(variants, CPU(), "x86_64", "linux", Version("2.13"), True, None)
    assert chosen == [] and "does not match" in trace[0].reason


def test_layer_is_pure_and_imports_are_relative(repo):
    import ast

    import torch  # noqa: F401
    from kernels.layer.layer import _validate_layer
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    variant = repo / "build/torch-cuda"
    for path in variant.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rmsnorm_kw"):
                pytest.fail(f"{path.name} imports its own package absolutely")
    layers = ast.parse((variant / "layers.py").read_text())
    cls = next(n for n in layers.body if isinstance(n, ast.ClassDef))
    assert cls.name == "LlamaRMSNorm"
    assert [n.name for n in cls.body if isinstance(n, ast.FunctionDef)] == ["forward"]
    source = ast.unparse(cls)
    assert "self.variance_epsilon" in source and "self.weight" in source and "self.eps" not in source
    namespace: dict = {}
    exec(compile(source, "layers", "exec"), {"torch": torch, "nn": torch.nn, "ops": None,
                                            "report_fallback": None, "unsupported_reason": None}, namespace)
    _validate_layer(check_cls=LlamaRMSNorm, cls=namespace["LlamaRMSNorm"], repo="generated")
    card = (repo / "CARD.md").read_text()
    for needle in ("LlamaRMSNorm", "RMSNorm", "Not verified on a GPU", "Not benchmarked", "bfloat16", "Known limits",
                   "no backward", "get_local_kernel", "kernelize"):
        assert needle in card, needle
    assert "https://github.com/)" not in card  # no link to nowhere
    for block in card.split("```python")[1:]:
        snippet = block.split("```")[0]
        assert "Path(" not in snippet or "from pathlib import Path" in snippet


def test_generated_tests_load_with_get_local_kernel_and_match_pytorch(repo):
    """The repository's own tests, under the interpreter: get_local_kernel, function vs the transformers
    module for every verified dtype, kernelize swaps the layer, and float64 falls back with a logged reason."""
    run = _interpreted(["-m", "pytest", "-q", "-p", "no:cacheprovider", str(repo / "tests")], cwd=repo)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "7 passed" in run.stdout


def test_e2e_kernelizes_a_qwen3_model_and_logits_match(repo, tmp_path):
    out = tmp_path / "e2e"
    run = _interpreted(["-m", "kernelwright", "e2e", "--model", "qwen3", "--size", "small", "--kernel", str(repo),
                        "--device", "cpu", "--no-compile", "--reps", "1", "--tokens", "8", "--out", str(out)])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads((out / "e2e.json").read_text())
    # 2 layers x (input, post-attention, q, k norms) + the final norm, all Qwen3RMSNorm.
    assert result["kernelize"]["swapped"] == 9 and result["kernelize"]["classes"] == ["Qwen3RMSNorm"]
    check = result["logits_check"]
    assert check["passed"] and check["kernel_calls"] == 9 and check["rel_l2"] < 1e-4
    assert {(r["variant"], r["phase"]) for r in result["rows"]} == {
        ("eager", "prefill"), ("eager", "decode"), ("kernelized", "prefill"), ("kernelized", "decode")}
    assert 0 < result["shares"]["eager"]["prefill"] < 1 and result["timings_meaningful"] is False
    assert "NOT meaningful (the kernel runs through Triton's interpreter)" in " ".join(result["notes"])
    assert "USDT" not in run.stdout + run.stderr and "FutureWarning" not in run.stdout + run.stderr
    assert (out / "e2e.csv").read_text().count("\n") == 5 and (out / "e2e.png").stat().st_size > 0


def test_kernelize_swaps_llama_layer_and_falls_back_on_cpu_without_interpreter(repo, caplog):
    """In this process Triton is not interpreted: the layer is swapped in by kernels, then hands every call
    back to the original forward with a logged reason, so the logits are exactly eager's."""
    import logging

    import torch

    from kernelwright.package.e2e import build_model
    from kernelwright.package.kernelize import kernelize_model, unkernelize

    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("this test covers the non-interpreted fallback")
    net, _ = build_model("llama", "small", device="cpu", dtype=torch.float32, layers=1)
    ids = torch.randint(0, 512, (1, 6))
    with torch.no_grad():
        expected = net(input_ids=ids).logits
    report = kernelize_model(net, repo, device="cpu")
    assert report.swapped == 3 and report.classes == ["LlamaRMSNorm"]
    with caplog.at_level(logging.WARNING), torch.no_grad():
        out = net(input_ids=ids).logits
    assert torch.equal(out, expected)
    assert any("original forward" in r.getMessage() and "cpu" in r.getMessage() for r in caplog.records)
    unkernelize(net)
    assert all("forward" not in m.__dict__ for m in net.modules())


def test_bad_name_and_non_empty_out_exit_2_and_write_nothing(tmp_path):
    for name in ("RMSNorm", "rms_norm", "rms-", "r"):
        out = tmp_path / "out"
        result = runner.invoke(app, ["package", str(EXAMPLES / "rmsnorm.py"), "--name", name, "--out", str(out),
                                     "--device", "cpu"])
        assert result.exit_code == 2 and "not allowed" in result.output, result.output
        assert not out.exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    result = runner.invoke(app, ["package", str(EXAMPLES / "rmsnorm.py"), "--name", "rms", "--out", str(busy),
                                 "--device", "cpu"])
    assert result.exit_code == 2 and "not an empty directory" in result.output
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]


def test_rejected_candidate_exits_1_and_writes_nothing(tmp_path):
    out = tmp_path / "rejected"
    result = runner.invoke(app, ["package", str(CORPUS / "bug_wrong_epsilon.py"), "--task", "rmsnorm", "--name",
                                 "rms-bad", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 1 and "rejected" in result.output and "mismatch" in result.output, result.output
    assert list(tmp_path.iterdir()) == []


def test_candidates_that_cannot_be_a_layer_are_refused_before_verification(tmp_path):
    base = (EXAMPLES / "rmsnorm.py").read_text()
    helper = base.replace("    def forward(self, x):", "    def helper(self):\n        return 1\n\n    def forward(self, x):")
    computed = base.replace("self.eps = eps", "self.eps = eps * 1.0")
    for text, words in ((helper, "helper"), (computed, "self.eps")):
        path = tmp_path / "cand.py"
        path.write_text(text)
        with pytest.raises(UsageError, match=words):
            package(path, name="rms-x", out=tmp_path / "x", task="rmsnorm", device="cpu")
        assert not (tmp_path / "x").exists()


def test_attributes_map_by_kind_when_names_differ(tmp_path):
    from kernelwright.package.candidate import read_candidate
    from kernelwright.package.replaced import describe_replaced, map_attributes

    text = (EXAMPLES / "rmsnorm.py").read_text().replace("self.weight", "self.w").replace("self.eps", "self.epsilon")
    path = tmp_path / "renamed.py"
    path.write_text(text)
    cand = read_candidate(path)
    replaced = describe_replaced("transformers.models.llama.modeling_llama.LlamaRMSNorm", [16, 1e-6])
    assert map_attributes(cand, replaced, {"hidden": 16, "eps": 1e-6}) == {"w": "weight", "epsilon": "variance_epsilon"}
    assert replaced.layer_key == "RMSNorm" and replaced.reference_source.startswith("def reference(self")
