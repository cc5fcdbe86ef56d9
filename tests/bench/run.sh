#!/usr/bin/env bash
# run.sh [BUILD_DIR] - `make bench`: one run on one private Slurm cluster (free ports, a folder
# under /tmp), antennad and slurmrestd side by side, driven by the bench's own load generator
# (tests/bench/loadgen.c, the same client for both); wrk cross-checks antennad. Prints a table and
# writes BUILD_DIR/bench.json. Never fails on a time; stops everything it started, whatever
# happens. Must run as root (Slurm submits on behalf of an unprivileged account).
#
# Knobs (environment):
#   BENCH_DURATION=10s     each timed HTTP round
#   BENCH_QUEUED=100000    jobs queued in antennad for the "at 100k queued" rounds
#   BENCH_CONNS=64         keep-alive connections;  BENCH_THREADS=2  load-generator threads
#   BENCH_DISPATCH_N=5000  jobs for antennad's dispatch and the raw libslurm loop
#   BENCH_SBATCH_N=1000    jobs for the sbatch loop
#   BENCH_IDLE=20          seconds of idle CPU measurement (VmRSS is sampled each second of it)
#   BENCH_FILL_MAX=600     at most this many seconds to queue BENCH_QUEUED (the rounds "at 100k"
#                          then run with what is queued, and say so)
#   BENCH_POLICY_MAX=1000000  largest queue of the engine bench
#   BENCH_WRK=1            0 skips the wrk cross-check
#   BENCH_KEEP=0           1 keeps the work folder (logs, raw results) for inspection
#   BENCH_PERF=0           1 records perf profiles of antennad's dispatch, status and submissions
#                          at BENCH_QUEUED (with BENCH_KEEP=1)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" 2> /dev/null && pwd) || {
    echo "bench: no build folder ${1:-$root/build}; run make bench" >&2
    exit 2
}
. "$root/deploy/common.sh"

secs_of() { local v=${1%s}; [[ "$v" =~ ^[0-9]+(\.[0-9]+)?$ ]] && echo "$v" || echo 10; }
DURATION=$(secs_of "${BENCH_DURATION:-10s}")
QUEUED=${BENCH_QUEUED:-100000}
CONNS=${BENCH_CONNS:-64}
THREADS=${BENCH_THREADS:-2}
DISPATCH_N=${BENCH_DISPATCH_N:-5000}
SBATCH_N=${BENCH_SBATCH_N:-1000}
IDLE=${BENCH_IDLE:-20}
POLICY_MAX=${BENCH_POLICY_MAX:-1000000}
FILL_MAX=${BENCH_FILL_MAX:-600}
WRK=${BENCH_WRK:-1}
KEEP=${BENCH_KEEP:-0}
ACCOUNT=antenna-bench
BIN=$build/bench

