# t_accounts.sh - sourced by run.sh: account mapping and authentication on the real daemon (users
# alice of ulb on antenna-it and bob of vub on antenna-it2 exist), then, on a second antennad of
# this cluster with low limits (5 failed authentications per minute, 2 requests per second per
# token with bursts of 3, and a slurm.conf naming nobody as SlurmUser), the limits and the
# aggregated audit of failed authentications.

echo "== accounts: which Unix accounts a user may be mapped to"
q() { "$@" > /dev/null 2>&1; }
user_json() { printf '{"name":"%s","partner":"%s","unix_user":"%s","category":"sme"}' "$1" "$2" "$3"; }
check "ensure-unix-user gave antenna-it a regular uid (>= UID_MIN)" test "$(id -u antenna-it)" -ge 1000
check "ensure-unix-user gave antenna-it2 a regular uid (>= UID_MIN)" test "$(id -u antenna-it2)" -ge 1000
check "ensure-unix-user refuses munge" bash -c '! "$0" munge 2>/dev/null' "$root/deploy/ensure-unix-user.sh"
for acct in root daemon munge; do
    expect_api "mapping to $acct refused" 400 invalid_value "$admin" POST /v1/users \
        -H 'Content-Type: application/json' -d "$(user_json "eve-$acct" ulb "$acct")"
done
out=$(api "$admin" POST /v1/users -H 'Content-Type: application/json' -d "$(user_json eve-daemon ulb daemon)")
check "a system account's refusal says why (uid below UID_MIN)" grep -q "system account" <<< "$out"
out=$(api "$admin" POST /v1/users -H 'Content-Type: application/json' -d "$(user_json eve-munge ulb munge)")
check "the munge account's refusal says why" grep -q "munge account" <<< "$out"
check "no refused mapping was stored" test "$(ledger "SELECT count(*) FROM users WHERE name LIKE 'eve-%'")" -eq 0
expect_api "antenna-it2 (vub's) refused for a ulb user: 409" 409 conflict "$admin" POST /v1/users \
    -H 'Content-Type: application/json' -d "$(user_json carl ulb antenna-it2)"
check "antenna user set: remapping bob (vub) to ulb's antenna-it refused (exit 1)" \
    bash -c '! "$0" user set bob --unix-user antenna-it 2>/dev/null' "$build/antenna"
check "user.created carries the Unix account" \
    bash -c '"$0" audit --action user.created --format json | grep -q "\"unix_user\": *\"antenna-it\""' "$build/antenna"
"$root/deploy/ensure-unix-user.sh" antenna-it3 > /dev/null
check "user add cleo (ulb, antenna-it)" q antenna user add cleo --partner ulb --category sme --unix-user antenna-it
check "user set cleo --unix-user antenna-it3" q antenna user set cleo --unix-user antenna-it3
check "the mapping change is audited with the old and new account" \
    test "$(ledger "SELECT count(*) FROM audit WHERE action='user.mapping_changed' AND details LIKE '%\"old_unix_user\":\"antenna-it\"%' AND details LIKE '%\"new_unix_user\":\"antenna-it3\"%'")" -eq 1

echo "== authentication: disabled users, expiring tokens"
check "user add dina (ulb)" q antenna user add dina --partner ulb --category sme --unix-user antenna-it
dina=$(antenna token create --user dina --label it 2> /dev/null)
check "dina's token works" q as "$dina" jobs
check "antenna user disable dina" q antenna user disable dina
out=$(as "$dina" jobs 2>&1); rc=$?
check "a disabled user's token is refused at once (exit 1, says disabled)" test "$rc" -eq 1 -a -n "$(grep disabled <<< "$out")"
check "antenna user enable dina" q antenna user enable dina
check "dina's token works again" q as "$dina" jobs
check "user.disabled and user.enabled audited" \
    test "$(ledger "SELECT count(*) FROM audit WHERE action IN ('user.disabled','user.enabled') AND details LIKE '%\"dina\"%'")" -eq 2
short=$(antenna token create --user dina --label short --expires 2s 2> /dev/null)
check "a token with --expires 2s works at first" q as "$short" jobs
sleep 3
out=$(as "$short" jobs 2>&1); rc=$?
check "then it is refused, saying it expired and how to get a new one" \
    test "$rc" -eq 1 -a -n "$(grep expired <<< "$out" | grep 'token create')"
check "token create --expires 30d" bash -c '"$0" token create --user dina --expires 30d > /dev/null 2>&1' "$build/antenna"
check "token create --expires 2099-01-01 refused beyond the maximum (exit 1)" \
    bash -c '! "$0" token create --user dina --expires 2099-01-01 > /dev/null 2>&1' "$build/antenna"
check "token create --expires soon is a usage error (exit 2)" \
    bash -c '"$0" token create --user dina --expires soon > /dev/null 2>&1; test $? -eq 2' "$build/antenna"
