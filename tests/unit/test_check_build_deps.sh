#!/usr/bin/env bash
# test_check_build_deps.sh - deploy/check-build-deps.sh names the missing package and `make deps`
# (a compiler that cannot find one header stands in for a machine without its package), and is
# silent when everything is there. Run by tests/run-unit.sh.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/test_check_build_deps.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
t() { if "$@"; then echo "[       OK ] $name"; else echo "[  FAILED  ] $name"; fails=$((fails + 1)); fi; }

cat > "$tmp/cc" << 'CC'
#!/usr/bin/env bash
src=$(cat)
if grep -q "<$HIDE>" <<< "$src"; then echo "fatal error: $HIDE: No such file or directory" >&2; exit 1; fi
printf '%s' "$src" | cc "$@"
CC
chmod +x "$tmp/cc"

name=all_headers_found_is_silent_and_succeeds
out=$(HIDE=none "$root/deploy/check-build-deps.sh" "$tmp/cc" test 2>&1)
t test $? -eq 0 -a -z "$out"

name=a_missing_header_names_its_package_and_make_deps
out=$(HIDE=slurm/slurm.h "$root/deploy/check-build-deps.sh" "$tmp/cc" 2>&1)
rc=$?
t test $rc -eq 1 -a -n "$(grep 'libslurm-dev' <<< "$out")" -a -n "$(grep "make deps" <<< "$out")"

name=the_test_headers_are_checked_only_for_tests
HIDE=cmocka.h "$root/deploy/check-build-deps.sh" "$tmp/cc" > /dev/null 2>&1
a=$?
out=$(HIDE=cmocka.h "$root/deploy/check-build-deps.sh" "$tmp/cc" test 2>&1)
t test $a -eq 0 -a -n "$(grep libcmocka-dev <<< "$out")"

name=no_compiler_says_make_deps
out=$("$root/deploy/check-build-deps.sh" "$tmp/no-such-cc" 2>&1)
t test $? -eq 1 -a -n "$(grep "make deps" <<< "$out")"

[ "$fails" -eq 0 ]