work=$(mktemp -d /tmp/antenna-bench.XXXXXX)
chmod 755 "$work"
res=$work/results
mkdir -p "$res"
bg_pids=()
cleanup() {
    local p
    for p in "${bg_pids[@]}"; do kill "$p" 2> /dev/null; done
    antennad_stop "$work"
    "$root/deploy/slurm-cluster.sh" stop "$work/slurm" > /dev/null 2>&1
    if [ "$KEEP" = 1 ]; then echo "bench: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '  %-6s %s\n' bench "$*" >&2; }
J=$BIN/bench_report # the JSON helper (no jq needed)
# put NAME [KEY=STRING | KEY:=JSON]...: stdin is a JSON object, stored with the extra keys as
# results/NAME.json (an {"error": ...} object when stdin is not one).
put() {
    local name=$1
    shift
    "$J" put "$res/$name.json" "$@"
}
put_error() { "$J" error "$res/$1.json" "$2"; }
# get NAME KEY: a number or string of a result ("" when absent).
get() { "$J" get "$res/$1.json" "$2" 2> /dev/null; }
ok_count() {
    local n
    n=$(get "$1" ok)
    echo "${n:-0}"
}
calc() { awk "BEGIN { printf \"%.6f\", ($1) }"; }

# --- machine and knobs ----------------------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
ram_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
for v in "$QUEUED" "$CONNS" "$THREADS" "$DISPATCH_N" "$SBATCH_N" "$IDLE" "$POLICY_MAX" "$FILL_MAX"; do
    [[ "$v" =~ ^[0-9]+$ ]] || { echo "bench: knob value '$v' is not a whole number" >&2; exit 2; }
done
knobs="{\"BENCH_DURATION\": \"${DURATION}s\", \"BENCH_QUEUED\": $QUEUED, \"BENCH_CONNS\": $CONNS,"
knobs+=" \"BENCH_THREADS\": $THREADS, \"BENCH_DISPATCH_N\": $DISPATCH_N, \"BENCH_SBATCH_N\": $SBATCH_N,"
knobs+=" \"BENCH_IDLE\": $IDLE, \"BENCH_FILL_MAX\": $FILL_MAX, \"BENCH_POLICY_MAX\": $POLICY_MAX}"
echo '{}' | put machine cpu="$cpu" nproc:="$(nproc)" ram_kib:="$ram_kib" kernel="$(uname -r)" \
    slurm="$(slurmctld -V 2> /dev/null)" commit="$(git -C "$root" rev-parse --short HEAD 2> /dev/null)" \
    date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" knobs:="$knobs"

# --- the policy engine (no cluster needed) -----------------------------------------------------
step "policy engine, queues of 1k to $POLICY_MAX"
if ! "$BIN/bench_policy" --max "$POLICY_MAX" --json "$res/policy.json" >&2; then
    put_error policy "bench_policy failed"
fi

# --- cluster, slurmrestd, antennad ---------------------------------------------------------------
fatal=""
report() {
    "$BIN/bench_report" "$res" "$build/bench.json" || echo "bench: the report could not be built" >&2
    if [ -s "$work/cpu.txt" ]; then
        echo
        echo "where the CPU went (2 cores shared by the load generator and the servers):"
        cat "$work/cpu.txt"
    fi
}
# machine_busy: busy and total jiffies of all CPUs, from /proc/stat.
machine_jiffies() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }
# cpu_round LABEL REQUESTS A0 B0 M0 T0: one line of antennad's CPU per request and the machine's load
# over a round, from ticks (USER_HZ 100) taken before it.
cpu_round() {
    local label=$1 reqs=$2 a0=$3 m0=$4 t0=$5 a1 m1 t1
    a1=$(cpu_ticks "$apid")
    read -r m1 t1 < <(machine_jiffies)
    [ "${reqs:-0}" -gt 0 ] || return 0
    printf '  %-28s antennad %6.1f us of CPU per request (%.2f cores); machine %3.0f %% busy\n' "$label" \
        "$(calc "($a1 - $a0) * 10000 / $reqs")" "$(calc "($a1 - $a0) / (($t1 - $t0) / $(nproc))")" \
        "$(calc "100 * ($m1 - $m0) / ($t1 - $t0)")" >> "$work/cpu.txt"
}
abort() {
    fatal=$1
    echo "bench: $fatal" >&2
    put_error fatal "$fatal"
    report
    exit 1
}

