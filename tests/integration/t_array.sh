# t_array.sh - sourced by tests/integration/run.sh on its cluster and daemon (its helpers: check,
# api, as, antenna, ledger, wait_state, job_field, $work, $build, $alice, $admin). Issue 9, job
# arrays: an array 0-3%2 of short GPU jobs runs with never more than 2 tasks at once (from what the
# tasks recorded and from antennad's state), each task sees its SLURM_ARRAY_* and is charged GPUs x
# its elapsed time; `antenna jobs` shows the array as one line with counts, `antenna logs ID_TASK`
# one task's output; cancel of one task and of the whole array; the dry run quotes the whole array
# and an array over the budget is refused whole.
echo "== job arrays: %max, SLURM_ARRAY_*, charges, jobs, logs ID_TASK, cancel"

# arr_tasks AID: "id state" of every task of array AID, from the store.
arr_tasks() { ledger "SELECT t.task_id, j.state FROM job_array_tasks t JOIN jobs j ON j.id = t.job_id WHERE t.array_job_id = $1 ORDER BY t.task_id"; }
# arr_count AID STATES: how many tasks of AID are in one of STATES ('a','b').
arr_count() { ledger "SELECT count(*) FROM job_array_tasks t JOIN jobs j ON j.id = t.job_id WHERE t.array_job_id = $1 AND j.state IN ($2)"; }
# arr_wait AID N STATES SECONDS: waits until N tasks of AID are in STATES.
arr_wait() {
    for _ in $(seq 1 $(($4 * 5))); do
        [ "$(arr_count "$1" "$3")" -ge "$2" ] && return 0
        sleep 0.2
    done
    echo "    array $1: $(arr_tasks "$1" | tr '\n' ' ')" >&2
    return 1
}
arr_in_slurm="'dispatching','dispatched','pending','running','suspended'"
arr_ended="'completed','failed','cancelled','timeout','node_fail','lost'"

cat > "$work/arr.sh" <<'SH'
#!/bin/bash
#SBATCH --job-name=it-sweep
#SBATCH --gres=gpu:h100:1
#SBATCH --time=00:02:00
echo "task=${SLURM_ARRAY_TASK_ID:-none} array=${SLURM_ARRAY_JOB_ID:-none} count=${SLURM_ARRAY_TASK_COUNT:-none} min=${SLURM_ARRAY_TASK_MIN:-none} max=${SLURM_ARRAY_TASK_MAX:-none} step=${SLURM_ARRAY_TASK_STEP:-none} slurm=${SLURM_JOB_ID:-none}"
echo "start $(date +%s.%N)"
sleep 5
echo "end $(date +%s.%N)"
SH

quoted=$(ledger "SELECT count(*) FROM jobs")
as "$alice" submit --dry-run --array 0-3%2 "$work/arr.sh" > "$work/arr.quote" 2>&1
check "the dry run of the array is admitted" grep -q "admitted" "$work/arr.quote"
check "the dry run says the array's tasks and %max" grep -q "Array 0-3%2: 4 task(s), at most 2 at once" "$work/arr.quote"
check "the dry run's cost covers every task (4 x 1 GPU x 2 min = 0.13 GPU-hours)" grep -q "0.13" "$work/arr.quote"
check "the dry run queued nothing" test "$quoted" -eq "$(ledger "SELECT count(*) FROM jobs")"

as "$alice" submit --array 0-3%2 "$work/arr.sh" > "$work/arr.submit" 2>&1
aid=$(sed -n 's/^Submitted array job \([0-9]*\):.*/\1/p' "$work/arr.submit")
check "submit --array printed the array's id" test -n "$aid"
aid=${aid:-0}
check "the array is 4 jobs of its own, indices 0..3" test "$(arr_tasks "$aid" | cut -d'|' -f1 | tr '\n' ' ')" = "0 1 2 3 "
check "one job.submitted entry per task, each with the array's id" test \
    "$(ledger "SELECT count(*) FROM audit WHERE action = 'job.submitted' AND json_extract(details, '\$.array_job_id') = $aid")" -eq 4

