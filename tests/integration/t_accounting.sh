# t_accounting.sh - sourced by tests/integration/run.sh on its cluster and daemon (its helpers:
# check, api, as, antenna, ledger, wait_state, job_field, $work, $build, $root, $admin). Issue 10
# items 1-3: the cluster runs slurmdbd on a private MariaDB, antennad keeps an account per partner
# with its users in Slurm, a job that ends while antennad is down longer than MinJobAge is charged
# from slurmdbd's record, and a job that neither slurmctld nor slurmdbd knows is `lost`, charged its
# full hold, with the reason audited. Leaves MinJobAge as it found it and antennad running.
echo "== accounting of record: slurmdbd, partners in Slurm, ends read from the record"
"$root/deploy/ensure-unix-user.sh" antenna-it5 > /dev/null
acc_conf=$SLURM_CONF
# acc_until SECONDS CMD...: true as soon as CMD succeeds, false after SECONDS.
acc_until() {
    local s=$1
    shift
    for _ in $(seq 1 $((s * 5))); do
        "$@" > /dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}
acc_assoc() { sacctmgr -n -P list assoc account="$1" format=user | grep -qx "$2"; }
acc_account() { sacctmgr -n -P list account "$1" format=account | grep -qx "$1"; }
acc_sacct() { sacct -X -n -P -j "$1" -o "$2" 2> /dev/null | head -1; }

check "the cluster keeps its records in slurmdbd" \
    grep -qx 'AccountingStorageType=accounting_storage/slurmdbd' "$acc_conf"
check "slurmdbd counts GPUs (AccountingStorageTRES=gres/gpu)" grep -qx 'AccountingStorageTRES=gres/gpu' "$acc_conf"
check "Slurm enforces associations" grep -qx 'AccountingStorageEnforce=associations' "$acc_conf"
check "slurmdbd and MariaDB run in the cluster's folder" "$root/deploy/slurm-accounting.sh" status "$work/slurm/acct"
check "sacctmgr shows an account per partner (ulb, vub)" acc_until 10 bash -c \
    "$(declare -f acc_account); acc_account ulb && acc_account vub"
check "alice's Unix account is a user of ulb" acc_until 10 acc_assoc ulb antenna-it
check "bob's Unix account is a user of vub" acc_until 10 acc_assoc vub antenna-it2
check "partner add acc" antenna partner add acc --description "accounting test"
check "user add dora (acc)" antenna user add dora --partner acc --category sme --unix-user antenna-it5
check "quota set acc: 10 GPU-hours" antenna quota set acc --gpu-hours 10 --max-gpus 8
dora=$(antenna token create --user dora --label it)
check "a new partner gets its Slurm account without any job" acc_until 10 acc_account acc
check "a new user becomes a user of it" acc_until 10 acc_assoc acc antenna-it5

