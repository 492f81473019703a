"""CARD.md's tables say what was run, once."""

from kernelwright.package.card import _verification_rows


def _verification(seed_cases: int, device="NVIDIA H200", accepted=True):
    cases = [{"dtype": "bfloat16", "knobs": {"tokens": t, "hidden": 64}} for t in range(1, seed_cases + 1)]
    return {"accepted": accepted, "cases": cases,
            "environment": {"device_name": device, "compute_capability": "9.0", "interpreter": False}}


def test_the_same_kernel_verified_twice_is_one_row_with_both_counts():
    rows = _verification_rows([_verification(3), _verification(3)])
    assert rows == ["| NVIDIA H200 | sm_90 | bfloat16 | tokens 1–3, hidden 64–64 | 3 + 3 (2 runs) | accepted |"]


def test_different_devices_or_verdicts_stay_apart():
    rows = _verification_rows([_verification(2), _verification(2, device="NVIDIA H100 80GB HBM3"),
                               _verification(2, accepted=False)])
    assert len(rows) == 3 and rows[0].endswith("| 2 | accepted |") and rows[2].endswith("| REJECTED |")
