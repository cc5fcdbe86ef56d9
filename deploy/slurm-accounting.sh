#!/usr/bin/env bash
# slurm-accounting.sh - Slurm's accounting of record for a private dev/test cluster: a MariaDB
# server and slurmdbd, living entirely in one folder, on free ports. Never touches /etc/mysql,
# /etc/slurm, the system's MariaDB or any process it did not start from that folder.
#
#   slurm-accounting.sh start DIR --conf-dir ETC --munge-socket SOCK [--db-port P] [--dbd-port P]
#       Starts MariaDB (data kept in DIR/db across restarts) and slurmdbd, whose slurmdbd.conf it
#       writes into ETC (slurmdbd reads it from the folder of $SLURM_CONF: ETC must hold the
#       cluster's slurm.conf). Waits until slurmdbd answers; prints exactly one line
#       "ACCOUNTING_PORT=P" (slurmdbd's port, for AccountingStoragePort) on stdout.
#   slurm-accounting.sh stop DIR     stops this folder's slurmdbd and MariaDB; idempotent.
#   slurm-accounting.sh status DIR   prints their pids; exit 0 iff both run.
#
# The cluster's slurm.conf then needs (deploy/slurm-cluster.sh writes them):
#   AccountingStorageType=accounting_storage/slurmdbd, AccountingStorageHost=localhost,
#   AccountingStoragePort=P, AccountingStoragePass=SOCK (the munge socket slurmdbd trusts: without
#   it, slurmctld and sacctmgr use the system munged's socket), AccountingStorageTRES=gres/gpu.
# Diagnostics go to stderr. Must run as root (MariaDB runs as the mysql account, slurmdbd as root).
set -euo pipefail

START_TIMEOUT=60
STOP_TIMEOUT=20
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=common.sh
. "$root/deploy/common.sh" # free_port, pid_alive

say() { echo "slurm-accounting: $*" >&2; }
die() {
    say "$*"
    exit 1
}
usage() {
    sed -n '6,13p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# stop_pid PIDFILE NAME: SIGTERM, then SIGKILL after STOP_TIMEOUT seconds.
stop_pid() {
    local pid i
    pid=$(pid_alive "$1" "$2") || return 0
    kill "$pid" 2> /dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 5; i++)); do
        pid_alive "$1" "$2" > /dev/null || return 0
        sleep 0.2
    done
    say "$2 (pid $pid) did not stop in ${STOP_TIMEOUT}s: killing it"
    kill -9 "$pid" 2> /dev/null || true
}

set_dirs() {
    DIR=$(realpath -m "$1")
    DB=$DIR/db
    RUN=$DIR/run
    LOG=$DIR/log
    SOCK=$RUN/mysqld.sock
}

cmd_stop() {
    stop_pid "$RUN/slurmdbd.pid" slurmdbd
    stop_pid "$RUN/mysqld.pid" mariadbd
}

cmd_status() {
    local rc=0 p f
    for f in "$RUN/mysqld.pid:mariadbd" "$RUN/slurmdbd.pid:slurmdbd"; do
        if p=$(pid_alive "${f%%:*}" "${f##*:}"); then
            echo "${f##*:} running (pid $p)"
        else
            echo "${f##*:} not running"
            rc=1
        fi
    done
    return $rc
}

# sql STATEMENTS: as MariaDB's root, over this folder's socket (unix_socket authentication).
sql() { mariadb --no-defaults --protocol=socket -S "$SOCK" -u root -e "$1"; }

