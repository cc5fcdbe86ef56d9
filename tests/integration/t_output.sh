# t_output.sh - sourced by run.sh on its cluster and daemon: a job's output that the job replaced
# with a FIFO or a symlink, the API answering meanwhile, `antenna logs` and terminal escapes, the
# demo's secret file modes, and audit checkpoints against a cut tail. Uses run.sh's helpers.

echo "== job output: a FIFO, a symlink, escapes"

# out_job NAME BODY: submits a job (as alice) whose script runs BODY in its folder; prints its id.
out_job() {
    printf '#!/bin/bash\n%s\n' "$2" > "$work/$1.sh"
    as "$alice" submit --time 2 "$work/$1.sh" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p'
}
# wait_file PATH [SECONDS]: waits for PATH to exist.
wait_file() {
    for _ in $(seq 1 $((${2:-60} * 5))); do [ -e "$1" ] && return 0; sleep 0.2; done
    echo "    $1 never appeared" >&2
    return 1
}

fifo=$(out_job out-fifo 'echo before; rm -f output.log; mkfifo output.log; touch ready; sleep 90')
check "the FIFO job started and made its FIFO" wait_file "$work/spool/jobs/$fifo/ready"
check "its output.log is a FIFO now" test -p "$work/spool/jobs/$fifo/output.log"
t0=$(date +%s)
for i in 1 2 3 4; do
    curl -sS --max-time 20 --cacert "$ANTENNA_CA" -o "$work/fifo.$i.body" -w '%{http_code}' \
        -H "Authorization: Bearer $alice" "$ANTENNA_URL/v1/jobs/$fifo/output" > "$work/fifo.$i.code" &
done
# another client meanwhile (bob, with a token of his own: run.sh revoked his first one): each of
# its calls is answered
other=$(antenna token create --user bob --label t-output)
answered=0
for i in $(seq 1 10); do
    if as "$other" jobs > /dev/null 2>&1; then answered=$((answered + 1)); fi
done
wait
t1=$(date +%s)
check "another client got all 10 answers while the FIFO was asked for 4 times" test "$answered" -eq 10
codes=$(for i in 1 2 3 4; do printf '%s ' "$(cat "$work/fifo.$i.code")"; done)
check "the four FIFO output requests are refused with 409 ($codes)" test "$codes" = "409 409 409 409 "
check "the refusal says it is a FIFO" grep -q "FIFO" "$work/fifo.1.body"
check "they were answered at once (within 10 s, took $((t1 - t0)) s)" test $((t1 - t0)) -lt 10
check "/healthz still answers" curl -fsS --max-time 5 --cacert "$ANTENNA_CA" "$ANTENNA_URL/healthz" -o /dev/null
check "antenna logs on the FIFO job exits 1 with the reason" bash -c \
    "ANTENNA_TOKEN=$alice '$build/antenna' logs $fifo 2>&1 | grep -q FIFO; test \${PIPESTATUS[0]} -eq 1"
as "$alice" cancel "$fifo" > /dev/null 2>&1

link=$(out_job out-link 'rm -f output.log; ln -s /etc/shadow output.log; touch ready; sleep 90')
check "the symlink job started and planted its link" wait_file "$work/spool/jobs/$link/ready"
out=$(api "$alice" GET "/v1/jobs/$link/output")
check "output that is a symlink to /etc/shadow is refused (409)" test "${out%% *}" = 409
check "the refusal says it is a symbolic link" grep -q "symbolic link" <<< "$out"
check "no line of /etc/shadow came back" bash -c '! grep -q "root:" <<< "$1"' _ "$out"
as "$alice" cancel "$link" > /dev/null 2>&1

big=$(out_job out-big 'head -c 700000 /dev/zero | tr "\0" x; echo; echo END')
check "the big-output job completes" wait_state "$alice" "$big" completed 60
curl -sS -D "$work/big.h" --cacert "$ANTENNA_CA" -o "$work/big.body" \
    -H "Authorization: Bearer $alice" "$ANTENNA_URL/v1/jobs/$big/output"
check "one answer carries at most 256 KiB" test "$(stat -c %s "$work/big.body")" -eq 262144
check "it says where the next chunk starts and that the end is not reached" \
    bash -c "grep -qi '^X-Antenna-Output-Next-Offset: 262144' '$work/big.h' && grep -qi '^X-Antenna-Output-End: false' '$work/big.h'"
check "antenna logs pages through all of it" test "$(as "$alice" logs "$big" | wc -c)" -eq 700005

esc=$(out_job out-esc "printf 'a\\033[31mRED\\033]0;owned\\007 tab\\there\\n'")
check "the escape job completes" wait_state "$alice" "$esc" completed 60
ANTENNA_TOKEN=$alice script -qec "$build/antenna logs $esc" /dev/null > "$work/esc.tty"
check "on a terminal, ESC and BEL are shown escaped" grep -qF 'a\x1b[31mRED\x1b]0;owned\x07' "$work/esc.tty"
check "on a terminal, no raw ESC reaches it" bash -c "! grep -q \$'\\033' '$work/esc.tty'"
check "on a terminal, tab passes" grep -qF $'tab\there' "$work/esc.tty"
ANTENNA_TOKEN=$alice script -qec "$build/antenna logs --raw $esc" /dev/null > "$work/esc.raw"
check "--raw passes ESC unchanged to a terminal" grep -q $'\033\\[31m' "$work/esc.raw"
check "to a pipe the bytes pass unchanged" bash -c \
    "ANTENNA_TOKEN=$alice '$build/antenna' logs $esc | grep -q \$'\\033\\\\[31mRED'"

