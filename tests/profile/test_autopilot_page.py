"""autopilot.html: the profile's rows, each target's fate and the end-to-end numbers, read back from the page."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evals"))
from test_eval_report import parsed  # noqa: E402 -- the report tests' table parser

from kernelwright.profile.autopilot_page import write_page  # noqa: E402


def synthetic() -> tuple[dict, dict]:
    profile = {"step_ms": 65.5, "dtype": "bfloat16", "batch": 1, "seq": 2048,
               "environment": {"device_name": "NVIDIA H200"}, "ceilings": {"copy_gbps": 4211.0, "source": "measured"},
               "rows": [{"rank": i + 1, "module_class": "Qwen3RMSNorm", "op": f"aten::op{i}", "calls": 290,
                         "time_ms": 5.0 - i * 0.1, "share": 0.08, "bound": "memory", "fraction_of_roofline": 0.3,
                         "speedup_if_roofline": 1.05} for i in range(20)]}
    result = {"model": "qwen3", "size": "8b-shape", "phase": "prefill", "notes": ["a <note> & more"],
              "targets": [{"task": "/x/qwen3_rms_norm.py", "module_class": "Qwen3RMSNorm", "share": 0.217,
                           "optimize": {"sentence": "faster than torch.compile by 1.23x", "speedup_vs_eager": 2.5},
                           "decision": "shipped"},
                          {"task": "/x/silu_activation.py", "module_class": "SiLUActivation", "share": 0.015,
                           "optimize": {"sentence": "verified but 1.00x slower than torch.compile"},
                           "decision": "left out", "why": "lost to its fastest baseline"},
                          {"task": "/x/apply_rotary.py", "module_class": None, "share": None}],
              "e2e": {"phase": "prefill", "eager_ms": 65.5, "kernelized_ms": 58.0, "predicted_speedup": 1.15,
                      "measured_speedup": 1.129, "timings_meaningful": True, "swapped": {"Qwen3RMSNorm": 145},
                      "logits": {"rel_l2": 1e-3, "tolerance": 2e-2, "passed": True},
                      "profile_diff": [{"module_class": "Qwen3RMSNorm", "op": "aten::pow", "before_ms": 1.8,
                                        "after_ms": None, "delta_ms": -1.8}]}}
    return result, profile


def test_the_page_shows_the_profile_targets_and_the_end_to_end_numbers(tmp_path):
    result, profile = synthetic()
    page = parsed(write_page(result, profile, tmp_path / "autopilot.html"))
    assert len(page.rows("profile")) == 15  # the top rows only
    targets = {Path(r["task"][0]).stem: r for r in page.rows("targets")}
    assert targets["qwen3_rms_norm"]["decision"][0] == "shipped"
    assert targets["silu_activation"]["decision"][0] == "left out: lost to its fastest baseline"
    assert targets["apply_rotary"]["decision"][0] == "not finished"  # its optimize did not finish: no verdict
    (e2e,) = page.rows("e2e")
    assert float(e2e["predicted (Amdahl)"][1]) == 1.15 and float(e2e["measured"][1]) == 1.129
    assert page.rows("diff")[0]["op"][0] == "aten::pow"
    assert "a &lt;note&gt; &amp; more" in (tmp_path / "autopilot.html").read_text()  # escaped, not markup


def test_without_a_shipped_kernel_the_page_says_the_model_was_not_kernelized(tmp_path):
    result, profile = synthetic()
    result["e2e"] = {}
    text = write_page(result, profile, tmp_path / "autopilot.html").read_text()
    assert "the model was not kernelized" in text and 'id="e2e"' not in text
