# t_sbatch.sh - sourced by run.sh on its cluster and daemon: training jobs as sbatch users write
# them (issue 9): a forbidden partition and an unknown option refused with nothing queued,
# --export filtering (a refused name, a NAME=value reaching the job, the submitter's own
# variables not), stdout and stderr served apart, GPUs per node and per task charged GPUs x
# elapsed, and a multi-node request as Slurm sees it. Uses run.sh's helpers.

echo "== sbatch options: partitions, export, streams, GPUs per node and per task"

# The site gets a second partition that ulb may not use: antennad restarts on that config, and
# on the original one at the end.
cp "$work/antennad.json" "$work/antennad.json.orig"
python3 - "$work/antennad.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["partitions"] = ["gpu", "debug"]
c["partner_partitions"] = {"ulb": ["gpu"]}
c["export_deny"] = ["AWS_*"]
json.dump(c, open(p, "w"), indent=2)
PY
antennad_stop "$work"
check "antennad restarts with partitions per partner" antennad_start "$build/antennad" "$work"
sa=$(antenna token create --user alice --label t-sbatch)
# a partner of its own for the GPU tests (8 GPUs at once, a budget other topics leave alone)
"$root/deploy/ensure-unix-user.sh" antenna-it6 > /dev/null
check "partner add sbp" antenna partner add sbp
check "user add carol (sbp)" antenna user add carol --partner sbp --category sme --unix-user antenna-it6
check "quota set sbp: 50 GPU-hours, 8 GPUs at once" antenna quota set sbp --gpu-hours 50 --max-gpus 8
sb=$(antenna token create --user carol --label t-sbatch)
jobs_now() { ledger "SELECT count(*) FROM jobs"; }
slurm_now() { squeue -h -a 2> /dev/null | wc -l; }
# sb_id FILE: the job id of a "Submitted job N" line in FILE.
sb_id() { sed -n 's/^Submitted job \([0-9]*\).*/\1/p' "$1"; }

# a forbidden partition: refused by antennad (403, its allowed ones named), nothing queued
printf '#!/bin/bash\n#SBATCH --partition=debug\n#SBATCH -t 2\necho never\n' > "$work/sb-part.sh"
before=$(jobs_now) sbefore=$(slurm_now)
as "$sa" submit "$work/sb-part.sh" > "$work/sb-part.out" 2>&1
rc=$?
check "a forbidden partition is refused (exit $rc)" test "$rc" -ne 0
check "the refusal names the partitions ulb may use" grep -q 'may not use partition "debug"; use one of: gpu' "$work/sb-part.out"
check "nothing was queued for it (jobs $before -> $(jobs_now))" test "$(jobs_now)" = "$before"
check "nothing reached Slurm for it" test "$(slurm_now)" -le "$sbefore"
expect_api "an unknown partition is a 400 naming the site's" 400 unknown_partition "$sb" POST /v1/jobs \
    -H 'Content-Type: application/json' -d '{"script":"#!/bin/bash\ntrue\n","partition":"bigmem"}'

# an option Antenna does not handle: refused by the CLI, nothing sent; with the flag, warned
printf '#!/bin/bash\n#SBATCH --qos=high\n#SBATCH -t 1\ntrue\n' > "$work/sb-qos.sh"
before=$(jobs_now)
as "$sa" submit "$work/sb-qos.sh" > "$work/sb-qos.out" 2>&1
rc=$?
check "an unsupported #SBATCH option is refused (exit $rc)" test "$rc" -ne 0
check "the refusal names the option and the way out" grep -q -- '#SBATCH --qos is not supported by Antenna; remove it, or submit with --ignore-unsupported' "$work/sb-qos.out"
check "nothing was queued for it" test "$(jobs_now)" = "$before"
as "$sa" submit --dry-run --ignore-unsupported "$work/sb-qos.sh" > "$work/sb-qos2.out" 2>&1
check "--ignore-unsupported warns and goes on" grep -q -- '--qos is not supported by Antenna, ignored' "$work/sb-qos2.out"