step "private Slurm cluster in $work/slurm (node drained: jobs stay pending)"
"$root/deploy/ensure-unix-user.sh" "$ACCOUNT" > /dev/null || abort "cannot create the account $ACCOUNT"
# one Unix account serves one partner only: the "hold" partner (whose jobs never run) has its own
"$root/deploy/ensure-unix-user.sh" "$ACCOUNT-hold" > /dev/null || abort "cannot create the account $ACCOUNT-hold"
# A port free when picked may be taken before the daemon binds it (by another cluster on this
# machine, or an outgoing connection's local port): up to 3 tries with fresh ports.
slurm_conf=""
for try in 1 2 3; do
    ctld=$(free_port) && slurmd=$(free_port) && port=$(free_port) || abort "no free port"
    while [ "$slurmd" = "$ctld" ]; do slurmd=$(free_port); done
    while [ "$port" = "$ctld" ] || [ "$port" = "$slurmd" ]; do port=$(free_port); done
    # SLURM_CLUSTER_ROOT_ONLY=0: the slurmrestd baseline submits as the unprivileged $ACCOUNT
    # (rest_auth/local), which the dev cluster's broker-only door would refuse.
    if slurm_conf=$(SLURM_CLUSTER_MAX_JOB_COUNT=${BENCH_MAX_JOB_COUNT:-100000} \
        SLURM_CLUSTER_MIN_JOB_AGE=${BENCH_MIN_JOB_AGE:-30} SLURM_CLUSTER_SLURMRESTD_USER=$ACCOUNT \
        SLURM_CLUSTER_ROOT_ONLY=0 \
        "$root/deploy/slurm-cluster.sh" start "$work/slurm" --ctld-port "$ctld" \
        --slurmd-port "$slurmd" --gpus 8 --gpu-type h100 --cpus 32 2> "$work/cluster.err"); then
        break
    fi
    slurm_conf=""
    echo "bench: cluster start $try of 3 failed: $(grep -h 'fatal\|start failed' "$work/cluster.err" | tail -2 | tr '\n' ' ')" >&2
done
if [ -z "$slurm_conf" ]; then
    cat "$work/cluster.err" >&2
    abort "the Slurm cluster did not start (see above)"
