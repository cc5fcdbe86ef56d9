#!/usr/bin/env bash
# check-build-deps.sh CC [test] - before the first compile: says which Debian packages are missing
# for the headers Antenna includes, and that `make deps` (as root) or `make demo` installs them,
# instead of letting the compiler fail on a missing header. Changes nothing. Exit 0 when every
# header is found, 1 otherwise (with the list on stderr). With "test", also the test headers.
set -uo pipefail
cc=${1:-cc}
# header package (the package that provides it on Debian 12)
pairs=(
    uv.h libuv1-dev
    http_parser.h libhttp-parser-dev
    openssl/ssl.h libssl-dev
    jansson.h libjansson-dev
    sqlite3.h libsqlite3-dev
    slurm/slurm.h libslurm-dev
    curl/curl.h libcurl4-openssl-dev
)
if [ "${2:-}" = test ]; then
    pairs+=("stdarg.h setjmp.h cmocka.h" libcmocka-dev)
fi
if ! command -v "$cc" > /dev/null 2>&1; then
    echo "antenna: no C compiler ($cc): run 'make deps' as root (or 'make demo'), which installs build-essential and every other package Antenna needs" >&2
    exit 1
fi
missing=()
for ((i = 0; i < ${#pairs[@]}; i += 2)); do
    src=""
    for h in ${pairs[i]}; do src+="#include <$h>"$'\n'; done
    printf '%s' "$src" | "$cc" -E -x c - > /dev/null 2>&1 || missing+=("${pairs[i + 1]}")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "antenna: missing development packages: ${missing[*]}" >&2
    echo "antenna: run 'make deps' as root (or 'make demo', which runs it), then make again" >&2
    exit 1
fi
