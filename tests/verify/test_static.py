"""The static policy: each rule fires with its line number, is data, and a task may allow it."""

import pytest

from kernelwright.verify.static import check_source

CASES = [
    ("import os\n", "forbidden_import", "import:os", 1),
    ("x = 1\nfrom ctypes import c_void_p\n", "forbidden_import", "import:ctypes", 2),
    ("import triton.testing\ng = triton.testing.gc\n", "forbidden_import", "import:gc", 2),
    ("exec('1')\n", "forbidden_call", "call:exec", 1),
    ("f = __import__('time')\n", "forbidden_call", "call:__import__", 1),
    ("import time\ntime.perf_counter = lambda: 0\n", "monkeypatch", "patch:time", 2),
    ("import torch as T\nT.cuda.synchronize = None\n", "monkeypatch", "patch:torch", 2),
    ("import torch\nsetattr(torch.cuda, 'synchronize', None)\n", "monkeypatch", "patch:setattr", 2),
    ("import torch\ns = torch.cuda.Stream()\n", "side_stream", "stream:python", 2),
    ("class ModelNew:\n    def forward(self):\n        return Model()\n", "reads_reference", "reference:Model", 3),
    ("src = '''\nvoid f() {\n  cudaStreamCreate(&s);\n}'''\n", "cuda_policy", "cuda:stream", 3),
    ("src = 'cudaLaunchHostFunc(s, f, 0);'\n", "cuda_policy", "cuda:host_callback", 1),
    ("src = 'cudaDeviceSetLimit(cudaLimitStackSize, 1);'\n", "cuda_policy", "cuda:device_limit", 1),
    ("src = 'attr.accessPolicyWindow.num_bytes = n;'\n", "cuda_policy", "cuda:l2_persistence", 1),
]


@pytest.mark.parametrize("source,check,rule,line", CASES, ids=[c[2] for c in CASES])
def test_rule_fires_with_its_line(source, check, rule, line):
    found = check_source(source)
    assert (check, rule, line) in {(v.check, v.rule, v.line) for v in found}, found
    assert all(v.message.startswith(f"line {v.line}:") for v in found)


def test_a_task_can_allow_a_rule_or_a_family():
    assert check_source("import os\n", allow=["import:os"]) == []
    assert check_source("src = 'cudaStreamCreate(&s); cudaLaunchHostFunc(s, f, 0);'\n", allow=["cuda:"]) == []
    assert check_source("import os\nimport gc\n", allow=["import:os"])[0].rule == "import:gc"


def test_ordinary_kernel_code_passes():
    source = (
        "import math\nimport functools\nimport torch\nimport torch.nn as nn\nimport triton\n"
        "import triton.language as tl\n\nclass ModelNew(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.cache = {}\n        self.eps = 1e-6\n"
        "    def forward(self, x):\n        self.cache[x.shape] = 1\n        return torch.empty_like(x)\n")
    assert check_source(source) == []


def test_unparsable_source_is_left_to_the_worker():
    assert check_source("def f(:\n") == []