fi
export SLURM_CONF=${slurm_conf#SLURM_CONF=}
# The cluster enforces associations (deploy/slurm-cluster.sh): the sbatch loop and slurmrestd
# submit as $ACCOUNT behind antennad's back, so it needs its own (antennad keeps its partners').
"$root/deploy/slurm-cluster.sh" associate "$work/slurm" bench "$ACCOUNT" > /dev/null ||
    abort "cannot give $ACCOUNT a Slurm account (sacctmgr)"
ctld_log=$work/slurm/log/slurmctld.log
# Every node of the cluster (deploy/slurm-cluster.sh --nodes, default 2) is drained.
node=$(sinfo -h -p gpu -o %N)
scontrol update nodename="$node" state=drain reason=bench || abort "cannot drain node $node"
restd_sock=$work/slurm/run/restd/slurmrestd.sock
restd_err=""
if [ ! -S "$restd_sock" ]; then
    restd_err=$(grep -i slurmrestd "$work/cluster.err" | tail -1)
    [ -n "$restd_err" ] ||
        restd_err="slurmrestd did not start: $(tail -n 3 "$work/slurm/log/slurmrestd.log" 2> /dev/null | tr '\n' ' ')"
elif ! curl -fsS --unix-socket "$restd_sock" http://localhost/slurm/v0.0.38/ping > /dev/null 2>&1; then
    restd_err="slurmrestd does not answer /slurm/v0.0.38/ping: $(curl -sS --unix-socket "$restd_sock" \
        http://localhost/slurm/v0.0.38/ping 2>&1 | tr '\n' ' ' | head -c 300)"
fi
[ -z "$restd_err" ] || echo "bench: $restd_err" >&2

step "antennad on 127.0.0.1:$port (cluster_window 100000)"
"$root/deploy/make-cert.sh" "$work/tls" > /dev/null 2>&1 || abort "cannot make the TLS certificate"
antennad_write_config "$work" "$port" "$SLURM_CONF"
# Dispatch must not wait on the window (jobs stay pending on the drained node): its maximum.
sed -i '1a\  "cluster_window": 100000,' "$work/antennad.json"
# The load generator is one peer with BENCH_CONNS connections: above the per-peer cap (32) it
# would be refused, as any one client is; the bench raises that cap for itself.
sed -i "1a\\  \"max_connections_per_peer\": $((CONNS + 16))," "$work/antennad.json"
admin=$("$build/antennad" bootstrap --config "$work/antennad.json" 2> /dev/null) ||
    abort "antennad bootstrap failed"
antennad_start "$build/antennad" "$work" || abort "antennad did not start"
apid=$(cat "$work/antennad.pid")
[ "$(cat "/proc/$apid/comm" 2> /dev/null)" = antennad ] || abort "pid $apid is not antennad"
url="https://127.0.0.1:$port"
ca=$work/tls/ca.pem

# api METHOD PATH [BODY]: as admin; prints the body; fails on a non-2xx answer.
api() {
    curl -fsS --cacert "$ca" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
        -X "$1" "$url$2" ${3:+-d "$3"}
}
for p in hold disp; do
    acct=$ACCOUNT
    [ "$p" = hold ] && acct=$ACCOUNT-hold
    api POST /v1/partners "{\"name\":\"$p\"}" > /dev/null &&
        api PATCH "/v1/quotas/$p/current" '{"gpu_hours":null,"max_running_jobs":0}' > /dev/null &&
        api POST /v1/users "{\"name\":\"$p\",\"partner\":\"$p\",\"unix_user\":\"$acct\",\"category\":\"sme\"}" \
            > /dev/null || abort "cannot create partner/user $p through the API"
done
tok_hold=$(api POST /v1/tokens '{"user":"hold","label":"bench"}' | "$J" get - token)
tok_disp=$(api POST /v1/tokens '{"user":"disp","label":"bench"}' | "$J" get - token)
[ -n "$tok_hold" ] && [ -n "$tok_disp" ] || abort "cannot create tokens"

JOB_BODY='{"script":"#!/bin/bash\nsleep 1\n","name":"bench-{seq}","gpus":1,"gpu_type":"h100","cpus_per_task":1,"time_minutes":10}'
RESTD_BODY='{"job":{"name":"bench-{seq}","partition":"gpu","current_working_directory":"/tmp","environment":{"PATH":"/bin:/usr/bin"},"time_limit":10,"cpus_per_task":1,"gres":"gpu:h100:1"},"script":"#!/bin/bash\nsleep 1\n"}'
# lg_antennad TOKEN ARGS...: loadgen against antennad.
lg_antennad() {
    local tok=$1
    shift
    "$BIN/loadgen" -c "$CONNS" -t "$THREADS" --cacert "$ca" -H "Authorization: Bearer $tok" "$@" "$url"
}
lg_submit() { # TOKEN LABEL (-d S | -n N) [more]: POST /v1/jobs with a fresh Idempotency-Key
    local tok=$1 label=$2
    shift 2
    lg_antennad "$tok" --label "$label" -m POST -p /v1/jobs -H 'Content-Type: application/json' \
        -H 'Idempotency-Key: {key}' -b "$JOB_BODY" "$@"
}
lg_restd() { "$BIN/loadgen" -c "$CONNS" -t "$THREADS" "$@" "unix:$restd_sock"; }

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2> /dev/null || echo 0; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2> /dev/null || echo 0; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2> /dev/null || echo 0; }
# median: of the numbers on stdin.
median() { sort -n | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : 0 }'; }
hz=$(getconf CLK_TCK)
# wait_quiet PID [MAX_S]: until PID used < 10 % of a core in each of 3 seconds in a row (longer
# than a broker tick), or MAX_S passes.
wait_quiet() {
    local pid=$1 max=${2:-60} a b quiet=0
    for _ in $(seq 1 "$max"); do
        a=$(cpu_ticks "$pid")
        sleep 1
        b=$(cpu_ticks "$pid")
        if [ $(((b - a) * 100)) -lt $((hz * 10)) ]; then quiet=$((quiet + 1)); else quiet=0; fi
        [ $quiet -lt 3 ] || return 0
    done
    return 1
}
# wait_machine_quiet [MAX_S]: until the whole machine is < 20 % busy in each of 3 seconds in a row,
# or MAX_S (60) passes: the HTTP rounds then measure the servers, not the leftovers of an earlier
# round (slurmctld scheduling thousands of pending jobs, slurmdbd and MariaDB recording them). The
# seconds waited go to cpu.txt.
wait_machine_quiet() {
    local max=${1:-60} m0 t0 m1 t1 quiet=0 waited=0
    for _ in $(seq 1 "$max"); do
        read -r m0 t0 < <(machine_jiffies)
        sleep 1
        waited=$((waited + 1))
        read -r m1 t1 < <(machine_jiffies)
        if [ $(((m1 - m0) * 100)) -lt $(((t1 - t0) * 20)) ]; then quiet=$((quiet + 1)); else quiet=0; fi
        [ $quiet -lt 3 ] || break
    done
    printf '  %-28s waited %d s for the machine to be < 20 %% busy%s\n' "before the next round" \
        "$waited" "$([ $quiet -ge 3 ] || echo ' (it never was: the round ran on a busy machine)')" \
        >> "$work/cpu.txt"
}
# active_jobs TOKEN: how many of that user's newest 1000 jobs antennad does not show as ended.
active_jobs() {
    curl -fsS --cacert "$ca" -H "Authorization: Bearer $1" "$url/v1/jobs?limit=1000" |
        grep -oE '"state": *"[a-z_]+"' |
        grep -cvE '"(completed|failed|cancelled|timeout|node_fail|preempted|boot_fail|deadline|out_of_memory|lost)"'
}
ctld_submits() { tail -c +$(($1 + 1)) "$ctld_log" | grep -c '_slurm_rpc_submit_batch_job: JobId='; }
# cancel_all: cancels every Slurm job of the cluster, waits until antennad has seen its own jobs
# end (partner disp) and has gone quiet.
cancel_all() {
    scancel --partition=gpu 2> /dev/null
    for _ in $(seq 1 100); do
        [ "$(squeue -h -t PD,R,CG 2> /dev/null | wc -l)" -eq 0 ] && break
        sleep 0.2
    done
    for _ in $(seq 1 120); do
        [ "$(active_jobs "$tok_disp")" -gt 0 ] || break
        sleep 0.5
    done
    wait_quiet "$apid" 20 || true
}

