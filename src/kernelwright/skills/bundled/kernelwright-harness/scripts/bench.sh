#!/usr/bin/env sh
# Benchmark a candidate and print one line per shape; the full JSON goes to bench.json (or $KW_OUT).
# usage: bench.sh TASK CANDIDATE [extra kernelwright bench flags, e.g. --dtype bfloat16]
set -u
out="${KW_OUT:-bench.json}"
kernelwright bench "$@" --json > "$out"
rc=$?
python3 "$(dirname "$0")/summarize.py" "$out"
exit $rc
