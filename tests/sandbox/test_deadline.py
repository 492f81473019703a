"""The parent's per-call deadlines, event parsing and heartbeat, without starting a worker."""

import json

import pytest

from kernelwright.sandbox import deadline
from kernelwright.sandbox.deadline import CallWatch, EventStream, call_deadline, load_stretch, parse_event
from kernelwright.sandbox.runner import _parse_report

NONCE = "ab" * 16


def line(**fields) -> bytes:
    return json.dumps({**fields, "nonce": NONCE}).encode() + b"\n"


def test_the_deadline_is_the_floor_for_fast_ops_and_50x_eager_for_slow_ones():
    assert call_deadline("cuda", 0.001, first=False) == deadline.FLOOR_S["cuda"]
    assert call_deadline("cuda", None, first=False) == deadline.FLOOR_S["cuda"]
    assert call_deadline("cuda", 1.0, first=False) == 50.0
    assert call_deadline("cuda:1", 1.0, first=True) == 50.0 + deadline.FIRST_ALLOWANCE_S["cuda"]
    assert call_deadline("cpu", 0.0, first=True) == deadline.FLOOR_S["cpu"] + deadline.FIRST_ALLOWANCE_S["cpu"]
    assert call_deadline("cpu", None, first=False, stretch=2.0) == 2 * deadline.FLOOR_S["cpu"]


def test_a_hang_on_cpu_is_judged_well_within_30_s_on_an_idle_machine():
    first = call_deadline("cpu", 0.01, first=True)
    assert first <= 15  # leaves the time to start both processes inside 30 s


def test_a_hang_on_a_gpu_is_judged_within_30_s_after_a_big_tasks_set_up():
    # Measured on an H200: ~21 s from `verify` starting to the first call of a 7.5 GB task. Compiles
    # are paused by the runner, so the first call's allowance only covers initialisation.
    assert call_deadline("cuda", 0.001, first=True) == 8.0
    assert 21 + call_deadline("cuda", 0.001, first=True) <= 30
    assert call_deadline("cpu", 0.001, first=True) == 13.0  # the interpreter keeps its 10 s + 3 s