check "token list shows an EXPIRES column" bash -c '"$0" token list | head -1 | grep -q EXPIRES' "$build/antenna"

echo "== authentication limits (a second antennad: 5 failures/min, 2 req/s per token, SlurmUser nobody)"
w2=$work/limits
mkdir -p "$w2"
cp -r "$work/tls" "$w2/tls"
port2=$(free_port)
ANTENNA_AUTH_FAILURES=5 ANTENNA_TOKEN_RATE=2 antennad_write_config "$w2" "$port2" "$SLURM_CONF"
sed 's/^SlurmUser=.*/SlurmUser=nobody/' "$SLURM_CONF" > "$w2/slurm.conf"
grep -q '^SlurmUser=' "$w2/slurm.conf" || echo 'SlurmUser=nobody' >> "$w2/slurm.conf"
for f in "$(dirname "$SLURM_CONF")"/*.conf; do [ "$f" = "$SLURM_CONF" ] || cp "$f" "$w2/"; done
sed -i -e "s|\"slurm_conf\": \"[^\"]*\"|\"slurm_conf\": \"$w2/slurm.conf\"|" \
    -e 's|^{$|{\n  "token_burst": 3,|' "$w2/antennad.json"
admin2=$("$build/antennad" bootstrap --config "$w2/antennad.json" 2> /dev/null)
if antennad_start "$build/antennad" "$w2"; then
    url2="https://127.0.0.1:$port2"
    # api2 TOKEN METHOD PATH [curl args]: "STATUS RETRY-AFTER BODY" from the second antennad.
    api2() {
        local tok=$1 method=$2 path=$3; shift 3
        curl -sS --cacert "$work/tls/ca.pem" -D "$w2/head" -o "$w2/body" -w '%{http_code}' -X "$method" \
            -H "Authorization: Bearer $tok" "$@" "$url2$path"
        printf ' %s %s' "$(sed -n 's/^Retry-After: *\([0-9]*\).*/\1/Ip' "$w2/head")" "$(cat "$w2/body")"
    }
    out=$(api2 "$admin2" POST /v1/partners -H 'Content-Type: application/json' -d '{"name":"lim"}')
    check "second antennad answers its admin" test "${out%% *}" = 201
    sleep 2 # a full bucket again
    out=$(api2 "$admin2" POST /v1/users -H 'Content-Type: application/json' -d "$(user_json sam lim nobody)")
    check "mapping to the SlurmUser (nobody here) refused, saying so" \
        test "${out%% *}" = 400 -a -n "$(grep SlurmUser <<< "$out")"
    sleep 2
    codes="" ra=""
    for _ in 1 2 3 4 5 6; do
        out=$(api2 "$admin2" GET /v1/jobs)
        codes="$codes ${out%% *}"
        [ "${out%% *}" = 429 ] && [ -z "$ra" ] && ra=$(cut -d' ' -f2 <<< "$out")
    done
    check "per-token rate: a burst of 3 passes, then 429 with Retry-After $ra ($codes)" \
        bash -c '[[ "$0" == " 200 200 200 429"* ]] && [ -n "$1" ]' "$codes" "$ra"
    sleep 2
    bad=ant_00000000000000000000000000000000000000000000000000000000000000ab
    n401=0 n429=0 ra=""
    for _ in $(seq 1 15); do
        out=$(api2 "$bad" GET /v1/jobs)
        case "$out" in 401*) n401=$((n401 + 1)) ;; 429*) n429=$((n429 + 1)); ra=$(cut -d' ' -f2 <<< "$out"); break ;; esac
    done
    check "5 failed authentications a minute, then 429 rate_limited ($n401 x 401, then 429, Retry-After $ra)" \
        test "$n429" -eq 1 -a "$n401" -ge 5 -a -n "$ra"
    out=$(api2 "$admin2" GET /v1/jobs)
    check "past the limit even a valid token is refused without being looked up (429)" test "${out%% *}" = 429
    n429=$((n429 + 1))
    antennad_stop "$w2" # writes the counts not yet audited
    rows=$(sqlite3 "$w2/antenna.db" "SELECT count(*), coalesce(sum(json_extract(details,'\$.failures')),0), coalesce(sum(json_extract(details,'\$.refused')),0) FROM audit WHERE action='auth.failed' AND json_extract(details,'\$.peer')='127.0.0.1'")
    IFS='|' read -r entries fails refused <<< "$rows"
    check "failed authentications aggregated: $entries auth.failed entr(ies) for $fails failures and $refused refusals" \
        test "$entries" -ge 1 -a "$entries" -le 2 -a "$fails" -eq "$n401" -a "$refused" -eq "$n429"
    check "the second antennad's audit chain verifies" q "$build/antennad" audit-verify --config "$w2/antennad.json"
else
    ko "second antennad did not start"
fi
antennad_stop "$w2"
