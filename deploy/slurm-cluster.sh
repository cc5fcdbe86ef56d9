#!/usr/bin/env bash
# slurm-cluster.sh - a private Slurm cluster of N nodes (munged, slurmctld, one slurmd per node) living
# entirely in one folder, for development, the demo and the integration tests. Never touches
# /etc/slurm, the system munged or any process it did not start from that folder.
#
#   slurm-cluster.sh start DIR --ctld-port P --slurmd-port P[,P...] [--nodes 2] [--gpus 8]
#                              [--gpu-type h100] [--cpus 32] [--mem-mb 65536]
#       (Re)starts the cluster in DIR; waits until every node is idle; prints exactly one line
#       "SLURM_CONF=DIR/etc/slurm.conf" on stdout. Job state from an earlier run is discarded.
#       Nodes node1..nodeN (--nodes, default $SLURM_CLUSTER_NODES or 2), each its own slurmd
#       (slurmd -N nodeI) on its own port; --gpus/--cpus/--mem-mb are per node; partition gpu
#       spans them all. --slurmd-port gives node1's port, or a comma list one per node; nodes
#       without one take free ports.
#   slurm-cluster.sh stop DIR     stops this cluster's daemons and jobs; idempotent.
#   slurm-cluster.sh status DIR   prints the daemons' pids and node states; exit 0 iff all run.
#   slurm-cluster.sh associate DIR ACCOUNT UNIX_USER...   (accounting only) adds Slurm account
#       ACCOUNT and each UNIX_USER as a user of it, for a test that submits behind antennad's back
#       (sbatch --uid, slurmrestd); idempotent. antennad keeps its own partners' associations.
#
# Opt-in settings for start, from the environment (unset: none of this happens), for the bench:
#   SLURM_CLUSTER_MAX_JOB_COUNT=N  MaxJobCount=N in slurm.conf (Slurm's default is 10000)
#   SLURM_CLUSTER_MIN_JOB_AGE=S    MinJobAge=S instead of 3600
#   SLURM_CLUSTER_CRED_EXPIRE=S    AuthInfo cred_expire=S (10 to 3600) instead of Slurm's 120: the
#       lifetime of a job's credentials, which is also how long a requeued job waits (BeginTime,
#       S + 1 s) before it may run again. Starting it sooner (scontrol update starttime=now) can
#       land on a node that still holds its revoked credential: slurmctld then kills it
#       ("Killing non-startable batch JobId=N: Job credential revoked") and it ends failed.
#   SLURM_CLUSTER_SLURMRESTD_USER=ACCOUNT  also starts slurmrestd (-s openapi/v0.0.38
#       -a rest_auth/local) as that unprivileged account on the unix socket
#       DIR/run/restd/slurmrestd.sock, log DIR/log/slurmrestd.log. Best effort: if it does not come
#       up, start says why on stderr and still succeeds; stop stops it with the other daemons.
# Always applied, with a default:
#   SLURM_CLUSTER_NODES=N  (default 2, 1 to 16) the number of nodes when start has no --nodes.
#       Every slurmd runs on this machine (Debian's Slurm is built with --enable-multiple-slurmd:
#       `scontrol show config` says MULTIPLE_SLURMD=Yes), at 127.0.0.1 on its own port, with its
#       own spool DIR/spool/slurmd-NODE, log DIR/log/slurmd-NODE.log, pid file
#       DIR/run/slurmd-NODE.pid and GPU placeholders DIR/gpu/NODE/; a job's SLURMD_NODENAME is its
#       node's name (hostname -s is the machine's on every node).
#   SLURM_CLUSTER_ROOT_ONLY=1|0  (default 1) the job_submit/lua plugin with DIR/etc/job_submit.lua:
#       slurmctld then accepts new jobs and allocations (sbatch, salloc, srun outside a job) and
#       changes to a job (scontrol update/hold/requeue) only from root, i.e. from antennad, so a job
#       account can neither get resources behind the broker's back nor change what it was given
#       (docs/slurm-site.md says why a RootOnly=YES partition cannot do this in 22.05). 0 only for
#       a test that must submit as an unprivileged account (the bench's slurmrestd baseline).
#   SLURM_CLUSTER_ACCOUNTING=1|0  (default 1) Slurm's accounting of record: a private MariaDB and
#       slurmdbd in DIR/acct (deploy/slurm-accounting.sh; its database outlives restarts of the
#       cluster), AccountingStorageType=accounting_storage/slurmdbd, AccountingStorageTRES=gres/gpu,
#       JobAcctGatherType=jobacct_gather/linux, the cluster registered with sacctmgr. 0: the
#       fallback without slurmdbd (accounting_storage/none: Slurm forgets a job MinJobAge seconds
#       after it ends; antennad then charges a job it could not see end its full hold).
#   SLURM_CLUSTER_ENFORCE=associations|none  (default associations, as production sites run it)
#       AccountingStorageEnforce: a job needs an account/user association (antennad keeps one per
#       partner and mapped Unix account; root's exists from the start). Ignored without accounting.
#
# Diagnostics go to stderr. Must run as root (slurmd runs jobs as other accounts).
set -euo pipefail

