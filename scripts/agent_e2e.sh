#!/usr/bin/env bash
# End-to-end LLM-agent session against a local OpenAI-compatible endpoint (the canned fake server), on
# the GPU when one is visible: reaches best.py with every artifact, then replays the recorded run.
# Usage: bash scripts/agent_e2e.sh [TASK] [OUT]
set -euo pipefail
TASK=${1:-rmsnorm}
OUT=${2:-kernelwright-runs/agent-e2e-$TASK}
PORT=${PORT:-8765}
python3 scripts/fake_openai_server.py --port "$PORT" > "/tmp/fake_openai_server_$PORT.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
sleep 1
rm -rf "$OUT" "$OUT-replay"
kernelwright optimize "$TASK" --agent "openai-compatible:http://127.0.0.1:$PORT/v1:fake-model" --budget 6 --out "$OUT"
ls "$OUT" "$OUT"/candidates/*
for f in best.py tuning_plan.json candidate_variants.json profile_report.json bench_results.csv run.sqlite summary.json; do
  test -s "$OUT/$f" || { echo "missing $OUT/$f"; exit 1; }
done
python3 - "$OUT" <<'PY'
import json, sqlite3, sys
out = sys.argv[1]
con = sqlite3.connect(f"{out}/run.sqlite")
print("llm calls:", con.execute("SELECT COUNT(*), SUM(input_tokens + output_tokens) FROM llm_calls").fetchone())
print("verdicts:", con.execute("SELECT c.name, e.kind, e.status FROM evaluations e JOIN candidates c ON c.id = e.candidate_id ORDER BY e.id").fetchall())
print(json.dumps(json.load(open(f"{out}/summary.json")), indent=1))
PY
kernelwright optimize "$TASK" --agent "replay:$OUT" --out "$OUT-replay"
cmp "$OUT/best.py" "$OUT-replay/best.py" && echo "replay reached the same best.py"
