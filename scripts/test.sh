#!/usr/bin/env bash
# The test suite: naga validation (no GPU), every kernel against its CPU reference, gradients
# against finite differences, executor, RNG, learning and CLI tests, all on whatever adapter wgpu
# finds (lavapipe in CI); then the examples and the browser demo in headless Chromium against
# native (web/test/run.sh; MMEBM_SKIP_BROWSER=1 skips it).
#
#   scripts/test.sh              what CI runs; prints seconds per test binary and job, the CPU
#   scripts/test.sh --times      the same, and seconds per test (libtest's --report-time)
#   scripts/test.sh --long       the same, then the long tier: the ignored tests (README)
#   scripts/test.sh --only-long  the long tier alone
# Other arguments go to every test binary (a name filter, --nocapture, ...).
#
# Test binaries run as cargo test runs them (one process each, cwd = repository root), two at a
# time (MMEBM_TEST_JOBS): most of the suite's time is lavapipe building pipelines, which takes
# one core, and half the binaries hold a single long test. Each binary's output is printed whole
# when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/xdg-runtime}
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
export TARGET=${CARGO_TARGET_DIR:-target}
times=0 short=1 long=0 pass=()
for a in "$@"; do
  case "$a" in
    --times) times=1 ;;
    --long) long=1 ;;
    --only-long) long=1 short=0 ;;
    *) pass+=("$a") ;;
  esac
done
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
echo "cpu: $cpu"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
t_start=$(now)
work=$(mktemp -d) && trap 'rm -rf "$work"' EXIT
export work times
row() { printf '%-40s %8s s  %s\n' "$1" "$2" "${3:-}" >> "$work/rows"; }

t=$(now)
# One build of every test binary, binary and example; the test executables from cargo's JSON.
bins=$(cargo test --release --all-targets --no-run --message-format=json-render-diagnostics |
  grep '"overflow_checks":[a-z]*,"test":true' | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 |
  grep -v '/examples/' | sort -u)
cargo build --release --quiet --bins --examples
row "build" "$(secs "$t")"

# The tiny trained runs (configs/tiny.toml, tiny_captions.toml) that the CLI tests and the browser test share:
# trained once here, not once per test binary (tests/common: tiny_run).
t=$(now)
export MMEBM_TINY_RUNS="$TARGET/tmp/tiny-runs"
rm -rf "$MMEBM_TINY_RUNS"
"$TARGET/release/train" --plain --config configs/tiny.toml --out "$MMEBM_TINY_RUNS/ours" > /dev/null &
"$TARGET/release/train" --plain --config configs/tiny.toml --out "$MMEBM_TINY_RUNS/alone" --set model.generator=false > /dev/null
wait $!
"$TARGET/release/train" --plain --config configs/tiny_captions.toml --out "$MMEBM_TINY_RUNS/captions" > /dev/null
row "tiny runs (configs/tiny*.toml)" "$(secs "$t")"

# job NAME CMD...: runs one job, keeps its output, and prints it whole (under a lock) when done;
# records "NAME seconds rc passed failed log" in $work/jobs.
job() {
  local name=$1 t rc=0 p f log
  shift
  t=$(now) log=$(mktemp -p "$work" job.XXXX)
  "$@" > "$log" 2>&1 || rc=$?
  p=$(sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' "$log" | awk '{s += $1} END {print s + 0}')
  f=$(sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' "$log" | awk '{s += $1} END {print s + 0}')
  local took
  took=$(secs "$t")
  {
    flock 9
    echo "---- $name: ended after $took s, exit $rc"
    cat "$log"
    echo "$name $took $rc $p $f $log" >> "$work/jobs"
  } 9> "$work/lock"
}
# A test binary as cargo test runs it (cwd = repository root); --times adds each test's seconds.
test_bin() {
  if [ "$times" = 1 ]; then
    RUSTC_BOOTSTRAP=1 "$@" -Z unstable-options --report-time
  else
    "$@"
  fi
}
# The examples, with small settings, so they never rot.
examples() (
  set -e
  ex=$(mktemp -d)
  "$TARGET/release/examples/custom_op"
  "$TARGET/release/examples/tiny_train" --iterations 3 --out "$ex"
  "$TARGET/release/examples/cross_modal" --checkpoint "$ex/checkpoint.safetensors" --index 2
  "$TARGET/release/examples/birds" 4 "$ex/birds.png"
  rm -rf "$ex"
)
export -f job test_bin examples now secs

# The jobs, slowest first so that the two lanes end together.
slow="ops_conv sample_cli ops_gemm eval_cli training train_cli"
: > "$work/queue"
name_of() { basename "$1" | sed 's/-[0-9a-f]*$//'; }
if [ "$short" = 1 ]; then
  for s in $slow; do for b in $bins; do [ "$(name_of "$b")" = "$s" ] && echo "$s test_bin $b ${pass[*]:-}" >> "$work/queue"; done; done
  [ "${MMEBM_SKIP_BROWSER:-0}" = 1 ] || echo "browser ./web/test/run.sh" >> "$work/queue"
  for b in $bins; do
    n=$(name_of "$b")
    case " $slow " in *" $n "*) ;; *) echo "$n test_bin $b ${pass[*]:-}" >> "$work/queue" ;; esac
  done
  echo "examples examples" >> "$work/queue"
fi
if [ "$long" = 1 ]; then
  for b in $bins; do
    # Only binaries that hold ignored tests.
    if "$b" --list --ignored 2>/dev/null | grep -q ': test$'; then
      echo "$(name_of "$b")--long test_bin $b --ignored ${pass[*]:-}" >> "$work/queue"
    fi
  done
fi
: > "$work/jobs"
# One line of the queue per job, split into words by the job's shell.
# shellcheck disable=SC2016
xargs -P "${MMEBM_TEST_JOBS:-2}" -d '\n' -n 1 bash -c 'job $1' _ < "$work/queue" || true

passed=0 failed=0 failures=()
while read -r name s rc p f log; do
  if [ "$name" = browser ] || [ "$name" = examples ]; then
    [ "$rc" = 0 ] && p=1 f=0 || p=0 f=1
  fi
  passed=$((passed + p)) failed=$((failed + f))
  [ "$rc" = 0 ] || failures+=("$name")
  row "$name" "$s" "$p passed$([ "$f" = 0 ] || echo ", $f failed")$([ "$rc" = 0 ] || echo ", exit $rc")"
  if [ "$times" = 1 ]; then
    sed -n 's/^test \([^ ]*\) \.\.\. \(ok\|FAILED\) <\([0-9.]*\)s>$/\3 \1/p' "$log" | sort -rn | head -8 |
      while read -r ts tn; do row "  $tn" "$ts"; done
  fi
done < <(sort -k2 -rn "$work/jobs")

echo
echo "seconds per phase and job (jobs ran ${MMEBM_TEST_JOBS:-2} at a time; slowest first):"
cat "$work/rows"
# A suite that ran nothing has checked nothing; a job that never reported (its shell killed,
# xargs stopped early) has not passed either.
[ "$passed" -gt 0 ] || failures+=("no test ran")
queued=$(wc -l < "$work/queue") reported=$(wc -l < "$work/jobs")
[ "$reported" = "$queued" ] || failures+=("$((queued - reported)) of $queued jobs did not report")
[ ${#failures[@]} -eq 0 ] || echo "failed: ${failures[*]}"
echo "total $(secs "$t_start") s on $cpu"
echo "suite: $passed passed, $failed failed"
[ ${#failures[@]} -eq 0 ]
