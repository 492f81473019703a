#!/usr/bin/env bash
# Run on an H100/H200 (the device machine): GPU tests, benchmarks, packaging and agent sessions, in
# stages, so that each fits one call of the device tool. A short table or log tail comes last.
#
#   scripts/gpu_check.sh STAGE...      stages: verify timing suite optimize e2e agents harness faults kernelbench
#                                      profile (AUTOPILOT=1 adds autopilot) scaling layer (or all)
#
# Environment: STAGE_SECONDS (a limit per stage, default none; set it below the device tool's per-call limit),
# SUITE_ARGS, OPTIMIZE_ARGS, E2E_ARGS, KB_ARGS, LAYER_ARGS pass options on (LAYER_ARGS must name the
# packaged repository: --kernel DIR; KB_DIR: KernelBench's level-1
# files, default ./.kb); WORKERS (default 8) parallel verify
# processes for the correctness-only tests (never for timing). Everything is written under
# $KW_OUT (default ./out/gpu_check); when $OUT is set (the device tool), a tarball of it lands there.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${KW_OUT:-out/gpu_check}
mkdir -p "$out"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then  # packages the machine lacks, carried as wheels
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/kw-site .whl/*.whl \
    && export PYTHONPATH="/tmp/kw-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PATH="$PWD/scripts/bin:$PATH"
mkdir -p scripts/bin && printf '#!/bin/sh\nexec python3 -m kernelwright "$@"\n' > scripts/bin/kernelwright && chmod +x scripts/bin/kernelwright
python3 - <<'PY' | tee "$out/environment.txt"
import datetime, torch, triton
p = torch.cuda.get_device_properties(0)
print(f"date {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}")
print(f"device {p.name} sm_{p.major}{p.minor} {p.multi_processor_count} SMs, torch {torch.__version__}, "
      f"cuda {torch.version.cuda}, triton {triton.__version__}")
PY
nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | sed 's/^/driver /' | tee -a "$out/environment.txt"
stages=("$@")
[ ${#stages[@]} -eq 0 ] || [ "${stages[0]}" = all ] && stages=(verify timing suite optimize e2e agents harness)
status=0
run() {  # run STAGE COMMAND...: log to $out/STAGE.log, print its tail
  local stage=$1; shift
  echo "=== $stage: $*"
  # STAGE_SECONDS bounds each stage, so a stage cut short still leaves its log in the tarball below
  timeout --kill-after=10 "${STAGE_SECONDS:-0}" "$@" > "$out/$stage.log" 2>&1 || { status=1; echo "--- $stage FAILED"; }
  tail -n "${TAIL:-30}" "$out/$stage.log"
}
for stage in "${stages[@]}"; do
  case $stage in
    verify) run verify python3 -m pytest -m gpu -q -p no:cacheprovider -n "${WORKERS:-8}" -k "not timing" tests ;;
    timing) run timing python3 -m pytest -m gpu -q -p no:cacheprovider -n 0 -k "timing" tests ;;
    suite) run suite python3 benchmarks/suite.py --out "$out/suite" ${SUITE_ARGS:-} ;;
    optimize) run optimize python3 benchmarks/optimize_suite.py --out "$out/optimize" ${OPTIMIZE_ARGS:-} ;;
    e2e) run e2e python3 benchmarks/e2e.py --out "$out/e2e" ${E2E_ARGS:-} ;;
    agents) run agents bash scripts/agent_e2e.sh rmsnorm "$out/agent-e2e" ;;
    harness) run harness python3 benchmarks/harness_strength.py --device cuda --out "$out/harness" ;;
    faults) run faults python3 scripts/faults.py --device cuda --out "$out/faults" ;;
    kernelbench) run kernelbench python3 benchmarks/kernelbench_gpu.py --kernelbench "${KB_DIR:-.kb}" --out "$out/kernelbench" ${KB_ARGS:-} ;;
    profile)  # issue 16: the 36-layer Qwen3-8B-shaped model, prefill (2048 tokens) and decode, then autopilot
      run profile-prefill python3 -m kernelwright profile --model qwen3 --size 8b-shape --phase prefill --seq 2048 --device cuda --out "$out/profile-prefill" --emit-tasks "$out/profile-tasks"
      run profile-decode python3 -m kernelwright profile --model qwen3 --size 8b-shape --phase decode --device cuda --out "$out/profile-decode"
      [ -n "${AUTOPILOT:-}" ] && run autopilot python3 -m kernelwright autopilot qwen3 --size 8b-shape --device cuda --out "$out/autopilot" ${AUTOPILOT_ARGS:-} ;;
    scaling) run scaling python3 benchmarks/executor_scaling.py --out "$out/scaling" ${SCALING_ARGS:-} ;;  # issue 17: 1 vs N GPUs
    layer) run layer python3 benchmarks/layer_overhead.py --out "$out/layer" ${LAYER_ARGS:-} ;;  # issue 13: a layer's host µs per call
    *) echo "unknown stage $stage (verify timing suite optimize e2e agents harness faults kernelbench profile scaling layer all)"; status=2 ;;
  esac
done
[ -n "${OUT:-}" ] && tar czf "$OUT/gpu_check-$(IFS=-; echo "${stages[*]}").tgz" -C "$out" .
exit $status
