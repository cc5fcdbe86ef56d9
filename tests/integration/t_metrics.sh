# t_metrics.sh - sourced by run.sh on its cluster and daemon (issue 11, items 1 and 2): GET /metrics
# scraped before and after real work (the numbers move), its access rule (loopback by default,
# then a role after a restart with metrics_access, restored at the end), the Grafana dashboard's
# metric names against a real scrape, and one request followed by its X-Request-Id from the answer
# through antennad's log and the job's row to Slurm's AdminComment (scontrol and sacct).
echo "== metrics (/metrics) and request ids"

# mt_scrape NAME [curl args]: GET /metrics into $work/metrics.NAME, prints the HTTP status.
mt_scrape() {
    local name=$1; shift
    curl -sS --cacert "$ANTENNA_CA" -o "$work/metrics.$name" -D "$work/metrics.$name.h" \
        -w '%{http_code}' "$@" "$ANTENNA_URL/metrics"
}
# mt_value NAME SERIES: the value of the sample whose series (name and labels) is exactly SERIES,
# 0 when there is none.
mt_value() {
    awk -v s="$2" 'substr($0, 1, length(s) + 1) == s " " { v = $NF } END { print (v == "" ? 0 : v) }' \
        "$work/metrics.$1"
}
# mt_grew A B SERIES: the sample grew from scrape A to scrape B.
mt_grew() {
    local a b; a=$(mt_value "$1" "$3"); b=$(mt_value "$2" "$3")
    if awk -v a="$a" -v b="$b" 'BEGIN { exit !(b > a) }'; then return 0; fi
    echo "    $3: $a -> $b" >&2
    return 1
}

check "GET /metrics from loopback needs no token (200)" test "$(mt_scrape before)" = 200
check "it is Prometheus text (text/plain; version=0.0.4)" \
    grep -qi '^Content-Type: text/plain; version=0.0.4' "$work/metrics.before.h"
# mt_format_ok NAME: every line of the scrape is a HELP/TYPE comment or a sample (labels quoted).
mt_format_ok() {
    local re_label='[a-z_]+="[^"]*"'
    local re="^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\\{$re_label(,$re_label)*\\})? [-+0-9.e]+)\$"
    ! grep -vE "$re" "$work/metrics.$1"
}
mt_has() { grep -qF -- "$2" "$work/metrics.$1"; } # mt_has NAME TEXT
check "every line is a HELP/TYPE comment or a sample" mt_format_ok before
check "histograms have buckets up to +Inf, a sum and a count" mt_has before 'antenna_store_commit_duration_seconds_bucket{le="+Inf"} '
check "  (its _sum)" mt_has before 'antenna_store_commit_duration_seconds_sum '
check "  (its _count)" mt_has before 'antenna_store_commit_duration_seconds_count '
check "HTTP routes are patterns" mt_has before 'route="GET /v1/jobs/{id}"'
check "HTTP routes are never raw paths" bash -c "! grep -qE 'route=\"[A-Z]+ /v1/jobs/[0-9]' '$work/metrics.before'"
check "the budget gauges name the partners (ulb left)" mt_has before 'antenna_budget_gpu_hours{partner="ulb",kind="left"} '
check "the GPU gauges name the partners (vub running)" mt_has before 'antenna_partner_gpus_running{partner="vub"} '
mt_ddl() { # the dashboard's metric names missing from scrape NAME (none: prints nothing)
    python3 - "$root/deploy/grafana-antenna.json" "$work/metrics.$1" <<'PY'
import json, re, sys
dash = json.load(open(sys.argv[1]))
have = set(re.findall(r"^# TYPE (\S+) ", open(sys.argv[2]).read(), re.M))
def strings(v):
    if isinstance(v, dict):
        for x in v.values(): yield from strings(x)
    elif isinstance(v, list):
        for x in v: yield from strings(x)
    elif isinstance(v, str): yield v
used = {m for s in strings(dash) for m in re.findall(r"antenna_[a-z_]+", s)}
base = lambda m: next((m[:-len(x)] for x in ("_bucket", "_sum", "_count") if m.endswith(x) and m[:-len(x)] in have), m)
missing = sorted(m for m in used if base(m) not in have)
print(" ".join(missing) if missing else "")
if not used: print("(no metric used)")
PY
}
mt_missing=$(mt_ddl before)
check "the Grafana dashboard is JSON and every metric it uses is in the scrape${mt_missing:+ (missing: $mt_missing)}" \
    test -z "$mt_missing"

