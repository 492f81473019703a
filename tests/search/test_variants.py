"""Launch configurations: the accurate form for long rows, and probes the interpreter runs quickly."""

from pathlib import Path

from kernelwright.search import variants
from kernelwright.search.capture import capture
from kernelwright.search.codegen import generate
from kernelwright.search.config import LaunchConfig
from kernelwright.tasks.task import load_task

TASKS = Path(__file__).parent / "tasks"


def test_the_accurate_form_of_a_config():
    looped = variants.config(one_pass=False, block=16, rows=2)
    fixed = variants.accurate(looped)
    assert fixed == looped.replace(accurate=True)
    assert variants.accurate(fixed) is None                        # already accurate: nothing else to try
    assert variants.accurate(variants.config(block=64), kind="pointwise") is None  # no sums to make accurate


def test_rows_of_millions_rank_only_accurate_configs_and_short_rows_none():
    long_rows = variants.ranked("rows", 16, 64 * 256 * 256)        # KernelBench 40_LayerNorm's bucket
    assert long_rows and all(c.accurate for c in long_rows)
    assert not any(c.accurate for c in variants.ranked("rows", 4096, 151936))
    assert not any(c.accurate for c in variants.ranked("pointwise", 4096, 1 << 20))


def test_a_40_layernorm_shaped_program_generates_the_accurate_form():
    task = load_task(TASKS / "layernorm_long_rows.py")
    program = capture(task)
    knobs = task.knobs
    cols = knobs["features"] * knobs["dim1"] * knobs["dim2"]
    ranked = variants.ranked(program.kind, knobs["batch_size"], cols)
    source = generate(program, [((knobs["batch_size"], cols), ranked[0])])
    assert "accurate=True" in source and 'ACCURATE=config.get("accurate", False)' in source
    assert "_err = tl.where(" in source                            # the compensation itself is in the kernel


