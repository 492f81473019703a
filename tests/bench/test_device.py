"""The device profile's cache: keyed by GPU model, driver and torch; read back instead of re-measured."""

import json

import pytest

from kernelwright.bench import device


def test_cache_key_changes_with_gpu_driver_and_torch_and_is_a_safe_file_name():
    key = device.cache_key("NVIDIA H100 80GB HBM3", "580.159.04", "2.11.0+cu130")
    assert "/" not in key and " " not in key and key.endswith(".json")
    others = {device.cache_key("NVIDIA H200", "580.159.04", "2.11.0+cu130"),
              device.cache_key("NVIDIA H100 80GB HBM3", "580.160.00", "2.11.0+cu130"),
              device.cache_key("NVIDIA H100 80GB HBM3", "580.159.04", "2.12.0+cu130")}
    assert key not in others and len(others) == 3


@pytest.fixture
def fake_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("kernelwright.hardware.resolve_device", lambda d: d)
    monkeypatch.setattr("kernelwright.hardware.describe",
                        lambda d: {"device_name": "NVIDIA H100 80GB HBM3", "driver": "580.159.04"})
    calls = []
    monkeypatch.setattr(device, "measure_copy_gbps", lambda d: calls.append("copy") or 3000.0)
    monkeypatch.setattr(device, "measure_read_gbps", lambda d: 3100.0)
    monkeypatch.setattr(device, "measure_matmul_tflops", lambda d: {"bf16": 790.0, "fp32": 50.0})
    return calls


def test_profile_is_measured_once_then_read_from_the_cache(fake_gpu, tmp_path):
    first = device.profile("cuda:0")
    second = device.profile("cuda:0")
    assert fake_gpu == ["copy"] and first == second and first.copy_gbps == 3000.0
    assert first.matmul_rate("bfloat16") == 790.0 and first.matmul_rate("float16") is None
    cached = list((tmp_path / "kernelwright").glob("*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["read_gbps"] == 3100.0


def test_refresh_or_a_damaged_cache_measures_again(fake_gpu, tmp_path):
    device.profile("cuda:0")
    device.profile("cuda:0", refresh=True)
    next((tmp_path / "kernelwright").glob("*.json")).write_text("{not json")
    device.profile("cuda:0")
    assert fake_gpu == ["copy", "copy", "copy"]


def test_datasheet_matches_the_most_specific_name():
    assert device.datasheet("NVIDIA H100 PCIe")["memory_gbps"] == 2000
    assert device.datasheet("NVIDIA H100 80GB HBM3")["memory_gbps"] == 3350
    assert device.datasheet("NVIDIA H200")["memory_gbps"] == 4800
    assert device.datasheet("Some GPU") is None


def test_the_cpu_is_refused_at_once_with_one_sentence(monkeypatch):
    import time

    from typer.testing import CliRunner

    from kernelwright.cli import app

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr(device, "measure_copy_gbps", lambda d: pytest.fail("a CPU must not be measured"))
    started = time.monotonic()
    for args in (["device", "--device", "cpu"], ["device"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "no CUDA GPU is visible" in result.output and "--device cpu" not in result.output
    assert time.monotonic() - started < 10