# MinJobAge low, so that slurmctld forgets a finished job within the test (it purges old jobs
# once a minute); set back at the end.
sed -i 's/^MinJobAge=.*/MinJobAge=10/' "$acc_conf"
scontrol reconfigure > /dev/null 2>&1
printf '#!/bin/bash\n#SBATCH --gres=gpu:h100:2\n#SBATCH --time=00:05:00\nsleep 15\necho acc-done\n' > "$work/acc-short.sh"
printf '#!/bin/bash\n#SBATCH --gres=gpu:h100:1\n#SBATCH --time=00:07:00\nsleep 600\n' > "$work/acc-long.sh"
acc_a=$(as "$dora" submit --job-name acc-a "$work/acc-short.sh" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p')
acc_b=$(as "$dora" submit --job-name acc-b "$work/acc-long.sh" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p')
check "job A (2 GPUs, 15 s) runs" wait_state "$dora" "$acc_a" running 60
check "job B (1 GPU, 7 min) runs" wait_state "$dora" "$acc_b" running 60
acc_sa=$(job_field "$dora" "$acc_a" slurm_job_id)
acc_sb=$(job_field "$dora" "$acc_b" slurm_job_id)
check "job A's Slurm record carries the partner's account" test "$(squeue -h -j "$acc_sa" -o %a)" = acc

antennad_stop "$work"
# Job B: Slurm never ran anything under the id antennad will find (written while it is down);
# its real Slurm job is cancelled so that nothing is left running.
scancel "$acc_sb" 2> /dev/null
ledger "UPDATE jobs SET slurm_job_id = 60000000 + id WHERE id = $acc_b"
acc_gone() { ! scontrol show job "$1" > /dev/null 2>&1; }
check "job A ended and slurmctld forgot it while antennad was down (MinJobAge)" acc_until 150 acc_gone "$acc_sa"
check "slurmdbd has job A's record: COMPLETED under account acc" \
    test "$(acc_sacct "$acc_sa" state),$(acc_sacct "$acc_sa" account)" = "COMPLETED,acc"
check "job A's record carries antennad's tag in AdminComment (and its request id)" \
    test "$(acc_sacct "$acc_sa" admincomment)" = "antenna:$(ledger "SELECT value FROM meta WHERE key='instance_id'"):$acc_a rid=$(ledger "SELECT request_id FROM job_requests WHERE job_id = $acc_a")"
acc_elapsed=$(acc_sacct "$acc_sa" elapsedraw)
antennad_start "$build/antennad" "$work" || ko "antennad restarts"
check "job A is completed from slurmdbd's record, not lost" wait_state "$dora" "$acc_a" completed 30
acc_charge=$(ledger "SELECT gpu_seconds FROM ledger WHERE job_id=$acc_a AND kind='charge'")
check "job A is charged exactly its recorded elapsed time ($acc_charge = 2 x ${acc_elapsed:-?} GPU-s)" \
    test -n "$acc_elapsed" -a "$acc_charge" = "$((2 * ${acc_elapsed:-0}))"
check "job A's recorded times are slurmdbd's" test "$(ledger "SELECT ended_at - started_at FROM jobs WHERE id=$acc_a")" = "$acc_elapsed"
check "job B, which neither knows, is lost" wait_state "$dora" "$acc_b" lost 60
check "job B is charged its full hold (1 GPU x 7 min)" \
    test "$(ledger "SELECT gpu_seconds FROM ledger WHERE job_id=$acc_b AND kind='charge'")" = 420
check "job B holds nothing any more" \
    test "$(ledger "SELECT sum(gpu_seconds) FROM ledger WHERE job_id=$acc_b AND kind IN ('hold','release')")" = 0
check "job B's audit entry says why it was charged its full hold" \
    test "$(ledger "SELECT count(*) FROM audit WHERE action='job.finished' AND details LIKE '%\"job\":$acc_b,%' AND details LIKE '%full hold%'")" = 1
check "antenna audit verify still says OK" antenna audit verify

sed -i 's/^MinJobAge=.*/MinJobAge=3600/' "$acc_conf"
scontrol reconfigure > /dev/null 2>&1

# The documented fallback: a second small cluster without slurmdbd, side by side with the first.
acc_nodbd=$work/slurm-nodbd
acc_c=$(free_port)
acc_s=$(free_port)
while [ "$acc_s" = "$acc_c" ]; do acc_s=$(free_port); done
if acc_out=$(SLURM_CLUSTER_ACCOUNTING=0 "$root/deploy/slurm-cluster.sh" start "$acc_nodbd" --ctld-port "$acc_c" \
    --slurmd-port "$acc_s" --gpus 2 --cpus 4 --mem-mb 4096 2> "$work/nodbd.err"); then
    ok "a cluster without slurmdbd (SLURM_CLUSTER_ACCOUNTING=0) starts beside the first"
    check "it keeps no accounting (accounting_storage/none)" \
        grep -qx 'AccountingStorageType=accounting_storage/none' "$acc_nodbd/etc/slurm.conf"
    check "and runs no slurmdbd" test ! -e "$acc_nodbd/acct"
    if SLURM_CONF=${acc_out#SLURM_CONF=} ANTENNA_TEST_UNIX_USER=antenna-it \
        "$build/itests/test_slurm_adapter_nodbd" > "$work/nodbd.log" 2>&1; then
        ok "adapter without slurmdbd: records and associations -ENOTSUP, jobs still run ($(grep -c '^\[       OK \]' "$work/nodbd.log") passed)"
    else
        ko "adapter without slurmdbd"
        grep -E 'FAILED|ERROR|Failure' "$work/nodbd.log" | head -10
    fi
else
    ko "a cluster without slurmdbd starts: $(tail -3 "$work/nodbd.err" | tr '\n' ' ')"
fi
"$root/deploy/slurm-cluster.sh" stop "$acc_nodbd" > /dev/null 2>&1
check "the first cluster still answers" scontrol ping
