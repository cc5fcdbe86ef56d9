# t_depend.sh - sourced by tests/integration/run.sh on its cluster and daemon (its helpers: check,
# expect_api, api, as, antenna, ledger, wait_state, job_field, $work, $build, $root). Issue 9 item
# 5: job dependencies. afterok runs after its prerequisite completed; afternotok on a completed job
# ends cancelled with the reason and charge 0; a dependent of a job still queued in Antenna shows
# reason Dependency, then runs after it; afterok on a job that fails in Slurm while its dependent
# waits there ends the dependent cancelled (by Slurm with kill_invalid_depend, by antennad without
# it); singleton waits for the user's earlier job of that name, across a restart of antennad.
# Never leaves a job running.
echo "== dependencies: after, afterok, afternotok, held in Antenna, passed on to Slurm"
"$root/deploy/ensure-unix-user.sh" antenna-itdep > /dev/null
check "partner add dep" antenna partner add dep
check "user add dede (dep)" antenna user add dede --partner dep --category sme --unix-user antenna-itdep
check "quota set dep: 10 GPU-hours, 2 GPUs at once" antenna quota set dep --gpu-hours 10 --max-gpus 2
dede=$(antenna token create --user dede --label it)

# dep_job NAME BODY [submit options...]: submits (as dede) a 2-minute job running BODY; prints its id.
dep_job() {
    local name=$1 body=$2; shift 2
    printf '#!/bin/bash\n%s\n' "$body" > "$work/$name.sh"
    as "$dede" submit --time 2 --job-name "$name" "$@" "$work/$name.sh" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p'
}
# says PATTERN CMD...: passes when CMD's output holds PATTERN (fixed string).
says() { local pat=$1; shift; "$@" 2>&1 | grep -qF -- "$pat"; }
# jobs_row_says ID WORD: dede's `antenna jobs` row of job ID holds WORD.
jobs_row_says() { as "$dede" jobs | grep "^ *$1 " | grep -qF -- "$2"; }
# col ID COLUMN: one column of job ID's row in the store.
col() { ledger "SELECT $2 FROM jobs WHERE id = $1"; }
# wait_slurm_id ID: waits until job ID has a Slurm id.
wait_slurm_id() {
    for _ in $(seq 1 150); do [ "$(col "$1" slurm_job_id)" -gt 0 ] 2> /dev/null && return 0; sleep 0.2; done
    echo "    job $1 never reached Slurm" >&2
    return 1
}

# 1. afterok on a job in Slurm: passed on with Slurm's id; runs once it completed
pre=$(dep_job dep-pre 'sleep 8; echo pre-done')
check "the prerequisite runs" wait_state "$dede" "$pre" running 60
aok=$(dep_job dep-afterok 'echo after-ok' --dependency "afterok:$pre")
check "the afterok job reaches Slurm while its prerequisite runs" wait_slurm_id "$aok"
pre_sid=$(col "$pre" slurm_job_id)
aok_sid=$(col "$aok" slurm_job_id)
check "Slurm got the dependency with Slurm's id (afterok:$pre_sid)" \
    bash -c "scontrol show job $aok_sid | grep -q 'Dependency=afterok:$pre_sid'"
check "the afterok job waits in Slurm while its prerequisite runs" test "$(col "$aok" started_at)" -eq 0
check "the prerequisite completes" wait_state "$dede" "$pre" completed 60
check "the afterok job completes" wait_state "$dede" "$aok" completed 60
check "it started at or after its prerequisite's end ($(col "$aok" started_at) >= $(col "$pre" ended_at))" \
    test "$(col "$aok" started_at)" -ge "$(col "$pre" ended_at)"
check "GET /v1/jobs/$aok echoes its dependency" says "\"dependency\":\"afterok:$pre\"" api "$dede" GET "/v1/jobs/$aok"

# 2. afternotok on a completed job: can never be met
ank=$(dep_job dep-afternotok 'echo never' --dependency "afternotok:$pre")
check "afternotok on a completed job ends cancelled" wait_state "$dede" "$ank" cancelled 30
check "its reason names the prerequisite and the condition" \
    says "dependency afternotok:$pre can never be met: job $pre ended completed" as "$dede" show "$ank"
check "it is charged nothing and never held budget" \
    test "$(ledger "SELECT coalesce(sum(gpu_seconds), 0) || ':' || count(*) FROM ledger WHERE job_id = $ank")" = "0:0"
check "it never reached Slurm" test "$(col "$ank" slurm_job_id)" -eq 0
check "its end is audited with the reason" \
    test "$(ledger "SELECT count(*) FROM audit WHERE action = 'job.finished' AND details LIKE '%\"job\":$ank,%' AND details LIKE '%can never be met%'")" -eq 1

# 3. a dependent of a job still queued in Antenna: held with reason Dependency, then runs after it
blk=$(dep_job dep-blocker 'sleep 120' --gpus 2)
check "a 2-GPU job fills dep's GPU cap" wait_state "$dede" "$blk" running 60
qpre=$(dep_job dep-queued-pre 'sleep 3; echo qpre-done' --gpus 1)
sleep 2
check "the 1-GPU prerequisite waits in Antenna's queue" test "$(col "$qpre" state)" = queued
qdep=$(dep_job dep-held 'echo held-done' --dependency "afterok:$qpre")
sleep 2
check "its dependent waits in Antenna with reason Dependency" test "$(job_field "$dede" "$qdep" reason)" = Dependency
check "antenna jobs shows the reason Dependency" jobs_row_says "$qdep" Dependency
check "antenna show shows the dependency" says "afterok:$qpre" as "$dede" show "$qdep"
check "the dependent is not in Slurm" test "$(col "$qdep" slurm_job_id)" -eq 0
as "$dede" cancel "$blk" > /dev/null 2>&1
check "the prerequisite is dispatched once the cap frees" wait_state "$dede" "$qpre" completed 60
check "then the dependent runs and completes" wait_state "$dede" "$qdep" completed 60
check "it started at or after its prerequisite's end" test "$(col "$qdep" started_at)" -ge "$(col "$qpre" ended_at)"

