#!/usr/bin/env bash
# demo.sh start|stop|check-modes - the newcomer's demo: a private Slurm cluster, antennad, a demo
# partner, user and token, and a sample training job followed to its end. Leaves the cluster and
# antennad running and writes demo.env at the repository root. Never touches /etc/slurm or a
# system antennad.
# Secret files (tokens, demo.env, the database) are created under umask 077 and kept 0600;
# `check-modes` checks that, and `start` ends with it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/deploy/common.sh"
# State lives outside the clone: the munge account and the demo job account must be able to reach it,
# which a clone under /root (mode 0700) would not allow.
dir=${ANTENNA_DEMO_DIR:-/var/lib/antenna-demo}
bin="$root/build"
ctld_port=${DEMO_CTLD_PORT:-16817}
slurmd_port=${DEMO_SLURMD_PORT:-16818}
api_port=${DEMO_API_PORT:-8443}
unix_user=antenna-demo

step() { printf '\n==> %s\n' "$*"; }

# The files job accounts on this host must not read: the tokens, the environment file that carries
# them, and antennad's state (SQLite gives its -wal and -shm files the database's mode).
secret_files() { echo "$dir/admin.token $dir/demo.token $root/demo.env $dir/antenna.db"; }

# private FILE: creates FILE empty when missing and makes it 0600 (umask 077 while creating it, so
# it is never readable by others, not even for an instant).
private() { (umask 077 && : >> "$1") && chmod 600 "$1"; }

# check_modes: fails, naming the file, unless every secret file is mode 0600.
check_modes() {
    local f m bad=0
    for f in $(secret_files) "$dir"/antenna.db-wal "$dir"/antenna.db-shm; do
        [ -e "$f" ] || continue
        m=$(stat -c %a "$f")
        [ "$m" = 600 ] || { echo "demo: $f is mode $m, not 600" >&2; bad=1; }
    done
    [ "$bad" -eq 0 ] && echo "secret files are mode 0600"
    return "$bad"
}

stop() {
    antennad_stop "$dir"
    "$root/deploy/slurm-cluster.sh" stop "$dir/slurm" || true
    rm -f "$root/demo.env"
    echo "demo stopped (state kept in $dir; remove it for a fresh start)"
}