def _steps(cfg: LaunchConfig, rows: int, cols: int) -> int:
    """Loop steps of a looped rows kernel: what the interpreter pays for."""
    return -(-rows // cfg.rows) * -(-cols // cfg.block)


def test_cpu_probes_take_few_wide_steps():
    """One probe on the CPU, with 15x fewer interpreter steps on a KernelBench loss's 257 x 4096 rows than
    the GPU's narrow probe, yet several chunks with a tail at the verifier's 129-wide CPU shape."""
    gpu = dict(variants.probes("rows"))["probe-looped"]
    (label, cpu), = variants.probes("rows", device="cpu")
    assert not cpu.one_pass and cpu.programs_per_sm and cpu.rows > 1  # chunks, persistent grid, rows
    assert _steps(gpu, 257, 4096) >= 15 * _steps(cpu, 257, 4096)
    assert 129 // cpu.block >= 2 and 129 % cpu.block
    (_, pointwise), = variants.probes("pointwise", device="cpu")
    assert pointwise.block >= 16 * variants.probes("pointwise")[0][1].block


def test_a_reduced_middle_dim_with_a_wide_inner_dim_is_read_as_columns_first():
    """KernelBench 47/49 (sum/max over dim 1 of 128x4096x4095): the column schedule leads; the row walk,
    which strides by inner, stays as a later variant; narrow inner dims and last-dim reductions keep rows."""
    wide = variants.ranked("rows", 128 * 4095, 4096, inner=4095)
    assert wide[0].column and wide[0].rows >= 64 and not wide[0].one_pass
    assert any(not c.column for c in wide)
    assert len({str(c) for c in wide}) == len(wide)
    assert not any(c.column for c in variants.ranked("rows", 128 * 8, 4096, inner=8))
    assert not any(c.column for c in variants.ranked("rows", 4096, 4096))
    assert variants.ranked("rows", 3 * 37, 50, inner=37)[0].rows == 64  # tile no wider than inner needs
    assert [label for label, _ in variants.probes("rows", "cpu", inner=6)] == ["probe-looped", "probe-column"]
    assert [label for label, _ in variants.probes("rows", "cpu")] == ["probe-looped"]


def test_few_long_rows_and_tall_columns_lead_with_a_split_schedule():
    """KernelBench 40_LayerNorm (16 rows of 4M) would run one program per row on 16 of 132 SMs: split
    leads. Rows enough to fill the GPU (23_Softmax: 4096 x 393216), short rows, and a program without a
    split form keep rows; a middle-dim reduction with few column tiles and a tall reduced dim splits
    the columns, one with many tiles (47's 128 x 4096 x 4095) keeps the column schedule."""
    assert variants.schedule("rows", 16, 64 * 256 * 256, split_ok=True) == "split"
    assert variants.schedule("rows", 16, 64 * 256 * 256, split_ok=False) == "rows"
    assert variants.schedule("rows", 4096, 393216, split_ok=True) == "rows"
    assert variants.schedule("rows", 16, 4096, split_ok=True) == "rows"
    assert variants.schedule("rows", 2 * 64, 1 << 20, inner=64, split_ok=True) == "column-split"
    assert variants.schedule("rows", 128 * 4095, 4096, inner=4095, split_ok=True) == "column"
    assert variants.schedule("rows", 32 * 1024, 2048, inner=1024, split_ok=True) == "column-split"  # 256 tiles
    assert variants.schedule("pointwise", 1, 1 << 24, split_ok=True) == "pointwise"

    long_rows = variants.ranked("rows", 16, 64 * 256 * 256, split_ok=True)
    assert long_rows[0].split and not long_rows[0].one_pass and long_rows[0].accurate
    assert any(not c.split for c in long_rows)  # the unsplit rows stay as variants
    tall = variants.ranked("rows", 2 * 64, 1 << 20, inner=64, split_ok=True)
    assert tall[0].split and tall[0].column and tall[0].rows <= 64
    assert not any(c.split for c in variants.ranked("rows", 4096, 393216, split_ok=True))


def test_split_probes_only_when_a_bucket_splits():
    assert [label for label, _ in variants.probes("rows", "cpu", split=True)] == ["probe-looped", "probe-split"]
    assert [label for label, _ in variants.probes("rows", "cuda", inner=6, split=True)][-2:] == \
        ["probe-split", "probe-column-split"]
    assert all(cfg.split for label, cfg in variants.probes("rows", "cpu", inner=6, split=True)
               if "split" in label)


def test_optimize_plans_each_bucket_with_its_schedule_and_best_py_dispatches_to_it():
    """The offline run's buckets carry the schedule their shape picked, the split probes come with it,
    and the prior table's source (best.py before tuning) holds the split configuration it dispatches on."""
    from kernelwright.run.offline import prepare

    tall = prepare(load_task(TASKS / "tall_column_mean.py"), "cpu")
    assert [b["schedule"] for b in tall.buckets] == ["column-split"]
    assert "probe-column-split" in [label for label, _, _ in tall.probes]
    long_rows = prepare(load_task(TASKS / "layernorm_long_rows.py"), "cpu")
    assert [b["schedule"] for b in long_rows.buckets] == ["split"]
    table = [(tuple(b["key"]), b["ranked"][0]) for b in long_rows.buckets]
    source = generate(long_rows.program, table)
    assert "split=16" in source and 'if config.get("split"):' in source
    short = prepare(load_task(TASKS / "log_softmax_rows.py"), "cpu")
    assert [b["schedule"] for b in short.buckets] == ["rows"] and "probe-split" not in str(short.probes)


def test_variants_rank_the_prior_first_and_cover_wide_rows():
    narrow = variants.ranked("rows", 8192, 128)
    assert narrow[0].one_pass and narrow[0].rows > 1  # several rows per program
    wide = variants.ranked("rows", 4096, 151936)
    assert all(not c.one_pass for c in wide)  # past MAX_TILE: looped only
    tall = variants.ranked("rows", 32768, 4096)
    assert any(c.programs_per_sm for c in tall)  # persistent grid tried
    assert len({str(c) for c in tall}) == len(tall)