# 4. afterok on a job that fails in Slurm while the dependent waits there (kill_invalid_depend)
fpre=$(dep_job dep-fail-pre 'sleep 5; exit 3')
check "the failing prerequisite runs" wait_state "$dede" "$fpre" running 60
fdep=$(dep_job dep-fail-dep 'echo never' --dependency "afterok:$fpre")
check "its dependent reaches Slurm" wait_slurm_id "$fdep"
check "the prerequisite fails" wait_state "$dede" "$fpre" failed 60
check "Slurm cancels the dependent, which ends cancelled" wait_state "$dede" "$fdep" cancelled 60
check "Slurm cancelled it itself (kill_invalid_depend), not antennad" \
    bash -c "! grep -q 'job $fdep (Slurm [0-9]*): its dependency can never be met' '$work/antennad.log'"
check "its reason names the never-met condition" \
    says "dependency afterok:$fpre can never be met: job $fpre ended failed" as "$dede" show "$fdep"
check "it never started and is charged nothing" \
    test "$(col "$fdep" started_at):$(col "$fdep" charge_gpu_seconds)" = "0:0"

# 4b. the same on a cluster without kill_invalid_depend: Slurm leaves the dependent pending
# (DependencyNeverSatisfied) and antennad cancels it there
sed -i '/^DependencyParameters=/d' "$SLURM_CONF"
scontrol reconfigure > /dev/null 2>&1
sleep 2
check "the cluster runs without kill_invalid_depend now" \
    bash -c "! scontrol show config | grep -i '^DependencyParameters' | grep -q kill_invalid_depend"
gpre=$(dep_job dep-fail-pre2 'sleep 5; exit 4')
check "a second failing prerequisite runs" wait_state "$dede" "$gpre" running 60
gdep=$(dep_job dep-fail-dep2 'echo never' --dependency "afterok:$gpre")
check "its dependent reaches Slurm" wait_slurm_id "$gdep"
check "the prerequisite fails" wait_state "$dede" "$gpre" failed 60
check "antennad cancels the dependent Slurm left pending" wait_state "$dede" "$gdep" cancelled 60
check "its reason names the never-met condition" \
    says "dependency afterok:$gpre can never be met: job $gpre ended failed" as "$dede" show "$gdep"
check "it never started and is charged nothing" \
    test "$(col "$gdep" started_at):$(col "$gdep" charge_gpu_seconds)" = "0:0"
check "antennad, not Slurm, cancelled it (its log says so)" \
    grep -q "job $gdep (Slurm [0-9]*): its dependency can never be met: cancelling it" "$work/antennad.log"
check "Slurm has it cancelled too" \
    bash -c "scontrol show job $(col "$gdep" slurm_job_id) | grep -q 'JobState=CANCELLED'"
printf 'DependencyParameters=kill_invalid_depend\n' >> "$SLURM_CONF"
scontrol reconfigure > /dev/null 2>&1
sleep 2

# 5. singleton: after the user's earlier job of the same name ended (Antenna's own hold, kept
# across a restart of antennad)
sa=$(dep_job dep-single 'sleep 20' --dependency singleton)
check "the first singleton job runs" wait_state "$dede" "$sa" running 60
sb=$(dep_job dep-single 'echo second' --dependency singleton)
sleep 2
check "the second one waits in Antenna with reason Dependency while the first runs in Slurm" \
    test "$(col "$sb" state):$(job_field "$dede" "$sb" reason)" = "queued:Dependency"
antennad_stop "$work"
antennad_start "$build/antennad" "$work" || ko "antennad restarts"
check "after a restart of antennad it still waits with reason Dependency" \
    test "$(col "$sb" state):$(job_field "$dede" "$sb" reason)" = "queued:Dependency"
check "the first singleton job completes" wait_state "$dede" "$sa" completed 60
check "then the second runs and completes" wait_state "$dede" "$sb" completed 60
check "it started at or after the first one's end" test "$(col "$sb" started_at)" -ge "$(col "$sa" ended_at)"

# 6. refusals: nothing queued
before=$(ledger "SELECT count(*) FROM jobs")
expect_api "a dependency on someone else's job is 404" 404 dependency_not_found "$dede" POST /v1/jobs \
    -H 'Content-Type: application/json' -d '{"script":"#!/bin/bash\ntrue\n","dependency":"afterok:1"}'
expect_api "a dependency with '?' is 400" 400 invalid_dependency "$dede" POST /v1/jobs \
    -H 'Content-Type: application/json' -d "{\"script\":\"#!/bin/bash\\ntrue\\n\",\"dependency\":\"afterok:$pre?afterany:$pre\"}"
check "antenna submit --dependency with a bad form exits non-zero" \
    bash -c "! ANTENNA_TOKEN='$dede' '$build/antenna' submit --dependency after:$pre+5 '$work/dep-pre.sh' 2> /dev/null"
check "no refused submission queued anything" test "$(ledger "SELECT count(*) FROM jobs")" -eq "$before"
