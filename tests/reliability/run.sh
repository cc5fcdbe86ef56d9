#!/usr/bin/env bash
# run.sh [BUILD_DIR] - the fault harness (`make reliability`): starts its own Slurm cluster (free
# ports, MessageTimeout lowered) and antennad in a private folder, runs the fault scenarios of
# tests/reliability/harness.py against them, prints the result table and writes docs/reliability.md.
# Stops everything it started, whatever happens (trap). Exit 0 only when every cell is 0.
#
#   RELIABILITY_QUICK=1    short pass (few kills, ~200 submissions, no 60 s outage), ~2 min
#   RELIABILITY_ONLY=1,4   run only these scenarios (numbers as in the table)
#   RELIABILITY_DOC=FILE   where to write the table (default docs/reliability.md; "-" = nowhere)
#   RELIABILITY_KEEP=1     keep the private folder even on success
#   RELIABILITY_SEED=N     seed of the random kill moments (default: time based, printed)
#   RELIABILITY_SELFTEST=1 plant one fault of each kind and check each is counted (full: on)
# The private folder (kept on failure) holds antennad.log, client-*.jsonl (every key sent and
# acknowledged), runlog/ran.log (every run of every job), the database and the cluster's logs.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd) || exit 2
. "$root/deploy/common.sh"

if [ "$(id -u)" -ne 0 ]; then
    echo "reliability: must run as root (jobs run as another account; the disk-full scenario mounts a tmpfs)" >&2
    exit 2
fi
for t in python3 scontrol squeue slurmctld mount umount runuser; do
    command -v "$t" > /dev/null || { echo "reliability: $t not found (make deps)" >&2; exit 2; }
done

# Not under /root: munged (as munge) and the job account must reach it.
work=$(mktemp -d /tmp/antenna-rel.XXXXXX)
chmod 755 "$work"
rc=1
harness_pid=""

