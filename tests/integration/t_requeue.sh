# t_requeue.sh - sourced by tests/integration/run.sh on its cluster and daemon (its helpers: check,
# as, antenna, ledger, wait_state, job_field, $work, $root). sbatch's --requeue (issue 9): Slurm
# reruns a --requeue job under the same id after an administrator's requeue or a node failure,
# and Antenna charges each run for what it ran (the runs listed, one ledger row each, equal to
# slurmdbd's record of each run); a --no-requeue job whose node fails ends node_fail, charged what
# ran; a job whose budget no longer covers another run is cancelled with that reason.
echo "== --requeue: each run that Slurm requeued is charged for what it ran"

"$root/deploy/ensure-unix-user.sh" antenna-it8 > /dev/null
"$root/deploy/ensure-unix-user.sh" antenna-it9 > /dev/null
check "partner add rq" antenna partner add rq
check "user add rita (rq)" antenna user add rita --partner rq --category sme --unix-user antenna-it8
check "quota set rq: 50 GPU-hours, 8 GPUs at once" antenna quota set rq --gpu-hours 50 --max-gpus 8
rita=$(antenna token create --user rita --label t-requeue)
rq_id() { sed -n 's/^Submitted job \([0-9]*\).*/\1/p' "$1"; }
# rq_slurm ID: the Slurm id of job ID once it has one
rq_slurm() {
    local s
    for _ in $(seq 1 150); do
        s=$(job_field "$rita" "$1" slurm_job_id)
        [ -n "$s" ] && [ "$s" != null ] && { echo "$s"; return 0; }
        sleep 0.2
    done
    return 1
}
# wait_restarts TOKEN ID N: until Antenna shows job ID with N restarts (30 s)
wait_restarts() {
    for _ in $(seq 1 150); do
        [ "$(job_field "$1" "$2" restarts)" = "$3" ] && return 0
        sleep 0.2
    done
    echo "    job $2 has $(job_field "$1" "$2" restarts) restart(s), wanted $3" >&2
    return 1
}
# A requeued job waits BeginTime, the credential lifetime + 1 s (run.sh's cluster: cred_expire 20),
# before Slurm runs it again. (Forcing it sooner with `scontrol update starttime=now` can land on a
# node that still holds its revoked credential: Slurm then kills it, and it ends failed.)
cred=$(scontrol show config 2> /dev/null | sed -n 's/.*cred_expire=\([0-9]*\).*/\1/p')
cred=${cred:-120}
# node_of SLURM_ID: the node a running job is on
node_of() { squeue -h -j "$1" -o %N 2> /dev/null; }
acct_type=$(scontrol show config 2> /dev/null | sed -n 's/^AccountingStorageType *= *//p')