# --- dispatch: antennad, a raw libslurm loop, an sbatch loop ----------------------------------
step "dispatch: queue $DISPATCH_N jobs in antennad (partner at max_running_jobs 0), then release"
lg_submit "$tok_disp" fill_disp -n "$DISPATCH_N" --max-time 900 | put fill_disp
n_disp=$(ok_count fill_disp)
if [ "$n_disp" -gt 0 ]; then
    sleep 2
    wait_quiet "$apid" 30 || true
    offset=$(stat -c %s "$ctld_log")
    t_release=$(date +%s.%N)
    perf_pid=""
    if [ "${BENCH_PERF:-0}" = 1 ] && command -v perf > /dev/null; then
        perf record -g -p "$apid" -o "$work/perf.dispatch.data" > /dev/null 2>&1 &
        perf_pid=$!
    fi
    if api PATCH /v1/quotas/disp/current '{"max_running_jobs":null}' > /dev/null; then
        limit=$((60 + n_disp / 20))
        t_start=$SECONDS
        while [ "$(ctld_submits "$offset")" -lt "$n_disp" ] && [ $((SECONDS - t_start)) -lt $limit ]; do
            sleep 0.25
        done
        if [ -n "$perf_pid" ]; then
            kill -INT "$perf_pid" 2> /dev/null
            wait "$perf_pid" 2> /dev/null
            perf report -i "$work/perf.dispatch.data" --no-children --stdio 2> /dev/null |
                grep -v '^#' | grep '%' | head -40 > "$work/perf.dispatch.txt"
            step "perf profile of antennad's dispatch: $work/perf.dispatch.txt"
        fi
        "$BIN/bench_dispatch" logscan "$ctld_log" --offset "$offset" --since "$t_release" -n "$n_disp" |
            put dispatch_antennad timeout_s:="$limit"
    else
        put_error dispatch_antennad "PATCH quota (release) failed"
    fi
else
    put_error dispatch_antennad "no job could be queued: $(get fill_disp error) $(cat "$res/fill_disp.json")"
