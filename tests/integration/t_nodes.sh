# t_nodes.sh - the dev cluster has several nodes, each its own slurmd (deploy/slurm-cluster.sh
# --nodes, default 2): sourced by run.sh after its own sections, on the same cluster, as root with
# Slurm's own tools (antennad does not submit multi-node jobs yet). Also a second, one-node cluster
# side by side, and start's refusals of bad node/port settings. Never leaves a job or daemon behind.
echo "== a cluster of several nodes, each its own slurmd"
nd_dir=$work/slurm
nd_want=${SLURM_CLUSTER_NODES:-2}
nd_names=$(sinfo -h -N -p gpu -o '%N' 2> /dev/null | sort -u)
nd_count=$(printf '%s\n' "$nd_names" | grep -c .)
check "the integration cluster has at least 2 nodes ($nd_count, wanted $nd_want)" \
    test "$nd_count" -ge 2 -a "$nd_count" = "$nd_want"
check "partition gpu spans every node (TotalNodes=$nd_count, $((nd_count * 32)) CPUs)" \
    bash -c "scontrol -o show partition gpu | grep -q ' TotalCPUs=$((nd_count * 32)) TotalNodes=$nd_count '"
nd_gres=$(sinfo -h -N -p gpu -o '%N %G %T' 2> /dev/null | sort -u)
check "sinfo: every node has 8 h100 GPUs ($(printf '%s' "$nd_gres" | tr '\n' ';'))" \
    test "$(printf '%s\n' "$nd_gres" | grep -c ' gpu:h100:8 ')" = "$nd_count"
check "scontrol show nodes: $nd_count nodes, each Gres=gpu:h100:8" \
    test "$(scontrol -o show nodes | grep -c ' Gres=gpu:h100:8 ')" = "$nd_count"
# Each node: its own slurmd process (live pid file), port, log and spool folder.
nd_pids="" nd_ports=""
for nd in $nd_names; do
    nd_pids+="$(pid_alive "$nd_dir/run/slurmd-$nd.pid" slurmd) "
    nd_ports+="$(sed -n "s/^NodeName=$nd .* Port=\([0-9]*\) .*/\1/p" "$nd_dir/etc/slurm.conf") "
    check "node $nd has its own slurmd log and spool folder" \
        test -s "$nd_dir/log/slurmd-$nd.log" -a -d "$nd_dir/spool/slurmd-$nd"
done
check "one live slurmd per node, distinct pids ($nd_pids)" \
    test "$(printf '%s' "$nd_pids" | tr ' ' '\n' | sort -u | grep -c .)" = "$nd_count"
check "each slurmd on a port of its own ($nd_ports)" \
    test "$(printf '%s' "$nd_ports" | tr ' ' '\n' | sort -u | grep -c .)" = "$nd_count"
for nd in $nd_names; do
    nd_port=$(sed -n "s/^NodeName=$nd .* Port=\([0-9]*\) .*/\1/p" "$nd_dir/etc/slurm.conf")
    nd_pid=$(pid_alive "$nd_dir/run/slurmd-$nd.pid" slurmd)
    check "node $nd's slurmd (pid $nd_pid) listens on its port $nd_port" \
        bash -c "ss -Hltnp 'sport = :$nd_port' | grep -q 'pid=$nd_pid,'"
done
nd_status=$("$root/deploy/slurm-cluster.sh" status "$nd_dir" 2> /dev/null)
check "slurm-cluster.sh status lists a running slurmd and an idle-or-busy state for each node" \
    test "$(grep -c '^slurmd of node[0-9]* running' <<<"$nd_status"):$(grep -c '^node node[0-9]*: [a-z]' <<<"$nd_status")" = "$nd_count:$nd_count"

if [ "$nd_count" -lt 2 ]; then
    ko "2-node jobs: the cluster has $nd_count node(s), so none was run"
else
    # A 2-node step (srun) as root: one task per node, each prints the node it ran on.
    timeout 120 srun -N 2 --ntasks-per-node=1 --gres=gpu:h100:1 -t 2 -J it-nodes-srun --chdir "$work" \
        bash -c 'echo "node=$SLURMD_NODENAME gpus=$SLURM_GPUS_ON_NODE"' > "$work/nodes-srun.out" 2> "$work/nodes-srun.err"
    nd_rc=$?
    check "srun -N 2 ran (exit $nd_rc)" test "$nd_rc" -eq 0
    check "its two tasks saw two distinct SLURMD_NODENAME ($(tr '\n' ' ' < "$work/nodes-srun.out"))" \
        test "$(sed -n 's/^node=\([^ ]*\) gpus=1$/\1/p' "$work/nodes-srun.out" | sort -u | grep -c .)" = 2
    [ "$nd_rc" -eq 0 ] || sed 's/^/    /' "$work/nodes-srun.err" | head -5

    # A 2-node batch job (sbatch) of 2 GPUs per node: its srun step spans both slurmd daemons.
    cat > "$work/nodes-batch.sh" <<'SH'
