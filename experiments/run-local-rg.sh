#!/usr/bin/env bash
# Run, or resume, the pre-registered plan experiments/local-rg.toml (docs/experiments.md).
#
# 1. the screen's rules choose the primary and the secondary task (experiments/localrg.py choose);
# 2. `ted serve` starts llama-server for the student (local) and the teacher (local:teacher);
# 3. each task's `ted reproduce --config experiments/local-rg/TASK.toml` runs, with --resume when its
#    run folder has a state file: finished steps are kept, a killed distillation goes on from its checkpoint;
# 4. `ted attribute` measures the lessons of the primary's first teacher library (skipped when done).
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
trap 'kill -INT "$SERVE" 2>/dev/null || true; wait "$SERVE" 2>/dev/null || true' EXIT
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

LIBRARY=experiments/local-rg/runs/$PRIMARY/libraries/teacher/library.json
if [ ! -f "experiments/local-rg/runs/$PRIMARY/attribution.json" ]; then
  nice -n 5 "$TED" attribute "$LIBRARY" --task "rg:$PRIMARY" --data "rg:$PRIMARY?split=validation&n=200&seed=1" \
    --student "$STUDENT" --max-tokens 512 --concurrency 4 --seed 0 --output "experiments/local-rg/runs/$PRIMARY/attribution.json"
fi
echo "done: experiments/local-rg/runs/{$PRIMARY,$SECONDARY}/report.md"
