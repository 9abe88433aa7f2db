#!/usr/bin/env bash
# Run, or resume, the pre-registered plan experiments/local-rg.toml (docs/experiments.md).
#
# 1. the screen's rules choose the primary and the secondary task (experiments/localrg.py choose);
# 2. `ted serve` starts llama-server for the student (local) and the teacher (local:teacher);
# 3. each task's `ted reproduce --config experiments/local-rg/TASK.toml` runs, with --resume when its
#    run folder has a state file: finished steps are kept, a killed distillation goes on from its checkpoint;
#    the primary's last step measures its first teacher library's lessons (--attribute).
# Killed at any point, the same command continues where it stopped, however long ago.
set -euo pipefail
cd "$(dirname "$0")/.."
TED=${TED:-ted}
PYTHON=${PYTHON:-python}
read -r PRIMARY SECONDARY < <("$PYTHON" experiments/localrg.py choose)
echo "plan local-rg: primary $PRIMARY, secondary $SECONDARY"

mkdir -p experiments/local-rg/runs
LOG=experiments/local-rg/runs/serve.log
nice -n 5 "$TED" serve local local:teacher --parallel 4 >"$LOG" 2>&1 &
SERVE=$!
trap 'kill -TERM "$SERVE" 2>/dev/null || true; wait "$SERVE" 2>/dev/null || true' EXIT  # TERM: a background job ignores INT
until [ "$(grep -c 'openai:' "$LOG" || true)" -ge 2 ]; do
  kill -0 "$SERVE" 2>/dev/null || { cat "$LOG"; echo "error: ted serve stopped" >&2; exit 1; }
  sleep 2
done
STUDENT=$(awk '$1 == "local" {print $2}' "$LOG")
TEACHER=$(awk '$1 == "local:teacher" {print $2}' "$LOG")
echo "student $STUDENT, teacher $TEACHER"

for TASK in "$PRIMARY" "$SECONDARY"; do
  OUT=experiments/local-rg/runs/$TASK
  RESUME=()
  [ -f "$OUT/state.json" ] && RESUME=(--resume)
  eval "EXTRA=($("$PYTHON" experiments/localrg.py options "$TASK"))"
  nice -n 5 "$TED" reproduce --config "experiments/local-rg/$TASK.toml" --student "$STUDENT" --teacher "$TEACHER" \
    "${EXTRA[@]}" "${RESUME[@]}" --no-html
done

echo "done: experiments/local-rg/runs/{$PRIMARY,$SECONDARY}/report.md"
