#!/usr/bin/env bash
# One check for a machine with a real GPU, sized for a single run on a lent one (under 8 minutes):
# the adapter, autotuning on first use, the bench's GFLOP/s per op (and `--save`, so training uses its pick), and 20
# iterations each of configs/quick.toml and configs/polymnist.toml with dispatches and time per
# phase (`train --profile`) and seconds per iteration.
#
#   scripts/gpu_check.sh            uses target/release/{train,bench} when present, else builds them
#   BIN=DIR scripts/gpu_check.sh    binaries from DIR (built on another x86-64 machine and carried;
#                                   DIR/ops_gemm, a copy of target/release/deps/ops_gemm-*, adds the
#                                   cooperative-matrix GEMM test)
#
# Each stage has its own time limit, so one slow stage cannot eat the others' time; a stage that
# hits its limit says so and the script goes on. Outputs go to a temporary folder.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/xdg-runtime}
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
start=$(date +%s)
if [ ! -x "$BIN/train" ] || [ ! -x "$BIN/bench" ]; then
  echo "== build"
  cargo build --release --bin train --bin bench || exit 1
  BIN=target/release
fi
out=$(mktemp -d)
# stage SECONDS NAME CMD...: runs CMD under a time limit and reports how it ended.
stage() {
  local limit=$1 name=$2 t0 rc=0
  shift 2
  echo "== $name (limit ${limit}s)"
  t0=$(date +%s)
  timeout "$limit" "$@" || rc=$?
  if [ "$rc" = 124 ]; then echo "!! $name: stopped at its ${limit}s limit"; elif [ "$rc" != 0 ]; then echo "!! $name: exit $rc"; fi
  echo "== $name: $(( $(date +%s) - t0 )) s"
}
echo "== machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
# The cooperative-matrix GEMM against the CPU references (tests/ops_gemm.rs; it prints a SKIP line
# where the adapter offers no 8x8 f32 cooperative matrices). From a carried test binary, else
# built here when cargo is at hand.
if [ -x "$BIN/ops_gemm" ]; then
  stage 120 "cooperative-matrix GEMM test" "$BIN/ops_gemm" coop --nocapture
elif command -v cargo > /dev/null; then
  stage 400 "cooperative-matrix GEMM test" cargo test --release --test ops_gemm coop -- --nocapture
else
  echo "== cooperative-matrix GEMM test: skipped (no $BIN/ops_gemm and no cargo)"
fi
# Autotuning on first use (docs/GPU.md): its line and the set-up time ("phases compiled in").
MMEBM_TUNING="$out/fresh-tuning.json" stage 60 "autotune on first use (quick.toml, 2 iterations)" "$BIN/train" --plain \
  --config configs/quick.toml --iterations 2 --out "$out/autotune"
stage 200 "bench --quick --save" "$BIN/bench" --quick --save --no-pairs
stage 90 "quick.toml, 20 iterations" "$BIN/train" --plain --profile --config configs/quick.toml --iterations 20 \
  --set train.log_every=5 --out "$out/quick"
stage 240 "polymnist.toml, 20 iterations" "$BIN/train" --plain --profile --config configs/polymnist.toml --iterations 20 \
  --set train.log_every=5 --out "$out/polymnist"
echo "== gpu_check: $(( $(date +%s) - start )) s in all"