#!/bin/bash
#SBATCH --job-name=it-nodes-batch
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:h100:2
#SBATCH --time=00:02:00
echo "batch on $SLURMD_NODENAME, job nodes $SLURM_JOB_NODELIST ($SLURM_JOB_NUM_NODES)"
srun bash -c 'echo "task $SLURM_PROCID node=$SLURMD_NODENAME gpus=$SLURM_GPUS_ON_NODE"'
SH
    nd_sid=$(timeout 120 sbatch --parsable --wait -o "$work/nodes-batch.out" --chdir "$work" "$work/nodes-batch.sh" 2> "$work/nodes-batch.err")
    nd_rc=$?
    nd_sid=${nd_sid%%;*}
    check "sbatch --nodes=2 --wait: the job completed (Slurm id ${nd_sid:-none}, exit $nd_rc)" \
        test -n "$nd_sid" -a "$nd_rc" -eq 0
    check "its tasks ran on two distinct nodes ($(grep '^task' "$work/nodes-batch.out" 2> /dev/null | tr '\n' ' '))" \
        test "$(sed -n 's/^task [01] node=\([^ ]*\) gpus=2$/\1/p' "$work/nodes-batch.out" | sort -u | grep -c .)" = 2
    check "the batch script saw 2 nodes in SLURM_JOB_NUM_NODES" grep -q '^batch on node[0-9]*, job nodes .* (2)$' "$work/nodes-batch.out"
    nd_nl=$(scontrol -o show job "${nd_sid:-0}" 2> /dev/null | grep -o ' NodeList=[^ ]*' | cut -d= -f2)
    nd_launched=0
    for nd in $(scontrol show hostnames "${nd_nl:-none}" 2> /dev/null); do
        grep -q "launch task StepId=${nd_sid:-x}\.0 " "$nd_dir/log/slurmd-$nd.log" && nd_launched=$((nd_launched + 1))
    done
    check "each of its 2 nodes' own slurmd (its log) launched the step ($nd_nl)" test "$nd_launched" = 2
    if grep -qs '^AccountingStorageType=accounting_storage/slurmdbd' "$nd_dir/etc/slurm.conf"; then
        nd_tres=""
        for _ in $(seq 1 50); do
            nd_tres=$(sacct -n -X -P -j "${nd_sid:-0}" -o alloctres 2> /dev/null | head -1)
            [[ "$nd_tres" == *gres/gpu=* ]] && break
            sleep 0.2
        done
        check "slurmdbd records it on 2 nodes with 4 GPUs ($nd_tres)" \
            bash -c "[[ ',$nd_tres,' == *,gres/gpu=4,* && ',$nd_tres,' == *,node=2,* ]]"
    else
        ko "the integration cluster runs slurmdbd (its accounting of 2-node jobs is checked here)"
    fi
fi

echo "== a second cluster of one node side by side, and start's refusals"
nd_one=$work/slurm-one
nd_c=$(free_port)
nd_d=$(free_port)
while [ "$nd_d" = "$nd_c" ]; do nd_d=$(free_port); done
nd_out=$(SLURM_CLUSTER_ACCOUNTING=0 "$root/deploy/slurm-cluster.sh" start "$nd_one" --ctld-port "$nd_c" \
    --slurmd-port "$nd_d" --nodes 1 --gpus 2 --cpus 4 2> "$work/nodes-one.err")
check "--nodes 1 starts a one-node cluster beside the first" test "$nd_out" = "SLURM_CONF=$nd_one/etc/slurm.conf"
nd_one_nodes=$(SLURM_CONF=$nd_one/etc/slurm.conf sinfo -h -N -o '%N %G' 2> /dev/null)
check "it has one node with 2 GPUs ($nd_one_nodes)" test "$nd_one_nodes" = "node1 gpu:h100:2"
nd_one_run=$(SLURM_CONF=$nd_one/etc/slurm.conf timeout 60 srun -N 1 --gres=gpu:h100:1 -t 1 --chdir "$work" \
    printenv SLURMD_NODENAME SLURM_CLUSTER_NAME 2> /dev/null | tr '\n' ' ')
nd_one_cluster=$(sed -n 's/^ClusterName=//p' "$nd_one/etc/slurm.conf")
check "a job runs on it, in that cluster ($nd_one_run)" test "$nd_one_run" = "node1 $nd_one_cluster "
check "its node name does not disturb the first cluster's (still $nd_count nodes, all up)" \
    test "$(sinfo -h -N -p gpu -o '%N %T' | grep -cE ' (idle|mixed|allocated|completing)$')" = "$nd_count"
"$root/deploy/slurm-cluster.sh" stop "$nd_one" > /dev/null 2>&1
check "stop leaves nothing of it running" bash -c "! grep -qs . <(for n in slurmctld slurmd munged; do pgrep -a -x \$n; done | grep '$nd_one/')"
check "and the first cluster still answers" bash -c "sinfo -h -p gpu -o %D | grep -qx '$nd_count'"
nd_refused() { # NAME WANT ARGS...: start refuses ARGS before touching anything, naming WANT
    local name=$1 want=$2 out rc
    shift 2
    out=$(SLURM_CLUSTER_ACCOUNTING=0 "$root/deploy/slurm-cluster.sh" start "$work/slurm-bad" "$@" 2>&1)
    rc=$?
    if [ "$rc" -ne 0 ] && grep -q -- "$want" <<<"$out" && [ ! -e "$work/slurm-bad" ]; then ok "$name"; else
        ko "$name (exit $rc: $out)"; fi
}
nd_refused "--nodes 0 is refused with a clear message" "must be 1 to" --ctld-port "$nd_c" --slurmd-port "$nd_d" --nodes 0
nd_refused "--nodes x is refused" "not a non-negative integer" --ctld-port "$nd_c" --slurmd-port "$nd_d" --nodes x
nd_refused "more slurmd ports than nodes is refused" "one per node" --ctld-port "$nd_c" --slurmd-port "$nd_d,$((nd_d + 1)),$((nd_d + 2))" --nodes 2
nd_refused "a port given twice is refused" "given twice" --ctld-port "$nd_c" --slurmd-port "$nd_d,$nd_c" --nodes 2
nd_refused "a bad port is refused" "is not a TCP port" --ctld-port "$nd_c" --slurmd-port "$nd_d,70000" --nodes 2
