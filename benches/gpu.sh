#!/usr/bin/env bash
# Issue #22's GPU measurements in one run: build with CUDA, then for the baseline and the ~50M
# configs in f32 and bf16: tokens/s, MFU (6N + 12·L·T·d FLOP per token against the GPU's dense
# bf16 peak), val_bpb, peak memory, and the first step cold (empty kernel cache) and warm; then
# the rerun spread of the 50M bf16 config (same steps, three runs).
#
#   benches/gpu.sh [--budget S] [--reruns N] [--quick]
#
# --quick (fits a 15-minute lease): 60 s budgets, two reruns. The issue's full figures: the
# default, 300 s budgets and three reruns (about an hour). Prints one line per run and a table;
# needs an NVIDIA driver (nvidia-smi); no CUDA toolkit (libcuda and libnvrtc load at run time).
set -euo pipefail
cd "$(dirname "$0")/.."

budget=300 reruns=3
while [ $# -gt 0 ]; do
  case "$1" in
    --budget) budget=$2; shift 2 ;;
    --reruns) reruns=$2; shift 2 ;;
    --quick) budget=60 reruns=2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
# dense bf16 peak in TFLOP/s (the datasheets' figures without sparsity)
case "$gpu" in
  *H200*|*H100*SXM*|*"H100 80GB HBM3"*) peak=989 ;;
  *H100*PCIe*|*"H100 PCIe"*) peak=756 ;;
  *A100*) peak=312 ;;
  *4090*) peak=165 ;;
  *) peak=0 ;;
esac
echo "gpu: $gpu (dense bf16 peak ${peak} TFLOP/s), $(nproc) CPU cores, budget ${budget} s"

t0=$(date +%s)
cargo build --release --features cuda 2>&1 | tail -1
echo "build: $(( $(date +%s) - t0 )) s"
spored=target/release/spored
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# one field of a run's summary block
field() { awk -v k="$1:" '$1 == k { print $2 }' "$2"; }

# run NAME CONFIG CACHE [extra args]: one training run; prints its line, keeps its summary
run() {
  local name=$1 config=$2 cache=$3; shift 3
  local out="$work/$name.out"
  if ! "$spored" train --config "$config" --budget "$budget" --device cuda \
      --memory-limit-mb 120000 --kernel-cache "$cache" "$@" > "$out" 2> "$work/$name.err"; then
    echo "$name: failed: $(tail -3 "$work/$name.err" | tr '\n' ' ')"
    return 0
  fi
  local tps params layers d ctx flops mfu first
  tps=$(field tokens_per_second "$out"); params=$(field num_parameters "$out")
  layers=$(awk -F' = ' '$1 == "n_layer" { print $2 }' "$config")
  d=$(awk -F' = ' '$1 == "d_model" { print $2 }' "$config")
  ctx=$(awk -F' = ' '$1 == "context" { print $2 }' "$config")
  flops=$(( 6 * params + 12 * layers * ctx * d ))
  mfu=$(awk -v t="$tps" -v f="$flops" -v p="$peak" 'BEGIN { if (p > 0) printf "%.1f", 100 * t * f / (p * 1e12); else print "-" }')
  first=$(awk -v a="$(field total_seconds "$out")" -v b="$(field training_seconds "$out")" 'BEGIN { printf "%.0f", a - b }')
  echo "$name: tokens/s $tps, MFU ${mfu} %, val_bpb $(field val_bpb "$out"), steps $(field num_steps "$out"), peak $(field peak_vram_mb "$out") MB, outside training ${first} s (compile, autotune, eval)"
}

cold="$work/cold-cache"
for config in baseline gpt-50m gpt-50m-bf16; do
  # a fresh cache for each config's first run: its first step is cold; the second run is warm
  rm -rf "$cold"
  run "$config-cold" "actors/train/configs/$config.toml" "$cold"
  run "$config-warm" "actors/train/configs/$config.toml" "$cold"
done

# rerun spread: the 50M bf16 config, the same number of steps each time
steps=$(field num_steps "$work/gpt-50m-bf16-warm.out")
if [ -n "$steps" ]; then
  for i in $(seq "$reruns"); do
    run "gpt-50m-bf16-rerun-$i" actors/train/configs/gpt-50m-bf16.toml "$cold" --steps "$steps"
  done
  grep -h '^val_bpb:' "$work"/gpt-50m-bf16-rerun-*.out | awk '
    { v[NR] = $2; if (NR == 1 || $2 < lo) lo = $2; if (NR == 1 || $2 > hi) hi = $2 }
    END { printf "rerun spread over %d runs of %s steps: %.6f (H100/A100 tolerance 0.0015)\n", NR, "'"$steps"'", hi - lo }'
fi
echo "total: $(( $(date +%s) - t0 )) s"
