"""`kernelwright package` for CUDA C++ (load_inline) candidates: a kernel-builder source repository.

No GPU and no nvcc here, so two things stand in for a GPU run, and only in the fixtures that say so:
`verify` returns an accepted result shaped like a GPU verification (H100, compute capability 9.0, cases
drawn from the task's own knobs), and the device resolves to `cuda:0`. Everything else is real: the
candidate's C++ is read, the binding, build.toml and Python package are written and checked with `kernels`'
parser, Torch's schema parser and Python's compiler. The generated Python is also run against a stand-in
CPU implementation registered under the same schema, to show it passes forward's arguments in the order
the C++ declares them. Nothing is compiled: kernel-builder builds these sources on a GPU machine.
"""

import ast
import importlib.util
import json
import logging
import re
import shutil
import sys
import uuid
from pathlib import Path

import pytest

pytest.importorskip("kernels")
pytest.importorskip("transformers")

import torch  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from conftest import CORPUS  # noqa: E402
from kernelwright.cli import app  # noqa: E402
from kernelwright.errors import UsageError  # noqa: E402
from kernelwright.package import cpp_signature, cuda_candidate, cuda_repo, package, validate_repository  # noqa: E402
from kernelwright.package.candidate import read_candidate  # noqa: E402
from kernelwright.package.cuda_repo import load_toml  # noqa: E402

CONTROLS = CORPUS / "controls"
RMSNORM = CONTROLS / "cuda_rmsnorm.py"
SWIGLU = CONTROLS / "cuda_swiglu.py"
runner = CliRunner()


def _stand_in_gpu_verification(capability="9.0"):
    """An accepted verification as a GPU run reports it (no GPU here): real knobs from the task's shape draw."""
    from kernelwright.tasks import load_task
    from kernelwright.tasks.knobs import draw_shapes
    from kernelwright.verify.result import VerifyResult

    def verify(task, candidate, *, device="cpu", limits=None, **kw):
        task_obj = load_task(task)
        result = VerifyResult(task=task_obj.name, task_path=str(task_obj.path), candidate=str(candidate),
                              device="cuda:0", environment={
                                  "device_name": "NVIDIA H100 80GB HBM3 (stand-in)", "compute_capability": capability,
                                  "torch": torch.__version__, "cuda": "12.8", "python": "3.11", "driver": "570.00",
                                  "kernelwright": "test", "interpreter": False})
        for label, knobs in draw_shapes(task_obj, count=4, budget=2 ** 14, seed=0)[:4]:
            for dtype in task_obj.dtype_names:
                result.cases.append({"id": f"{label}-{dtype}", "knobs": knobs, "dtype": dtype, "passed": True,
                                     "outputs": [{"tolerance": {"atol": 1e-2, "rtol": 1e-2}}]})
        result.record("values", True)
        return result

    return verify


@pytest.fixture
def on_stand_in_gpu(monkeypatch):
    import kernelwright.package.writer as writer
    import kernelwright.verify as verify_module

    monkeypatch.setattr(verify_module, "verify", _stand_in_gpu_verification())
    monkeypatch.setattr(writer, "resolve_device", lambda device: "cuda:0")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    import kernelwright.package.writer as writer
    import kernelwright.verify as verify_module

    out = tmp_path_factory.mktemp("cuda") / "rmsnorm-cu"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(verify_module, "verify", _stand_in_gpu_verification())
        mp.setattr(writer, "resolve_device", lambda device: "cuda:0")
        result = package(RMSNORM, name="rmsnorm-cu", out=out, task="rmsnorm")
    assert result.kind == "cuda" and result.kernel_id is None and result.layer == "LlamaRMSNorm"
    assert any("nothing was compiled" in n for n in result.notes)
    return out


