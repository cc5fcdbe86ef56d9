#!/usr/bin/env bash
# slurm-adapter-check.sh [BUILD_DIR] - builds tests/integration/test_slurm_adapter.c with
# scheduler/slurm_adapter.c and runs it against a private Slurm cluster started on free ports in a
# temporary folder, as the unprivileged account antenna-it. Stops the cluster whatever happens and
# exits with the test's status. SANITIZE=1 builds with AddressSanitizer and UBSan. Run as root.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-} own_build=0
if [ -z "$build" ]; then
    build=$(mktemp -d /tmp/antenna-sa-build.XXXXXX)
    own_build=1
fi
mkdir -p "$build"
build=$(cd "$build" && pwd)
cluster=$(mktemp -d /tmp/antenna-sa-cluster.XXXXXX)

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    "$root/deploy/slurm-cluster.sh" stop "$cluster" >/dev/null 2>&1
    rm -rf "$cluster"
    if [ "$own_build" = 1 ]; then rm -rf "$build"; fi
}
trap cleanup EXIT

# free_port [EXCEPT]: a TCP port on 127.0.0.1 where nothing listens (bash /dev/tcp probe).
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        [ "$p" != "${1:-}" ] || continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    echo "slurm-adapter-check: no free port found" >&2
    return 1
}

flags=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes -Werror
    -D_FORTIFY_SOURCE=2 -fstack-protector-strong -g -Ipolicies -Ischeduler -Iclient)
if [ "${SANITIZE:-0}" = 1 ]; then
    # shellcheck disable=SC2054 # the comma belongs to the option
    flags+=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all -O1)
else
    flags+=(-O2)
fi
bin=$build/test_slurm_adapter
(cd "$root" && gcc "${flags[@]}" -o "$bin" tests/integration/test_slurm_adapter.c \
    scheduler/slurm_adapter.c -lslurm -lcmocka) || {
    echo "slurm-adapter-check: build failed" >&2
    exit 1
}

"$root/deploy/ensure-unix-user.sh" antenna-it >/dev/null || exit 1
ctld=$(free_port) || exit 1
slurmd=$(free_port "$ctld") || exit 1
conf=$("$root/deploy/slurm-cluster.sh" start "$cluster" --ctld-port "$ctld" --slurmd-port "$slurmd" \
    --gpus 8 --gpu-type h100 --cpus 32) || {
    echo "slurm-adapter-check: the Slurm cluster did not start" >&2
    exit 1
}
echo "slurm-adapter-check: cluster in $cluster (ports $ctld/$slurmd), test $bin"
SLURM_CONF=${conf#SLURM_CONF=} ANTENNA_TEST_UNIX_USER=antenna-it "$bin"
rc=$?
echo "slurm-adapter-check: test exited $rc"
exit $rc
