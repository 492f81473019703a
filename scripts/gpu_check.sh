#!/usr/bin/env bash
# Run on an H100/H200 (the device machine): GPU tests, then the benchmarks; a short table last.
# Usage: scripts/gpu_check.sh [OUT_DIR]   (OUT_DIR defaults to $OUT, else ./out)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-out}}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 - <<'PY' | tee "$out/environment.txt"
import datetime, torch, triton
p = torch.cuda.get_device_properties(0)
print(f"date {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}")
print(f"device {p.name} sm_{p.major}{p.minor} {p.multi_processor_count} SMs, torch {torch.__version__}, "
      f"cuda {torch.version.cuda}, triton {triton.__version__}")
PY
status=0
python3 -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tee "$out/pytest_gpu.log" | tail -n 25 || status=1
python3 benchmarks/suite.py --out "$out/suite" ${SUITE_ARGS:-} 2>&1 | tee "$out/suite.log" | tail -n 60 || status=1
python3 benchmarks/optimize_suite.py --out "$out/optimize" ${OPTIMIZE_ARGS:-} 2>&1 | tee "$out/optimize.log" | tail -n 40 || status=1
# Packaging: `kernels` from .whl/ (carried; pure wheels + kernels' abi3 wheel) when the machine lacks it, then
# package examples/rmsnorm.py, load it through kernels, kernelize a Qwen3-8B-shaped model, write the e2e table.
python3 -c "import kernels" 2>/dev/null || python3 -m pip install -q --no-deps --no-index .whl/kernels-*.whl .whl/tomlkit-*.whl
python3 benchmarks/e2e.py --out "$out/e2e" ${E2E_ARGS:-} 2>&1 | tee "$out/e2e.log" | tail -n 30 || status=1
exit $status
