#!/usr/bin/env bash
# The browser test of the WebGPU demo: trains a tiny model with `train`, exports it with
# `export`, then web/test/demo.test.mjs compares headless Chromium's generations with the native
# ones (the `sample` binary with --target webgpu --raw) and exercises the shipped model's
# page. Needs /usr/bin/chromium and `npm ci` (scripts/setup.sh). Outputs in $OUT (default
# <target>/web-test): the screenshot demo.png and summary.json. Arguments go to demo.test.mjs
# (e.g. --shipped-checkpoint CKPT).
set -euo pipefail
cd "$(dirname "$0")/../.."
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/xdg-runtime}
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
TARGET=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$TARGET/web-test}
rm -rf "$OUT" && mkdir -p "$OUT"
cargo build --release --bin train --bin export --bin sample
BIN=$TARGET/release
"$BIN/train" --plain --out "$OUT/run" --iterations 4 \
  --set data.train_size=64 --set data.test_size=16 --set train.batch=8 \
  --set model.ebm_width=8 --set model.gen_width=8 --set model.enc_width=8 --set model.latent=8 \
  --set train.log_every=1 --set train.sample_every=1000 --set train.checkpoint_every=4 > "$OUT/train.log"
"$BIN/export" --checkpoint "$OUT/run/checkpoint.safetensors" --out "$OUT/bundle" --examples 8
node web/test/demo.test.mjs --bundle "$OUT/bundle" --checkpoint "$OUT/run/checkpoint.safetensors" \
  --native "$BIN/sample" --out "$OUT" "$@"