START_TIMEOUT=60
STOP_TIMEOUT=20
# Each node is one slurmd on this machine (about 5 MB resident when idle): a bound, not a cost.
MAX_NODES=16

say() { echo "slurm-cluster: $*" >&2; }
die() {
    say "$*"
    exit 1
}

usage() {
    sed -n '6,18p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# daemon_pids: the pids of this cluster's live daemons, from their pid files.
daemon_pids() {
    local p f
    for f in "$RUN"/slurmd*.pid; do
        if p=$(pid_alive "$f" slurmd); then echo "$p"; fi
    done
    for f in "$RUN/slurmctld.pid:slurmctld" "$MUNGE/munged.pid:munged" "$RUN/slurmrestd.pid:slurmrestd"; do
        if p=$(pid_alive "${f%%:*}" "${f##*:}"); then echo "$p"; fi
    done
}

# job_seed_pids: this cluster's slurmstepd processes (found by an open file below DIR, e.g. the
# slurmd log: they overwrite their environment with their title) and the processes of its jobs
# (Slurm puts SLURM_CLUSTER_NAME in a job's environment).
job_seed_pids() {
    local p f link
    for f in /proc/[0-9]*/comm; do
        [ "$(cat "$f" 2>/dev/null)" = slurmstepd ] || continue
        p=${f#/proc/}
        p=${p%/comm}
        for link in /proc/"$p"/fd/*; do
            case "$(readlink "$link" 2>/dev/null)" in
            "$DIR"/*)
                echo "$p"
                break
                ;;
            esac
        done
    done
    grep -lzxF "SLURM_CLUSTER_NAME=$CLUSTER" /proc/[0-9]*/environ 2>/dev/null |
        sed 's|^/proc/||; s|/environ$||' || true
}

# with_descendants PID...: those pids and all their descendants, live (not zombies), never this
# script, its ancestors or its children.
with_descendants() {
    [ $# -gt 0 ] || return 0
    ps -e -o pid=,ppid=,stat= | awk -v seeds="$*" -v self="$$" '
        BEGIN { n = split(seeds, s, " "); for (i = 1; i <= n; i++) want[s[i]] = 1 }
        { parent[$1] = $2; zombie[$1] = ($3 ~ /^Z/) }
        END {
            for (p = self; (p in parent) && p != 0; p = parent[p]) mine[p] = 1
            do {
                grew = 0
                for (p in parent)
                    if (!(p in kid) && (parent[p] == self || (parent[p] in kid))) { kid[p] = 1; grew = 1 }
            } while (grew)
            do {
                grew = 0
                for (p in parent)
                    if (!(p in want) && (parent[p] in want)) { want[p] = 1; grew = 1 }
            } while (grew)
            for (p in want)
                if ((p in parent) && !zombie[p] && !(p in mine) && !(p in kid)) print p
        }'
}

# same_procs PID:COMM...: the pids that still run the same program (a daemon removes its pid file
# before it has finished exiting).
same_procs() {
    local pc
    for pc in "$@"; do
        [ "$(cat "/proc/${pc%%:*}/comm" 2>/dev/null)" != "${pc#*:}" ] || echo "${pc%%:*}"
    done
}

# cluster_pids [PID:COMM...]: every live process of this cluster: daemons, slurmscriptd,
# slurmstepd, jobs, plus those of the given processes that still run.
cluster_pids() {
    # shellcheck disable=SC2046
    with_descendants $(daemon_pids) $(job_seed_pids) $(same_procs "$@")
}

cmd_stop() {
    local pids daemons jobs deadline known=() p
    daemons=$(daemon_pids | tr '\n' ' ')
    for p in $daemons; do known+=("$p:$(cat "/proc/$p/comm" 2>/dev/null)"); done
    # shellcheck disable=SC2046
    jobs=$(with_descendants $(job_seed_pids) | tr '\n' ' ')
    if [ -z "${daemons// /}${jobs// /}" ]; then
        rm -f "$RUN"/*.pid "$MUNGE/munged.pid" 2>/dev/null || true
        stop_accounting
        say "stopped (nothing was running in $DIR)"
        return 0
    fi
    # Jobs are discarded: slurmstepd (which ignores SIGTERM) and job processes get SIGKILL. The
    # daemons get SIGTERM; slurmctld stops its own slurmscriptd.
    # shellcheck disable=SC2086
    [ -z "${jobs// /}" ] || kill -KILL $jobs 2>/dev/null || true
    # shellcheck disable=SC2086
    [ -z "${daemons// /}" ] || kill -TERM $daemons 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while :; do
        pids=$(cluster_pids "${known[@]}" | tr '\n' ' ')
        [ -n "${pids// /}" ] || break
        if [ $SECONDS -ge $deadline ]; then
            say "still running after ${STOP_TIMEOUT}s, sending SIGKILL to: $pids"
            # shellcheck disable=SC2086
            kill -KILL $pids 2>/dev/null || true
            sleep 0.5
            pids=$(cluster_pids "${known[@]}" | tr '\n' ' ')
            [ -z "${pids// /}" ] || die "could not stop: $pids"
            break
        fi
        sleep 0.1
    done
    rm -f "$RUN"/*.pid "$MUNGE/munged.pid" 2>/dev/null || true
    stop_accounting
    say "stopped $DIR"
}

# stop_accounting: after slurmctld (which sends slurmdbd its last records when it stops).
stop_accounting() {
    if [ -d "$ACCT/run" ]; then "$root/deploy/slurm-accounting.sh" stop "$ACCT" || true; fi
}

show_logs() {
    local f
    for f in "$MUNGE/munged.log" "$LOG/slurmctld.log" "$LOG"/slurmd*.log; do
        [ -f "$f" ] || continue
        echo "---- tail $f" >&2
        tail -n 25 "$f" >&2
    done
}

fail_start() {
    say "start failed: $*"
    show_logs
    cmd_stop || true
    exit 1
}

# accounting_config: slurm.conf's accounting lines (ACCT_PORT: slurmdbd's port, "" = none).
accounting_config() {
    if [ -z "$ACCT_PORT" ]; then
        printf '%s\n' "JobAcctGatherType=jobacct_gather/none" "AccountingStorageType=accounting_storage/none"
        return
    fi
    cat <<ACCT
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$ACCT_PORT
AccountingStoragePass=$MUNGE/munged.sock
AccountingStorageTRES=gres/gpu
ACCT
    if [ -n "$ENFORCE" ]; then echo "AccountingStorageEnforce=$ENFORCE"; fi
}

# start_accounting: MariaDB and slurmdbd in DIR/acct (slurm.conf written, munged up), then the
# cluster registered (idempotent). Before slurmctld: it registers itself with slurmdbd at start.
start_accounting() {
    "$root/deploy/slurm-accounting.sh" start "$ACCT" --conf-dir "$DIR/etc" \
        --munge-socket "$MUNGE/munged.sock" --dbd-port "$ACCT_PORT" >/dev/null ||
        fail_start "slurmdbd did not start (deploy/slurm-accounting.sh; log in $ACCT/log)"
    if [ -z "$(sacctmgr_run -n -P list cluster "$CLUSTER" format=cluster 2>/dev/null)" ]; then
        sacctmgr_run -i add cluster "$CLUSTER" >&2 || fail_start "sacctmgr add cluster $CLUSTER failed"
    fi
}

sacctmgr_run() { SLURM_CONF=$CONF sacctmgr "$@"; }

# cmd_associate ACCOUNT USER...: account and users (each a user of it), idempotent.
cmd_associate() {
    [ $# -ge 1 ] || usage
    local acct=$1 u
    shift
    grep -qs '^AccountingStorageType=accounting_storage/slurmdbd' "$CONF" ||
        die "the cluster in $DIR runs without accounting: nothing to associate"
    if [ -z "$(sacctmgr_run -n -P list account "$acct" format=account 2>/dev/null)" ]; then
        sacctmgr_run -i add account "$acct" Cluster="$CLUSTER" >&2 || die "cannot add account $acct"
    fi
    for u in "$@"; do
        if [ -z "$(sacctmgr_run -n -P list assoc cluster="$CLUSTER" account="$acct" user="$u" format=user 2>/dev/null)" ]; then
            sacctmgr_run -i add user "$u" Account="$acct" Cluster="$CLUSTER" >&2 ||
                die "cannot add user $u to account $acct"
        fi
    done
}

# node_name I: the name of node I (1..NODES) of this cluster; node_names: all of them, one a line;
# node_list: them as one Slurm hostlist (node[1-N]).
node_name() { echo "node$1"; }
node_names() {
    local i
    for ((i = 1; i <= NODES; i++)); do node_name "$i"; done
}
node_list() {
    if [ "$NODES" -eq 1 ]; then node_name 1; else echo "node[1-$NODES]"; fi
}

# write_config CTLD_HOST: slurm.conf, gres.conf and job_submit.lua in DIR/etc, and the GPU
# placeholders of every node in DIR/gpu/NODE/. Every slurmd shares the machine's address
# (127.0.0.1) and is told apart by its node name (slurmd -N) and its port (Port= on its line); its
# spool, log and pid file carry its name (%n).
write_config() {
    local host=$1 gres_line="" node i gres_type="" type_spec="" node_lines=""
    rm -rf "$DIR/gpu"
    : >"$DIR/etc/gres.conf.tmp"
    if [ -n "$GPU_TYPE" ]; then
        type_spec=":$GPU_TYPE"
        gres_type=" Type=$GPU_TYPE"
    fi
    if [ "$GPUS" -gt 0 ]; then gres_line=" Gres=gpu$type_spec:$GPUS"; fi
    for ((i = 1; i <= NODES; i++)); do
        node=$(node_name "$i")
        if [ "$GPUS" -gt 0 ]; then
            # One placeholder per GPU: a character device like /dev/null (so slurmd accepts it and
            # exports CUDA_VISIBLE_DEVICES), or a plain file where mknod is not allowed.
            mkdir -p "$DIR/gpu/$node"
            local g
            for ((g = 0; g < GPUS; g++)); do
                mknod -m 0666 "$DIR/gpu/$node/gpu$g" c 1 3 2>/dev/null || : >"$DIR/gpu/$node/gpu$g"
            done
            echo "NodeName=$node Name=gpu$gres_type File=$DIR/gpu/$node/gpu[0-$((GPUS - 1))]" \
                >>"$DIR/etc/gres.conf.tmp"
        fi
        node_lines+="NodeName=$node NodeAddr=127.0.0.1 Port=${SLURMD_PORTS[i - 1]} CPUs=$CPUS RealMemory=$MEM_MB$gres_line State=UNKNOWN"$'\n'
    done
    cat >"$CONF.tmp" <<CONF
# Generated by deploy/slurm-cluster.sh for $DIR - rewritten at every start.
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=${SLURMD_PORTS[0]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE/munged.sock${CRED_EXPIRE:+,cred_expire=$CRED_EXPIRE}
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/slurmd-%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# A job that asks for no memory gets its share per CPU, not the whole node.
DefMemPerCPU=$((MEM_MB / CPUS > 0 ? MEM_MB / CPUS : 1))
$(accounting_config)
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
GresTypes=gpu
MailProg=/bin/true
ReturnToService=2
MinJobAge=${MIN_JOB_AGE:-3600}
KillWait=5
InactiveLimit=0
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=2,bf_interval=2,sched_min_interval=0
DependencyParameters=kill_invalid_depend
${MAX_JOB_COUNT:+MaxJobCount=$MAX_JOB_COUNT
}${node_lines}${ROOT_ONLY:+JobSubmitPlugins=lua
}PartitionName=gpu Nodes=$(node_list) Default=YES MaxTime=INFINITE State=UP
CONF
    mv "$CONF.tmp" "$CONF"
    mv "$DIR/etc/gres.conf.tmp" "$DIR/etc/gres.conf"
    rm -f "$DIR/etc/job_submit.lua"
    if [ -n "$ROOT_ONLY" ]; then write_job_submit_lua "$DIR/etc/job_submit.lua"; fi
}

# write_job_submit_lua FILE: the broker-only door (docs/slurm-site.md): only root (SlurmUser and
# antennad) may create a job or change one; every other uid is refused with a message.
write_job_submit_lua() {
    cat >"$1.tmp" <<'LUA'
-- job_submit.lua - generated by deploy/slurm-cluster.sh: only the broker (root) may create or change
-- jobs on this cluster. Never lets another uid submit, allocate, update, hold or requeue a job.
local broker_uids = { [0] = true }
local refused = slurm.ESLURM_ACCESS_DENIED or slurm.ERROR

function slurm_job_submit(job_desc, part_list, submit_uid)
    if broker_uids[submit_uid] then return slurm.SUCCESS end
    slurm.log_user("this cluster takes jobs only through Antenna: submit with `antenna submit`")
    return refused
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
    if broker_uids[modify_uid] then return slurm.SUCCESS end
    slurm.log_user("jobs on this cluster are changed only through Antenna (antenna cancel)")
    return refused
end

return slurm.SUCCESS
LUA
    chmod 0644 "$1.tmp"
    mv "$1.tmp" "$1"
}

start_munged() {
    local key=$MUNGE/munge.key
    install -d -m 0755 -o munge -g munge "$MUNGE"
    if [ ! -s "$key" ]; then
        if [ -r /etc/munge/munge.key ]; then
            cp /etc/munge/munge.key "$key"
        elif command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$key" >&2
        else
            dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
        fi
    fi
    chown munge:munge "$key"
    chmod 0400 "$key"
    rm -f "$MUNGE/munged.sock" "$MUNGE/munged.sock.lock" "$MUNGE/munged.pid"
    runuser -u munge -- munged --socket="$MUNGE/munged.sock" --key-file="$key" \
        --pid-file="$MUNGE/munged.pid" --log-file="$MUNGE/munged.log" \
        --seed-file="$MUNGE/munged.seed" >&2 2>&1 || fail_start "munged did not start"
}

# start_slurmrestd ACCOUNT: best effort; says why on stderr when it does not come up.
start_slurmrestd() {
    local acct=$1 sock=$RUN/restd/slurmrestd.sock pid
    if ! command -v slurmrestd >/dev/null; then
        say "slurmrestd not started: it is not installed (Debian package slurmrestd)"
        return 0
    fi
    if ! id -u "$acct" >/dev/null 2>&1 || [ "$(id -u "$acct")" -eq 0 ]; then
        say "slurmrestd not started: '$acct' is not an unprivileged account"
        return 0
    fi
    install -d -m 0755 -o "$acct" "$RUN/restd"
    # setsid: its own session, so that it outlives nothing of the caller's; all output to its log.
    SLURM_CONF=$CONF setsid slurmrestd -f "$CONF" -s openapi/v0.0.38 -a rest_auth/local \
        -u "$acct" "unix:$sock" >"$LOG/slurmrestd.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$RUN/slurmrestd.pid"
    local deadline=$((SECONDS + 10))
    while [ ! -S "$sock" ]; do
        if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
            say "slurmrestd did not come up: $(tail -n 3 "$LOG/slurmrestd.log" | tr '\n' ' ')"
            kill -TERM "$pid" 2>/dev/null || true
            return 0
        fi
        sleep 0.1
    done
    say "slurmrestd up on unix:$sock as $acct (pid $pid)"
}

node_state() {
    SLURM_CONF=$CONF sinfo -h -N -n "$1" -o '%T' 2>/dev/null | head -n 1
}

# conf_nodes: the node names slurm.conf of DIR declares, one a line (status and stop know no
# --nodes).
conf_nodes() {
    sed -n 's/^NodeName=\([^ ]*\) .*/\1/p' "$CONF" 2>/dev/null
}

# slurmd_pidfile NODE: the pid file of NODE's slurmd, from slurm.conf's SlurmdPidFile (%n: the
# node's name; a folder made before --nodes existed has one slurmd.pid).
slurmd_pidfile() {
    local pat
    pat=$(sed -n 's/^SlurmdPidFile=//p' "$CONF" 2>/dev/null)
    echo "${pat//%n/$1}"
}

# slurmd_pidfiles: "PIDFILE:slurmd" for every node slurm.conf declares.
slurmd_pidfiles() {
    local n
    for n in $(conf_nodes); do echo "$(slurmd_pidfile "$n"):slurmd"; done
}

# nodes_not_idle: "NODE=STATE" for every declared node that is not idle (or not known to
# slurmctld yet), on one line; nothing when all are idle.
nodes_not_idle() {
    local n st out=""
    declare -A seen=()
    while read -r n st; do
        [ -n "$n" ] && seen[$n]=$st
    done < <(SLURM_CONF=$CONF sinfo -h -N -o '%N %T' 2>/dev/null)
    for n in $(conf_nodes); do
        st=${seen[$n]:-unknown}
        [ "$st" = idle ] || out+="$n=$st "
    done
    printf '%s' "${out% }"
}

# port_taken PORT: true when PORT is the controller's, slurmdbd's or one already given to a slurmd.
port_taken() {
    local p
    [ "$1" != "$CTLD_PORT" ] && [ "$1" != "$ACCT_PORT" ] || return 0
    for p in "${SLURMD_PORTS[@]}"; do [ "$1" != "$p" ] || return 0; done
    return 1
}

# pick_slurmd_ports: SLURMD_PORTS[0..NODES-1] from --slurmd-port (one port, or one per node), the
# rest free ports distinct from every other port of this cluster. Dies on a bad or repeated one.
pick_slurmd_ports() {
    local given=() p i
    IFS=, read -r -a given <<<"$SLURMD_PORT"
    [ "${#given[@]}" -ge 1 ] || usage
    [ "${#given[@]}" -le "$NODES" ] ||
        die "--slurmd-port lists ${#given[@]} ports for $NODES nodes: give one, or at most one per node"
    SLURMD_PORTS=()
    for p in "${given[@]}"; do
        if ! [[ "$p" =~ ^[0-9]+$ ]] || [ "$p" -lt 1 ] || [ "$p" -gt 65535 ]; then
            die "'$p' is not a TCP port (--slurmd-port P or P1,P2,... one per node)"
        fi
        if port_taken "$p"; then die "--ctld-port and every --slurmd-port must differ ($p is given twice)"; fi
        SLURMD_PORTS+=("$p")
    done
    for ((i = ${#given[@]}; i < NODES; i++)); do
        p=$(free_port) || die "no free port for node $((i + 1))'s slurmd"
        while port_taken "$p"; do p=$(free_port) || die "no free port for node $((i + 1))'s slurmd"; done
        SLURMD_PORTS+=("$p")
    done
}

cmd_start() {
    [ "$(id -u)" -eq 0 ] || die "start must run as root (slurmd runs jobs as other accounts)"
    if [ -z "$CTLD_PORT" ] || [ -z "$SLURMD_PORT" ]; then usage; fi
    local v
    for v in "$CTLD_PORT" "$NODES" "$GPUS" "$CPUS" "$MEM_MB" ${MAX_JOB_COUNT:+"$MAX_JOB_COUNT"} \
        ${MIN_JOB_AGE:+"$MIN_JOB_AGE"}; do
        [[ "$v" =~ ^[0-9]+$ ]] || die "'$v' is not a non-negative integer"
    done
    if [ "$CPUS" -lt 1 ] || [ "$MEM_MB" -lt 1 ]; then die "--cpus and --mem-mb must be at least 1"; fi
    if [ "$NODES" -lt 1 ] || [ "$NODES" -gt "$MAX_NODES" ]; then
        die "--nodes (or SLURM_CLUSTER_NODES) must be 1 to $MAX_NODES, not $NODES"
    fi
    [[ -z "$GPU_TYPE" || "$GPU_TYPE" =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad --gpu-type '$GPU_TYPE'"
    ACCT_PORT=""
    pick_slurmd_ports
    local host node
    host=$(hostname -s)

    # Only ever clean up a folder that is empty or holds a cluster of ours.
    if [ -d "$DIR" ] && [ -n "$(ls -A "$DIR")" ] &&
        ! grep -qs '^# Generated by deploy/slurm-cluster.sh' "$CONF"; then
        die "$DIR is not empty and holds no cluster made by this script; use an empty folder"
    fi
    # A start on a running cluster restarts it, from a clean state.
    if [ -d "$DIR" ]; then cmd_stop; fi
    mkdir -p "$DIR"
    # munged (running as munge) and job accounts must be able to reach files below DIR.
    chmod a+rx "$DIR"
    # Every folder above DIR must be searchable too (a clone under /root, mode 0700, is not).
    if ! runuser -u munge -- test -x "$DIR"; then
        die "the munge account cannot reach $DIR: a parent folder is not searchable by other users (e.g. /root is 0700); use a folder under /var/lib, /srv or /tmp"
    fi
    rm -rf "$DIR/state" "$DIR/spool" "$DIR/run"
    local f
    for f in "$LOG"/*.log "$MUNGE"/munged.log; do
        if [ -f "$f" ]; then mv -f "$f" "$f.old"; fi
    done
    mkdir -p "$DIR/etc" "$DIR/state" "$RUN" "$LOG"
    for node in $(node_names); do mkdir -p "$DIR/spool/slurmd-$node"; done
    chmod 0755 "$DIR/etc" "$DIR/log" "$RUN"
    if [ -n "$ACCOUNTING" ]; then
        command -v slurmdbd >/dev/null && command -v mariadbd >/dev/null ||
            die "slurmdbd or mariadb-server is not installed: run 'make deps' as root, or start with SLURM_CLUSTER_ACCOUNTING=0 (no accounting of record)"
        local p
        p=$(free_port)
        while port_taken "$p"; do p=$(free_port); done
        ACCT_PORT=$p
    fi
    write_config "$host"

    local port
    for port in "$CTLD_PORT" "${SLURMD_PORTS[@]}"; do
        if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
            die "port $port is already in use on this machine; choose another one"
        fi
    done

    start_munged
    if [ -n "$ACCOUNTING" ]; then start_accounting; fi
    SLURM_CONF=$CONF slurmctld -f "$CONF" >&2 2>&1 || fail_start "slurmctld did not start"
    for node in $(node_names); do
        SLURM_CONF=$CONF slurmd -f "$CONF" -N "$node" >&2 2>&1 || fail_start "slurmd of $node did not start"
    done

    local deadline=$((SECONDS + START_TIMEOUT)) grace=$((SECONDS + 5)) state="" name f cfg
    while :; do
        # Every daemon must stay up (each writes its pid file once it has daemonised).
        for f in "$MUNGE/munged.pid:munged" "$RUN/slurmctld.pid:slurmctld" $(slurmd_pidfiles); do
            if ! pid_alive "${f%%:*}" "${f##*:}" >/dev/null; then
                if [ -e "${f%%:*}" ] || [ $SECONDS -ge $grace ]; then
                    fail_start "${f##*:} is not running"
                fi
            fi
        done
        # The controller that answers must be ours, not another cluster on the same port.
        cfg=$(SLURM_CONF=$CONF scontrol show config 2>/dev/null) || true
        name=$(awk '$1 == "ClusterName" { print $3 }' <<<"$cfg")
        if [ -n "$name" ] && [ "$name" != "$CLUSTER" ]; then
            fail_start "port $CTLD_PORT answers as cluster '$name', not '$CLUSTER'"
        fi
        # Several slurmd on one machine need a Slurm built with --enable-multiple-slurmd.
        if [ "$name" = "$CLUSTER" ] && [ "$NODES" -gt 1 ] && ! grep -q '^MULTIPLE_SLURMD *= *Yes' <<<"$cfg"; then
            fail_start "this Slurm is built without --enable-multiple-slurmd (scontrol show config has no MULTIPLE_SLURMD = Yes): it cannot run $NODES slurmd on one machine; start with --nodes 1"
        fi
        if [ "$name" = "$CLUSTER" ]; then
            state=$(nodes_not_idle)
            [ -n "$state" ] || break
        fi
        [ $SECONDS -lt $deadline ] ||
            fail_start "not every node is idle after ${START_TIMEOUT}s: ${state:-no answer from slurmctld}"
        sleep 0.2
    done
    say "cluster $CLUSTER up in $DIR ($NODES node(s) $(node_list) idle, ctld port $CTLD_PORT, slurmd ports $(
        IFS=,
        echo "${SLURMD_PORTS[*]}"
    ))"
    if [ -n "$RESTD_USER" ]; then start_slurmrestd "$RESTD_USER"; fi
    echo "SLURM_CONF=$CONF"
}

cmd_status() {
    local rc=0 p f n
    [ -n "$(conf_nodes)" ] || {
        echo "no cluster in $DIR (no $CONF)"
        return 1
    }
    for f in "$MUNGE/munged.pid:munged" "$RUN/slurmctld.pid:slurmctld"; do
        if p=$(pid_alive "${f%%:*}" "${f##*:}"); then
            echo "${f##*:} running (pid $p)"
        else
            echo "${f##*:} not running"
            rc=1
        fi
    done
    for n in $(conf_nodes); do
        if p=$(pid_alive "$(slurmd_pidfile "$n")" slurmd); then
            echo "slurmd of $n running (pid $p)"
        else
            echo "slurmd of $n not running"
            rc=1
        fi
    done
    if grep -qs '^AccountingStorageType=accounting_storage/slurmdbd' "$CONF"; then
        "$root/deploy/slurm-accounting.sh" status "$ACCT" || rc=1
    else
        echo "accounting: none (accounting_storage/none)"
    fi
    if [ $rc -eq 0 ]; then
        for n in $(conf_nodes); do echo "node $n: $(node_state "$n")"; done
        echo "SLURM_CONF=$CONF"
    fi
    return $rc
}

[ $# -ge 2 ] || usage
action=$1
# Canonical absolute path: the cluster's name (below) is derived from it.
DIR=$(realpath -m -- "$2")
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=common.sh
. "$root/deploy/common.sh" # free_port, pid_alive
ACCT=$DIR/acct
ACCT_PORT=""
if [ "$action" = associate ]; then
    CONF=$DIR/etc/slurm.conf
    CLUSTER=antenna$(printf '%s' "$DIR" | cksum | cut -d' ' -f1)
    cmd_associate "$@"
    exit
fi
CTLD_PORT="" SLURMD_PORT="" GPUS=8 GPU_TYPE=h100 CPUS=32 MEM_MB=65536
NODES=${SLURM_CLUSTER_NODES:-2} SLURMD_PORTS=()
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || usage
    case "$1" in
    --ctld-port) CTLD_PORT=$2 ;;
    --slurmd-port) SLURMD_PORT=$2 ;;
    --nodes) NODES=$2 ;;
    --gpus) GPUS=$2 ;;
    --gpu-type) GPU_TYPE=$2 ;;
    --cpus) CPUS=$2 ;;
    --mem-mb) MEM_MB=$2 ;;
    *) usage ;;
    esac
    shift 2
done

MAX_JOB_COUNT=${SLURM_CLUSTER_MAX_JOB_COUNT:-}
MIN_JOB_AGE=${SLURM_CLUSTER_MIN_JOB_AGE:-}
CRED_EXPIRE=${SLURM_CLUSTER_CRED_EXPIRE:-}
if [ -n "$CRED_EXPIRE" ] && ! { [[ "$CRED_EXPIRE" =~ ^[0-9]+$ ]] && [ "$CRED_EXPIRE" -ge 10 ] &&
    [ "$CRED_EXPIRE" -le 3600 ]; }; then
    die "SLURM_CLUSTER_CRED_EXPIRE must be a number of seconds from 10 to 3600, not '$CRED_EXPIRE'"
fi
RESTD_USER=${SLURM_CLUSTER_SLURMRESTD_USER:-}
case "${SLURM_CLUSTER_ROOT_ONLY:-1}" in
1) ROOT_ONLY=1 ;;
0) ROOT_ONLY="" ;;
*) die "SLURM_CLUSTER_ROOT_ONLY must be 1 or 0, not '${SLURM_CLUSTER_ROOT_ONLY}'" ;;
esac
case "${SLURM_CLUSTER_ACCOUNTING:-1}" in
1) ACCOUNTING=1 ;;
0) ACCOUNTING="" ;;
*) die "SLURM_CLUSTER_ACCOUNTING must be 1 or 0, not '${SLURM_CLUSTER_ACCOUNTING}'" ;;
esac
case "${SLURM_CLUSTER_ENFORCE:-associations}" in
associations) ENFORCE=associations ;;
none) ENFORCE="" ;;
*) die "SLURM_CLUSTER_ENFORCE must be associations or none, not '${SLURM_CLUSTER_ENFORCE}'" ;;
esac

CONF=$DIR/etc/slurm.conf
RUN=$DIR/run
LOG=$DIR/log
MUNGE=$DIR/munge
# A cluster name unique to DIR: Slurm puts it in its jobs' environment, so that stop finds them.
CLUSTER=antenna$(printf '%s' "$DIR" | cksum | cut -d' ' -f1)

case "$action" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*) usage ;;
esac