fi
step "dispatch: raw slurm_adapter_submit loop, $DISPATCH_N jobs"
install -d -o "$ACCOUNT" "$work/rawjobs"
"$BIN/bench_dispatch" raw --conf "$SLURM_CONF" --user "$ACCOUNT" --dir "$work/rawjobs" -n "$DISPATCH_N" |
    put dispatch_raw
step "dispatch: sbatch loop, $SBATCH_N jobs"
printf '#!/bin/bash\nsleep 1\n' > "$work/rawjobs/job.sh"
sb_ok=0 sb_fail=0 sb_err=""
t_a=$(date +%s.%N)
for _ in $(seq 1 "$SBATCH_N"); do
    if out=$(sbatch --uid="$ACCOUNT" --gid="$ACCOUNT" -p gpu --gres=gpu:h100:1 -c 1 -t 10 -J bench-sb \
        -o "$work/rawjobs/sb-%j.out" -D "$work/rawjobs" "$work/rawjobs/job.sh" 2>&1); then
        sb_ok=$((sb_ok + 1))
    else
        sb_fail=$((sb_fail + 1))
        [ -n "$sb_err" ] || sb_err=$out
    fi
done
t_b=$(date +%s.%N)
sb_s=$(calc "$t_b - $t_a")
echo '{}' | put dispatch_sbatch n:="$SBATCH_N" ok:="$sb_ok" failed:="$sb_fail" seconds:="$sb_s" \
    jobs_per_s:="$(calc "$sb_s > 0 ? $sb_ok / $sb_s : 0")" first_error="$sb_err"

# --- status: GET one job -------------------------------------------------------------------------
ids=$(curl -fsS --cacert "$ca" -H "Authorization: Bearer $tok_disp" "$url/v1/jobs?limit=1000" |
    "$J" idrange -)
step "status: GET /v1/jobs/{id} over ids $ids, ${DURATION}s, $CONNS connections"
if [ -n "$ids" ]; then
    wait_machine_quiet 90
    a0=$(cpu_ticks "$apid")
    read -r m0 t0 < <(machine_jiffies)
    perf_pid=""
    if [ "${BENCH_PERF:-0}" = 1 ] && command -v perf > /dev/null; then
        perf record -g -p "$apid" -o "$work/perf.status.data" > /dev/null 2>&1 &
        perf_pid=$!
    fi
    lg_antennad "$tok_disp" --label status_antennad -d "$DURATION" -p '/v1/jobs/{id}' --ids "$ids" |
        put status_antennad
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" 2> /dev/null
        wait "$perf_pid" 2> /dev/null
        perf report -i "$work/perf.status.data" --no-children --stdio --sort dso,sym 2> /dev/null |
            grep -v '^#' | grep '%' | grep -v -- '--' | head -60 > "$work/perf.status.txt"
    fi
    cpu_round "status (GET one job)" "$(ok_count status_antennad)" "$a0" "$m0" "$t0"
    if [ "$WRK" = 1 ] && command -v wrk > /dev/null; then
        WRK_MODE=status WRK_TOKEN=$tok_disp WRK_IDS=$ids wrk -t "$THREADS" -c "$CONNS" \
            -d "${DURATION}s" -s "$root/tests/bench/wrk.lua" "$url" 2>&1 |
            sed -n 's/^WRKJSON //p' | put wrk_status_antennad
    fi
else
    put_error status_antennad "no job to read"
fi
raw_lo=$(get dispatch_raw first_job_id)
raw_hi=$(get dispatch_raw last_job_id)
raw_lo=${raw_lo:-0} raw_hi=${raw_hi:-0}
[ "$raw_hi" -le $((raw_lo + 999)) ] || raw_hi=$((raw_lo + 999))
if [ -n "$restd_err" ]; then
    put_error status_slurmrestd "$restd_err"
elif [ "$raw_lo" -gt 0 ]; then
    step "status: GET /slurm/v0.0.38/job/{id} over Slurm ids $raw_lo-$raw_hi"
    slurm_jobs=$(squeue -h -t PD 2> /dev/null | wc -l)
    lg_restd --label status_slurmrestd -d "$DURATION" -p '/slurm/v0.0.38/job/{id}' \
        --ids "$raw_lo-$raw_hi" | put status_slurmrestd slurm_jobs:="$slurm_jobs"