echo "== demo: secret files are 0600"
demo_dir=$(mktemp -d "$work/demo.XXXXXX")
touch "$demo_dir/admin.token" && chmod 644 "$demo_dir/admin.token"
check "check-modes fails on a world-readable admin.token" bash -c \
    "! ANTENNA_DEMO_DIR='$demo_dir' '$root/deploy/demo.sh' check-modes 2>/dev/null"
chmod 600 "$demo_dir/admin.token"
(umask 022 && touch "$demo_dir/demo.token" "$demo_dir/antenna.db")
check "check-modes fails on a 0644 demo.token or database" bash -c \
    "! ANTENNA_DEMO_DIR='$demo_dir' '$root/deploy/demo.sh' check-modes 2>/dev/null"
chmod 600 "$demo_dir/demo.token" "$demo_dir/antenna.db"
check "check-modes passes once they are 0600" env ANTENNA_DEMO_DIR="$demo_dir" "$root/deploy/demo.sh" check-modes

echo "== audit checkpoints: a cut tail with a rewritten head file is caught"
antenna audit public-key > "$work/broker.pub"
check "the public key is served in PEM" grep -q 'BEGIN PUBLIC KEY' "$work/broker.pub"
check "the signing key is 0600 in the state folder" test "$(stat -c %a "$work/audit-signing.key")" = 600
check "the private key is never served" bash -c "! grep -q PRIVATE '$work/broker.pub'"
expect_api "a user may not take a checkpoint" 403 forbidden "$alice" POST /v1/audit/checkpoint
check "antenna audit checkpoint prints a signed checkpoint" bash -c \
    "'$build/antenna' audit checkpoint > '$work/cp.json' && grep -q '\"signature\"' '$work/cp.json'"
cp_seq=$(jq_field seq < "$work/cp.json")
check "antenna audit verify --checkpoint passes on the intact chain" \
    antenna audit verify --checkpoint "$work/cp.json" --public-key "$work/broker.pub"
sed "s/\"seq\": *$cp_seq/\"seq\": $((cp_seq - 1))/" "$work/cp.json" > "$work/cp-edited.json"
antenna audit verify --checkpoint "$work/cp-edited.json" --public-key "$work/broker.pub" > "$work/cp-edited.out" 2>&1
rc=$?
check "an edited checkpoint fails (exit $rc, wanted 1)" test "$rc" -eq 1
check "on its signature" grep -q 'signature does not verify' "$work/cp-edited.out"
antenna audit verify --checkpoint "$work/cp.json" > /dev/null 2>&1
rc=$?
check "--checkpoint without a pinned --public-key is a usage error (exit $rc, wanted 2)" test "$rc" -eq 2

# The intruder: stops antennad, cuts the last entries (those the checkpoint signed among them).
antennad_stop "$work"
head_seq=$(cut -d' ' -f1 "$work/audit.head")
cut=$((cp_seq - 3))
sqlite3 "$work/antenna.db" "DELETE FROM audit WHERE seq > $cut"
timeout 30 "$build/antennad" serve --config "$work/antennad.json" > "$work/refused.log" 2>&1
rc=$?
check "antennad refuses to start when the head file is ahead of the chain (exit $rc, wanted 1)" test "$rc" -eq 1
check "it says the head file and the chain disagree" grep -q "head file and the chain disagree" "$work/refused.log"
check "its message names both sequences ($head_seq and $cut)" grep -q "head file at $head_seq, chain at $cut" "$work/refused.log"
check "and the way to accept the chain" grep -q -- "--accept-audit-head" "$work/refused.log"
# ... then rewrites the head file to the new end, so chain and head file agree again
last_hash=$(sqlite3 "$work/antenna.db" "SELECT hash FROM audit WHERE seq = $cut")
printf '%s %s\n' "$cut" "$last_hash" > "$work/audit.head"
check "antennad starts on the cut chain with its rewritten head file" antennad_start "$build/antennad" "$work"
check "antenna audit verify alone says OK (the cut is invisible to the chain)" antenna audit verify
antenna audit verify --checkpoint "$work/cp.json" --public-key "$work/broker.pub" > "$work/cp-cut.out" 2>&1
check "antenna audit verify --checkpoint fails (exit 1) on the cut tail" test $? -eq 1
check "and says the entry is gone" grep -q "no longer holds entry $cp_seq" "$work/cp-cut.out"

# An investigation accepts a mismatch explicitly: cut again without fixing the head file
antennad_stop "$work"
sqlite3 "$work/antenna.db" "DELETE FROM audit WHERE seq > $((cut - 1))"
printf '#!/bin/sh\nexec "%s" "$@" --accept-audit-head\n' "$build/antennad" > "$work/antennad-accept"
chmod 755 "$work/antennad-accept"
check "antennad --accept-audit-head starts on the mismatch" antennad_start "$work/antennad-accept" "$work"
check "and records it as audit.head_accepted" bash -c \
    "'$build/antenna' audit --action audit.head_accepted --format json | grep -q '\"chain_seq\": *$((cut - 1))'"
antennad_stop "$work"
check "antennad then starts normally (head file and chain agree again)" antennad_start "$build/antennad" "$work"
