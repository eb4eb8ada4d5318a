#!/usr/bin/env bash
# The test suite: naga validation (no GPU), every kernel against its CPU reference, gradients
# against finite differences, executor, RNG and learning tests, all on whatever adapter wgpu
# finds (lavapipe in CI); then the browser demo in headless Chromium against native
# (web/test/run.sh; MMEBM_SKIP_BROWSER=1 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/xdg-runtime}
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
cargo test --release --all-targets "$@"
# The examples, with small settings, so they never rot.
ex=$(mktemp -d)
cargo run --release --quiet --example custom_op
cargo run --release --quiet --example tiny_train -- --iterations 3 --out "$ex"
cargo run --release --quiet --example cross_modal -- --checkpoint "$ex/checkpoint.safetensors" --index 2
rm -rf "$ex"
if [ "${MMEBM_SKIP_BROWSER:-0}" != 1 ]; then
  ./web/test/run.sh
fi