# --exclusive: Slurm gives the job every GPU and CPU of its node; Antenna holds and charges them all
# (node_gpus 8, node_cpus 32 in the test config), not the one GPU it names
printf '#!/bin/bash\n#SBATCH --exclusive\n#SBATCH --gres=gpu:1\n#SBATCH -t 2\nsleep 3\n' > "$work/sb-excl.sh"
as "$sb" submit --wait "$work/sb-excl.sh" > "$work/sb-excl.out" 2>&1
excl=$(sb_id "$work/sb-excl.out")
check "the --exclusive job completed" test "$(job_field "$sb" "${excl:-0}" state)" = completed
check "it counts 8 GPUs (the whole node), not 1" test "$(ledger "SELECT gpus FROM jobs WHERE id=${excl:-0}")" = 8
c=$(ledger "SELECT gpu_seconds FROM ledger WHERE job_id=${excl:-0} AND kind='charge'")
e=$(ledger "SELECT 8 * (ended_at - started_at) FROM jobs WHERE id=${excl:-0}")
check "--exclusive is charged 8 GPUs x elapsed ($c = $e GPU-seconds)" test -n "$c" -a "$c" = "$e" -a "${e:-0}" -ge 24
c=$(ledger "SELECT cpu_seconds FROM ledger WHERE job_id=${excl:-0} AND kind='charge'")
e=$(ledger "SELECT 32 * (ended_at - started_at) FROM jobs WHERE id=${excl:-0}")
check "and 32 CPUs x elapsed ($c = $e CPU-seconds)" test -n "$c" -a "$c" = "$e"
scontrol -o show job "$(job_field "$sb" "${excl:-0}" slurm_job_id)" > "$work/sb-excl.sctl" 2>&1
check "Slurm allocated it the node's 8 GPUs and 32 CPUs, as charged" grep -qE 'TRES=cpu=32,[^ ]*gres/gpu=8' "$work/sb-excl.sctl"

# --export: a refused name; a NAME=value reaching the job; the submitter's own variables not
printf '#!/bin/bash\n#SBATCH --export=ALL,LD_PRELOAD=/tmp/x.so\ntrue\n' > "$work/sb-ld.sh"
before=$(jobs_now)
as "$sa" submit "$work/sb-ld.sh" > "$work/sb-ld.out" 2>&1
check "an --export of LD_PRELOAD is refused" grep -q 'export name LD_PRELOAD is refused' "$work/sb-ld.out"
check "nothing was queued for it" test "$(jobs_now)" = "$before"
expect_api "the site's export_deny list is enforced by antennad" 400 invalid_export "$sa" POST /v1/jobs \
    -H 'Content-Type: application/json' -d '{"script":"#!/bin/bash\ntrue\n","export":"AWS_SECRET_ACCESS_KEY=x"}'
cat > "$work/sb-env.sh" <<'SH'
#!/bin/bash
#SBATCH --export=ALL,EPOCHS=7,RUN_NAME=sweep-a
#SBATCH -t 2
echo "epochs=${EPOCHS:-unset} run=${RUN_NAME:-unset}"
echo "hf=${HF_TOKEN:-unset} antenna=${ANTENNA_TOKEN:-unset} home=${HOME:-unset}"
SH
HF_TOKEN=hf_fake_secret_123 as "$sa" submit --wait "$work/sb-env.sh" > "$work/sb-env.out" 2>&1
env_id=$(sb_id "$work/sb-env.out")
as "$sa" logs "$env_id" > "$work/sb-env.log" 2>&1
check "NAME=value items reach the job" grep -q '^epochs=7 run=sweep-a$' "$work/sb-env.log"
check "the submitter's HF_TOKEN and ANTENNA_TOKEN do not" grep -q '^hf=unset antenna=unset home=/' "$work/sb-env.log"
check "the secret is nowhere in the job's output" bash -c "! grep -q hf_fake_secret_123 '$work/sb-env.log'"

