#!/usr/bin/env bash
# run.sh [BUILD_DIR] - integration tests on a real Slurm cluster: starts its own cluster and antennad
# on free ports in a temporary folder, drives them with the `antenna` CLI and curl, and stops
# everything at the end (nothing is left running, whatever happens).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
. "$root/deploy/common.sh"

work=$(mktemp -d /tmp/antenna-it.XXXXXX)
chmod 755 "$work"
passed=0 failed=0
cleanup() {
    antennad_stop "$work"
    "$root/deploy/slurm-cluster.sh" stop "$work/slurm" > /dev/null 2>&1
    if [ "$failed" -eq 0 ]; then rm -rf "$work"; else echo "kept $work for inspection"; fi
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "  ok   $*"; }
ko() { failed=$((failed + 1)); echo "  FAIL $*"; }
# check NAME CMD...: passes when CMD exits 0.
check() { local name=$1; shift; if "$@"; then ok "$name"; else ko "$name"; fi; }

antenna() { "$build/antenna" "$@"; }
as() { local tok=$1; shift; ANTENNA_TOKEN=$tok "$build/antenna" "$@"; }
# api TOKEN METHOD PATH [curl args...]: prints "STATUS BODY".
api() {
    local tok=$1 method=$2 path=$3; shift 3
    local auth=()
    [ -n "$tok" ] && auth=(-H "Authorization: Bearer $tok")
    curl -sS --cacert "$work/tls/ca.pem" -o "$work/body" -w '%{http_code}' -X "$method" \
        "${auth[@]}" "$@" "$ANTENNA_URL$path"
    printf ' %s' "$(cat "$work/body")"
}
# expect_api NAME STATUS CODE TOKEN METHOD PATH [curl args]: checks status and error code.
expect_api() {
    local name=$1 status=$2 code=$3; shift 3
    local out; out=$(api "$@")
    if [[ "$out" == "$status "* ]] && [[ "$out" == *"\"$code\""* ]]; then ok "$name"; else
        ko "$name (wanted $status $code, got: ${out:0:300})"; fi
}
job_field() { as "$1" show "$2" --json | jq_field "$3"; }
jq_field() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",}]*\)\"\{0,1\}.*/\1/p" | head -1; }
# wait_state TOKEN ID STATE [SECONDS]
wait_state() {
    local s
    for _ in $(seq 1 $((${4:-60} * 5))); do
        s=$(job_field "$1" "$2" state)
        [ "$s" = "$3" ] && return 0
        sleep 0.2
    done
    echo "    job $2 is '$s', wanted '$3'" >&2
    return 1
}

# slurm_jobs_tagged ID: how many Slurm jobs carry antennad's tag for job ID.
slurm_jobs_tagged() {
    local inst; inst=$(sqlite3 "$work/antenna.db" "SELECT value FROM meta WHERE key='instance_id'")
    # (squeue -O has no AdminComment field in 22.05: scontrol shows it)
    scontrol -o show job 2> /dev/null | grep -cE " AdminComment=antenna:$inst:$1( |\$)"
}

echo "== setup in $work"
ctld=$(free_port); slurmd=$(free_port); port=$(free_port)
while [ "$slurmd" = "$ctld" ]; do slurmd=$(free_port); done
# A requeued job (t_requeue.sh) waits the credential lifetime before it runs again: 20 s, not 120.
slurm_conf=$(SLURM_CLUSTER_CRED_EXPIRE=${SLURM_CLUSTER_CRED_EXPIRE:-20} \
    "$root/deploy/slurm-cluster.sh" start "$work/slurm" --ctld-port "$ctld" \
    --slurmd-port "$slurmd" --gpus 8 --gpu-type h100 --cpus 32) || { echo "cluster failed"; exit 1; }
