#!/usr/bin/env bash
# run.sh BUILD SECONDS - runs every fuzz target built in BUILD/fuzz/ for SECONDS each, from a
# scratch copy of its seeds (tests/fuzz/seeds/<name>/, never modified), and fails on any crash,
# leak, timeout or sanitizer report; the input that failed is kept as BUILD/fuzz/crash-<name>-*.
# Prints one line per target: name, runs, corpus size, verdict.
set -u
cd "$(dirname "$0")/../.."
build=${1:?usage: run.sh BUILD SECONDS}
secs=${2:-60}
bad=0
targets=("$build"/fuzz/fuzz_*)
if [ ! -x "${targets[0]}" ]; then
    echo "fuzz: no target built in $build/fuzz" >&2
    exit 1
fi
scratch=$(mktemp -d "${TMPDIR:-/tmp}/antenna-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
for bin in "${targets[@]}"; do
    name=$(basename "$bin")
    name=${name#fuzz_}
    corpus="$scratch/$name"
    mkdir -p "$corpus"
    if [ -d "tests/fuzz/seeds/$name" ]; then
        cp -r "tests/fuzz/seeds/$name/." "$corpus/"
    else
        echo "fuzz: $name has no seeds in tests/fuzz/seeds/$name/ (starting from nothing)" >&2
    fi
    log="$build/fuzz/$name.log"
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$build/fuzz/crash-$name-" "$corpus" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ $rc -eq 0 ]; then
        printf '  fuzz   %-14s %8s runs  %4s inputs  ok\n' "$name" "${runs:-?}" \
            "$(find "$corpus" -type f | wc -l)"
    else
        printf '  fuzz   %-14s FAILED (exit %d): see %s\n' "$name" $rc "$log"
        grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|Test unit written' "$log" | sed 's/^/         /'
        bad=1
    fi
done
exit $bad