cleanup() {
    local p
    trap - EXIT INT TERM
    # The harness (and its load clients) first, then antennad, then Slurm, then the tmpfs.
    if [ -n "$harness_pid" ] && kill -0 "$harness_pid" 2> /dev/null; then
        kill -TERM "$harness_pid" 2> /dev/null
        for _ in $(seq 1 50); do kill -0 "$harness_pid" 2> /dev/null || break; sleep 0.1; done
        kill -KILL "$harness_pid" 2> /dev/null
    fi
    # Processes the harness started and recorded (clients), if it could not stop them itself.
    for f in "$work"/pids/*.pid; do
        [ -f "$f" ] || continue
        p=$(tr -dc '0-9' < "$f")
        [ -n "$p" ] || continue
        # Only if it still is the process we started (its command line names our folder).
        if { tr '\0' ' ' < "/proc/$p/cmdline"; } 2> /dev/null | grep -qF "$work"; then kill -KILL "$p" 2> /dev/null; fi
    done
    antennad_stop "$work"
    # A slurmctld left stopped (SIGSTOP scenario) cannot stop until it is continued.
    p=$(tr -dc '0-9' < "$work/slurm/run/slurmctld.pid" 2> /dev/null)
    [ -n "$p" ] && [ "$(cat "/proc/$p/comm" 2> /dev/null)" = slurmctld ] && kill -CONT "$p" 2> /dev/null
    "$root/deploy/slurm-cluster.sh" stop "$work/slurm" > /dev/null 2>&1
    if mountpoint -q "$work/db" 2> /dev/null; then
        # Keep what was on the tmpfs for inspection before it goes.
        mkdir -p "$work/db-final" && cp -a "$work/db/." "$work/db-final/" 2> /dev/null
        umount "$work/db" 2> /dev/null || umount -l "$work/db"
    fi
    if [ "$rc" -eq 0 ] && [ "${RELIABILITY_KEEP:-0}" != 1 ]; then
        rm -rf "$work"
    else
        echo "reliability: kept $work for inspection"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'rc=130; exit 130' INT TERM

# rel_port: a TCP port below the kernel's ephemeral range (so that no outgoing connection can take
# it between this check and the bind) that no socket at all uses (listening or not).
rel_port() {
    local lo p
    lo=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2> /dev/null)
    [[ "$lo" =~ ^[0-9]+$ ]] && [ "$lo" -gt 21000 ] || lo=32768
    for _ in $(seq 1 200); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % (lo - 20000)))
        case " ${used_ports:-} " in *" $p "*) continue ;; esac
        if ! ss -Htan "( sport = :$p )" 2> /dev/null | grep -q .; then
            used_ports="${used_ports:-} $p"
            echo "$p"
            return 0
        fi
    done
    echo "reliability: no free port found" >&2
    return 1
}

echo "== reliability: setup in $work"
# 32 emulated GPUs and 32 CPUs: each test job takes 1 GPU and 1 CPU. A port taken meanwhile by
# someone else makes the start fail: try again on other ports.
out=""
for attempt in 1 2 3; do
    ctld=$(rel_port) && slurmd=$(rel_port) || exit 1
    # (scenario 7: a requeued job waits the credential lifetime, 20 s, before it runs again)
    if out=$(SLURM_CLUSTER_CRED_EXPIRE=${SLURM_CLUSTER_CRED_EXPIRE:-20} \
        "$root/deploy/slurm-cluster.sh" start "$work/slurm" --ctld-port "$ctld" --slurmd-port "$slurmd" \
        --gpus 32 --gpu-type h100 --cpus 32 --mem-mb 65536); then break; fi
    out=""
    echo "reliability: cluster start $attempt failed (ports $ctld, $slurmd)" >&2
done
[ -n "$out" ] || { echo "reliability: the cluster did not start" >&2; exit 1; }
port=$(rel_port) || exit 1
export SLURM_CONF=${out#SLURM_CONF=}
# The harness cluster: a hung controller must outlast MessageTimeout quickly (libslurm in antennad
# reads it too, at start-up).
cat >> "$SLURM_CONF" << CONF
# Added by tests/reliability/run.sh (harness cluster)
MessageTimeout=${RELIABILITY_MSG_TIMEOUT:-5}
CONF
scontrol reconfigure || { echo "reliability: scontrol reconfigure failed" >&2; exit 1; }
for _ in $(seq 1 50); do
    mt=$(scontrol show config 2> /dev/null | awk '$1 == "MessageTimeout" { print $3 }')
    [ "$mt" = "${RELIABILITY_MSG_TIMEOUT:-5}" ] && break
    sleep 0.2
done
if [ "$mt" != "${RELIABILITY_MSG_TIMEOUT:-5}" ]; then
    echo "reliability: MessageTimeout is '$mt' after reconfigure" >&2
    exit 1
fi

"$root/deploy/make-cert.sh" "$work/tls" > /dev/null || exit 1
"$root/deploy/ensure-unix-user.sh" antenna-rel > /dev/null || exit 1
# The cluster enforces associations: the harness's self-test submits a job behind antennad's back
# for antenna-rel (antennad keeps its own partners' associations, ensured before each submit).
"$root/deploy/slurm-cluster.sh" associate "$work/slurm" reliability antenna-rel > /dev/null ||
    { echo "reliability: cannot give antenna-rel a Slurm account (sacctmgr)" >&2; exit 1; }
# The jobs' shared run log: every job appends a line (world-writable, sticky).
mkdir -p "$work/runlog" "$work/db" "$work/etc" "$work/spool" "$work/pids"
chmod 1777 "$work/runlog"
cat > "$work/antennad.json" << JSON
{
  "listen_host": "127.0.0.1",
  "listen_port": $port,
  "tls_cert": "$work/tls/server.pem",
  "tls_key": "$work/tls/server.key",
  "database": "$work/db/antenna.db",
  "spool_dir": "$work/spool",
  "audit_key_file": "$work/etc/audit.key",
  "audit_head_file": "$work/db/audit.head",
  "slurm_conf": "$SLURM_CONF",
  "partition": "gpu",
  "poll_interval_ms": ${ANTENNA_POLL_MS:-500},
  "log_level": "${ANTENNA_LOG_LEVEL:-info}",
  "gpu_types": ["h100"],
  "gpu_weights": {"h100": 1.0},
  "max_gpus": 8,
  "max_cpus": 32,
  "max_time_minutes": 1440,
  "cluster_window": ${RELIABILITY_CLUSTER_WINDOW:-64},
  "token_rate_per_second": 0
}
JSON
admin=$("$build/antennad" bootstrap --config "$work/antennad.json" 2> "$work/bootstrap.err") ||
    { cat "$work/bootstrap.err" >&2; exit 1; }
printf '%s\n' "$admin" > "$work/admin.token"
chmod 600 "$work/admin.token"
echo "   cluster ctld:$ctld slurmd:$slurmd (MessageTimeout $mt s), antennad :$port"

doc=${RELIABILITY_DOC:-$root/docs/reliability.md}
python3 "$root/tests/reliability/harness.py" --root "$root" --build "$build" --work "$work" \
    --config "$work/antennad.json" --port "$port" --slurm-conf "$SLURM_CONF" --doc "$doc" &
harness_pid=$!
wait "$harness_pid"
rc=$?
harness_pid=""
exit "$rc"
