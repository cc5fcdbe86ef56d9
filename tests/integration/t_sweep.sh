# t_sweep.sh - sourced by tests/integration/run.sh on its cluster and daemon (its helpers: check,
# as, antenna, ledger, wait_state, job_field, $work, $root). Issue 9's "done when": the training
# sweep an SME's engineer writes runs as written - 2 nodes x 4 GPUs for each of 4 array tasks,
# never more than 2 at once, each charged 8 GPUs x its elapsed time, after its prerequisite
# completed - with its output in the job's own folder under run-%A_%a.out.
echo "== the sweep of issue 9: --nodes=2 --ntasks-per-node=4 --gpus-per-node=4 --array=0-3%2 --dependency=afterok"

"$root/deploy/ensure-unix-user.sh" antenna-it7 > /dev/null
check "partner add sweep" antenna partner add sweep
check "user add sam (sweep)" antenna user add sam --partner sweep --category sme --unix-user antenna-it7
check "quota set sweep: 100 GPU-hours, 16 GPUs at once" antenna quota set sweep --gpu-hours 100 --max-gpus 16
sam=$(antenna token create --user sam --label t-sweep)

printf '#!/bin/bash\n#SBATCH --job-name=prep\n#SBATCH --time=2\necho prepared\n' > "$work/sw-prep.sh"
as "$sam" submit "$work/sw-prep.sh" > "$work/sw-prep.out" 2>&1
sw_pre=$(sed -n 's/^Submitted job \([0-9]*\).*/\1/p' "$work/sw-prep.out")
check "the prerequisite job $sw_pre completes" wait_state "$sam" "${sw_pre:-0}" completed 120

# the script of the issue, as written (its dependency names the prerequisite's id)
cat > "$work/sweep.sh" <<SH
#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --array=0-3%2
#SBATCH --partition=gpu
#SBATCH --output=run-%A_%a.out
#SBATCH --dependency=afterok:${sw_pre:-0}
echo "sweep task \${SLURM_ARRAY_TASK_ID:-none} start \$(date +%s.%N)"
srun bash -c 'echo "rank \$SLURM_PROCID node \$SLURMD_NODENAME"'
sleep 3
echo "sweep task \${SLURM_ARRAY_TASK_ID:-none} end \$(date +%s.%N)"
SH
as "$sam" submit --dry-run "$work/sweep.sh" > "$work/sweep.quote" 2>&1
check "the dry run admits the sweep with no warning about an option ($(head -c 200 "$work/sweep.quote" | tr '\n' ' '))" \
    bash -c 'grep -q admitted "$1" && ! grep -qi "not supported\|ignored" "$1"' _ "$work/sweep.quote"
check "the dry run quotes 4 tasks x 8 GPUs x 60 min = 32.00 GPU-hours" grep -q "32.00" "$work/sweep.quote"

as "$sam" submit "$work/sweep.sh" > "$work/sweep.submit" 2>&1
sw=$(sed -n 's/^Submitted array job \([0-9]*\):.*/\1/p' "$work/sweep.submit")
check "the sweep is one submission: array $sw" test -n "$sw"
sw=${sw:-0}
sw_tasks() { ledger "SELECT j.id FROM job_array_tasks t JOIN jobs j ON j.id = t.job_id WHERE t.array_job_id = $sw ORDER BY t.task_id"; }
sw_count() { ledger "SELECT count(*) FROM job_array_tasks t JOIN jobs j ON j.id = t.job_id WHERE t.array_job_id = $sw AND j.state IN ($1)"; }
check "4 tasks, each asking 8 GPUs (2 nodes x 4)" test \
    "$(ledger "SELECT count(*) FROM job_array_tasks t JOIN jobs j ON j.id = t.job_id WHERE t.array_job_id = $sw AND j.gpus = 8")" -eq 4
sw_peak=0
for _ in $(seq 1 900); do
    n=$(sw_count "'dispatching','dispatched','pending','running','suspended'")
    [ "$n" -gt "$sw_peak" ] && sw_peak=$n
    [ "$(sw_count "'completed','failed','cancelled','timeout','node_fail','lost'")" -ge 4 ] && break
    sleep 0.2