# antennad's view while it runs: never more than 2 tasks in Slurm at once
peak=0
for _ in $(seq 1 600); do
    n=$(arr_count "$aid" "$arr_in_slurm")
    [ "$n" -gt "$peak" ] && peak=$n
    [ "$(arr_count "$aid" "$arr_ended")" -ge 4 ] && break
    sleep 0.2
done
check "antennad never had more than 2 tasks in Slurm at once (peak $peak)" test "$peak" -le 2
check "and it did run 2 at once (peak $peak)" test "$peak" -eq 2
check "every task completed" test "$(arr_count "$aid" "'completed'")" -eq 4

# what the tasks recorded
: > "$work/arr.records"
for i in 0 1 2 3; do
    as "$alice" logs "${aid}_$i" > "$work/arr.$i.out" 2>&1
    cat "$work/arr.$i.out" >> "$work/arr.records"
done
check "antenna logs ${aid}_2 shows task 2's output" grep -q "^task=2 array=$aid " "$work/arr.2.out"
check "SLURM_ARRAY_TASK_ID took 0..3, each once" test \
    "$(sed -n 's/^task=\([0-9]*\) .*/\1/p' "$work/arr.records" | sort -n | tr '\n' ' ')" = "0 1 2 3 "
check "every task saw SLURM_ARRAY_JOB_ID=$aid (the array's Antenna id), COUNT 4, MIN 0, MAX 3, STEP 1" test \
    "$(grep -c "^task=[0-3] array=$aid count=4 min=0 max=3 step=1 slurm=[0-9]" "$work/arr.records")" -eq 4
check "SLURM_JOB_ID stays Slurm's own id (not the array's)" test \
    "$(grep -c "slurm=$aid\$" "$work/arr.records")" -eq 0
overlap=$(awk '/^start /{e[++n]=$2" 1"} /^end /{e[++n]=$2" -1"} END {for (i in e) print e[i]}' "$work/arr.records" |
    sort -n -k1,1 -k2,2n | awk '{c += $2; if (c > m) m = c} END {print m + 0}')
check "the tasks' own start/end times never overlap more than 2 ($overlap)" test "$overlap" -le 2
check "all 4 tasks recorded a start and an end" test "$(grep -c '^end ' "$work/arr.records")" -eq 4
bad=$(ledger "SELECT count(*) FROM jobs j JOIN job_array_tasks t ON t.job_id = j.id WHERE t.array_job_id = $aid AND (j.charge_gpu_seconds <> j.gpus * (j.ended_at - j.started_at) OR j.ended_at <= j.started_at)")
check "each task is charged its GPUs x its own elapsed time" test "$bad" -eq 0
check "each task has its own charge row in the ledger" test \
    "$(ledger "SELECT count(DISTINCT l.job_id) FROM ledger l JOIN job_array_tasks t ON t.job_id = l.job_id WHERE t.array_job_id = $aid AND l.kind = 'charge'")" -eq 4

as "$alice" jobs > "$work/arr.jobs"
check "antenna jobs shows the array as one line with its counts" \
    grep -qE "^${aid}_\[0-3%2\] +it-sweep +4 completed " "$work/arr.jobs"
check "antenna jobs lists none of its other tasks on its own" bash -c \
    "! grep -qE '^($((aid + 1))|$((aid + 2))|$((aid + 3))) ' '$work/arr.jobs'"
as "$alice" show "$aid" > "$work/arr.show"
check "antenna show lists its tasks (ID_TASK, job id, state)" \
    grep -qE "^${aid}_3 +$((aid + 3)) +completed" "$work/arr.show"
expect_api "GET of an unknown task is 404" 404 not_found "$alice" GET "/v1/jobs/${aid}_9"