def test_repository_layout_is_kernel_builders(repo):
    files = sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file())
    assert files == sorted([
        ".gitignore", "CARD.md", "benchmarks/benchmark.py", "build.toml", "flake.nix", "kernelwright.json",
        "pytest.ini", "rmsnorm_cu_cuda/rmsnorm_cu.cu", "tests/__init__.py", "tests/test_rmsnorm_cu.py",
        "torch-ext/rmsnorm_cu/__init__.py", "torch-ext/rmsnorm_cu/_support.py", "torch-ext/rmsnorm_cu/layers.py",
        "torch-ext/torch_binding.cpp", "torch-ext/torch_binding.h"])
    assert not (repo / "build").exists()  # nothing compiled, no variant faked
    assert not (repo / "torch-ext/rmsnorm_cu/_ops.py").exists()  # kernel-builder generates it
    flake = (repo / "flake.nix").read_text()
    assert 'kernel-builder.url = "github:huggingface/kernels"' in flake and "genKernelFlakeOutputs" in flake


def test_build_toml_parses_and_declares_the_verified_capability(repo):
    from kernels._rust import Build

    config = load_toml((repo / "build.toml").read_text())
    assert config["general"] == {"name": "rmsnorm-cu", "version": 1, "edition": 5, "license": "apache-2.0",
                                 "backends": ["cuda"], "hub": {"repo-id": "<your-org>/rmsnorm-cu"}}
    assert config["torch"] == {"src": ["torch-ext/torch_binding.cpp", "torch-ext/torch_binding.h"]}
    assert "torch-noarch" not in config
    assert config["kernel"] == {"rmsnorm_cu": {"backend": "cuda", "depends": ["torch"], "cuda-capabilities": ["9.0"],
                                               "src": ["rmsnorm_cu_cuda/rmsnorm_cu.cu"]}}
    assert [str(b) for b in Build.open(repo).general.backends] == ["cuda"]  # kernel-builder check-config's parser
    assert set(validate_repository(repo)) == {"rmsnorm_cu"}


def test_binding_registers_the_cpp_signature_under_the_build_namespace(repo):
    binding = (repo / "torch-ext/torch_binding.cpp").read_text()
    header = (repo / "torch-ext/torch_binding.h").read_text()
    cu = (repo / "rmsnorm_cu_cuda/rmsnorm_cu.cu").read_text()
    assert "TORCH_LIBRARY_EXPAND(TORCH_EXTENSION_NAME, ops)" in binding
    assert "REGISTER_EXTENSION(TORCH_EXTENSION_NAME)" in binding and "TORCH_LIBRARY(" not in binding
    assert '#include "registration.h"' in binding and '#include "torch_binding.h"' in binding
    assert 'ops.impl("rmsnorm", torch::kCUDA, &rmsnorm);' in binding
    # The declaration is the candidate's own, and the schema says the same types in the same order.
    assert "torch::Tensor rmsnorm(torch::Tensor x, torch::Tensor w, double eps);" in header
    [schema] = re.findall(r'ops\.def\("([^"]+)"\)', binding)
    assert schema == "rmsnorm(Tensor x, Tensor w, float eps) -> Tensor"
    parsed = torch._C.parse_schema(schema)
    assert [(a.name, str(a.type)) for a in parsed.arguments] == [("x", "Tensor"), ("w", "Tensor"), ("eps", "float")]
    assert [str(r.type) for r in parsed.returns] == ["Tensor"]
    # The kernel's source is the candidate's, with load_inline's implicit headers and no pybind11.
    assert "rmsnorm_kernel<scalar_t><<<rows, 256>>>" in cu and "#include <cuda_runtime.h>" in cu
    assert "torch/extension.h" not in cu and "#include <torch/all.h>" in cu and "PYBIND11" not in cu


