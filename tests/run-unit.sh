#!/usr/bin/env bash
# run-unit.sh BUILD_DIR - runs every cmocka unit-test binary in BUILD_DIR/tests and prints totals.
set -u
build=${1:-build}
passed=0 failed=0 bins=0 badbins=()
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    bins=$((bins + 1))
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out" | grep -E '^\[  (FAILED|  ERROR|PASSED)|^\[  FAILED|\[  ERROR' | sed "s|^|  $(basename "$t"): |"
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
    if [ $rc -ne 0 ] || [ -z "$p" ]; then
        badbins+=("$(basename "$t")"); printf '%s\n' "$out" | tail -40
        [ -z "$f" ] && failed=$((failed + 1))
    fi
done
# Unit tests of the shell scripts (tests/unit/test_*.sh): "[       OK ] name" / "[  FAILED  ] name".
here=$(cd "$(dirname "$0")" && pwd)
for t in "$here"/unit/test_*.sh; do
    [ -x "$t" ] || continue
    bins=$((bins + 1))
    out=$("$t" 2>&1); rc=$?
    p=$(printf '%s\n' "$out" | grep -c '^\[       OK \]')
    f=$(printf '%s\n' "$out" | grep -c '^\[  FAILED  \]')
    printf '%s\n' "$out" | grep '^\[  FAILED' | sed "s|^|  $(basename "$t"): |"
    passed=$((passed + p)); failed=$((failed + f))
    if [ $rc -ne 0 ] || [ "$p" -eq 0 ]; then
        badbins+=("$(basename "$t")"); printf '%s\n' "$out" | tail -20
        [ "$f" -eq 0 ] && failed=$((failed + 1))
    fi
done
echo "unit ($build): $bins binaries"
echo "unit: $passed passed, $failed failed"
[ "$bins" -gt 0 ] && [ ${#badbins[@]} -eq 0 ]