# separate streams: stdout and stderr served apart, under the names the script gave
cat > "$work/sb-streams.sh" <<'SH'
#!/bin/bash
#SBATCH --output=out-%j.log
#SBATCH --error=err-%x-%j.log
#SBATCH --job-name=streams
#SBATCH -t 2
echo "to stdout"
echo "to stderr" >&2
SH
as "$sa" submit --wait "$work/sb-streams.sh" > "$work/sb-streams.out" 2>&1
st=$(sb_id "$work/sb-streams.out")
as "$sa" logs "$st" > "$work/sb-so.log" 2>&1
as "$sa" logs --stderr "$st" > "$work/sb-se.log" 2>&1
check "stdout has only the stdout line" test "$(cat "$work/sb-so.log")" = "to stdout"
check "antenna logs --stderr has only the stderr line" test "$(cat "$work/sb-se.log")" = "to stderr"
check "the files are named from the patterns (%j is Antenna's id)" test -f "$work/spool/jobs/$st/out-$st.log" -a -f "$work/spool/jobs/$st/err-streams-$st.log"
out=$(api "$sa" GET "/v1/jobs/$st/output?stream=stderr")
check "GET .../output?stream=stderr serves the stderr" test "$out" = "200 to stderr"
expect_api "a job without --error has no stderr apart" 404 no_stderr_stream "$sa" GET "/v1/jobs/$env_id/output?stream=stderr"

# GPUs per node and per task: held and charged GPUs x elapsed
printf '#!/bin/bash\n#SBATCH --gpus-per-node=2\n#SBATCH -t 2\necho gpus=$SLURM_GPUS_ON_NODE\nsleep 3\n' > "$work/sb-gpn.sh"
as "$sb" submit --wait "$work/sb-gpn.sh" > "$work/sb-gpn.out" 2>&1
gpn=$(sb_id "$work/sb-gpn.out")
check "the --gpus-per-node job completed" test "$(job_field "$sb" "$gpn" state)" = completed
as "$sb" show "$gpn" > "$work/sb-gpn.show" 2>&1
check "antenna show gives its GPUs per node and its total" bash -c "grep -qE '^gpus_per_node: +2\$' '$work/sb-gpn.show' && grep -qE '^gpus: +2\$' '$work/sb-gpn.show'"
c=$(ledger "SELECT gpu_seconds FROM ledger WHERE job_id=$gpn AND kind='charge'")
e=$(ledger "SELECT 2 * (ended_at - started_at) FROM jobs WHERE id=$gpn")
check "--gpus-per-node=2 is charged 2 x elapsed ($c = $e GPU-seconds)" test -n "$c" -a "$c" = "$e" -a "${e:-0}" -ge 6
h=$(ledger "SELECT gpu_seconds FROM ledger WHERE job_id=$gpn AND kind='hold'")
check "its hold was 2 GPUs x its 2-minute limit ($h GPU-seconds)" test "$h" = 240
scontrol -o show job "$(job_field "$sb" "$gpn" slurm_job_id)" > "$work/sb-gpn.sctl" 2>&1
check "Slurm allocated it 2 GPUs" grep -q 'TRES=[^ ]*gres/gpu=2' "$work/sb-gpn.sctl"
printf '#!/bin/bash\n#SBATCH -n 3\n#SBATCH --gpus-per-task=1\n#SBATCH -t 2\nsleep 3\n' > "$work/sb-gpt.sh"
as "$sb" submit --wait "$work/sb-gpt.sh" > "$work/sb-gpt.out" 2>&1
gpt=$(sb_id "$work/sb-gpt.out")
c=$(ledger "SELECT gpu_seconds FROM ledger WHERE job_id=$gpt AND kind='charge'")
e=$(ledger "SELECT 3 * (ended_at - started_at) FROM jobs WHERE id=$gpt")
check "-n 3 --gpus-per-task=1 is charged 3 x elapsed ($c = $e GPU-seconds)" test -n "$c" -a "$c" = "$e" -a "${e:-0}" -ge 9
c=$(ledger "SELECT cpu_seconds FROM ledger WHERE job_id=$gpt AND kind='charge'")
check "and its 3 CPUs (3 tasks x 1) 3 x elapsed ($c = $e CPU-seconds)" test -n "$c" -a "$c" = "$e"
scontrol -o show job "$(job_field "$sb" "$gpt" slurm_job_id)" > "$work/sb-gpt.sctl" 2>&1
check "Slurm got 3 tasks with a GPU each" grep -qE 'NumTasks=3 .*TresPerTask=gres:gpu:(h100:)?1' "$work/sb-gpt.sctl"
check "Slurm allocated it 3 CPUs and 3 GPUs, as charged" grep -qE 'TRES=cpu=3,[^ ]*gres/gpu=3' "$work/sb-gpt.sctl"