else
    put_error status_slurmrestd "no Slurm job to read (the raw loop submitted none)"
fi
step "cancel every Slurm job"
cancel_all

# --- submissions with (almost) nothing queued -------------------------------------------------
# The memory baseline: antennad warmed up (every round so far ran) and nothing queued yet; the
# submission rounds below already queue most of the jobs that the memory step divides by.
wait_quiet "$apid" 30 || true
rss_empty=$(for _ in 1 2 3 4 5; do rss_kib "$apid"; sleep 1; done | median)
held=0 # jobs of partner hold queued in antennad (202 answers)
step "submit: POST /v1/jobs (durable, held in antennad), ${DURATION}s"
wait_machine_quiet 60
a0=$(cpu_ticks "$apid")
read -r m0 t0 < <(machine_jiffies)
lg_submit "$tok_hold" submit0_antennad -d "$DURATION" | put submit0_antennad
cpu_round "submit (POST, durable)" "$(ok_count submit0_antennad)" "$a0" "$m0" "$t0"
held=$((held + $(ok_count submit0_antennad)))
if [ "$WRK" = 1 ] && command -v wrk > /dev/null; then
    WRK_MODE=submit WRK_TOKEN=$tok_hold wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" \
        -s "$root/tests/bench/wrk.lua" "$url" 2>&1 | sed -n 's/^WRKJSON //p' | put wrk_submit_antennad
    w_req=$(get wrk_submit_antennad requests) w_bad=$(get wrk_submit_antennad non_2xx)
    held=$((held + ${w_req:-0} - ${w_bad:-0}))
fi
if [ -n "$restd_err" ]; then
    put_error submit_slurmrestd "$restd_err"
else
    step "submit: POST /slurm/v0.0.38/job/submit, ${DURATION}s"
    lg_restd --label submit_slurmrestd -d "$DURATION" -m POST -p /slurm/v0.0.38/job/submit \
        -H 'Content-Type: application/json' -b "$RESTD_BODY" | put submit_slurmrestd
    step "cancel every Slurm job"
    cancel_all
fi

# --- 100k queued: memory, idle CPU, submissions, status ---------------------------------------
# queued_now: jobs queued in antennad, read from its database (read-only) when its schema allows,
# else the count of 202 answers (which misses the few answers in flight when a round ended).
queued_now() {
    local n
    n=$(sqlite3 "file:$work/antenna.db?mode=ro" "SELECT count(*) FROM jobs WHERE state='queued'" 2> /dev/null)
    if [[ "$n" =~ ^[0-9]+$ ]]; then echo "$n"; else echo "$held"; fi
}
# VmRSS is the median of a few samples, a second apart (allocator noise); the baseline is the
# one taken before the first submission round, with nothing queued.
rss0=$rss_empty
held=$(queued_now)
held0=0
need=$((QUEUED - held))
if [ "$need" -gt 0 ]; then
    step "queue $need more jobs in antennad (to $QUEUED queued)"
    lg_submit "$tok_hold" fill_hold -n "$need" --max-time "$FILL_MAX" | put fill_hold
    held=$((held + $(ok_count fill_hold)))
else
    put_error fill_hold "not needed: the submission rounds queued $held jobs, above BENCH_QUEUED ($QUEUED)"
fi
sleep 3
held=$(queued_now)
step "idle: antennad's CPU over ${IDLE}s with $held queued, no traffic (VmRSS each second)"
wait_quiet "$apid" 30 || true # what the fill left to do (the WAL's checkpoint) is not idle cost
c0=$(cpu_ticks "$apid")
t_a=$(date +%s.%N)
cp=$c0
for _ in $(seq 1 "$IDLE"); do
    sleep 1
    rss_kib "$apid"
    cn=$(cpu_ticks "$apid")
    printf '%s ' $((cn - cp)) >> "$work/idle_ticks.txt"
    cp=$cn
