import pytest
import torch

from kernelwright.verify import checks
from kernelwright.verify.tolerance import Tolerance, calibrated, for_dtype

TOL = Tolerance(norm=1e-3, atol=1e-3, rtol=1e-3)


def test_exact_output_passes_and_reports_zero_error():
    ref = torch.randn(8, 16, dtype=torch.float64)
    failures, stats = checks.check_values([ref.float()], [ref], [ref.float()], TOL)
    assert failures == [] and stats[0]["rel_err"] < 1e-7


def test_nan_never_passes_even_inside_a_loose_tolerance():
    ref = torch.randn(8, 16, dtype=torch.float64)
    out = ref.clone()
    out[3, 5] = float("nan")
    failures, _ = checks.check_values([out], [ref], [ref], Tolerance(1e9, 1e9, 1e9))
    assert [f.check for f in failures] == ["nonfinite_output"]
    assert failures[0].details["worst_index"] == [3, 5]


def test_zero_output_fails_even_when_values_are_tiny():
    ref = torch.randn(64, dtype=torch.float64) * 1e-6
    failures, _ = checks.check_values([torch.zeros(64)], [ref], [ref], for_dtype("bfloat16"))
    assert [f.check for f in failures] == ["constant_output"]  # a constant where the reference varies


def test_mismatch_reports_the_worst_index_and_values():
    ref = torch.ones(4, 5, dtype=torch.float64)
    out = ref.clone()
    out[2, 3] = 1.5
    failures, _ = checks.check_values([out], [ref], [ref], TOL)
    assert failures[0].details["worst_index"] == [2, 3]
    assert failures[0].details["got"] == 1.5 and failures[0].details["expected"] == 1.0


def test_one_element_one_bf16_place_off_passes():
    # The failing CI case: RMSNorm over hidden=1 rounded twice in bf16 lands one place from PyTorch's.
    ref = torch.tensor([[-1.01631]], dtype=torch.float64)
    out = torch.tensor([[-1.0078125]], dtype=torch.bfloat16)
    failures, stats = checks.check_values([out], [ref], [ref.bfloat16()], for_dtype("bfloat16"))
    assert failures == [] and stats[0]["rel_err"] > for_dtype("bfloat16").norm


def test_nine_elements_each_inside_the_elementwise_bound_pass():
    # The failing CI case: a 3x3 bf16 RMSNorm output 0.83% from float64 in the norm (bound was 0.8%), every
    # element inside atol·rms + rtol·|ref|.
    ref = torch.linspace(1.1, 2.9, 9, dtype=torch.float64).reshape(3, 3)
    out = (ref * (1 - 0.0083)).to(torch.bfloat16)
    failures, stats = checks.check_values([out], [ref], [ref.bfloat16()], for_dtype("bfloat16"))
    assert failures == [] and stats[0]["rel_err"] > for_dtype("bfloat16").norm


def test_one_of_thirteen_elements_near_its_own_bound_passes_the_norm_test():
    # The failing CI case: a 13-element bf16 add+RMSNorm control rejected at 0.00889 against 0.00888 in the
    # norm with 0 elements outside the elementwise bound: one large element sat near its own bound.
    ref = torch.tensor([0.3, -0.5, 0.8, -0.2, 0.4, 0.6, -0.7, 0.1, -2.08681, 0.9, -0.3, 0.5, -0.4],
                       dtype=torch.float64)
    out = ref.clone()
    out[8] = -2.0546875  # 4 bf16 places off, still inside atol·rms + rtol·|ref|
    failures, stats = checks.check_values([out], [ref], [ref], for_dtype("bfloat16"))
    assert failures == [] and stats[0]["rel_err"] > (1.6e-2 + 1.6e-2) / 13 ** 0.5  # over the old bound


def test_systematic_error_over_thirteen_elements_still_fails_the_norm_test():
    ref = torch.linspace(1.1, 2.9, 13, dtype=torch.float64)
    failures, _ = checks.check_values([ref * 1.012], [ref], [ref], for_dtype("bfloat16"))
    assert [f.check for f in failures] == ["mismatch"] and failures[0].details["bad_elements"] == 0


def test_systematic_error_over_sixteen_elements_fails_the_norm_test():
    ref = torch.linspace(1.1, 2.9, 16, dtype=torch.float64)
    out = ref * 1.012
    failures, _ = checks.check_values([out], [ref], [ref], for_dtype("bfloat16"))
    assert [f.check for f in failures] == ["mismatch"] and failures[0].details["bad_elements"] == 0


def test_systematic_error_across_many_elements_still_fails_the_norm_test():
    ref = torch.randn(4096, dtype=torch.float64)
    out = ref * 1.012  # every element inside the elementwise bound, none averaging out
    failures, stats = checks.check_values([out], [ref], [ref], for_dtype("bfloat16"))
    assert [f.check for f in failures] == ["mismatch"] and failures[0].details["bad_elements"] == 0


