#!/usr/bin/env bash
# One command per paper table and figure the data allows:
#
#   scripts/reproduce.sh table1|table3|table4|table5|table9|fig2|fig3|fig4|fig6|all [--data DIR] [--iterations N] [--cub]
#
# Built-in synthetic data by default; --data points at a real PolyMNIST folder (train/m0..m4,
# test/...), and then configs/polymnist.toml is used instead of configs/quick.toml. Runs go to
# runs/reproduce/<name>; a finished run (checkpoint at its last iteration) is reused.
# --cub runs the image–caption experiments instead (paper Tables 1 and 3 on CUB): the built-in
# birds with configs/cub_quick.toml, or with --data a CUB folder and configs/cub.toml; runs go to
# runs/reproduce/cub/<name>. (Real CUB has no attribute labels: eval's coherence needs the birds.)
# Paper references: Table 1 sampling cost, Table 3 Langevin-step ablation, Table 4 latent
# classification, Table 5 coherence vs number of observed modalities, Table 9 EBM-alone
# quality, Fig. 2 EBM loss curves of the ablations, Fig. 3 generator loss with independent
# encoders, Fig. 4 Langevin trajectories, Fig. 6 latent interpolation.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-}
[ -n "$what" ] || { sed -n 2,16p "$0"; exit 1; }
shift
data=() ; iters=() ; cub=
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=(--data "$2"); shift 2 ;;
    --iterations) iters=(--iterations "$2"); shift 2 ;;
    --cub) cub=1; shift ;;
    *) echo "reproduce.sh: unknown option $1" >&2; exit 1 ;;
  esac
done
base=configs/quick.toml
[ ${#data[@]} -eq 0 ] || base=configs/polymnist.toml
root=runs/reproduce
if [ -n "$cub" ]; then
  base=configs/cub_quick.toml
  [ ${#data[@]} -eq 0 ] || base=configs/cub.toml
  root=runs/reproduce/cub
fi
cargo build --release --bins
bin=target/release

# train NAME CONFIG [--set k=v ...]: trains (or resumes) runs/reproduce/NAME.
train() {
  local name=$1 config=$2; shift 2
  local out=$root/$name
  if [ -f "$out/checkpoint.safetensors" ]; then
    $bin/train --config "$config" "${data[@]}" "${iters[@]}" --out "$out" --resume --plain "$@"
  else
    $bin/train --config "$config" "${data[@]}" "${iters[@]}" --out "$out" --plain "$@"
  fi
}

# evaluate NAME [eval flags]: eval.md of a trained run (reused when newer than the checkpoint).
evaluate() {
  local name=$1; shift
  local out=$root/$name
  if [ ! "$out/eval/eval.json" -nt "$out/checkpoint.safetensors" ]; then
    $bin/eval --checkpoint "$out/checkpoint.safetensors" "${data[@]}" --out "$out/eval" "$@" >/dev/null
  fi
}

section() { # section FILE HEADING-PREFIX: prints one '## ' section of a Markdown file
  awk -v h="## $2" 'index($0, h) == 1 {on = 1; print; next} /^## / {on = 0} on' "$1"
}

case "$what" in
  table1)
    train ours "$base"
    evaluate ours
    section $root/ours/eval/eval.md "Sampling cost"
    section $root/ours/eval/eval.md "Fréchet"
    section $root/ours/eval/eval.md "Unconditional" ;;
  table3)
    for kx in 10 30; do for kz in 10 30; do
      train "steps_kx${kx}_kz${kz}" "$base" --set langevin.kx=$kx --set langevin.kz=$kz
      evaluate "steps_kx${kx}_kz${kz}" --conditional 200 --unconditional 2000 --probe-train 1000 --probe-test 500
    done; done
    echo "| K_x | K_z | s/iteration (median of logged) | unconditional coherence (revised) | Fréchet (revised, mean over modalities) |"
    echo "|---|---|---|---|---|"
    for kx in 10 30; do for kz in 10 30; do
      d=$root/steps_kx${kx}_kz${kz}
      python3 - "$d" "$kx" "$kz" <<'PY'
import json, sys, statistics
d, kx, kz = sys.argv[1:]
rows = [json.loads(l) for l in open(d + "/metrics.jsonl") if l.strip()]
t = [r["s_langevin_z"] + r["s_langevin_x"] + r["s_update"] for r in rows if "s_update" in r]
e = json.load(open(d + "/eval/eval.json"))
fd = [v for v in e["frechet"]["revised"] if v is not None]  # none for captions
print(f"| {kx} | {kz} | {statistics.median(t):.2f} | {e['unconditional']['revised']:.3f} | {sum(fd)/len(fd):.1f} |")
PY
    done; done ;;
  table4)
    train ours "$base"; evaluate ours
    section $root/ours/eval/eval.md "Latent classification" ;;
  table5)
    train ours "$base"; evaluate ours
    section $root/ours/eval/eval.md "Conditional coherence" ;;
  table9)
    for kx in 30 60 100; do
      train "ebm_alone_kx$kx" configs/ebm_alone.toml --set langevin.kx=$kx
      evaluate "ebm_alone_kx$kx" --conditional 200 --unconditional 2000
      echo "EBM alone, K_x = $kx:"; section $root/ebm_alone_kx$kx/eval/eval.md "Fréchet"
    done ;;
  fig2)
    train ours "$base"; train ebm_alone configs/ebm_alone.toml; train independent_generators configs/independent_generators.toml
    $bin/plot $root/ours/metrics.jsonl $root/ebm_alone/metrics.jsonl $root/independent_generators/metrics.jsonl --out $root/fig2.svg ;;
  fig3)
    train ours "$base"; train independent_encoders configs/independent_encoders.toml
    $bin/plot $root/ours/metrics.jsonl $root/independent_encoders/metrics.jsonl --out $root/fig3.svg ;;
  fig4)
    train ours "$base"
    $bin/sample trajectory --checkpoint $root/ours/checkpoint.safetensors "${data[@]}" --given 0 --index 0 --count 2 --kx 30 --kz 30 --every 5 --out $root/fig4 ;;
  fig6)
    train ours "$base"
    $bin/sample interpolate --checkpoint $root/ours/checkpoint.safetensors "${data[@]}" --from 0 --to 1 --frames 10 --out $root/fig6 ;;
  all)
    for t in table1 table4 table5 fig4 fig6 fig2 fig3 table3 table9; do "$0" "$t" "${data[@]}" "${iters[@]}"; done ;;
  *) echo "reproduce.sh: unknown target '$what' (table1 table3 table4 table5 table9 fig2 fig3 fig4 fig6 all)" >&2; exit 1 ;;
esac
