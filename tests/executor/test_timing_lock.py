import threading
import time

import pytest

from kernelwright.executor.timing import physical_gpu, timing_lock


def overlapping(spans) -> bool:
    spans = sorted(spans, key=lambda s: s[1])
    return any(later[1] < earlier[2] for earlier, later in zip(spans, spans[1:]))


def test_the_timing_lock_serialises_one_physical_gpu_and_leaves_others_and_the_cpu_free(tmp_path, monkeypatch):
    monkeypatch.setenv("KERNELWRIGHT_LOCK_DIR", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7,2")
    assert (physical_gpu("cuda:0"), physical_gpu("cuda:1"), physical_gpu("cpu")) == ("7", "2", None)
    spans: dict[str, list[tuple[str, float, float]]] = {"cuda:0": [], "cuda:1": []}

    def bench(device, who):
        with timing_lock(device):
            start = time.monotonic()
            time.sleep(0.3)
            spans[device].append((who, start, time.monotonic()))

    threads = [threading.Thread(target=bench, args=(d, i)) for i in range(2) for d in ("cuda:0", "cuda:1")]
    for t in threads:
        t.start()
    with timing_lock("cpu") as waited:  # no lock on the CPU
        assert waited == 0.0
    for t in threads:
        t.join()
    assert not overlapping(spans["cuda:0"]) and not overlapping(spans["cuda:1"])
    assert overlapping([spans["cuda:0"][0], spans["cuda:1"][0]])  # different GPUs time side by side


def test_a_timing_waits_for_correctness_runs_which_share_the_gpu_with_each_other(tmp_path, monkeypatch):
    monkeypatch.setenv("KERNELWRIGHT_LOCK_DIR", str(tmp_path))
    spans: list[tuple[str, float, float]] = []

    def hold(who, shared, delay):
        time.sleep(delay)
        with timing_lock("cuda:0", shared=shared):
            start = time.monotonic()
            time.sleep(0.3)
            spans.append((who, start, time.monotonic()))

    threads = [threading.Thread(target=hold, args=(who, shared, delay))
               for who, shared, delay in (("verify-a", True, 0.0), ("verify-b", True, 0.05), ("bench", False, 0.1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    by = {who: (start, end) for who, start, end in spans}
    assert by["verify-b"][0] < by["verify-a"][1]  # two correctness runs side by side
    assert by["bench"][0] >= max(by["verify-a"][1], by["verify-b"][1])  # the timing alone on the GPU


def test_a_stream_of_overlapping_correctness_runs_does_not_starve_a_timing(tmp_path, monkeypatch):
    monkeypatch.setenv("KERNELWRIGHT_LOCK_DIR", str(tmp_path))
    stream_ends = time.monotonic() + 2.5
    waited: list[float] = []

    def verify_forever(delay):
        time.sleep(delay)
        while time.monotonic() < stream_ends:  # three holders, always at least one holding
            with timing_lock("cuda:0", shared=True):
                time.sleep(0.2)

    def bench():
        time.sleep(0.3)
        with timing_lock("cuda:0") as wait:
            waited.append(wait)

    threads = [threading.Thread(target=verify_forever, args=(d,)) for d in (0.0, 0.07, 0.14)]
    threads.append(threading.Thread(target=bench))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert waited and waited[0] < 1.0  # it got the GPU after the holders of the moment, not after the stream


def test_asking_again_for_a_held_gpu_raises_instead_of_waiting_forever(tmp_path, monkeypatch):
    monkeypatch.setenv("KERNELWRIGHT_LOCK_DIR", str(tmp_path))
    with timing_lock("cuda:0", shared=True):
        with pytest.raises(RuntimeError, match="would wait forever"):
            with timing_lock("cuda:0"):
                pass
        with timing_lock("cuda:1"):  # another GPU is another lock
            pass
    with timing_lock("cuda:0"):  # released: free again
        pass


def test_a_wait_with_a_deadline_ends_in_gpu_busy_and_leaves_the_lock_to_its_holder(tmp_path, monkeypatch):
    from kernelwright.executor.timing import GpuBusy

    monkeypatch.setenv("KERNELWRIGHT_LOCK_DIR", str(tmp_path))
    holding, release = threading.Event(), threading.Event()

    def bench():
        with timing_lock("cuda:0"):
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=bench)
    holder.start()
    holding.wait(10)
    started = time.monotonic()
    with pytest.raises(GpuBusy, match="GPU 0 stayed busy"):
        with timing_lock("cuda:0", shared=True, deadline=started + 0.3):
            pass
    assert 0.25 <= time.monotonic() - started < 2.0
    release.set()
    holder.join()
    with timing_lock("cuda:0", shared=True, deadline=time.monotonic() + 5) as waited:  # free again: no wait
        assert waited < 1.0