cmd_start() {
    local etc="" munge="" db_port="" dbd_port=""
    while [ $# -gt 0 ]; do
        case $1 in
        --conf-dir) etc=${2:?}; shift 2 ;;
        --munge-socket) munge=${2:?}; shift 2 ;;
        --db-port) db_port=${2:?}; shift 2 ;;
        --dbd-port) dbd_port=${2:?}; shift 2 ;;
        *) usage ;;
        esac
    done
    [ -n "$etc" ] && [ -n "$munge" ] || usage
    [ "$(id -u)" -eq 0 ] || die "run as root (MariaDB runs as the mysql account)"
    command -v mariadbd > /dev/null && command -v slurmdbd > /dev/null ||
        die "mariadb-server or slurmdbd is not installed: run 'make deps' as root"
    getent passwd mysql > /dev/null || die "no mysql account: reinstall mariadb-server"
    [ -S "$munge" ] || die "no munge socket at $munge: start the cluster's munged first"
    [ -n "$db_port" ] || db_port=$(free_port)
    [ -n "$dbd_port" ] || dbd_port=$(free_port)
    while [ "$dbd_port" = "$db_port" ]; do dbd_port=$(free_port); done

    cmd_stop
    install -d -m 0755 "$DIR" "$LOG"
    install -d -m 0750 -o mysql -g mysql "$DB" "$RUN"
    chown mysql:mysql "$LOG"
    runuser -u mysql -- test -x "$DIR" ||
        die "the mysql account cannot reach $DIR: a parent folder is not searchable (use /tmp, /srv or /var/lib)"
    if [ ! -d "$DB/mysql" ]; then
        mariadb-install-db --no-defaults --user=mysql --datadir="$DB" \
            --auth-root-authentication-method=socket --skip-test-db > "$LOG/mariadb-install.log" 2>&1 ||
            die "mariadb-install-db failed: $(tail -n 3 "$LOG/mariadb-install.log" | tr '\n' ' ')"
    fi
    rm -f "$SOCK" "$RUN/mysqld.pid"
    # slurmdbd's own check asks for innodb_lock_wait_timeout=900 (and a bigger buffer pool than a
    # test needs: that warning stays in its log).
    setsid mariadbd --no-defaults --user=mysql --datadir="$DB" --socket="$SOCK" --port="$db_port" \
        --bind-address=127.0.0.1 --pid-file="$RUN/mysqld.pid" --log-error="$LOG/mariadb.log" \
        --skip-name-resolve --skip-log-bin --innodb-buffer-pool-size=128M \
        --innodb-lock-wait-timeout=900 --max-connections=100 < /dev/null > /dev/null 2>&1 &
    local deadline=$((SECONDS + START_TIMEOUT))
    until [ -S "$SOCK" ] && sql 'SELECT 1' > /dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] ||
            die "MariaDB did not come up on port $db_port: $(tail -n 3 "$LOG/mariadb.log" | tr '\n' ' ')"
        sleep 0.2
    done

    # A fresh password at every start, known only to this folder's slurmdbd.conf (0600, root).
    local pass
    pass=$(openssl rand -hex 16)
    sql "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
         ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" ||
        die "cannot create MariaDB's slurm user"
    umask 077
    cat > "$etc/slurmdbd.conf.tmp" << CONF
# Generated by deploy/slurm-accounting.sh for $DIR - rewritten at every start.
AuthType=auth/munge
AuthInfo=socket=$munge
DbdAddr=127.0.0.1
DbdHost=localhost
DbdPort=$dbd_port
SlurmUser=root
DebugLevel=info
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=$pass
StorageLoc=slurm_acct_db
CONF
    mv "$etc/slurmdbd.conf.tmp" "$etc/slurmdbd.conf"
    umask 022
    [ -e "$etc/slurm.conf" ] || die "$etc holds no slurm.conf (slurmdbd reads its config from that folder)"
    SLURM_CONF=$etc/slurm.conf slurmdbd >&2 2>&1 || die "slurmdbd did not start: $(tail -n 3 "$LOG/slurmdbd.log" | tr '\n' ' ')"
    deadline=$((SECONDS + START_TIMEOUT))
    until ss -Hltn "sport = :$dbd_port" 2> /dev/null | grep -q .; do
        pid_alive "$RUN/slurmdbd.pid" slurmdbd > /dev/null || [ $SECONDS -lt $((deadline - START_TIMEOUT + 5)) ] ||
            die "slurmdbd exited: $(tail -n 3 "$LOG/slurmdbd.log" | tr '\n' ' ')"
        [ $SECONDS -lt $deadline ] || die "slurmdbd does not listen on port $dbd_port after ${START_TIMEOUT}s"
        sleep 0.2
    done
    say "slurmdbd up in $DIR (MariaDB port $db_port, slurmdbd port $dbd_port)"
    echo "ACCOUNTING_PORT=$dbd_port"
}

[ $# -ge 2 ] || usage
cmd=$1
set_dirs "$2"
shift 2
case $cmd in
start) cmd_start "$@" ;;
stop) cmd_stop ;;
status) cmd_status ;;
*) usage ;;
esac
