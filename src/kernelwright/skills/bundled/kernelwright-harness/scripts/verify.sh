#!/usr/bin/env sh
# Verify a candidate and print one summary line; the full JSON goes to verify.json (or $KW_OUT).
# usage: verify.sh TASK CANDIDATE [extra kernelwright verify flags, e.g. --device cpu]
set -u
out="${KW_OUT:-verify.json}"
kernelwright verify "$@" --json > "$out"
rc=$?
python3 "$(dirname "$0")/summarize.py" "$out"
exit $rc