# A job submitted with a request id, seen running, then done.
printf '#!/bin/bash\n#SBATCH --gres=gpu:h100:1\n#SBATCH --time=00:05:00\nsleep 6\necho metrics-job\n' > "$work/mt.sh"
mt_body=$(python3 -c 'import json,sys; print(json.dumps({"script": open(sys.argv[1]).read(), "name": "mt-job", "gpus": 1, "gpu_type": "h100", "time_minutes": 5}))' "$work/mt.sh")
curl -sS --cacert "$ANTENNA_CA" -D "$work/mt.h" -o "$work/mt.b" -H "Authorization: Bearer $alice" \
    -H 'Content-Type: application/json' -H 'X-Request-Id: it-abc123' -d "$mt_body" "$ANTENNA_URL/v1/jobs"
mt_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$work/mt.b" 2> /dev/null)
check "a submission with X-Request-Id: it-abc123 is accepted (202)" grep -q '^HTTP/1.1 202' "$work/mt.h"
check "its answer carries X-Request-Id: it-abc123" grep -qi '^X-Request-Id: it-abc123' "$work/mt.h"
check "the job shows request_id it-abc123" test "$(job_field "$alice" "$mt_id" request_id)" = it-abc123
mt_show() { as "$alice" show "$mt_id" | grep -qE '^request_id: +it-abc123$'; }
check "antenna show prints it" mt_show
check "the metrics job runs" wait_state "$alice" "$mt_id" running 60
check "a scrape while it runs (200)" test "$(mt_scrape running)" = 200
check "running GPUs of ulb counted while it runs" \
    awk -v g="$(mt_value running 'antenna_partner_gpus_running{partner="ulb"}')" 'BEGIN { exit !(g >= 1) }'
check "budget held by ulb while it runs" \
    awk -v g="$(mt_value running 'antenna_budget_gpu_hours{partner="ulb",kind="held"}')" 'BEGIN { exit !(g > 0) }'
check "the metrics job completes" wait_state "$alice" "$mt_id" completed 60
# a refusal: ulb may have 4 GPUs in Slurm at once
expect_api "a job over ulb's GPU cap is refused" 403 partner_gpu_limit "$alice" POST /v1/jobs \
    -H 'Content-Type: application/json' -d '{"script":"#!/bin/bash\ntrue\n","gpus":8,"gpu_type":"h100"}'
check "a scrape after the work (200)" test "$(mt_scrape after)" = 200
check "submissions went up" mt_grew before after 'antenna_submissions_total'
check "dispatches to Slurm went up" mt_grew before after 'antenna_dispatches_total{outcome="submitted"}'
check "the dispatch latency histogram counted it" mt_grew before after 'antenna_dispatch_latency_seconds_count'
check "the refusal is counted by its code" mt_grew before after 'antenna_refusals_total{reason="partner_gpu_limit"}'
check "HTTP requests by route and status went up (POST /v1/jobs 202)" \
    mt_grew before after 'antenna_http_requests_total{route="POST /v1/jobs",status="202"}'
check "HTTP request latency counted by route" \
    mt_grew before after 'antenna_http_request_duration_seconds_count{route="POST /v1/jobs"}'
check "Slurm submit RPCs timed" mt_grew before after 'antenna_slurm_rpc_duration_seconds_count{rpc="submit"}'
check "Slurm poll RPCs timed" mt_grew before after 'antenna_slurm_rpc_duration_seconds_count{rpc="poll"}'
check "ulb's budget used went up (its charge)" mt_grew before after 'antenna_budget_gpu_hours{partner="ulb",kind="used"}'
check "store commits counted" mt_grew before after 'antenna_store_commit_duration_seconds_count'
check "open connections gauge is there (>= 0)" \
    awk -v g="$(mt_value after 'antenna_http_connections')" 'BEGIN { exit !(g >= 0) }'