def test_tolerance_widens_to_what_the_task_model_itself_achieves():
    base = for_dtype("bfloat16")
    assert calibrated(base, 0.2) == base
    assert calibrated(base, 3.0).norm == base.norm * 6


def test_elements_where_the_task_model_overflows_are_skipped_not_failed():
    ref = torch.tensor([1.0, 1e6], dtype=torch.float64)
    eager = torch.tensor([1.0, float("inf")])
    out = torch.tensor([1.0, float("inf")])
    failures, stats = checks.check_values([out], [ref], [eager], TOL)
    assert failures == [] and stats[0]["skipped_out_of_range"] == 1


def test_reference_special_values_must_be_reproduced():
    ref = torch.tensor([1.0, float("nan"), float("inf")], dtype=torch.float64)
    assert checks.special_values_match(ref.clone(), ref)
    assert not checks.special_values_match(torch.tensor([1.0, 0.0, float("inf")]), ref)


def test_structure_checks_count_shape_and_dtype():
    a = torch.zeros(2, 3)
    assert checks.check_structure([a, a], [a])[0].check == "output_count"
    assert checks.check_structure([torch.zeros(3, 2)], [a])[0].check == "output_shape"
    assert checks.check_structure([a.double()], [a])[0].check == "output_dtype"


def test_determinism_check_finds_differing_runs():
    a = torch.randn(10)
    b = a.clone()
    b[7] += 1
    assert checks.check_determinism([[a], [a.clone()]]) == []
    failure = checks.check_determinism([[a], [b]])[0]
    assert failure.check == "nondeterministic" and failure.details["worst_index"] == [7]


def _messy_case(seed=0):
    g = torch.Generator().manual_seed(seed)
    ref = torch.randn(37, 23, generator=g, dtype=torch.float64)
    ref[5, 7], ref[30, 1] = float("nan"), float("inf")
    eager = ref.float()
    eager[12, 3] = float("inf")  # the task's Model overflows here: outside the op's range
    out = (ref * (1 + 1e-3 * torch.randn(37, 23, generator=g, dtype=torch.float64))).float()
    out[20, 20], out[2, 9] = float("nan"), 4.0
    return out, ref, eager


def test_error_statistics_in_small_slices_equal_those_of_the_whole_tensor(monkeypatch):
    out, ref, eager = _messy_case()
    tol = for_dtype("float32")
    whole = checks.error_stats(out, ref, eager, tol)
    whole_failures, whole_stats = checks.check_values([out], [ref], [eager], tol)
    monkeypatch.setattr(checks, "CHUNK_ELEMENTS", 7)  # 122 slices, the worst element and a NaN in later ones
    sliced = checks.error_stats(out, ref, eager, tol)
    for name, value in vars(whole).items():
        assert getattr(sliced, name) == pytest.approx(value, rel=1e-12), name
    assert whole.worst_index == [2, 9] and whole.first_nonfinite_index == [20, 20] and whole.n_skipped == 1
    failures, stats = checks.check_values([out], [ref], [eager], tol)
    assert [(f.check, f.message) for f in failures] == [(f.check, f.message) for f in whole_failures]
    assert {f.check for f in failures} == {"nonfinite_output", "mismatch"}
    assert stats[0]["elements"] == whole_stats[0]["elements"]


def test_sliced_checks_still_find_constants_special_values_and_nondeterminism(monkeypatch):
    monkeypatch.setattr(checks, "CHUNK_ELEMENTS", 5)
    ref = torch.randn(64, dtype=torch.float64)
    failures, _ = checks.check_values([torch.full((64,), 0.25)], [ref], [ref], for_dtype("bfloat16"))
    assert [f.check for f in failures] == ["constant_output"] and failures[0].details["got"] == 0.25
    special = torch.tensor([1.0, 2, 3, 4, 5, 6, float("nan"), 8, float("inf")], dtype=torch.float64)
    assert checks.special_values_match(special.clone(), special)
    assert not checks.special_values_match(torch.where(special.isinf(), 0.0, special), special)
    a = torch.randn(6, 7)
    b = a.clone()
    b[5, 3] += 1
    assert checks.check_determinism([[a], [a.clone()]]) == []
    assert checks.check_determinism([[a], [b]])[0].details["worst_index"] == [5, 3]


def _rows_of(refs, eagers, step):
    """A ``slices`` callable over whole tensors: what inputs.row_slices gives, from tensors already made."""
    def walk():
        n = refs[0].shape[0]
        for a in range(0, n, step):
            yield a, min(n, a + step), [r[a:a + step] for r in refs], [e[a:a + step] for e in eagers]
    return walk