done
check "every task of the sweep completed" test "$(sw_count "'completed'")" -eq 4
check "never more than 2 tasks in Slurm at once, and 2 did run together (peak $sw_peak)" test "$sw_peak" -eq 2
: > "$work/sweep.records"
sw_bad_charge=0 sw_early=0 sw_nodes_ok=0
sw_pre_end=$(ledger "SELECT ended_at FROM jobs WHERE id = $sw_pre")
for t in $(sw_tasks); do
    idx=$(ledger "SELECT task_id FROM job_array_tasks WHERE job_id = $t")
    f="$work/spool/jobs/$t/run-${sw}_$idx.out"
    [ -f "$f" ] && cat "$f" >> "$work/sweep.records"
    [ "$(sed -n 's/^rank [0-9]* node \(.*\)/\1/p' "$f" 2> /dev/null | sort -u | wc -l)" -eq 2 ] &&
        [ "$(grep -c '^rank ' "$f" 2> /dev/null)" -eq 8 ] && sw_nodes_ok=$((sw_nodes_ok + 1))
    charge=$(ledger "SELECT gpu_seconds FROM ledger WHERE job_id = $t AND kind = 'charge'")
    expect=$(ledger "SELECT 8 * (ended_at - started_at) FROM jobs WHERE id = $t")
    [ -n "$charge" ] && [ "$charge" = "$expect" ] || sw_bad_charge=$((sw_bad_charge + 1))
    [ "$(ledger "SELECT started_at FROM jobs WHERE id = $t")" -ge "${sw_pre_end:-0}" ] || sw_early=$((sw_early + 1))
done
check "each task wrote run-${sw}_<index>.out in its own job folder" test "$(grep -c '^sweep task [0-3] end' "$work/sweep.records")" -eq 4
check "each task's 8 ranks ran on 2 distinct nodes ($sw_nodes_ok of 4)" test "$sw_nodes_ok" -eq 4
check "each task is charged 8 GPUs x its elapsed time ($sw_bad_charge wrong)" test "$sw_bad_charge" -eq 0
check "no task started before its prerequisite ended ($sw_early early)" test "$sw_early" -eq 0
sw_overlap=$(awk '/^sweep task [0-9]+ start /{print $5" 1"} /^sweep task [0-9]+ end /{print $5" -1"}' "$work/sweep.records" |
    sort -n -k1,1 -k2,2n | awk '{c += $2; if (c > m) m = c} END {print m + 0}')
check "the tasks' own start/end times never overlap more than 2 ($sw_overlap)" test "$sw_overlap" -le 2
as "$sam" jobs > "$work/sweep.jobs" 2>&1
check "antenna jobs shows the sweep as one line with its counts (${sw}_[0-3%2] ... 4 completed)" \
    grep -q "${sw}_\[0-3%2\].*4 completed" "$work/sweep.jobs"
as "$sam" logs "${sw}_1" > "$work/sweep.log1" 2>&1
check "antenna logs ${sw}_1 serves task 1's run-${sw}_1.out" grep -q "^sweep task 1 end" "$work/sweep.log1"

# A dependency on the array's id waits on every task, as in Slurm: afterok on the finished sweep runs,
# afternotok can never be met (every task completed) and ends cancelled, charged nothing.
printf '#!/bin/bash\n#SBATCH --job-name=evaluate\n#SBATCH --time=2\necho evaluated\n' > "$work/sw-eval.sh"
as "$sam" submit --dependency "afterok:$sw" "$work/sw-eval.sh" > "$work/sw-eval.out" 2>&1
sw_ev=$(sed -n 's/^Submitted job \([0-9]*\).*/\1/p' "$work/sw-eval.out")
check "afterok:$sw names every task of the array ($(job_field "$sam" "${sw_ev:-0}" dependency))" \
    test "$(job_field "$sam" "${sw_ev:-0}" dependency)" = "afterok:$(sw_tasks | paste -sd:)"
check "a job after the whole sweep (afterok:$sw) completes" wait_state "$sam" "${sw_ev:-0}" completed 120
as "$sam" submit --dependency "afternotok:$sw" "$work/sw-eval.sh" > "$work/sw-never.out" 2>&1
sw_nv=$(sed -n 's/^Submitted job \([0-9]*\).*/\1/p' "$work/sw-never.out")
check "afternotok:$sw on a sweep that completed ends cancelled" wait_state "$sam" "${sw_nv:-0}" cancelled 60
check "and is charged nothing" test "$(ledger "SELECT count(*) FROM ledger WHERE job_id = ${sw_nv:-0} AND kind = 'charge' AND gpu_seconds > 0")" -eq 0