# --chdir inside the job's folder (made for the job's account), the user's comment apart from
# Antenna's tag, --signal passed on
printf '#!/bin/bash\n#SBATCH -D run1/sub\n#SBATCH --comment=my-sweep\n#SBATCH --signal=B:USR1@30\n#SBATCH -t 1\npwd\n' > "$work/sb-cd.sh"
as "$sb" submit --wait "$work/sb-cd.sh" > "$work/sb-cd.out" 2>&1
cd_id=$(sb_id "$work/sb-cd.out")
as "$sb" logs "$cd_id" > "$work/sb-cd.log" 2>&1
check "--chdir runs the job in run1/sub of its folder" test "$(cat "$work/sb-cd.log")" = "$work/spool/jobs/$cd_id/run1/sub"
check "that folder belongs to the job's account" test "$(stat -c %U "$work/spool/jobs/$cd_id/run1/sub")" = antenna-it6
scontrol -o show job "$(job_field "$sb" "$cd_id" slurm_job_id)" > "$work/sb-cd.sctl" 2>&1
check "Slurm has the user's comment and Antenna's tag apart" grep -qE 'Comment=my-sweep .*AdminComment=antenna:|AdminComment=antenna:[^ ]* .*Comment=my-sweep' "$work/sb-cd.sctl"

# two nodes: the dry-run quote counts every node's GPUs; Slurm is asked for two nodes
printf '#!/bin/bash\n#SBATCH -N 2\n#SBATCH --gpus-per-node=4\n#SBATCH -t 10\nsrun hostname\n' > "$work/sb-2n.sh"
as "$sb" submit --dry-run --json "$work/sb-2n.sh" > "$work/sb-2n.quote" 2>&1
check "the dry-run quote of 2 nodes x 4 GPUs x 10 min is 1.33 GPU-hours" grep -q '"max_cost_gpu_hours": 1.33' "$work/sb-2n.quote"
as "$sb" submit "$work/sb-2n.sh" > "$work/sb-2n.out" 2>&1
two=$(sb_id "$work/sb-2n.out")
check "the 2-node job is queued with 8 GPUs in all" test "$(job_field "$sb" "$two" gpus)" = 8
sid=
for _ in $(seq 1 100); do
    sid=$(job_field "$sb" "$two" slurm_job_id)
    [ -n "$sid" ] && [ "$sid" != null ] && break
    sleep 0.2
done
scontrol -o show job "$sid" > "$work/sb-2n.sctl" 2>&1
# (on a one-node cluster Slurm keeps it pending; with two nodes it may run)
check "Slurm has it as 2 nodes x 4 GPUs (Slurm job ${sid:-none})" grep -qE 'NumNodes=2(-2)? .*TresPerNode=gres:gpu:(h100:)?4' "$work/sb-2n.sctl"
as "$sb" cancel "$two" > /dev/null 2>&1

cp "$work/antennad.json.orig" "$work/antennad.json"
antennad_stop "$work"
check "antennad restarts on run.sh's config" antennad_start "$build/antennad" "$work"
