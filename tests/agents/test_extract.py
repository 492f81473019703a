import pytest

from kernelwright.agents.extract import ExtractionError, extract_candidate, extract_json

MODEL = "import torch\nclass ModelNew(torch.nn.Module):\n    def forward(self, x):\n        return helper(x)\n"


def test_fenced_block_with_prose_around_it():
    reply = f"Sure! Here it is:\n\n```python\n{MODEL}def helper(x):\n    return x\n```\nThis is 2x faster."
    code = extract_candidate(reply)
    assert code.startswith("import torch") and "This is 2x faster" not in code and "Sure!" not in code


def test_picks_the_modelnew_block_and_joins_the_block_it_needs():
    reply = ("First the kernel:\n```python\nimport triton\ndef helper(x):\n    return x\n```\n"
             "Unrelated usage example:\n```python\nprint(ModelNew()(1))\n```\n"
             f"Then the module:\n```py\n{MODEL}```")
    code = extract_candidate(reply)
    assert code.index("def helper") < code.index("class ModelNew")
    assert "print(ModelNew()(1))" not in code  # a block that defines nothing the module needs stays out


def test_cuda_and_cpp_blocks_bind_to_load_inline_sources():
    reply = ("```python\nimport torch\nfrom torch.utils.cpp_extension import load_inline\n"
             "ext = load_inline(name='k', cpp_sources=cpp_src, cuda_sources=cuda_src, functions=['f'])\n"
             "class ModelNew(torch.nn.Module):\n    def forward(self, x):\n        return ext.f(x)\n```\n"
             "```cuda\n__global__ void k(float* y) {}\ntorch::Tensor f(torch::Tensor x) { return x; }\n```\n"
             "```cpp\ntorch::Tensor f(torch::Tensor x);\n```")
    code = extract_candidate(reply)
    namespace: dict = {}
    exec(compile(code.split("ext = load_inline")[0], "x", "exec"), namespace)
    assert "__global__" in namespace["cuda_src"] and namespace["cpp_src"].strip() == "torch::Tensor f(torch::Tensor x);"


def test_unterminated_fence_and_unfenced_code():
    assert "class ModelNew" in extract_candidate(f"```python\n{MODEL}")  # a reply cut off mid-block
    assert extract_candidate(f"The answer follows.\n{MODEL}").startswith("import torch")


def test_no_modelnew_is_an_error_that_says_what_to_return():
    with pytest.raises(ExtractionError, match="ModelNew"):
        extract_candidate("```python\nprint('hello')\n```")
    with pytest.raises(ExtractionError, match="ModelNew"):
        extract_candidate("I cannot help with that.")


def test_json_from_a_fence_or_from_prose():
    assert extract_json('Plan:\n```json\n{"ideas": [1]}\n```') == {"ideas": [1]}
    assert extract_json('My plan is {"bottleneck": "memory"} as said.') == {"bottleneck": "memory"}
    assert extract_json("no json here") is None