def close(value):
    """``value`` with every float in it compared up to summation order (1e-12 relative); the rest exactly."""
    if isinstance(value, dict):
        return {k: close(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(close(v) for v in value)
    return pytest.approx(value, rel=1e-12) if isinstance(value, float) else value


def _same(whole, streamed):
    """Failures (check, message, details) equal, floats up to summation order."""
    assert [(f.check, f.message) for f in streamed] == [(f.check, f.message) for f in whole]
    assert [f.details for f in streamed] == [close(f.details) for f in whole]


@pytest.mark.parametrize("step", [1, 4, 37])
def test_checks_streamed_by_rows_equal_the_whole_tensor_checks(step, monkeypatch):
    out, ref, eager = _messy_case()
    ref[33, 4], eager[33, 4] = float("-inf"), float("-inf")  # a special value the op defines, missed by out
    out[34, 20] = 9.0  # the worst element, in a late slice of rows
    flat_ref = torch.linspace(-1, 1, 37 * 5, dtype=torch.float64).reshape(37, 5)
    # output 2: the task's Model itself is 1e-4 off, which widens the tolerance; the candidate as far passes
    g = torch.Generator().manual_seed(1)
    noisy_ref = torch.randn(37, 3, generator=g, dtype=torch.float64)
    noisy = [(noisy_ref * (1 + 1e-4 * torch.randn(37, 3, generator=g, dtype=torch.float64))).float() for _ in range(2)]
    outs, refs, eagers = [out, torch.full((37, 5), 0.5), noisy[0]], [ref, flat_ref, noisy_ref], [eager, flat_ref.float(), noisy[1]]
    again = [t.clone() for t in outs]
    again[0][31, 2] += 1  # the second run differs late in the output
    moved = [t.clone() for t in outs]
    moved[1][36, 4] = 7.0
    base = for_dtype("float32")
    monkeypatch.setattr(checks, "CHUNK_ELEMENTS", 10)
    whole_failures, whole_stats = checks.check_values(outs, refs, eagers, base)
    whole_determinism = checks.check_determinism([outs, again, moved])
    failures, stats, determinism = checks.check_values_in_rows([outs, again, moved], _rows_of(refs, eagers, step), base)
    assert [(f.check, f.details["output"]) for f in whole_failures] == [
        ("nonfinite_output", 0), ("special_values", 0), ("mismatch", 0), ("constant_output", 1)]
    assert whole_failures[2].details["worst_index"] == [34, 20] and whole_stats[2]["tolerance"] != base.as_dict()
    _same(whole_failures, failures)
    assert len(stats) == 3 and stats == close(whole_stats)
    # run 1 vs 2 in output 0; run 2 vs 3 in outputs 0 (run 2's change undone) and 1
    assert [(f.details["output"], f.details["worst_index"]) for f in whole_determinism] == [(0, [31, 2]), (0, [31, 2]), (1, [36, 4])]
    _same(whole_determinism, determinism)


def test_streamed_checks_report_a_run_of_another_shape_as_nondeterministic():
    ref = torch.randn(6, 4, dtype=torch.float64)
    out = ref.float()
    failures, _, determinism = checks.check_values_in_rows([[out], [torch.zeros(())]],
                                                           _rows_of([ref], [ref.float()], 2), for_dtype("float32"))
    assert failures == [] and [f.details["worst_index"] for f in determinism] == [[]]
    assert determinism[0].message == checks.check_determinism([[out], [torch.zeros(())]])[0].message


def test_streamed_checks_accept_an_exact_output_and_never_touch_more_than_a_slice():
    ref = torch.randn(9, 8, dtype=torch.float64)
    seen = []

    def walk():
        for a, b, refs, eagers in _rows_of([ref], [ref.float()], 2)():
            seen.append(refs[0].shape[0])
            yield a, b, refs, eagers

    failures, stats, determinism = checks.check_values_in_rows([[ref.float()], [ref.float()]], lambda: walk(),
                                                               for_dtype("float32"))
    assert failures == [] == determinism and stats[0]["elements"] == 72
    assert seen == [2, 2, 2, 2, 1] * 3  # three passes, each a slice of rows at a time


def test_an_infinity_in_both_runs_is_never_reported_as_their_difference(monkeypatch):
    a = torch.randn(40)
    a[3] = float("inf")
    b = a.clone()
    b[30] += 1
    for chunk in (8, 1000):  # the infinity in the differing slice or not: the same answer
        monkeypatch.setattr(checks, "CHUNK_ELEMENTS", chunk)
        assert checks.check_determinism([[a], [b]])[0].details["worst_index"] == [30]


def test_bfloat16_under_the_interpreter_is_judged_with_twice_the_bounds():
    # the interpreter truncates float32 -> bfloat16; a GPU rounds to nearest
    from kernelwright.verify import tolerance

    gpu, cpu = tolerance.for_case("bfloat16", "cuda:0"), tolerance.for_case("bfloat16", "cpu")
    assert gpu == tolerance.for_dtype("bfloat16") and cpu == gpu.widened(tolerance.INTERPRETER_BF16)
    assert tolerance.for_case("float32", "cpu") == tolerance.for_dtype("float32")