# The request followed: the access line and a line of its work in the log, Slurm's record.
check "antennad logged the access line of the request" \
    grep -qE "INFO .* access POST /v1/jobs 202 [0-9]+B [0-9]+us peer=127\.0\.0\.1:[0-9]+ user=alice rid=it-abc123\$" "$work/antennad.log"
check "antennad logged its work with the id (job $mt_id queued ... rid=it-abc123)" \
    grep -qE "job $mt_id queued for user alice .* rid=it-abc123\$" "$work/antennad.log"
mt_inst=$(sqlite3 "$work/antenna.db" "SELECT value FROM meta WHERE key='instance_id'")
mt_sid=$(job_field "$alice" "$mt_id" slurm_job_id)
check "the broker's lines about it end with the id too (dispatched as Slurm job $mt_sid)" \
    grep -qE "job $mt_id dispatched as Slurm job $mt_sid rid=it-abc123\$" "$work/antennad.log"
check "  (its state changes, up to completed)" \
    grep -qE "job $mt_id \(Slurm $mt_sid\): running -> completed, charged [0-9]+ GPU-s rid=it-abc123\$" "$work/antennad.log"
mt_scontrol() {
    local out; out=$(scontrol show job "$mt_sid" 2>&1)
    grep -qE "AdminComment=antenna:$mt_inst:$mt_id rid=it-abc123( |\$)" <<< "$out" && return 0
    echo "    scontrol: $(grep -E 'AdminComment|JobState|error' <<< "$out" | tr -s ' ' | head -3)" >&2
    return 1
}
check "scontrol show job $mt_sid has AdminComment=antenna:$mt_inst:$mt_id rid=it-abc123" mt_scontrol
mt_acct=""
for _ in $(seq 1 50); do
    mt_acct=$(sacct -X -n -P -j "$mt_sid" -o AdminComment 2> /dev/null | head -1)
    [ -n "$mt_acct" ] && break
    sleep 0.2
done
check "sacct -o AdminComment keeps it (\"$mt_acct\")" test "$mt_acct" = "antenna:$mt_inst:$mt_id rid=it-abc123"
curl -sS --cacert "$ANTENNA_CA" -D "$work/mt2.h" -o /dev/null -H 'X-Request-Id: bad id<x>' "$ANTENNA_URL/healthz"
mt_rid=$(sed -n 's/^[Xx]-[Rr]equest-[Ii]d: *\([^\r]*\).*/\1/p' "$work/mt2.h")
mt_fresh() { [[ "$mt_rid" =~ ^[0-9a-f]{12}-[0-9a-f]+$ ]]; }
check "a malformed X-Request-Id is replaced by a fresh id ($mt_rid), not echoed" mt_fresh

# Access by role: restart with metrics_access "role:auditor", then back to the default.
cp "$work/antennad.json" "$work/antennad.json.mt"
python3 - "$work/antennad.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["metrics_access"] = "role:auditor"
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
antennad_stop "$work" TERM
antennad_start "$build/antennad" "$work"
api "$admin" POST /v1/users -H 'Content-Type: application/json' \
    -d '{"name":"maudit","partner":"ulb","unix_user":"antenna-it","category":"institution","role":"auditor"}' > /dev/null
mt_auditor=$(antenna token create --user maudit --label metrics)
expect_api "metrics_access role:auditor: a scrape without a token is refused (401)" 401 unauthorized "" GET /metrics
expect_api "metrics_access role:auditor: a user's token is refused (403)" 403 forbidden "$alice" GET /metrics
check "metrics_access role:auditor: an auditor's token scrapes (200)" \
    test "$(mt_scrape auditor -H "Authorization: Bearer $mt_auditor")" = 200
check "metrics_access role:auditor: an admin's token scrapes (200)" \
    test "$(mt_scrape admin -H "Authorization: Bearer $admin")" = 200
mv "$work/antennad.json.mt" "$work/antennad.json"
antennad_stop "$work" TERM
antennad_start "$build/antennad" "$work"
check "back to metrics_access loopback: no token needed again (200)" test "$(mt_scrape restored)" = 200