done > "$work/rss1.txt"
c1=$(cpu_ticks "$apid")
printf '  %-28s antennad CPU ticks (1/100 s) in each second: %s\n' "idle" \
    "$(cat "$work/idle_ticks.txt" 2> /dev/null)" >> "$work/cpu.txt"
t_b=$(date +%s.%N)
rss1=$(median < "$work/rss1.txt")
rss1_min=$(sort -n "$work/rss1.txt" | head -1)
rss1_max=$(sort -n "$work/rss1.txt" | tail -1)
idle_s=$(calc "$t_b - $t_a")
bpj=null bpj_min=null bpj_max=null
if [ "$held" -gt "$held0" ]; then
    bpj=$(calc "($rss1 - $rss0) * 1024 / ($held - $held0)")
    bpj_min=$(calc "($rss1_min - $rss0) * 1024 / ($held - $held0)")
    bpj_max=$(calc "($rss1_max - $rss0) * 1024 / ($held - $held0)")
fi
echo '{}' | put memory rss0_kib:="$rss0" rss1_kib:="$rss1" rss1_min_kib:="$rss1_min" \
    rss1_max_kib:="$rss1_max" hwm_kib:="$(hwm_kib "$apid")" queued0:="$held0" queued1:="$held" \
    bytes_per_job:="$bpj" bytes_per_job_min:="$bpj_min" bytes_per_job_max:="$bpj_max" \
    queued_target:="$QUEUED" idle_seconds:="$idle_s" idle_ticks:="$((c1 - c0))" hz:="$hz" \
    idle_cpu_pct:="$(calc "($c1 - $c0) / $hz / $idle_s * 100")"

step "submit at $held queued, ${DURATION}s"
wait_machine_quiet 60
a0=$(cpu_ticks "$apid")
read -r m0 t0 < <(machine_jiffies)
perf_pid=""
if [ "${BENCH_PERF:-0}" = 1 ] && command -v perf > /dev/null; then
    perf record -g -p "$apid" -o "$work/perf.submit.data" > /dev/null 2>&1 &
    perf_pid=$!
fi
lg_submit "$tok_hold" submit100k_antennad -d "$DURATION" | put submit100k_antennad queued_before:="$held"
if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" 2> /dev/null
    wait "$perf_pid" 2> /dev/null
    perf report -i "$work/perf.submit.data" --no-children --stdio --sort dso,sym 2> /dev/null |
        grep -v '^#' | grep '%' | grep -v -- '--' | head -60 > "$work/perf.submit.txt"
    step "perf profile of antennad's submissions: $work/perf.submit.txt"
fi
cpu_round "submit at $held queued" "$(ok_count submit100k_antennad)" "$a0" "$m0" "$t0"
step "status at $held queued, ${DURATION}s"
hold_ids=$(curl -fsS --cacert "$ca" -H "Authorization: Bearer $tok_hold" "$url/v1/jobs?limit=1000" |
    "$J" idrange -)
if [ -n "$hold_ids" ]; then
    wait_machine_quiet 60
    lg_antennad "$tok_hold" --label status100k_antennad -d "$DURATION" -p '/v1/jobs/{id}' \
        --ids "$hold_ids" | put status100k_antennad
fi
step "dry-run quotes over HTTP at $held queued, ${DURATION}s"
lg_antennad "$tok_hold" --label quote100k_antennad -d "$DURATION" -m POST -p /v1/jobs \
    -H 'Content-Type: application/json' \
    -b '{"script":"#!/bin/bash\nsleep 1\n","gpus":1,"gpu_type":"h100","time_minutes":10,"dry_run":true}' |
    put quote100k_antennad

echo '{}' | put logs antennad_log_warnings="$(grep -ciE 'error|warn' "$work/antennad.log")" \
    antennad_log_last_warnings="$(grep -iE 'error|warn' "$work/antennad.log" | tail -5)"
step "stopping antennad and the cluster"
report
