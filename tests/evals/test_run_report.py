"""An optimize run's page (evals/run_report.py): trajectory, lineage tree and rejections from its run.sqlite."""

import json

from typer.testing import CliRunner

from kernelwright.cli import app
from kernelwright.evals.run_report import load_run, trajectory
from kernelwright.evals.runner import write_results
from kernelwright.store import Store

from test_eval_report import Tables, parsed, unit

REASON = "anti_cheat: output <img src=x onerror=alert(1)> reused the reference's memory"


def bench(eager_speedups):
    rows = [{"speedup": {"eager": s, "compile": s / 2}} for s in eager_speedups]
    return {"timings_meaningful": True, "rows": rows, "failures": []}


def run_dir(tmp_path):
    """A run as optimize leaves it: a probe, a rejected child, two tuning rounds (the second slower)."""
    folder = tmp_path / "run"
    folder.mkdir()
    with Store.open(folder / "run.sqlite") as store:
        run = store.start_run(task="gelu", agent="offline", device="cuda:0")
        probe = store.add_candidate(run, source_path="c/probe.py", source="a", role="search", agent="offline",
                                    name="probe")
        store.add_evaluation(probe, "verify", "accepted", {"accepted": True}, seconds=1, device="cuda:0")
        store.add_evaluation(probe, "bench", "ok", bench([1.0, 4.0]), seconds=1, device="cuda:0")  # geomean 2
        bad = store.add_candidate(run, source_path="c/bad.py", source="b", role="writer", agent="offline", name="bad",
                                  parent_id=probe)
        store.add_evaluation(bad, "verify", "rejected", {"accepted": False, "failures": [
            {"check": "anti_cheat", "message": REASON.split(": ", 1)[1]}]}, seconds=1, device="cuda:0")
        for k, speeds in ((1, [3.0, 3.0]), (2, [2.5])):
            tuned = store.add_candidate(run, source_path=f"c/r{k}.py", source=f"r{k}", role="tuner", agent="offline",
                                        name=f"round{k}", parent_id=probe, meta={"round": k})
            store.add_evaluation(tuned, "verify", "accepted", {"accepted": True}, seconds=1, device="cuda:0")
            store.add_evaluation(tuned, "bench", "ok", bench(speeds), seconds=1, device="cuda:0")
    (folder / "summary.json").write_text(json.dumps({"verdict": {"sentence": "faster than eager by 3.0x"}}))
    return folder


def test_the_trajectory_keeps_the_best_speedup_so_far_per_round(tmp_path):
    points = trajectory(load_run(run_dir(tmp_path))["candidates"])
    assert [(p["round"], round(p["speedup_eager"], 6), round(p["best_so_far"], 6)) for p in points] == [
        (None, 2.0, 2.0), (1, 3.0, 3.0), (2, 2.5, 3.0)]


def test_report_of_a_run_dir_shows_lineage_and_each_rejection_escaped(tmp_path):
    folder = run_dir(tmp_path)
    done = CliRunner().invoke(app, ["report", str(folder)])
    assert done.exit_code == 0, done.output
    raw = (folder / "report.html").read_text()
    assert "<img" not in raw and "faster than eager by 3.0x" in raw
    page = parsed(folder / "report.html")
    (rejection,) = page.rows("rejections-run")
    assert rejection["candidate"][0] == "bad" and rejection["reason"][0] == REASON
    best = [row["best so far"][1] for row in page.rows("trajectory-table-run")]
    assert [round(float(v), 6) for v in best] == [2.0, 3.0, 3.0]
    nesting = LineageDepth()
    nesting.feed(raw)
    assert nesting.depth == {"1": 1, "2": 2, "3": 2, "4": 2}  # every child under the probe it came from


class LineageDepth(Tables):
    def __init__(self):
        super().__init__()
        self.depth, self._ul = {}, 0

    def handle_starttag(self, tag, attrs):
        super().handle_starttag(tag, attrs)
        self._ul += tag == "ul"
        if tag == "li" and dict(attrs).get("data-candidate"):
            self.depth[dict(attrs)["data-candidate"]] = self._ul

    def handle_endtag(self, tag):
        super().handle_endtag(tag)
        self._ul -= tag == "ul"


def test_the_eval_report_folds_in_each_optimize_units_run(tmp_path):
    folder = run_dir(tmp_path)
    out = tmp_path / "eval"
    (out / "units").mkdir(parents=True)
    record = {**unit("offline", "builtin", "gelu", 1, True, 3.0, 1.5), "out": str(folder)}
    write_results(out, "suite", ["offline"], ["none"], 1, None, "cuda:0", [], [record])
    page = parsed(out / "report.html")
    assert "details" in page.tags and page.rows("rejections-offline-builtin-gelu-run-1")
