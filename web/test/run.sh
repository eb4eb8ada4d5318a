#!/usr/bin/env bash
# The browser test of the WebGPU demo: takes the suite's tiny runs (configs/tiny.toml, and its
# image + caption variant; trains them when run alone), exports them with `export`, then web/test/demo.test.mjs compares headless
# Chromium's generations with the native ones (the `sample` binary with --target webgpu --raw)
# and exercises the shipped model's page. Needs /usr/bin/chromium and `npm ci` (scripts/setup.sh). Outputs in $OUT (default
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
# The tiny run scripts/test.sh has trained for the whole suite (MMEBM_TINY_RUNS), else its own.
RUN=${MMEBM_TINY_RUNS:+$MMEBM_TINY_RUNS/ours}
if [ -z "$RUN" ] || [ ! -f "$RUN/checkpoint.safetensors" ]; then
  RUN=$OUT/run
  "$BIN/train" --plain --config configs/tiny.toml --out "$RUN" > "$OUT/train.log"
fi
"$BIN/export" --checkpoint "$RUN/checkpoint.safetensors" --out "$OUT/bundle" --examples 8
# The image + caption model (tests/common's TinyRun::Captions; trained here when run alone).
CAP=${MMEBM_TINY_RUNS:+$MMEBM_TINY_RUNS/captions}
if [ -z "$CAP" ] || [ ! -f "$CAP/checkpoint.safetensors" ]; then
  CAP=$OUT/captions
  "$BIN/train" --plain --config configs/tiny_captions.toml --out "$CAP" > "$OUT/train-captions.log"
fi
"$BIN/export" --checkpoint "$CAP/checkpoint.safetensors" --out "$OUT/captions-bundle" --examples 8
node web/test/demo.test.mjs --bundle "$OUT/bundle" --checkpoint "$RUN/checkpoint.safetensors" \
  --captions-bundle "$OUT/captions-bundle" --captions-checkpoint "$CAP/checkpoint.safetensors" \
  --native "$BIN/sample" --out "$OUT" "$@"