echo "== job arrays: cancel one task, then the whole array"
cat > "$work/arr-long.sh" <<'SH'
#!/bin/bash
#SBATCH --time=00:05:00
echo "long task ${SLURM_ARRAY_TASK_ID}"
sleep 120
SH
as "$alice" submit --array 0-4%1 "$work/arr-long.sh" > "$work/arr2.submit" 2>&1
aid2=$(sed -n 's/^Submitted array job \([0-9]*\):.*/\1/p' "$work/arr2.submit")
aid2=${aid2:-0}
check "the second array's first task runs" arr_wait "$aid2" 1 "'running'" 60
check "with %1, only one of its tasks is in Slurm" test "$(arr_count "$aid2" "$arr_in_slurm")" -eq 1
reason=$(api "$alice" GET "/v1/jobs/${aid2}_2" | sed -n 's/.*"reason": *"\([^"]*\)".*/\1/p')
check "a parked task waits on JobArrayTaskLimit ($reason)" test "$reason" = JobArrayTaskLimit
as "$alice" cancel "${aid2}_3" > "$work/arr2.c3" 2>&1
check "antenna cancel ${aid2}_3 cancels that queued task at once" grep -q "Task ${aid2}_3 (job $((aid2 + 3))): cancelled" "$work/arr2.c3"
check "and only it" test "$(arr_count "$aid2" "'cancelled'")" -eq 1
as "$alice" cancel "${aid2}_0" > /dev/null 2>&1
check "antenna cancel ${aid2}_0 ends the running task" arr_wait "$aid2" 2 "'cancelled'" 60
check "the next task starts once it ended" arr_wait "$aid2" 1 "'running'" 60
as "$alice" cancel "$aid2" > "$work/arr2.call" 2>&1
check "antenna cancel $aid2 cancels the rest of the array" grep -q "^Array $aid2: 2 queued task(s) cancelled, cancellation of 1 task(s) in Slurm requested" "$work/arr2.call"
check "every task of the array ends cancelled" arr_wait "$aid2" 5 "'cancelled'" 60
live=0
for sid in $(ledger "SELECT j.slurm_job_id FROM jobs j JOIN job_array_tasks t ON t.job_id = j.id WHERE t.array_job_id = $aid2 AND j.slurm_job_id > 0"); do
    scontrol -o show job "$sid" 2> /dev/null | grep -qE 'JobState=(RUNNING|PENDING)' && live=$((live + 1))
done
check "none of its Slurm jobs is still pending or running ($live)" test "$live" -eq 0
check "tasks cancelled before dispatch are charged nothing" test \
    "$(ledger "SELECT count(*) FROM jobs j JOIN job_array_tasks t ON t.job_id = j.id WHERE t.array_job_id = $aid2 AND j.slurm_job_id = 0 AND j.charge_gpu_seconds <> 0")" -eq 0
expect_api "cancelling the ended array again is 409" 409 conflict "$alice" DELETE "/v1/jobs/$aid2"

echo "== job arrays: refused whole"
bob2=$(antenna token create --user bob --label t-array)
before=$(ledger "SELECT count(*) FROM jobs WHERE user_name = 'bob'")
as "$bob2" submit --array 0-9 --time 30 --gres gpu:h100:1 "$work/arr.sh" > "$work/arr3.out" 2>&1
rc=$?
check "an array over vub's budget is refused (exit 1)" test "$rc" -eq 1
check "the refusal names the whole array" grep -q "this array of 10 tasks may cost up to 5.00 GPU-hours" "$work/arr3.out"
check "and queued none of its tasks" test "$(ledger "SELECT count(*) FROM jobs WHERE user_name = 'bob'")" -eq "$before"
expect_api "a bad array spec is 400 invalid_array" 400 invalid_array "$alice" POST /v1/jobs \
    -H 'Content-Type: application/json' -d '{"script":"#!/bin/bash\ntrue\n","array":"3-1"}'
check "antenna audit verify still says OK after the arrays" antenna audit verify
