# t_enforce.sh - sourced by tests/integration/run.sh on its cluster and daemon (its helpers: check,
# expect_api, api, as, antenna, ledger, wait_state, job_field, $work, $build, $root, $admin). Issue 8
# item 1: a job whose Slurm record changed is still followed, counted, cancellable and charged; a
# job cannot get resources from Slurm behind antennad's back; the tag is in AdminComment. Never
# leaves a job running.
echo "== enforcement: jobs cannot evade their quota, Slurm takes jobs only from antennad"
"$root/deploy/ensure-unix-user.sh" antenna-it4 > /dev/null
check "partner add enf" antenna partner add enf
check "user add erin (enf)" antenna user add erin --partner enf --category sme --unix-user antenna-it4
check "quota set enf: 10 GPU-hours, 4 GPUs at once" antenna quota set enf --gpu-hours 10 --max-gpus 4
erin=$(antenna token create --user erin --label it)
enf_inst=$(ledger "SELECT value FROM meta WHERE key='instance_id'")
enf_conf=$SLURM_CONF
# slurm_jobs_of ACCOUNT: how many jobs Slurm knows for that account (any state).
slurm_jobs_of() { squeue -h -t all -u "$1" -o %i | grep -c .; }

# A 4-GPU job that tries everything its account can do to Slurm, then runs until cancelled.
cat > "$work/evade.sh" << SH
#!/bin/bash
#SBATCH --job-name=evade
#SBATCH --gres=gpu:h100:4
#SBATCH --time=00:05:00
export SLURM_CONF=$enf_conf
scontrol update jobid=\$SLURM_JOB_ID comment=x name=y; echo "update_comment_rc=\$?"
scontrol update jobid=\$SLURM_JOB_ID admincomment=evil; echo "update_admincomment_rc=\$?"
scontrol update jobid=\$SLURM_JOB_ID timelimit=60; echo "update_timelimit_rc=\$?"
scontrol update jobid=\$SLURM_JOB_ID requeue=1; echo "update_requeue_rc=\$?"
scontrol requeue \$SLURM_JOB_ID; echo "requeue_rc=\$?"
sbatch -p gpu --gres=gpu:h100:1 --wrap true; echo "sbatch_rc=\$?"
sbatch --gres=gpu:h100:8 --array=1-2 --wrap true; echo "sbatch_array_rc=\$?"
salloc -p gpu --gres=gpu:h100:1 true; echo "salloc_rc=\$?"
echo "attempts_done"
sleep 300
SH
ev=$(as "$erin" submit "$work/evade.sh" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p')
check "the evading job runs" wait_state "$erin" "$ev" running 60
ev_sid=$(job_field "$erin" "$ev" slurm_job_id)
for _ in $(seq 1 100); do
    as "$erin" logs "$ev" 2> /dev/null | grep -q attempts_done && break
    sleep 0.2
done
as "$erin" logs "$ev" > "$work/evade.out" 2>&1
check "the job made its attempts" grep -q attempts_done "$work/evade.out"
check "Slurm refused the job's sbatch" grep -q "^sbatch_rc=1" "$work/evade.out"
check "Slurm refused the job's sbatch of an array" grep -q "^sbatch_array_rc=1" "$work/evade.out"
check "Slurm refused the job's salloc" grep -q "^salloc_rc=1" "$work/evade.out"
check "the refusal tells the user to go through Antenna" grep -q "only through Antenna" "$work/evade.out"
check "Slurm refused the job's change of its comment and name" grep -q "^update_comment_rc=1" "$work/evade.out"
check "Slurm refused the job's change of its AdminComment" grep -q "^update_admincomment_rc=1" "$work/evade.out"
check "Slurm refused the job's longer time limit" grep -q "^update_timelimit_rc=1" "$work/evade.out"
check "Slurm refused the job's requeue" grep -q "^update_requeue_rc=1" "$work/evade.out"
check "no Slurm job exists for the account but the one antennad submitted" test "$(slurm_jobs_of antenna-it4)" = 1
scontrol -o show job "$ev_sid" > "$work/evade.job"
check "the tag is in AdminComment" grep -qE " AdminComment=antenna:$enf_inst:$ev( |\$)" "$work/evade.job"
check "the tag is not in Comment (unset, the user's)" bash -c "! grep -q ' Comment=' '$work/evade.job'"
check "Slurm kept the time limit antennad asked for" grep -q " TimeLimit=00:05:00 " "$work/evade.job"

# Where a site lets users change their jobs, the job's record changes under antennad: root does
# here what the job's user could do there.
check "its comment, name and AdminComment changed in Slurm" \
    scontrol update jobid="$ev_sid" comment=x name=y admincomment=rewritten
sleep 3
check "the altered job is still followed: running, not lost" test "$(job_field "$erin" "$ev" state)" = running
check "it still holds its 4 GPUs against enf's cap" test "$(ledger "SELECT gpus FROM jobs WHERE id=$ev AND state='running'")" = 4
printf '#!/bin/bash\n#SBATCH --gres=gpu:h100:1\n#SBATCH --time=00:05:00\nsleep 2\necho second-done\n' > "$work/second.sh"
second=$(as "$erin" submit --job-name second "$work/second.sh" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p')
sleep 3
check "a second enf job over the cap stays queued" test "$(job_field "$erin" "$second" state)" = queued
check "its reason is the partner's GPU cap" test "$(job_field "$erin" "$second" reason)" = PartnerGpuLimit
ev_cancel=$(api "$erin" DELETE "/v1/jobs/$ev")
check "the altered job's owner cancels it: 202 (${ev_cancel:0:80})" test "${ev_cancel%% *}" = 202
check "the altered job ends cancelled" wait_state "$erin" "$ev" cancelled 60
check "Slurm cancelled it too" bash -c "scontrol -o show job '$ev_sid' | grep -q 'JobState=CANCELLED'"
ev_charge=$(ledger "SELECT gpu_seconds FROM ledger WHERE job_id=$ev AND kind='charge'")
ev_expect=$(ledger "SELECT 4 * (ended_at - started_at) FROM jobs WHERE id=$ev")
check "it is charged 4 GPUs x its elapsed time ($ev_charge = $ev_expect GPU-seconds)" \
    test -n "$ev_charge" -a "$ev_charge" = "$ev_expect" -a "${ev_expect:-0}" -gt 0
check "its hold is released" test "$(ledger "SELECT sum(gpu_seconds) FROM ledger WHERE job_id=$ev AND kind IN ('hold','release')")" = 0
check "the slot freed: the second job runs to completion" wait_state "$erin" "$second" completed 60

# Issue 8 item 11: antennad works with what deploy/antennad.service leaves it (uid 0, only
# CAP_CHOWN and CAP_DAC_READ_SEARCH, no new privileges), then runs as before for what follows.
echo "== enforcement: antennad with the systemd unit's capabilities only"
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$root/deploy/antennad.service")
check "the unit keeps exactly CAP_CHOWN and CAP_DAC_READ_SEARCH" test "$caps" = "CAP_CHOWN CAP_DAC_READ_SEARCH"
cat > "$work/antennad-unit-caps" << SH
#!/bin/bash
exec setpriv --bounding-set=-all,+chown,+dac_read_search --no-new-privs "$build/antennad" "\$@"
SH
chmod 755 "$work/antennad-unit-caps"
antennad_stop "$work"
check "antennad starts with the unit's capabilities" antennad_start "$work/antennad-unit-caps" "$work"
unit_pid=$(cat "$work/antennad.pid")
check "it holds only those capabilities (CapEff 5)" grep -qx $'CapEff:\t0000000000000005' "/proc/$unit_pid/status"
check "and no new privileges" grep -qx $'NoNewPrivs:\t1' "/proc/$unit_pid/status"
printf '#!/bin/bash\n#SBATCH --gres=gpu:h100:1\n#SBATCH --time=00:05:00\necho caps-ok-$(id -un)\n' > "$work/caps.sh"
caps_job=$(as "$erin" submit --wait "$work/caps.sh" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p')
check "a job is dispatched into its chowned folder and completes" test "$(job_field "$erin" "$caps_job" state)" = completed
check "its output (in the account's 0700 folder) is served" bash -c "ANTENNA_TOKEN=$erin '$build/antenna' logs $caps_job | grep -q caps-ok-antenna-it4"
printf '#!/bin/bash\n#SBATCH --time=00:05:00\nsleep 300\n' > "$work/caps-long.sh"
caps_long=$(as "$erin" submit "$work/caps-long.sh" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p')
wait_state "$erin" "$caps_long" running 60 > /dev/null
check "a running job is cancelled" as "$erin" cancel "$caps_long"
check "and ends cancelled" wait_state "$erin" "$caps_long" cancelled 60
antennad_stop "$work"
antennad_start "$build/antennad" "$work"