def test_cpu_deadlines_stretch_with_the_load_within_bounds(monkeypatch):
    monkeypatch.setattr(deadline.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(deadline.os, "getloadavg", lambda: (5.0, 0, 0))
    assert load_stretch("cpu") == 2.5
    assert load_stretch("cuda") == 1.0
    monkeypatch.setattr(deadline.os, "getloadavg", lambda: (0.3, 0, 0))
    assert load_stretch("cpu") == 1.0
    monkeypatch.setattr(deadline.os, "getloadavg", lambda: (100.0, 0, 0))
    assert load_stretch("cpu") == deadline.MAX_LOAD_STRETCH


@pytest.mark.parametrize("raw", [
    json.dumps({"event": "call", "case": "c", "call": 0}),  # no nonce: the candidate wrote it
    json.dumps({"event": "call", "case": "c", "nonce": "00" * 16}),  # a guessed nonce
    json.dumps({"event": "exit", "case": "c", "nonce": NONCE}),  # not an event the worker sends
    json.dumps(["call", NONCE]),
    "{\"event\": \"call\", \"nonce\": \"" + NONCE,  # half a line
    "\xff\xfe",
])
def test_events_without_the_worker_nonce_are_not_events(raw):
    assert parse_event(raw, NONCE) is None


def test_the_event_stream_reassembles_lines_split_across_reads():
    stream = EventStream(NONCE)
    data = line(event="call", case="c0", call=0) + line(event="done", case="c0", call=0)
    assert stream.feed(data[:10]) == []
    events = stream.feed(data[10:])
    assert [e["event"] for e in events] == ["call", "done"] and events[0]["case"] == "c0"


def test_forged_lines_on_the_stream_are_skipped_not_obeyed():
    stream = EventStream(NONCE)
    forged = json.dumps({"event": "done", "case": "c0"}).encode() + b"\n"
    assert stream.feed(line(event="call", case="c0", call=0) + forged) == [
        {"event": "call", "case": "c0", "call": 0, "nonce": NONCE}]


def test_events_before_the_report_are_accepted():
    raw = line(event="build", case="c0") + line(event="done", case="c0") + line(status="ok", cases=[])
    report, reason, _ = _parse_report(raw, NONCE, 0)
    assert reason is None and report["status"] == "ok"


@pytest.mark.parametrize("extra", [
    json.dumps({"event": "call", "case": "c0", "call": 0}).encode() + b"\n",  # an event without the nonce
    json.dumps({"event": "call", "case": "c0", "nonce": "11" * 16}).encode() + b"\n",
    json.dumps({"status": "ok", "cases": []}).encode() + b"\n",  # a second report
    line(status="ok", cases=[]),  # a second report, even with the nonce
    b"not json\n",
])
def test_anything_else_on_the_report_pipe_is_a_forgery(extra):
    raw = line(event="call", case="c0", call=0) + extra + line(status="ok", cases=[])
    assert _parse_report(raw, NONCE, 0)[1] == "report_forged"


def test_events_alone_are_no_report():
    assert _parse_report(line(event="call", case="c0", call=0), NONCE, 1)[1] == "no_report"


def job(*eager):
    return {"mode": "run", "cases": [{"id": f"c{i}", "eager_s": e} for i, e in enumerate(eager)]}


@pytest.fixture
def idle(monkeypatch):
    monkeypatch.setattr(deadline, "load_stretch", lambda device: 1.0)


def test_a_call_past_its_deadline_is_named_with_case_call_and_deadline(idle):
    watch = CallWatch(job(None, 1.0), "cuda", started=0.0)
    watch.on_event({"event": "call", "case": "c0", "call": 0}, now=1.0)
    allowed = deadline.FLOOR_S["cuda"] + deadline.FIRST_ALLOWANCE_S["cuda"]
    assert watch.overrun(1.0 + allowed - 0.1) is None
    watch.on_event({"event": "done", "case": "c0", "call": 0}, now=2.0)
    assert watch.overrun(1000.0) is None  # nothing runs between calls
    watch.on_event({"event": "call", "case": "c1", "call": 2}, now=10.0)
    assert watch.overrun(59.0) is None  # 50 x 1.0 s, not the first call any more
    message = watch.overrun(60.5)
    assert "case c1, call 3 of ModelNew" in message and "50 s" in message and "1 s" in message
    assert watch.summary()["calls"] == 1


def test_compile_time_does_not_count_against_the_call(idle):
    watch = CallWatch(job(None), "cpu", started=0.0)
    watch.on_event({"event": "build", "case": "c0"}, now=0.0)
    budget = watch.phase.budget_s
    watch.pause(30.0)
    assert watch.overrun(budget + 29.0) is None
    assert "building ModelNew for case c0" in watch.overrun(budget + 31.0)


def test_deadlines_are_off_under_a_wrapper(idle):
    watch = CallWatch(job(None), "cpu", started=0.0, enabled=False)
    watch.on_event({"event": "call", "case": "c0", "call": 0}, now=0.0)
    assert watch.overrun(10_000.0) is None


def test_the_heartbeat_says_where_the_worker_is_at_most_every_10_s(idle):
    lines = []
    watch = CallWatch(job(None, None, None), "cpu", started=100.0)
    watch.heartbeat(105.0, lines.append)
    watch.heartbeat(111.0, lines.append)
    watch.on_event({"event": "call", "case": "c1", "call": 0}, now=112.0)
    watch.heartbeat(115.0, lines.append)
    watch.heartbeat(123.4, lines.append)
    assert lines == ["verify: starting the candidate process, 11 s", "verify: case 2 of 3 (c1), 23 s"]


def test_bench_jobs_count_shapes():
    lines = []
    watch = CallWatch({"mode": "bench", "shapes": [{"id": "shape-0"}]}, "cuda", started=0.0)
    watch.on_event({"event": "call", "case": "shape-0", "call": 0}, now=1.0)
    watch.heartbeat(12.0, lines.append)
    assert lines == ["bench: shape 1 of 1 (shape-0), 12 s"]