def test_python_package_compiles_with_relative_imports_and_a_pure_layer(repo):
    from kernels.layer.layer import _validate_layer
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    for path in list((repo / "torch-ext").rglob("*.py")) + list((repo / "tests").rglob("*.py")) + [
            repo / "benchmarks/benchmark.py"]:
        tree = ast.parse(path.read_text())
        compile(tree, str(path), "exec")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level:
                assert not (node.module or "").startswith("rmsnorm_cu"), f"{path.name} imports itself absolutely"
    package_dir = repo / "torch-ext/rmsnorm_cu"
    for name in ("__init__.py", "layers.py"):
        assert "from ._ops import ops" in (package_dir / name).read_text()
    init = ast.parse((package_dir / "__init__.py").read_text())
    assert next(ast.literal_eval(n.value) for n in init.body if isinstance(n, ast.Assign)
                and n.targets[0].id == "__all__") == ["layers", "rmsnorm"]
    layers = ast.parse((package_dir / "layers.py").read_text())
    cls = next(n for n in layers.body if isinstance(n, ast.ClassDef))
    assert cls.name == "LlamaRMSNorm" and [n.name for n in cls.body if isinstance(n, ast.FunctionDef)] == ["forward"]
    source = ast.unparse(cls)
    assert "ops.rmsnorm(hidden_states, self.weight.contiguous(), self.variance_epsilon)" in source
    namespace: dict = {}
    exec(compile(source, "layers", "exec"), {"torch": torch, "nn": torch.nn, "ops": None, "report_fallback": None,
                                            "unsupported_reason": None}, namespace)
    _validate_layer(check_cls=LlamaRMSNorm, cls=namespace["LlamaRMSNorm"], repo="generated")