# The first run waits to be requeued (killed by it); the second ends at once.
cat > "$work/rq.sh" << 'SH'
#!/bin/bash
#SBATCH --requeue
#SBATCH --gpus=2
#SBATCH -t 5
echo "run restart=${SLURM_RESTART_COUNT:-0} node=$SLURMD_NODENAME start $(date +%s)"
if [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then sleep 300; fi
sleep 2
echo "run restart=${SLURM_RESTART_COUNT:-0} end"
SH
as "$rita" submit --dry-run "$work/rq.sh" > "$work/rq.quote" 2>&1
check "--requeue is accepted (no refusal, no warning)" bash -c 'grep -q admitted "$1" && ! grep -qi "refused\|not supported" "$1"' _ "$work/rq.quote"
as "$rita" submit "$work/rq.sh" > "$work/rq.out" 2>&1
rq=$(rq_id "$work/rq.out")
rqs=$(rq_slurm "${rq:-0}")
check "the --requeue job runs (Slurm job ${rqs:-none})" wait_state "$rita" "${rq:-0}" running 60
scontrol -o show job "${rqs:-0}" > "$work/rq.sctl" 2>&1
check "Slurm has it with Requeue=1" grep -q 'Requeue=1' "$work/rq.sctl"
sleep 3
check "the administrator requeues it in Slurm (scontrol requeue)" scontrol requeue "${rqs:-0}"
check "Antenna sees the requeue: 1 restart" wait_restarts "$rita" "${rq:-0}" 1
r1=$(ledger "SELECT count(*) FROM ledger WHERE job_id=${rq:-0} AND kind='charge'")
check "the first run is charged at the requeue (1 charge row while the job waits again)" test "$r1" = 1
check "its hold is kept for the next run (no release yet)" test "$(ledger "SELECT count(*) FROM ledger WHERE job_id=${rq:-0} AND kind='release'")" = 0
check "the requeue is audited job.run_requeued" test "$(ledger "SELECT count(*) FROM audit WHERE action='job.run_requeued' AND details LIKE '%\"job\":${rq:-0},%'")" = 1
check "its second run completes (Slurm runs it again after ${cred} s)" wait_state "$rita" "${rq:-0}" completed $((cred + 90))
as "$rita" show "${rq:-0}" > "$work/rq.show" 2>&1
check "antenna show says 1 restart and lists the first run" \
    bash -c 'grep -qE "^restarts: +1$" "$1" && grep -q "runs requeued by Slurm" "$1"' _ "$work/rq.show"
as "$rita" jobs > "$work/rq.jobs" 2>&1
check "antenna jobs says the job was requeued once" grep -qE "^${rq:-0} .* completed \(requeued 1x\)" "$work/rq.jobs"
as "$rita" logs "${rq:-0}" > "$work/rq.log" 2>&1
check "the job's output has its second run, to its end" \
    bash -c 'grep -q "restart=1 node=" "$1" && grep -q "restart=1 end" "$1"' _ "$work/rq.log"
e1=$(ledger "SELECT elapsed_seconds FROM job_runs WHERE job_id=${rq:-0}")
e2=$(ledger "SELECT ended_at - started_at FROM jobs WHERE id=${rq:-0}")
sum=$(ledger "SELECT sum(gpu_seconds) FROM ledger WHERE job_id=${rq:-0} AND kind='charge'")
rows=$(ledger "SELECT count(*) FROM ledger WHERE job_id=${rq:-0} AND kind='charge'")
check "each run charged once: 2 charge rows ($rows)" test "$rows" = 2
gap=$(ledger "SELECT j.started_at - r.ended_at FROM jobs j JOIN job_runs r ON r.job_id = j.id WHERE j.id=${rq:-0}")
check "the wait between the runs (${gap:-?} s, Slurm's BeginTime) is not charged" test "${gap:-0}" -ge "$cred"
check "charged 2 GPUs x (run 1 + run 2) = 2 x (${e1:-?} + ${e2:-?}) = ${sum:-?} GPU-seconds" \
    test -n "$e1" -a -n "$e2" -a "${sum:-0}" = "$((2 * ${e1:-0} + 2 * ${e2:-0}))" -a "${e1:-0}" -ge 3
check "the job's charge is the sum of its runs" test "$(ledger "SELECT charge_gpu_seconds FROM jobs WHERE id=${rq:-0}")" = "$sum"
fin=$(ledger "SELECT details FROM audit WHERE action='job.finished' AND details LIKE '%\"job\":${rq:-0},%'")
check "its job.finished entry charges the last run and gives the total of all runs ($fin)" \
    bash -c 'printf "%s" "$1" | grep -q "\"restarts\":1" && printf "%s" "$1" | grep -q "\"total_charge_gpu_seconds\":$2" && printf "%s" "$1" | grep -q "\"charge_gpu_seconds\":$3[,}]"' \
    _ "$fin" "${sum:-x}" "$((2 * ${e2:-0}))"
if [ "$acct_type" = accounting_storage/slurmdbd ]; then
    # slurmdbd records each run (REQUEUED, then COMPLETED); it may lag a few seconds
    for _ in $(seq 1 60); do
        sacct -j "${rqs:-0}" --duplicates -X -n -P -o State,ElapsedRaw > "$work/rq.sacct" 2> /dev/null
        grep -q '^COMPLETED|' "$work/rq.sacct" && break
        sleep 0.5
    done
    s1=$(sed -n 's/^REQUEUED|//p' "$work/rq.sacct" | head -1)
    s2=$(sed -n 's/^COMPLETED|//p' "$work/rq.sacct" | head -1)
    check "slurmdbd's record of each run matches Antenna's (run 1: ${s1:-?} = ${e1:-?} s, run 2: ${s2:-?} = ${e2:-?} s)" \
        test -n "$s1" -a "$s1" = "$e1" -a "${s2:-x}" = "$e2"
    antenna reconcile --month "$(date -u +%Y-%m)" > /dev/null 2>&1
    rr=$(api "$admin" GET "/v1/reconcile?month=$(date -u +%Y-%m)")
    nd=$(printf '%s' "$rr" | grep -oE "\{\"kind\":\"[a-z_]+\",\"job\":${rq:-0}," | wc -l)
    check "the reconciliation with slurmdbd finds no difference for the requeued job ($nd)" test "$nd" = 0
else
    echo "  skip slurmdbd's record of each run: this cluster has no slurmdbd (not counted as passed)"
fi

# A node failure: Slurm requeues a --requeue job and ends a --no-requeue one node_fail; each is
# charged what ran.
cat > "$work/rq-nf.sh" << 'SH'
#!/bin/bash
#SBATCH --gpus=1
#SBATCH -t 5
if [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then sleep 300; fi
echo "done restart=${SLURM_RESTART_COUNT:-0}"
SH
as "$rita" submit --requeue "$work/rq-nf.sh" > "$work/rq-nf1.out" 2>&1
nf1=$(rq_id "$work/rq-nf1.out")
as "$rita" submit --no-requeue "$work/rq-nf.sh" > "$work/rq-nf2.out" 2>&1
nf2=$(rq_id "$work/rq-nf2.out")
nf1s=$(rq_slurm "${nf1:-0}")
nf2s=$(rq_slurm "${nf2:-0}")
check "the --requeue job runs" wait_state "$rita" "${nf1:-0}" running 60
check "the --no-requeue job runs" wait_state "$rita" "${nf2:-0}" running 60
nodes=$(printf '%s\n%s\n' "$(node_of "${nf1s:-0}")" "$(node_of "${nf2s:-0}")" | sort -u | grep . | tr '\n' ' ')
sleep 2
check "their node(s) fail: ${nodes:-none} (scontrol update state=down)" \
    bash -c 'for n in $1; do scontrol update nodename="$n" state=down reason=t-requeue || exit 1; done; [ -n "$1" ]' _ "$nodes"
check "the --no-requeue job ends node_fail" wait_state "$rita" "${nf2:-0}" node_fail 60
c2=$(ledger "SELECT coalesce(sum(gpu_seconds), 0) FROM ledger WHERE job_id=${nf2:-0} AND kind='charge'")
e=$(ledger "SELECT ended_at - started_at FROM jobs WHERE id=${nf2:-0}")
check "it is charged what ran: 1 GPU x ${e:-?} s = ${c2:-?}" test -n "$e" -a "${c2:-x}" = "$e" -a "${e:-0}" -ge 2
check "the --requeue job is requeued by the failure: 1 restart" wait_restarts "$rita" "${nf1:-0}" 1
# (ReturnToService=2 may bring a node back by itself when its slurmd registers again: resume only
# one still down)
node_back() {
    local n st
    for n in $1; do
        st=$(sinfo -h -n "$n" -o %T 2> /dev/null)
        case "$st" in down* | drain*) scontrol update nodename="$n" state=resume || return 1 ;; esac
    done
    for _ in $(seq 1 50); do
        # shellcheck disable=SC2086 # (echo's word splitting drops the spaces around the names)
        sinfo -h -n "$(echo $1 | tr ' ' ,)" -o %T 2> /dev/null | grep -qE 'down|drain' || return 0
        sleep 0.2
    done
    return 1
}
check "the node(s) come back" node_back "$nodes"
check "the requeued job completes on its second run" wait_state "$rita" "${nf1:-0}" completed $((cred + 90))
e1=$(ledger "SELECT elapsed_seconds FROM job_runs WHERE job_id=${nf1:-0}")
e2=$(ledger "SELECT ended_at - started_at FROM jobs WHERE id=${nf1:-0}")
c1=$(ledger "SELECT sum(gpu_seconds) FROM ledger WHERE job_id=${nf1:-0} AND kind='charge'")
check "it is charged both runs: ${e1:-?} + ${e2:-?} = ${c1:-?} GPU-seconds" \
    test -n "$e1" -a -n "$e2" -a "${c1:-x}" = "$((${e1:-0} + ${e2:-0}))" -a "${e1:-0}" -ge 2

# A budget that covers one run only: after the requeue antennad cancels the job, which says why.
check "partner add rqb" antenna partner add rqb
check "user add rolf (rqb)" antenna user add rolf --partner rqb --category sme --unix-user antenna-it9
check "quota set rqb: 1 GPU-hour (one hold of 1 GPU x 60 min)" antenna quota set rqb --gpu-hours 1 --max-gpus 8
rolf=$(antenna token create --user rolf --label t-requeue)
printf '#!/bin/bash\n#SBATCH --requeue\n#SBATCH --gpus=1\n#SBATCH -t 60\nsleep 300\n' > "$work/rq-b.sh"
as "$rolf" submit "$work/rq-b.sh" > "$work/rq-b.out" 2>&1
rb=$(rq_id "$work/rq-b.out")
check "the job that fills the budget runs" wait_state "$rolf" "${rb:-0}" running 60
sleep 2
check "the administrator requeues it" scontrol requeue "$(job_field "$rolf" "${rb:-0}" slurm_job_id)"
check "antennad cancels it: its budget no longer covers another run" wait_state "$rolf" "${rb:-0}" cancelled 60
as "$rolf" show "${rb:-0}" --json > "$work/rq-b.json" 2>&1
check "its end says why" grep -q "budget no longer covers another run" "$work/rq-b.json"
cb=$(ledger "SELECT sum(gpu_seconds) FROM ledger WHERE job_id=${rb:-0} AND kind='charge'")
eb=$(ledger "SELECT elapsed_seconds FROM job_runs WHERE job_id=${rb:-0}")
check "it is charged its one run (${eb:-?} s = ${cb:-?} GPU-seconds), its hold given back" \
    bash -c "[ -n '$eb' ] && [ '${cb:-x}' = '$eb' ] && [ \"\$(sqlite3 '$work/antenna.db' \"SELECT hold_gpu_seconds FROM jobs WHERE id=${rb:-0}\")\" = 0 ]"

# The operator's view: the requeued runs charged (3 above) and the job ended for its budget.
curl -sS --cacert "$ANTENNA_CA" "$ANTENNA_URL/metrics" > "$work/rq.metrics" 2>&1
nrq=$(sed -n 's/^antenna_job_runs_requeued_total \([0-9]*\)$/\1/p' "$work/rq.metrics")
nbe=$(sed -n 's/^antenna_requeue_budget_ends_total \([0-9]*\)$/\1/p' "$work/rq.metrics")
check "/metrics counts the requeued runs (${nrq:-none} >= 3) and the budget end (${nbe:-none} >= 1)" \
    test "${nrq:-0}" -ge 3 -a "${nbe:-0}" -ge 1
