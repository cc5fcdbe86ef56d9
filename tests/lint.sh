#!/usr/bin/env bash
# lint.sh - checks the architecture rules that the compiler cannot:
#  - only the registry (and the store itself) writes the store: no other file of antennad calls
#    a store_* write function or the audit trail's appenders;
#  - only slurm_adapter.c includes Slurm headers, only store.c includes sqlite3.h;
#  - policies/ includes no libuv, Slurm, SQLite or OpenSSL header.
set -u
cd "$(dirname "$0")/.."
bad=0
writes='store_(partner_insert|partner_update|user_insert|user_update|quota_set|token_insert|token_insert_until|token_revoke|job_insert|job_reason_set|job_dispatch_begin|job_transition|job_set_dispatched|job_update|job_extra_set|job_cancel_request|audit_append|idem_put|idem_prune|batch_begin|batch_commit|change_begin|probe|job_adjust|job_array_insert|dependency_insert|job_run_end)\(|audit_(log|logf|append)\('
for f in scheduler/*.c client/*.c; do
    case "$f" in scheduler/store.c | scheduler/registry.c | scheduler/audit.c) continue ;; esac
    if grep -nE "$writes" "$f"; then echo "lint: $f writes the store or the audit trail: only scheduler/registry.c may"; bad=1; fi
done
for f in scheduler/*.[ch] client/*.[ch] policies/*.[ch]; do
    [ "$f" = scheduler/slurm_adapter.c ] || ! grep -q '#include <slurm/' "$f" || { echo "lint: $f includes a Slurm header"; bad=1; }
    [ "$f" = scheduler/store.c ] || ! grep -q '#include <sqlite3.h>' "$f" || { echo "lint: $f includes sqlite3.h"; bad=1; }
done
if grep -lE '#include <(uv|slurm/|sqlite3|openssl/)' policies/*.[ch]; then echo "lint: policies/ includes an I/O library header"; bad=1; fi
[ $bad -eq 0 ] && echo "  lint ok"
exit $bad