def _load_with_stand_in_op(repo: Path, tmp_path: Path):
    """Import the generated package with an `_ops.py` bound to a fresh namespace whose `rmsnorm` is a CPU
    stand-in registered from the binding's own schema; the stand-in records what it was called with."""
    ns = f"kw_test_{uuid.uuid4().hex[:8]}"
    schema = re.findall(r'ops\.def\("([^"]+)"\)', (repo / "torch-ext/torch_binding.cpp").read_text())[0]
    calls = []
    lib = torch.library.Library(ns, "DEF")
    lib.define(schema)

    def stand_in(x, w, eps):
        calls.append((x, w, eps))
        h = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)
        return w * h.to(x.dtype)

    lib.impl("rmsnorm", stand_in, "CPU")
    module_name = f"rmsnorm_cu_{ns}"
    pkg = tmp_path / module_name
    shutil.copytree(repo / "torch-ext/rmsnorm_cu", pkg)
    (pkg / "_ops.py").write_text(f"import torch\nops = torch.ops.{ns}\n")
    spec = importlib.util.spec_from_file_location(module_name, pkg / "__init__.py",
                                                  submodule_search_locations=[str(pkg)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module, calls, lib


def test_generated_python_passes_forward_arguments_in_declared_order(repo, tmp_path, caplog, monkeypatch):
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    kernel, calls, _lib = _load_with_stand_in_op(repo, tmp_path)
    x, w = torch.randn(3, 8), 1 + 0.1 * torch.randn(8)
    out = kernel.rmsnorm(x, w, 1e-5)
    assert len(calls) == 1 and calls[0][0] is x and torch.equal(calls[0][1], w) and calls[0][2] == 1e-5
    reference = LlamaRMSNorm(8, eps=1e-5)
    with torch.no_grad():
        reference.weight.copy_(w)
        torch.testing.assert_close(out, reference(x))
    module = LlamaRMSNorm(8, eps=1e-4)
    with torch.no_grad():
        module.weight.copy_(w)
    # On CPU the layer hands back to the original forward, with the reason logged.
    with caplog.at_level(logging.WARNING), torch.no_grad():
        expected = kernel.layers.LlamaRMSNorm.forward(module, x)
    assert len(calls) == 1 and any("CUDA kernel runs on CUDA devices" in r.getMessage() for r in caplog.records)
    # Where the kernel applies, the layer reads the replaced module's own attributes.
    monkeypatch.setattr(sys.modules[kernel.__name__ + ".layers"], "unsupported_reason", lambda tensors: None)
    with torch.no_grad():
        got = kernel.layers.LlamaRMSNorm.forward(module, x)
    assert calls[-1][0] is x and torch.equal(calls[-1][1], module.weight) and calls[-1][2] == 1e-4
    torch.testing.assert_close(got, expected)


def test_card_says_how_to_build_and_survives_kernel_builders_template_fill(repo):
    jinja2 = pytest.importorskip("jinja2")

    card = (repo / "CARD.md").read_text()
    for section in ("## Verified on", "## Versions", "## How to build", "## Install and use", "## Benchmarks",
                    "## Known limits", "## Provenance"):
        assert section in card, section
    for needle in ("no `build/` directory", "kernel-builder build-and-copy -L", "git init", "cuda-capabilities",
                   "sm_90", "LlamaRMSNorm", "no backward", "can_torch_compile = False", "torch/all.h",
                   "rmsnorm(Tensor x, Tensor w, float eps) -> Tensor"):
        assert needle in card, needle
    # kernel-builder's nix build renders CARD.md as a (mini)jinja template: it must come out unchanged.
    assert jinja2.Environment(trim_blocks=True, keep_trailing_newline=True).from_string(card).render() == card
    info = json.loads((repo / "kernelwright.json").read_text())
    assert info["kind"] == "cuda" and info["built"] is False and info["archs"] == ["9.0"]
    assert info["function"] == "rmsnorm" and info["ops"] == {"rmsnorm": "rmsnorm(Tensor x, Tensor w, float eps) -> Tensor"}


def test_kernelize_refuses_an_unbuilt_source_repository(repo):
    from kernelwright.package.e2e import build_model
    from kernelwright.package.kernelize import kernelize_model

    net, _ = build_model("llama", "small", device="cpu", dtype=torch.float32, layers=1)
    with pytest.raises(UsageError, match="has not been built"):
        kernelize_model(net, repo, device="cpu")


def test_cli_prints_that_nothing_was_compiled(tmp_path, on_stand_in_gpu):
    out = tmp_path / "cli"
    result = runner.invoke(app, ["package", str(RMSNORM), "--task", "rmsnorm", "--name", "rms-cu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # rich wraps lines
    assert "nothing was compiled" in said and "build-and-copy" in said and "id set at build" in said


def test_run_directory_evidence_adds_the_capabilities_it_was_accepted_on(tmp_path, on_stand_in_gpu):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(RMSNORM, run / "best.py")
    for name, cap, accepted in (("a100.json", "8.0", True), ("b200.json", "10.0", False)):
        (run / name).write_text(json.dumps({"schema": "kernelwright.verify/1", "accepted": accepted, "task": "rmsnorm",
                                            "device": "cuda:0", "cases": [],
                                            "environment": {"compute_capability": cap, "device_name": name}}))
    package(run, name="rms-cu", out=tmp_path / "out", task="rmsnorm")
    config = load_toml((tmp_path / "out/build.toml").read_text())
    assert config["kernel"]["rms_cu"]["cuda-capabilities"] == ["8.0", "9.0"]  # the rejected 10.0 run adds nothing


def _variant(tmp_path: Path, old: str, new: str, count: int = 1) -> Path:
    text = RMSNORM.read_text()
    assert text.count(old) >= 1, old
    path = tmp_path / "cand.py"
    path.write_text(text.replace(old, new, count))
    return path


DECL = "torch::Tensor rmsnorm(torch::Tensor x, torch::Tensor w, double eps);"
REFUSALS = [
    ("_ext = load_inline(", "_other = load_inline('x', cpp_sources='', cuda_sources='', functions=['f'])\n_ext = load_inline(",
     "load_inline 2 times"),
    ("class ModelNew", "def helper(x):\n    return x\n\n\nclass ModelNew", "Python beyond"),
    ("return _ext.rmsnorm(x, self.weight.contiguous(), self.eps)",
     "return _ext.rmsnorm(x, self.weight.contiguous(), self.eps) * 2", "does more than call"),
    ("return _ext.rmsnorm(x, self.weight.contiguous(), self.eps)", "return _ext.rmsnorm(x.float(), self.weight, self.eps)",
     "arguments may only be"),
    ("return _ext.rmsnorm(x, self.weight.contiguous(), self.eps)", "return _ext.rmsnorm(x, self.eps, self.weight)",
     "passes `self.eps` (scalar) as `w`"),
    ('functions=["rmsnorm"])', 'functions=["rmsnorm"], extra_cuda_cflags=["-DSLOW=1"])', "extra_cuda_cflags has `-DSLOW=1`"),
    ('functions=["rmsnorm"])', 'functions=["rmsnorm"], extra_ldflags=["-lcublas"])', "extra_ldflags"),
    (DECL, "torch::Tensor rmsnorm(torch::Tensor x, std::vector<int64_t> w, double eps);", "takes `std::vector"),
    (DECL, "void rmsnorm(torch::Tensor& x, torch::Tensor w, double eps);", "returns `void`"),
    (DECL, "torch::Tensor& rmsnorm(torch::Tensor x, torch::Tensor w, double eps);", "returns `torch::Tensor &`"),
    (DECL, "torch::Tensor rmsnorm(torch::Tensor& x, torch::Tensor w, double eps);", "non-const tensor reference"),
    (DECL, "torch::Tensor rmsnorm(torch::Tensor x, torch::Tensor w, double eps) { return x; }", "not a function declaration"),
    (DECL, "torch::Tensor norm(torch::Tensor x, torch::Tensor w, double eps);", "does not declare"),
    ('cuda_sources=SOURCE', 'cuda_sources=SOURCE + "PYBIND11_MODULE(m, x) {}"', "pybind11"),
    ('cuda_sources=SOURCE', 'cuda_sources=f"{SOURCE}"', "string literals"),
]


@pytest.mark.parametrize("old,new,words", REFUSALS, ids=[r[2] for r in REFUSALS])
def test_unmappable_candidates_are_refused_before_verification_and_write_nothing(tmp_path, old, new, words):
    path = _variant(tmp_path, old, new)
    out = tmp_path / "out"
    with pytest.raises(UsageError, match=re.escape(words)):
        package(path, name="rms-cu", out=out, task="rmsnorm", device="cuda")  # refused before the device matters
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["cand.py"]


def test_cli_refusals_exit_2_and_write_nothing(tmp_path):
    # No GPU here: a CUDA C++ candidate cannot be verified, so it is refused before anything runs.
    out = tmp_path / "cpu"
    result = runner.invoke(app, ["package", str(RMSNORM), "--task", "rmsnorm", "--name", "rms-cu", "--out", str(out),
                                 "--device", "cpu"])
    assert result.exit_code == 2 and "on a GPU" in result.output, result.output
    # The SwiGLU control maps onto a binding, but its task names no transformers class to replace.
    out = tmp_path / "swiglu"
    result = runner.invoke(app, ["package", str(SWIGLU), "--task", "swiglu", "--name", "swiglu-cu", "--out", str(out)])
    assert result.exit_code == 2 and "REPLACES" in result.output, result.output
    assert list(tmp_path.iterdir()) == []


def test_swiglu_control_maps_onto_a_binding():
    ext = cuda_candidate.read_extension(read_candidate(SWIGLU))
    assert ext.var == "_ext" and list(ext.signatures) == ["swiglu"]
    assert ext.signatures["swiglu"].schema == "swiglu(Tensor gate, Tensor up) -> Tensor"
    assert cuda_candidate.forward_call(read_candidate(SWIGLU), ext).function == "swiglu"
    binding = cuda_repo.binding_source(ext)
    assert 'ops.def("swiglu(Tensor gate, Tensor up) -> Tensor");' in binding
    assert 'ops.impl("swiglu", torch::kCUDA, &swiglu);' in binding and "static" not in binding


def test_sources_through_names_lists_and_dicts_and_the_flags_that_carry_over(tmp_path):
    from kernels._rust import Build

    text = RMSNORM.read_text().replace('SOURCE = r"""', 'SOURCE: str = r"""').replace(
        'cuda_sources=SOURCE, functions=["rmsnorm"])',
        'cuda_sources=[HEAD, SOURCE], functions={"rmsnorm": "doc"}, extra_cuda_cflags=["-O3", "--use_fast_math"])')
    text = text.replace("_ext = load_inline(", 'HEAD = "// first part\\n"\n_ext = load_inline(')
    path = tmp_path / "cand.py"
    path.write_text(text)
    ext = cuda_candidate.read_extension(read_candidate(path))
    assert ext.cuda_source.index("// first part") < ext.cuda_source.index("rmsnorm_kernel")
    assert ext.cuda_flags == ["--use_fast_math"] and ext.dropped_flags == ["-O3"]
    assert any("-O3" in n for n in ext.notes) and any("--use_fast_math" in n for n in ext.notes)
    (tmp_path / "build.toml").write_text(cuda_repo.build_toml(
        name="rms-cu", version=1, license="apache-2.0", module="rms_cu", archs=["9.0", "10.0"],
        cuda_flags=ext.cuda_flags, repo_id="org/rms-cu"))
    Build.open(tmp_path)
    table = load_toml((tmp_path / "build.toml").read_text())["kernel"]["rms_cu"]
    assert table["cuda-flags"] == ["--use_fast_math"] and table["cuda-capabilities"] == ["9.0", "10.0"]


@pytest.mark.parametrize("decl,schema,wrapper", [
    ("torch::Tensor f(const torch::Tensor& x, torch::Tensor const &y, int64_t n, bool flag);",
     "f(Tensor x, Tensor y, int n, bool flag) -> Tensor", None),
    ("at::Tensor f(at::Tensor x, float eps, int k);", "f(Tensor x, float eps, int k) -> Tensor",
     "static at::Tensor f_kw_dispatch(const at::Tensor &x, double eps, int64_t k) {\n"
     "  return f(x, static_cast<float>(eps), static_cast<int>(k));\n}"),
    ("std::tuple<torch::Tensor, torch::Tensor> f(torch::Tensor, double);",
     "f(Tensor arg0, float arg1) -> (Tensor, Tensor)", None),
    ("std::vector<torch::Tensor> f(torch::Tensor x);", "f(Tensor x) -> Tensor[]", None),
    ("torch::Tensor f(const double &e, const int64_t n);", "f(float e, int n) -> Tensor",
     "static torch::Tensor f_kw_dispatch(double e, int64_t n) {\n  return f(static_cast<double>(e), n);\n}"),
])
def test_cpp_declarations_become_parseable_schemas(decl, schema, wrapper):
    sig = cpp_signature.parse(decl, "test")
    assert sig.schema == schema
    torch._C.parse_schema(sig.schema)
    if wrapper is None:
        assert not sig.needs_wrapper and sig.impl_symbol == "f"
    else:
        ext = cuda_candidate.Extension(var="e", name="e", line=1, cuda_source="", signatures={"f": sig})
        binding = cuda_repo.binding_source(ext)
        assert wrapper in binding and 'ops.impl("f", torch::kCUDA, &f_kw_dispatch);' in binding


@pytest.mark.gpu
def test_gpu_packages_the_cuda_control_after_a_real_verification(tmp_path):
    """On a GPU (scripts/gpu_check.sh verify): real load_inline compile and verification, no stand-ins; the
    declared capability is this GPU's. Building the repository still needs kernel-builder (Nix)."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    result = package(RMSNORM, name="rmsnorm-cu", out=tmp_path / "out", task="rmsnorm", device="cuda")
    major, minor = torch.cuda.get_device_capability()
    config = load_toml((result.path / "build.toml").read_text())
    assert config["kernel"]["rmsnorm_cu"]["cuda-capabilities"] == [f"{major}.{minor}"]
    assert result.verification["accepted"] and result.verification["device"].startswith("cuda")
    validate_repository(result.path)