export SLURM_CONF=${slurm_conf#SLURM_CONF=}
"$root/deploy/make-cert.sh" "$work/tls" > /dev/null
"$root/deploy/ensure-unix-user.sh" antenna-it > /dev/null
"$root/deploy/ensure-unix-user.sh" antenna-it2 > /dev/null
antennad_write_config "$work" "$port" "$SLURM_CONF"
admin=$("$build/antennad" bootstrap --config "$work/antennad.json" 2> /dev/null)
antennad_start "$build/antennad" "$work" || exit 1
export ANTENNA_URL="https://127.0.0.1:$port" ANTENNA_CA="$work/tls/ca.pem" ANTENNA_TOKEN=$admin
echo "   cluster ctld:$ctld slurmd:$slurmd, antennad :$port"

echo "== slurm adapter on the real cluster"
if ANTENNA_TEST_UNIX_USER=antenna-it "$build/itests/test_slurm_adapter" > "$work/adapter.log" 2>&1; then
    ok "slurm adapter tests ($(grep -c '^\[       OK \]' "$work/adapter.log") passed)"
else
    ko "slurm adapter tests"; grep -E 'FAILED|ERROR|Failure' "$work/adapter.log" | head -20
fi

echo "== admin: partners, users, tokens"
check "partner add ulb" antenna partner add ulb --description "ULB"
check "partner add vub" antenna partner add vub
check "user add alice" antenna user add alice --partner ulb --category sme --unix-user antenna-it
check "user add bob" antenna user add bob --partner vub --category researcher --unix-user antenna-it2
check "quota set ulb: 100 GPU-hours, 4 GPUs at once" antenna quota set ulb --gpu-hours 100 --max-gpus 4
check "quota set vub: 2 GPU-hours" antenna quota set vub --gpu-hours 2 --max-gpus 8
alice=$(antenna token create --user alice --label it)
bob=$(antenna token create --user bob --label it)
check "token for alice printed alone" test "${#alice}" -eq 68
check "duplicate partner refused (exit 1)" bash -c '! "$0" partner add ulb 2>/dev/null' "$build/antenna"
expect_api "user mapped to root refused" 400 invalid_value "$admin" POST /v1/users \
    -H 'Content-Type: application/json' -d '{"name":"eve","partner":"ulb","unix_user":"root","category":"sme"}'
expect_api "user of unknown partner refused" 400 invalid_value "$admin" POST /v1/users \
    -H 'Content-Type: application/json' -d '{"name":"eve","partner":"nope","unix_user":"antenna-it","category":"sme"}'
expect_api "non-admin cannot add partners" 403 forbidden "$alice" POST /v1/partners \
    -H 'Content-Type: application/json' -d '{"name":"x"}'

echo "== a training job from submit to completed"
cat > "$work/train.sh" <<'SH'
#!/bin/bash
#SBATCH --job-name=it-train
#SBATCH --gres=gpu:h100:2
#SBATCH --cpus-per-task=2
#SBATCH --time=00:05:00
echo "uid=$(id -u) user=$(id -un)"
echo "gpus_on_node=${SLURM_GPUS_ON_NODE:-none} cuda=${CUDA_VISIBLE_DEVICES:-none}"
echo "cpus=${SLURM_CPUS_PER_TASK:-none}"
echo "training done"
SH
as "$alice" submit --wait "$work/train.sh" > "$work/submit.out" 2>&1
rc=$?
check "submit --wait exits 0 for a completed job" test "$rc" -eq 0
id=$(sed -n 's/^Submitted job \([0-9]*\).*/\1/p' "$work/submit.out")
check "submit printed the job id" test -n "$id"
check "submit --wait printed running and completed" grep -q "completed" "$work/submit.out"
check "state completed" test "$(job_field "$alice" "$id" state)" = completed
check "exit code 0" test "$(job_field "$alice" "$id" exit_code)" = 0
check "job name from #SBATCH" test "$(job_field "$alice" "$id" name)" = it-train
check "2 GPUs of type h100 asked" test "$(job_field "$alice" "$id" gpus)" = 2
sid=$(job_field "$alice" "$id" slurm_job_id)
check "slurm job id recorded" test -n "$sid"
as "$alice" logs "$id" > "$work/logs.out"
uid=$(id -u antenna-it)
check "job ran as the mapped account (uid $uid), not root" grep -q "^uid=$uid user=antenna-it" "$work/logs.out"
check "job saw 2 GPUs" grep -q "gpus_on_node=2" "$work/logs.out"
check "job saw 2 CPUs" grep -q "cpus=2" "$work/logs.out"
check "logs --json carries state and output" bash -c "ANTENNA_TOKEN=$alice '$build/antenna' logs $id --json | grep -q '\"output\": \"uid=$uid'"
check "show --json is the job object" bash -c "ANTENNA_TOKEN=$alice '$build/antenna' show $id --json | grep -q '\"state\": \"completed\"'"
check "slurm ran it under uid $uid" bash -c "scontrol show job $sid | grep -q 'UserId=antenna-it($uid)'"
check "jobs lists it" bash -c "ANTENNA_TOKEN=$alice '$build/antenna' jobs | grep -q it-train"
check "bob does not see alice's job in jobs" bash -c "! ANTENNA_TOKEN=$bob '$build/antenna' jobs --json | grep -q it-train"
expect_api "bob gets 404 for alice's job" 404 not_found "$bob" GET "/v1/jobs/$id"
expect_api "bob cannot cancel alice's job" 404 not_found "$bob" DELETE "/v1/jobs/$id"
expect_api "bob cannot read alice's output" 404 not_found "$bob" GET "/v1/jobs/$id/output"
expect_api "cancel of a finished job is a conflict" 409 conflict "$alice" DELETE "/v1/jobs/$id"

echo "== a failing job"
printf '#!/bin/bash\necho failing\nexit 3\n' > "$work/fail.sh"
as "$alice" submit --wait --time 1 "$work/fail.sh" > "$work/fail.out" 2>&1
check "submit --wait exits with the job's exit code (3)" test $? -eq 3
fid=$(sed -n 's/^Submitted job \([0-9]*\).*/\1/p' "$work/fail.out")
check "state failed" test "$(job_field "$alice" "$fid" state)" = failed
check "exit code 3 recorded" test "$(job_field "$alice" "$fid" exit_code)" = 3

echo "== cancel a running job"
printf '#!/bin/bash\necho started\nsleep 300\n' > "$work/long.sh"
cid=$(as "$alice" submit "$work/long.sh" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p')
check "long job reaches running" wait_state "$alice" "$cid" running 60
check "cancel accepted" as "$alice" cancel "$cid"
check "cancelled job ends cancelled" wait_state "$alice" "$cid" cancelled 60
csid=$(job_field "$alice" "$cid" slurm_job_id)
check "slurm says CANCELLED" bash -c "scontrol show job $csid | grep -q 'JobState=CANCELLED'"

echo "== restart antennad mid-job (SIGTERM, then SIGKILL) and find the job again"
printf '#!/bin/bash\necho begin\nsleep 12\necho end\n' > "$work/mid.sh"
mid=$(as "$alice" submit --job-name mid "$work/mid.sh" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p')
check "mid job running" wait_state "$alice" "$mid" running 60
msid=$(job_field "$alice" "$mid" slurm_job_id)
antennad_stop "$work" TERM
antennad_start "$build/antennad" "$work"
check "after SIGTERM restart the job is still running with the same Slurm id" \
    test "$(job_field "$alice" "$mid" state)/$(job_field "$alice" "$mid" slurm_job_id)" = "running/$msid"
antennad_stop "$work" KILL
antennad_start "$build/antennad" "$work"
check "after SIGKILL restart the job completes" wait_state "$alice" "$mid" completed 60
check "same Slurm job id after restarts" test "$(job_field "$alice" "$mid" slurm_job_id)" = "$msid"
check "Slurm holds exactly one job for it" test "$(slurm_jobs_tagged "$mid")" -eq 1

echo "== crash between submit and record: the job is found by its tag, not submitted twice"
printf '#!/bin/bash\nsleep 8\necho once\n' > "$work/once.sh"
oid=$(as "$alice" submit --job-name once "$work/once.sh" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p')
check "once job running" wait_state "$alice" "$oid" running 60
osid=$(job_field "$alice" "$oid" slurm_job_id)
antennad_stop "$work" KILL
sqlite3 "$work/antenna.db" "UPDATE jobs SET state='dispatching', slurm_job_id=0 WHERE id=$oid"
antennad_start "$build/antennad" "$work"
check "recovered job keeps its Slurm id" wait_state "$alice" "$oid" completed 60
check "recovered job has the original Slurm id" test "$(job_field "$alice" "$oid" slurm_job_id)" = "$osid"
check "Slurm holds exactly one job for it" test "$(slurm_jobs_tagged "$oid")" -eq 1

echo "== a queued job survives a restart before dispatch"
antennad_stop "$work" KILL
# A job acknowledged just before the crash: on disk in state queued, never seen by Slurm.
sqlite3 "$work/antenna.db" "INSERT INTO jobs (user_id, user_name, partner, unix_user, name, gpus, gpu_type, cpus_per_task, mem_mb, time_minutes, state, script, submitted_at) SELECT id, 'alice', 'ulb', 'antenna-it', 'offline', 0, '', 1, 0, 1, 'queued', '#!/bin/bash
echo offline', strftime('%s','now') FROM users WHERE name='alice'"
antennad_start "$build/antennad" "$work"
qid=$(sqlite3 "$work/antenna.db" "SELECT id FROM jobs WHERE name='offline'")
check "job queued while antennad was down is dispatched and completes" wait_state "$alice" "$qid" completed 60

echo "== quotas: budgets, caps and fair dispatch on the real cluster"
printf '#!/bin/bash\n#SBATCH --gres=gpu:h100:4\n#SBATCH --time=01:00:00\nsleep 1\n' > "$work/big.sh"
as "$bob" submit "$work/big.sh" > "$work/over.out" 2>&1
check "over-budget job refused at once (exit 1)" test $? -eq 1
check "refusal names the budget" grep -q "budget_exceeded" "$work/over.out"
as "$bob" submit --dry-run "$work/big.sh" > "$work/quote.out" 2>&1
check "dry-run of the over-budget job says refused" grep -qi "refused" "$work/quote.out"
printf '#!/bin/bash\n#SBATCH --gres=gpu:h100:2\n#SBATCH --time=00:10:00\nsleep 300\n' > "$work/two.sh"
a1=$(as "$alice" submit --job-name cap1 "$work/two.sh" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p')
a2=$(as "$alice" submit --job-name cap2 "$work/two.sh" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p')
check "two 2-GPU jobs of ulb run (4 GPUs = its cap)" wait_state "$alice" "$a2" running 60
check "the first is running too" test "$(job_field "$alice" "$a1" state)" = running
a3=$(as "$alice" submit --job-name cap3 "$work/two.sh" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p')
sleep 2
check "a third ulb job waits with PartnerGpuLimit" test "$(job_field "$alice" "$a3" reason)" = PartnerGpuLimit
check "antenna jobs shows the reason" bash -c "ANTENNA_TOKEN=$alice '$build/antenna' jobs | grep cap3 | grep -q PartnerGpuLimit"
printf '#!/bin/bash\n#SBATCH --gres=gpu:h100:1\n#SBATCH --time=00:05:00\nsleep 3\necho vub-done\n' > "$work/small.sh"
as "$bob" submit --wait "$work/small.sh" > "$work/small.out" 2>&1
check "meanwhile vub's job dispatches and completes" test $? -eq 0
check "ulb's third job still waits" test "$(job_field "$alice" "$a3" state)" = queued
check "cancel one running ulb job" as "$alice" cancel "$a1"
check "dispatch resumes as the slot frees: the third job runs" wait_state "$alice" "$a3" running 60
as "$alice" cancel "$a2" > /dev/null; as "$alice" cancel "$a3" > /dev/null
wait_state "$alice" "$a3" cancelled 60 > /dev/null
sid_small=$(sed -n 's/^Submitted job \([0-9]*\).*/\1/p' "$work/small.out")
ledger() { sqlite3 "$work/antenna.db" "$1"; }
charge=$(ledger "SELECT gpu_seconds FROM ledger WHERE job_id=$sid_small AND kind='charge'")
expect=$(ledger "SELECT gpus * (ended_at - started_at) FROM jobs WHERE id=$sid_small")
check "vub's charge = GPUs x elapsed x weight ($charge = $expect GPU-seconds)" test -n "$charge" -a "$charge" = "$expect"
check "every hold released exactly once" test "$(ledger "SELECT count(*) FROM (SELECT job_id, sum(gpu_seconds) s FROM ledger WHERE kind IN ('hold','release') GROUP BY job_id HAVING s != 0)")" = 0
antenna quota vub > "$work/quota.out"
check "antenna quota shows vub's use" grep -q vub "$work/quota.out"
used=$(antenna quota vub --json | sed -n 's/.*"used_gpu_hours": *\([0-9.]*\).*/\1/p' | head -1)
check "quota used matches the ledger" awk -v u="$used" -v c="$charge" 'BEGIN { exit !(u > 0 && (u - c / 3600) < 0.0001 && (c / 3600 - u) < 0.0001) }'

echo "== accounting from what really ran"
printf '#!/bin/bash\n#SBATCH --gres=gpu:h100:2\n#SBATCH --time=00:05:00\nsleep 4\n' > "$work/acct.sh"
acct=$(as "$alice" submit --wait "$work/acct.sh" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p')
c=$(ledger "SELECT gpu_seconds FROM ledger WHERE job_id=$acct AND kind='charge'")
e=$(ledger "SELECT 2 * (ended_at - started_at) FROM jobs WHERE id=$acct")
check "a 4 s job on 2 GPUs is charged 2 x its elapsed time ($c = $e GPU-seconds)" test -n "$c" -a "$c" = "$e" -a "${e:-0}" -ge 8
printf '#!/bin/bash\n#SBATCH --gres=gpu:h100:1\n#SBATCH --time=00:05:00\nsleep 3\n' > "$work/down.sh"
down=$(as "$alice" submit --job-name down "$work/down.sh" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p')
check "a job runs" wait_state "$alice" "$down" running 60
antennad_stop "$work" KILL
sleep 6 # it ends while antennad is down
t_restart=$(date +%s)
antennad_start "$build/antennad" "$work"
check "the job that ended while antennad was down is completed after restart" wait_state "$alice" "$down" completed 60
check "its end time is Slurm's, before the restart" test "$(ledger "SELECT ended_at FROM jobs WHERE id=$down")" -lt "$t_restart"
check "it is charged exactly once, for what ran" test "$(ledger "SELECT count(*) || ':' || sum(l.gpu_seconds) = '1:' || (j.ended_at - j.started_at) FROM ledger l JOIN jobs j ON j.id = l.job_id WHERE l.job_id=$down AND l.kind='charge'")" = 1

echo "== usage queries reconcile with the ledger"
all_charges=$(ledger "SELECT sum(gpu_seconds) FROM ledger WHERE kind='charge'")
for by in partner user category gpu-type day month; do
    out=$(api "$admin" GET "/v1/usage?by=$by")
    nums=$(printf '%s' "$out" | grep -o '"gpu_seconds":[0-9]*' | grep -o '[0-9]*$')
    tot=$(printf '%s\n' "$nums" | tail -1)
    rows=$(printf '%s\n' "$nums" | sed '$d' | awk '{ s += $1 } END { print s + 0 }')
    check "usage by $by: rows sum to the total, which is the ledger's ($rows = $tot = $all_charges)" test "$rows" = "$tot" -a "$tot" = "$all_charges"
done
antenna usage --by user > "$work/usage.out"
check "antenna usage prints a table with a total row" grep -qi "total" "$work/usage.out"
antenna usage --by partner --format csv > "$work/usage.csv"
check "antenna usage --format csv has a header and rows" test "$(wc -l < "$work/usage.csv")" -ge 3
as "$alice" usage --by user --format json > "$work/usage-alice.json"
check "a user sees only their own usage" bash -c "! grep -q bob '$work/usage-alice.json' && grep -q alice '$work/usage-alice.json'"
expect_api "a user may not ask for another partner's usage" 403 forbidden "$alice" GET "/v1/usage?partner=vub"

echo "== partner statement"
month=$(date -u +%Y-%m)
antenna report --partner ulb --month "$month" --format html --output "$work/report.html"
check "report --format html writes a self-contained page with an SVG chart" bash -c "grep -q '<svg' '$work/report.html' && ! grep -qi '<script' '$work/report.html'"
ulb_used=$(ledger "SELECT sum(l.gpu_seconds) FROM ledger l JOIN partners p ON p.id = l.partner_id WHERE p.name='ulb' AND l.period='$month' AND l.kind='charge'")
rep=$(api "$admin" GET "/v1/reports/ulb/$month")
rep_total=$(printf '%s' "$rep" | sed -n 's/.*"total":{[^}]*"gpu_seconds":\([0-9]*\).*/\1/p')
check "the statement's total equals the ledger's charges ($rep_total = $ulb_used)" test "$rep_total" = "$ulb_used"
antenna report --partner ulb --month "$month" --format csv > "$work/report.csv"
check "report --format csv lists the charged jobs" grep -q "acct\|train\|it-train" "$work/report.csv"

echo "== audit trail"
antenna audit --action job. --format json > "$work/audit.json"
check "the audit trail records submissions, dispatches and ends" bash -c "grep -q job.submitted '$work/audit.json' && grep -q job.dispatched '$work/audit.json' && grep -q job.finished '$work/audit.json'"
check "antenna audit verify says OK" antenna audit verify
check "antennad audit-verify (offline) says OK" "$build/antennad" audit-verify --config "$work/antennad.json"
expect_api "a user may not read the audit trail" 403 forbidden "$alice" GET /v1/audit
# Tampering, on consistent copies of the database, checked offline.
tamper() {
    local name=$1 sql=$2 want=$3
    rm -f "$work/t.db"*
    sqlite3 "$work/antenna.db" ".backup '$work/t.db'"
    cp "$work/audit.head" "$work/t.head"
    sed -e "s|$work/antenna.db|$work/t.db|" -e "s|$work/audit.head|$work/t.head|" "$work/antennad.json" > "$work/t.json"
    sqlite3 "$work/t.db" "$sql"
    "$build/antennad" audit-verify --config "$work/t.json" > "$work/t.out" 2>&1
    local rc=$?
    if [ $rc -eq 1 ] && grep -q "$want" "$work/t.out"; then ok "tamper: $name -> $(cat "$work/t.out")"; else
        ko "tamper: $name (rc $rc, wanted '$want'): $(cat "$work/t.out")"; fi
}
tamper "edit a row" "UPDATE audit SET details='{\"job\":1,\"gpus\":0}' WHERE seq=3" "entry 3"
tamper "delete a row" "DELETE FROM audit WHERE seq=4" "entry 4"
tamper "swap two rows" "UPDATE audit SET seq=-5 WHERE seq=5; UPDATE audit SET seq=5 WHERE seq=6; UPDATE audit SET seq=6 WHERE seq=-5" "entry 5"
tamper "truncate the tail" "DELETE FROM audit WHERE seq > (SELECT max(seq) - 2 FROM audit)" "head"
tamper "recompute a hash without the key" "UPDATE audit SET details='{\"forged\":1}', hash=lower(hex(randomblob(32))) WHERE seq=2" "entry 2"

echo "== bad input gets a clear 4xx and the daemon keeps serving"
J=(-H 'Content-Type: application/json')
expect_api "malformed JSON" 400 invalid_json "$alice" POST /v1/jobs "${J[@]}" -d '{"script": '
expect_api "non-object JSON" 400 invalid_json "$alice" POST /v1/jobs "${J[@]}" -d '[1,2]'
expect_api "unknown field" 400 unknown_field "$alice" POST /v1/jobs "${J[@]}" -d '{"script":"#!/bin/sh\n","gpu":1}'
expect_api "wrongly typed field" 400 invalid_type "$alice" POST /v1/jobs "${J[@]}" -d '{"script":"#!/bin/sh\n","gpus":"two"}'
expect_api "missing script" 400 missing_field "$alice" POST /v1/jobs "${J[@]}" -d '{"gpus":1}'
expect_api "GPUs out of range" 400 invalid_gpus "$alice" POST /v1/jobs "${J[@]}" -d '{"script":"#!/bin/sh\n","gpus":99}'
expect_api "CPUs out of range" 400 invalid_cpus "$alice" POST /v1/jobs "${J[@]}" -d '{"script":"#!/bin/sh\n","cpus_per_task":0}'
expect_api "time out of range" 400 invalid_time "$alice" POST /v1/jobs "${J[@]}" -d '{"script":"#!/bin/sh\n","time_minutes":999999}'
expect_api "unknown GPU type" 400 invalid_gpu_type "$alice" POST /v1/jobs "${J[@]}" -d '{"script":"#!/bin/sh\n","gpus":1,"gpu_type":"a100"}'
head -c 2000000 /dev/zero | tr '\0' 'a' > "$work/big"
expect_api "oversized body" 413 body_too_large "$alice" POST /v1/jobs "${J[@]}" --data-binary @"$work/big"
expect_api "oversized headers" 431 headers_too_large "$alice" GET /v1/jobs -H "X-Big: $(head -c 20000 /dev/zero | tr '\0' 'b')"
expect_api "missing token" 401 unauthorized "" GET /v1/jobs
expect_api "wrong token" 401 unauthorized "ant_0000000000000000000000000000000000000000000000000000000000000000" GET /v1/jobs
expect_api "unknown job id" 404 not_found "$alice" GET /v1/jobs/999999
expect_api "non-numeric job id" 404 not_found "$alice" GET /v1/jobs/abc
check "daemon still healthy after bad input" curl -fsS --cacert "$ANTENNA_CA" "$ANTENNA_URL/healthz" -o /dev/null
check "the earlier jobs are all still there" test "$(as "$alice" jobs --json | grep -o '"id"' | wc -l)" -ge 6

echo "== CLI errors"
as "$alice" show 999999 > /dev/null 2>&1; check "show unknown id exits 1" test $? -eq 1
ANTENNA_URL=https://127.0.0.1:1 "$build/antenna" jobs > /dev/null 2>&1; check "unreachable server exits 3" test $? -eq 3
"$build/antenna" submit > /dev/null 2>&1; check "submit without script exits 2" test $? -eq 2
env -u ANTENNA_TOKEN HOME="$work" XDG_CONFIG_HOME="$work/nocfg" "$build/antenna" jobs 2> "$work/err.out"
check "missing token names ANTENNA_TOKEN" grep -q ANTENNA_TOKEN "$work/err.out"

echo "== token revocation"
tid=$(antenna token list --json | grep -o '"id": *[0-9]*' | tail -1 | grep -o '[0-9]*$')
check "revoke bob's token" antenna token revoke "$tid"
expect_api "revoked token refused" 401 unauthorized "$bob" GET /v1/jobs

echo "== one owner of live state: idempotency, audit completeness, health, graceful stop"
K=(-H 'Content-Type: application/json')
body='{"script":"#!/bin/bash\nsleep 1\n","name":"idem-1","time_minutes":5}'
curl -sS --cacert "$ANTENNA_CA" -D "$work/h1" -o "$work/b1" -H "Authorization: Bearer $alice" "${K[@]}" \
    -H 'Idempotency-Key: it-key-1' -d "$body" "$ANTENNA_URL/v1/jobs"
curl -sS --cacert "$ANTENNA_CA" -D "$work/h2" -o "$work/b2" -H "Authorization: Bearer $alice" "${K[@]}" \
    -H 'Idempotency-Key: it-key-1' -d "$body" "$ANTENNA_URL/v1/jobs"
check "a submission with an Idempotency-Key is accepted (202)" grep -q '^HTTP/1.1 202' "$work/h1"
check "its retry gets 202 and the very same body" bash -c "grep -q '^HTTP/1.1 202' '$work/h2' && cmp -s '$work/b1' '$work/b2'"
check "the retry says it was replayed" grep -qi '^Idempotent-Replayed: true' "$work/h2"
check "one job exists for the key" test "$(ledger "SELECT count(*) FROM jobs WHERE name='idem-1'")" = 1
expect_api "the same key with another body is refused (422)" 422 idempotency_key_reused "$alice" POST /v1/jobs \
    "${K[@]}" -H 'Idempotency-Key: it-key-1' -d '{"script":"#!/bin/bash\nsleep 2\n","name":"idem-2"}'
printf '#!/bin/bash\n#SBATCH --job-name=idem-cli\n#SBATCH --time=00:05:00\ntrue\n' > "$work/idem.sh"
c1=$(as "$alice" submit --idempotency-key it-cli-1 "$work/idem.sh" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p')
c2=$(as "$alice" submit --idempotency-key it-cli-1 "$work/idem.sh" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p')
check "antenna submit with the same key twice gives the same job ($c1 = $c2)" test -n "$c1" -a "$c1" = "$c2"
# (the job named "offline" was written straight into the database by the restart test above)
n_jobs=$(ledger "SELECT count(*) FROM jobs WHERE name <> 'offline'")
n_sub=$(ledger "SELECT count(*) FROM audit WHERE action='job.submitted'")
check "every job has its job.submitted audit entry ($n_sub = $n_jobs)" test "$n_sub" = "$n_jobs"
n_users=$(ledger "SELECT count(*) FROM users")
n_uc=$(ledger "SELECT count(*) FROM audit WHERE action='user.created'")
check "every user has its user.created audit entry ($n_uc = $n_users)" test "$n_uc" = "$n_users"
n_fin=$(ledger "SELECT count(*) FROM jobs WHERE ended_at > 0 AND slurm_job_id > 0")
n_af=$(ledger "SELECT count(DISTINCT json_extract(details, '\$.job')) FROM audit WHERE action='job.finished' AND json_extract(details, '\$.slurm_job_id') > 0")
check "every job that ended in Slurm has its job.finished entry ($n_af = $n_fin)" test "$n_af" = "$n_fin"
ctld_pid=$(pgrep -x slurmctld | while read -r p; do grep -q "$work" "/proc/$p/cmdline" 2>/dev/null && echo "$p"; done | head -1)
health() { curl -sS --cacert "$ANTENNA_CA" -o "$work/hz" -w '%{http_code}' "$ANTENNA_URL/healthz"; }
if [ -n "$ctld_pid" ]; then
    kill -STOP "$ctld_pid"
    t0=$(date +%s%N)
    st=""
    for _ in $(seq 1 40); do st=$(health); [ "$st" = 503 ] && break; sleep 0.1; done
    dt=$((($(date +%s%N) - t0) / 1000000))
    check "/healthz says degraded within 2 poll intervals of a hung slurmctld (${dt} ms)" bash -c "[ '$st' = 503 ] && grep -q degraded '$work/hz' && [ $dt -le 2500 ]"
    kill -CONT "$ctld_pid"
    for _ in $(seq 1 100); do st=$(health); [ "$st" = 200 ] && break; sleep 0.1; done
    check "/healthz is ok again once slurmctld answers" test "$st" = 200
else
    ko "slurmctld of this cluster not found"
fi
# Graceful stop: submissions in flight when SIGTERM arrives are answered; retried with their keys
# after a restart, none is duplicated.
for i in $(seq 1 16); do
    curl -sS --cacert "$ANTENNA_CA" -o "$work/gs.$i" -w '%{http_code}' -H "Authorization: Bearer $alice" \
        "${K[@]}" -H "Idempotency-Key: gs-$i" -d "{\"script\":\"#!/bin/bash\\ntrue\\n\",\"name\":\"gs-$i\",\"time_minutes\":5}" \
        "$ANTENNA_URL/v1/jobs" > "$work/gs.$i.code" 2> /dev/null &
done
sleep 0.05
t0=$(date +%s%N)
antennad_stop "$work" TERM
dt=$((($(date +%s%N) - t0) / 1000000))
wait
check "SIGTERM under load: antennad exits in bounded time (${dt} ms)" test "$dt" -lt 11000
check "antennad logged its graceful stop" grep -q "every request in flight answered" "$work/antennad.log"
antennad_start "$build/antennad" "$work"
acked=0
for i in $(seq 1 16); do
    if [ "$(cat "$work/gs.$i.code")" = 202 ]; then acked=$((acked + 1)); fi
    curl -sS --cacert "$ANTENNA_CA" -o /dev/null -H "Authorization: Bearer $alice" "${K[@]}" -H "Idempotency-Key: gs-$i" \
        -d "{\"script\":\"#!/bin/bash\\ntrue\\n\",\"name\":\"gs-$i\",\"time_minutes\":5}" "$ANTENNA_URL/v1/jobs"
done
check "every submission answered before the stop exists ($acked answered)" test "$(ledger "SELECT count(DISTINCT name) FROM jobs WHERE name LIKE 'gs-%'")" -ge "$acked"
check "after retries with their keys, each of the 16 exists exactly once" test "$(ledger "SELECT count(*) || ':' || count(DISTINCT name) FROM jobs WHERE name LIKE 'gs-%'")" = "16:16"
check "antenna audit verify still says OK" antenna audit verify

# Topic files (tests/integration/t_*.sh), sourced in name order on the same cluster and daemon:
# each starts with its own `echo "== ..."` and uses the helpers above (check, expect_api, as, api).
# ITEST_TOPICS (a glob, default *) picks some of them while working on one: make test runs all.
for topic in "$root"/tests/integration/t_${ITEST_TOPICS:-*}.sh; do
    [ -e "$topic" ] || continue
    # shellcheck source=/dev/null
    . "$topic"
done

echo "== stop: nothing left running"
antennad_stop "$work"
"$root/deploy/slurm-cluster.sh" stop "$work/slurm" > /dev/null 2>&1
check "no antennad left" bash -c "! pgrep -a -x antennad | grep -q '$work'"
# (one pgrep per name: pgrep matches nothing for a pattern over 15 characters)
daemons_of_work() { for n in slurmctld slurmd munged; do pgrep -a -x "$n"; done | grep -c "$work"; }
check "no Slurm daemon of this cluster left" test "$(daemons_of_work)" -eq 0
procs_in_work() { for p in /proc/[0-9]*; do readlink "$p/cwd" 2>/dev/null; done | grep -c "^$work" ; }
check "no process (job, slurmstepd) left working in $work" test "$(procs_in_work)" -eq 0

echo "integration: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