start() {
    mkdir -p "$dir"
    step "dev Slurm cluster (2 nodes, each 8 emulated h100 GPUs and 32 CPUs) in $dir/slurm"
    slurm_conf=$("$root/deploy/slurm-cluster.sh" status "$dir/slurm" 2>/dev/null | sed -n 's/^SLURM_CONF=//p') || true
    if [ -n "$slurm_conf" ]; then
        echo "already running"
    else
        slurm_conf=$("$root/deploy/slurm-cluster.sh" start "$dir/slurm" --ctld-port "$ctld_port" \
            --slurmd-port "$slurmd_port" --gpus 8 --gpu-type h100 --cpus 32 | sed -n 's/^SLURM_CONF=//p')
        [ -n "$slurm_conf" ] || { echo "the dev cluster did not start" >&2; exit 1; }
    fi
    export SLURM_CONF=$slurm_conf
    echo "SLURM_CONF=$SLURM_CONF"

    step "development TLS certificate"
    "$root/deploy/make-cert.sh" "$dir/tls"

    step "unprivileged Unix account '$unix_user' for the demo user's jobs"
    "$root/deploy/ensure-unix-user.sh" "$unix_user"

    step "antennad on https://127.0.0.1:$api_port"
    antennad_stop "$dir"
    antennad_write_config "$dir" "$api_port" "$SLURM_CONF"
    for f in $(secret_files); do private "$f"; done
    chmod 600 "$dir"/antenna.db-wal "$dir"/antenna.db-shm 2>/dev/null || true
    if [ ! -s "$dir/admin.token" ]; then
        (umask 077 && "$bin/antennad" bootstrap --config "$dir/antennad.json" > "$dir/admin.token")
    fi
    antennad_start "$bin/antennad" "$dir"
    echo "antennad running (pid $(cat "$dir/antennad.pid"), log $dir/antennad.log)"

    export ANTENNA_URL="https://127.0.0.1:$api_port" ANTENNA_CA="$dir/tls/ca.pem"
    export ANTENNA_TOKEN; ANTENNA_TOKEN=$(cat "$dir/admin.token")
    local admin_token=$ANTENNA_TOKEN

    step "demo partner 'ulb' (1000 GPU-hours this month), user 'demo' (Unix account $unix_user) and its token"
    "$bin/antenna" partner list | grep -qw ulb ||
        "$bin/antenna" partner add ulb --description "Université libre de Bruxelles"
    "$bin/antenna" user list | grep -qw demo ||
        "$bin/antenna" user add demo --partner ulb --category sme --unix-user "$unix_user"
    "$bin/antenna" quota set ulb --gpu-hours 1000 --max-gpus 8 --max-walltime 1-00:00:00
    if [ ! -s "$dir/demo.token" ]; then
        (umask 077 && "$bin/antenna" token create --user demo --label demo > "$dir/demo.token")
    fi
    ANTENNA_TOKEN=$(cat "$dir/demo.token")

    private "$root/demo.env"
    cat > "$root/demo.env" <<ENV
export ANTENNA_URL=$ANTENNA_URL
export ANTENNA_CA=$ANTENNA_CA
export ANTENNA_TOKEN=$ANTENNA_TOKEN
export ANTENNA_ADMIN_TOKEN=$admin_token
export SLURM_CONF=$SLURM_CONF
export PATH=$bin:\$PATH
ENV
    echo "wrote $root/demo.env"
    check_modes

    # submit_wait SCRIPT: submits it as user demo and follows it to its end; sets id (its job id)
    # and rc (antenna's exit status: 0 when it completed)
    submit_wait() {
        local out
        set +e
        out=$("$bin/antenna" submit --wait "$1" | tee /dev/stderr)
        rc=$?
        set -e
        id=$(printf '%s\n' "$out" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p' | head -1)
    }
    step "antenna submit --wait deploy/examples/train.sh (as user demo)"
    submit_wait "$root/deploy/examples/train.sh"
    step "antenna show $id"
    "$bin/antenna" show "$id"
    step "antenna logs $id"
    "$bin/antenna" logs "$id"
    slurm_id=$("$bin/antenna" show "$id" --json | sed -n 's/.*"slurm_job_id": *\([0-9]*\).*/\1/p')
    step "the same job seen by Slurm (scontrol show job $slurm_id)"
    scontrol show job "$slurm_id" | grep -E 'JobId|UserId|JobState|TRES|Comment' || true
    if [ "$rc" -ne 0 ]; then echo "the demo job did not complete (exit $rc)" >&2; exit "$rc"; fi
    step "antenna submit --wait deploy/examples/train-2node.sh (2 nodes x 2 GPUs, as user demo)"
    submit_wait "$root/deploy/examples/train-2node.sh"
    step "antenna logs $id (each task names the node it ran on)"
    "$bin/antenna" logs "$id"
    if [ "$rc" -ne 0 ]; then echo "the 2-node demo job did not complete (exit $rc)" >&2; exit "$rc"; fi
    step "the web console"
    echo "Open $ANTENNA_URL/ui/ and sign in with the demo token $ANTENNA_TOKEN"
    echo "(the certificate is the demo's own: trust $ANTENNA_CA in the browser, or accept it once)"
    cat <<MSG

Demo done. The cluster and antennad keep running. Go on with the CLI:
    . ./demo.env
    antenna submit deploy/examples/train.sh
    antenna jobs
Stop everything with: make demo-stop
MSG
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
check-modes) check_modes ;;
*) echo "usage: $0 start|stop|check-modes" >&2; exit 2 ;;
esac
