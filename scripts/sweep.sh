#!/usr/bin/env bash
# Runs a list of training settings at one wall-clock budget each, evaluates every run and
# collects the results into one Markdown table (docs/SWEEP.md records the ones we ran).
#
#   scripts/sweep.sh LIST [--config C] [--minutes M] [--out DIR] [-- EVAL FLAGS]
#
# LIST has one run per line: a name, then the `train` flags of that run, e.g.
#   sn-on     --set model.spectral_norm=true
#   kx30      --set langevin.kx=30
# Blank lines and lines starting with # are skipped, and so is what follows a # on a run's line.
# Runs already evaluated in DIR are kept, so a stopped sweep continues where it stopped. The
# binaries it runs are copied into DIR/bin first. Each run's commands are in
# DIR/NAME/commands.txt; the table is DIR/table.md (needs python3).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
list="${1:?usage: scripts/sweep.sh LIST [--config C] [--minutes M] [--out DIR] [-- EVAL FLAGS]}"
shift
config="$root/configs/quick.toml"
minutes=20
out="$root/runs/sweep"
eval_flags=(--conditional 300 --unconditional 1000 --probe-train 1000 --probe-test 300)
while (($#)); do
  case "$1" in
    --config) config="$2"; shift 2 ;;
    --minutes) minutes="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --) shift; eval_flags=("$@"); break ;;
    *) echo "error: sweep.sh: unknown flag '$1'" >&2; exit 2 ;;
  esac
done
[[ -f "$list" ]] || { echo "error: sweep.sh: no run list at '$list'" >&2; exit 2; }
list="$(realpath "$list")"
config="$(realpath "$config")"
mkdir -p "$out"
out="$(realpath "$out")"
cd "$root"
cargo build --release --quiet --bin train --bin eval
mkdir -p "$out/bin"
# The sweep runs its own copy, so rebuilding while it runs changes nothing.
cp target/release/train target/release/eval "$out/bin/"
cpu="$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
while read -r name flags || [[ -n "$name" ]]; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  flags="${flags%%#*}"
  dir="$out/$name"
  if [[ -f "$dir/eval/eval.json" ]]; then
    echo "sweep: $name already evaluated, kept"
    continue
  fi
  # A run stopped before its budget was spent starts again; a finished one is only evaluated.
  if ! grep -qs -e "budget of .* minutes is spent" -e "iterations in .*s/iteration" "$dir/train.log"; then
    rm -rf "$dir"
  fi
  mkdir -p "$dir"
  # shellcheck disable=SC2086 # flags are words by design
  train=("$out/bin/train" --config "$config" --out "$dir" --minutes "$minutes" --plain $flags)
  evaluate=("$out/bin/eval" --checkpoint "$dir/checkpoint.safetensors" "${eval_flags[@]}")
  printf '%s\n%s\ncpu: %s\n' "${train[*]}" "${evaluate[*]}" "$cpu" > "$dir/commands.txt"
  echo "sweep: $name: ${train[*]}"
  if [[ ! -f "$dir/train.log" ]]; then
    "${train[@]}" < /dev/null > "$dir/train.log" 2>&1 || { echo "sweep: $name: train failed, see $dir/train.log"; continue; }
  fi
  "${evaluate[@]}" < /dev/null > "$dir/eval.log" 2>&1 || { echo "sweep: $name: eval failed, see $dir/eval.log"; continue; }
  echo "sweep: $name done"
done < "$list"
python3 "$root/scripts/sweep_table.py" "$out" > "$out/table.md"
cat "$out/table.md"
