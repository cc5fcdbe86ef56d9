# t_console.sh - the web console (/ui) on the integration run's antennad, in a real browser:
# Debian's chromium headless, driven by playwright-core (tests/browser/console.test.js), signed in
# as a user, a manager, staff and an auditor. Sourced by run.sh (uses its helpers and tokens);
# screenshots go to $build/console/. Never needs the internet.
echo "== web console at /ui (chromium headless)"
ui_head() { curl -sS --cacert "$ANTENNA_CA" -o /dev/null -D - "$@" "$ANTENNA_URL$1" 2> /dev/null | tr -d '\r'; }
h=$(ui_head /ui/)
ui_has() { grep -qi -- "$1" <<<"$2"; } # ui_has REGEX HEADERS
check "/ui/ is served without a token (200)" ui_has '^HTTP/1.1 200' "$h"
check "/ui/ is text/html" ui_has '^Content-Type: text/html' "$h"
check "/ui/ carries the Content-Security-Policy" ui_has "^Content-Security-Policy: default-src 'self'.*frame-ancestors 'none'" "$h"
hj=$(ui_head /ui/app.js)
check "/ui/app.js is text/javascript" ui_has '^Content-Type: text/javascript' "$hj"
check "/ui/app.js says nosniff" ui_has '^X-Content-Type-Options: nosniff' "$hj"
etag=$(sed -n 's/^[Ee][Tt][Aa][Gg]: *//p' <<<"$h")
code=$(curl -sS --cacert "$ANTENNA_CA" -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$ANTENNA_URL/ui/")
check "/ui/ revalidates with its ETag (304)" test -n "$etag" -a "$code" = 304
expect_api "an unknown console file is 404" 404 not_found "" GET /ui/nope.js
expect_api "a path out of /ui is refused" 400 invalid_value "" GET /ui/vendor/../../Makefile --path-as-is
expect_api "the console's files are read-only (405)" 405 method_not_allowed "" POST /ui/app.js
me=$(api "$alice" GET /v1/me)
check "GET /v1/me names the token's user and role" ui_has '^200 .*"name":"alice".*"role":"user"' "$me"

console_user() { # NAME ROLE: makes a ulb user of that role (as admin) and prints a token for it
    api "$admin" POST /v1/users -H 'Content-Type: application/json' \
        -d "{\"name\":\"$1\",\"partner\":\"ulb\",\"unix_user\":\"antenna-it\",\"category\":\"institution\",\"role\":\"$2\"}" > /dev/null
    antenna token create --user "$1" --label console
}
tok_manager=$(console_user cmanager manager)
tok_staff=$(console_user cstaff staff)
tok_auditor=$(console_user cauditor auditor)
check "manager, staff and auditor tokens made" test "${#tok_manager}" -eq 68 -a "${#tok_staff}" -eq 68 -a "${#tok_auditor}" -eq 68
# A running 4-GPU job (ulb's cap) and a 1-GPU one waiting behind it, for the live view.
printf '#!/bin/bash\n#SBATCH --gres=gpu:h100:4\n#SBATCH --time=00:10:00\necho console-live\nsleep 300\n' > "$work/console-live.sh"
printf '#!/bin/bash\n#SBATCH --gres=gpu:h100:1\n#SBATCH --time=00:05:00\nsleep 1\n' > "$work/console-wait.sh"
live=$(as "$alice" submit --job-name console-live "$work/console-live.sh" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p')
check "the console's live job runs" wait_state "$alice" "$live" running 60
cwait=$(as "$alice" submit --job-name console-wait "$work/console-wait.sh" | sed -n 's/^Submitted job \([0-9]*\).*/\1/p')
sleep 2
check "the console's second job waits (PartnerGpuLimit)" test "$(job_field "$alice" "$cwait" reason)" = PartnerGpuLimit
done_job=$(ledger "SELECT id FROM jobs WHERE name='it-train' AND state='completed' LIMIT 1")
if [ ! -x /usr/bin/chromium ]; then
    ko "chromium is installed (make deps installs it)"
elif [ ! -d "$root/tests/browser/node_modules/playwright-core" ]; then
    ko "playwright-core is installed (make browser-deps)"
else
    rm -rf "$build/console"
    ANTENNA_URL=$ANTENNA_URL TOKEN_USER=$alice TOKEN_MANAGER=$tok_manager TOKEN_STAFF=$tok_staff \
        TOKEN_AUDITOR=$tok_auditor LIVE_JOB=$live WAIT_JOB=$cwait DONE_JOB=$done_job DONE_TEXT="training done" \
        STAFF_NAME=cstaff SHOTS="$build/console" \
        timeout 300 node "$root/tests/browser/console.test.js" > "$work/browser.out" 2>&1
    brc=$?
    while IFS= read -r line; do
        case "$line" in
        "ok "*) ok "console: ${line#ok }" ;;
        "ko "*) ko "console: ${line#ko }" ;;
        esac
    done < "$work/browser.out"
    check "the browser run ended cleanly (exit $brc)" test "$brc" -eq 0
    [ "$brc" -eq 0 ] || tail -20 "$work/browser.out"
    check "screenshots at laptop and phone sizes in $build/console" \
        test -s "$build/console/staff-quotas-laptop.png" -a -s "$build/console/staff-quotas-phone.png"
fi
as "$alice" cancel "$live" > /dev/null 2>&1
as "$alice" cancel "$cwait" > /dev/null 2>&1
wait_state "$alice" "$live" cancelled 60 > /dev/null
