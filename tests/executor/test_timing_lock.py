import threading
import time

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
