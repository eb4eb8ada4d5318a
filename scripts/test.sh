#!/usr/bin/env bash
# The test suite: naga validation (no GPU), every kernel against its CPU reference, gradients
# against finite differences, executor, RNG, learning and CLI tests, all on whatever adapter wgpu
# finds (lavapipe in CI); then the examples and the browser demo in headless Chromium against
# native (web/test/run.sh; MMEBM_SKIP_BROWSER=1 skips it).
#
#   scripts/test.sh            the suite CI runs; prints seconds per test binary and per phase
#   scripts/test.sh --times    the same, and seconds per test (libtest's --report-time)
#   scripts/test.sh --long     the same, then the long tier (ignored tests: end-to-end checks
#                              too slow for every run; README lists them)
#   scripts/test.sh --only-long   the long tier alone
# Other arguments are passed to every test binary (a name filter, --nocapture, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/xdg-runtime}
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
TARGET=${CARGO_TARGET_DIR:-target}
times=0 short=1 long=0 pass=()
for a in "$@"; do
  case "$a" in
    --times) times=1 ;;
    --long) long=1 ;;
    --only-long) long=1 short=0 ;;
    *) pass+=("$a") ;;
  esac
done
t_start=$(date +%s.%N)
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
table=$(mktemp) && trap 'rm -f "$table"' EXIT
row() { printf '%-34s %8s s  %s\n' "$1" "$2" "${3:-}" >> "$table"; }
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1)"

t=$(now)
# One build of every test binary and example; the list of test executables from cargo's JSON.
bins=$(cargo test --release --all-targets --no-run --message-format=json-render-diagnostics |
  grep '"overflow_checks":[a-z]*,"test":true' | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | grep -v '/examples/' | sort -u)
cargo build --release --quiet --bins --examples
row "build" "$(secs "$t")"

passed=0 failed=0 failures=()
run_bin() { # run_bin BIN [libtest args...]: one test binary, as cargo test runs it (cwd = root)
  local b=$1 name log t rc=0
  shift
  name=$(basename "$b" | sed 's/-[0-9a-f]*$//')
  t=$(now) log=$(mktemp)
  echo "     Running $name"
  if [ "$times" = 1 ]; then
    RUSTC_BOOTSTRAP=1 "$b" "$@" -Z unstable-options --report-time 2>&1 | tee "$log" || rc=$?
  else
    "$b" "$@" 2>&1 | tee "$log" || rc=$?
  fi
  local p f
  p=$(sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' "$log" | tail -1)
  f=$(sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' "$log" | tail -1)
  passed=$((passed + ${p:-0})) failed=$((failed + ${f:-0}))
  [ "$rc" = 0 ] || failures+=("$name")
  row "$name" "$(secs "$t")" "${p:-0} passed${f:+, $f failed}"
  if [ "$times" = 1 ]; then
    sed -n 's/^test \([^ ]*\) \.\.\. \(ok\|FAILED\) <\([0-9.]*\)s>$/\3 \1/p' "$log" | sort -rn | head -8 |
      while read -r s n; do row "  $n" "$s"; done
  fi
  rm -f "$log"
}

if [ "$short" = 1 ]; then
  for b in $bins; do run_bin "$b" ${pass[@]+"${pass[@]}"}; done
  # The examples, with small settings, so they never rot.
  t=$(now) ex=$(mktemp -d)
  "$TARGET/release/examples/custom_op"
  "$TARGET/release/examples/tiny_train" --iterations 3 --out "$ex"
  "$TARGET/release/examples/cross_modal" --checkpoint "$ex/checkpoint.safetensors" --index 2
  rm -rf "$ex"
  row "examples" "$(secs "$t")"
  if [ "${MMEBM_SKIP_BROWSER:-0}" != 1 ]; then
    t=$(now)
    if ./web/test/run.sh; then
      passed=$((passed + 1)) && row "browser (web/test/run.sh)" "$(secs "$t")" "passed"
    else
      failed=$((failed + 1)) failures+=("browser") && row "browser (web/test/run.sh)" "$(secs "$t")" "FAILED"
    fi
  fi
fi
if [ "$long" = 1 ]; then
  for b in $bins; do
    # Only binaries that hold ignored tests; a run with no ignored test prints nothing useful.
    if "$b" --list --ignored 2>/dev/null | grep -q ': test$'; then
      run_bin "$b" --ignored ${pass[@]+"${pass[@]}"}
    fi
  done
fi

echo
echo "seconds per phase and test binary:"
cat "$table"
row_total=$(secs "$t_start")
echo "total ${row_total} s on $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
[ ${#failures[@]} -eq 0 ] || echo "failed: ${failures[*]}"
echo "suite: $passed passed, $failed failed"
[ ${#failures[@]} -eq 0 ]
