# common.sh - shell helpers shared by the deploy scripts and the test runners (sourced, not run).
# Starts and stops one antennad in a private folder; never touches a system-wide installation.

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on, below the kernel's
# ephemeral range (outgoing connections take ports from that range, and one of them could take
# ours between this check and the daemon's bind).
free_port() {
    local p lo=20000 hi
    hi=$(awk '{ print $1 - 1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
    [ -n "$hi" ] && [ "$hi" -gt $((lo + 1000)) ] || hi=32767
    for _ in $(seq 1 200); do
        p=$(( lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1) ))
        if ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then echo "$p"; return 0; fi
    done
    echo "no free port found" >&2; return 1
}

# antennad_write_config DIR PORT SLURM_CONF: writes DIR/antennad.json for a private broker. Test
# brokers are driven hard from one address with few tokens: no per-token rate limit and a high
# failed-authentication limit unless ANTENNA_TOKEN_RATE / ANTENNA_AUTH_FAILURES say otherwise.
antennad_write_config() {
    local dir=$1 port=$2 slurm_conf=$3
    mkdir -p "$dir/spool"
    cat > "$dir/antennad.json" <<JSON
{
  "listen_host": "127.0.0.1",
  "listen_port": $port,
  "tls_cert": "$dir/tls/server.pem",
  "tls_key": "$dir/tls/server.key",
  "database": "$dir/antenna.db",
  "spool_dir": "$dir/spool",
  "audit_key_file": "$dir/audit.key",
  "audit_head_file": "$dir/audit.head",
  "slurm_conf": "$slurm_conf",
  "partition": "gpu",
  "poll_interval_ms": ${ANTENNA_POLL_MS:-500},
  "log_level": "${ANTENNA_LOG_LEVEL:-info}",
  "gpu_types": ["h100"],
  "max_gpus": 8,
  "max_cpus": 32,
  "node_gpus": 8,
  "node_cpus": 32,
  "max_time_minutes": 1440,
  "token_rate_per_second": ${ANTENNA_TOKEN_RATE:-0},
  "auth_failures_per_minute": ${ANTENNA_AUTH_FAILURES:-1000}
}
JSON
}

# antennad_start BIN DIR: starts BIN serve in the background (pid in DIR/antennad.pid, log in
# DIR/antennad.log) and waits until /healthz answers. Returns non-zero (and shows the log) if not.
antennad_start() {
    local bin=$1 dir=$2 port
    port=$(sed -n 's/.*"listen_port": *\([0-9]*\).*/\1/p' "$dir/antennad.json")
    setsid "$bin" serve --config "$dir/antennad.json" >> "$dir/antennad.log" 2>&1 < /dev/null &
    echo $! > "$dir/antennad.pid"
    disown $! 2>/dev/null || true
    for _ in $(seq 1 100); do
        if curl -fsS --cacert "$dir/tls/ca.pem" "https://127.0.0.1:$port/healthz" > /dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$(cat "$dir/antennad.pid")" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "antennad did not start; its log:" >&2
    tail -20 "$dir/antennad.log" >&2
    return 1
}

# antennad_stop DIR [SIGNAL]: stops the antennad of DIR (TERM by default) and waits for it.
antennad_stop() {
    local dir=$1 sig=${2:-TERM} pid
    [ -f "$dir/antennad.pid" ] || return 0
    pid=$(cat "$dir/antennad.pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill -s "$sig" "$pid" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$dir/antennad.pid"
}

# antennad_running DIR: true when the antennad of DIR is alive.
antennad_running() {
    [ -f "$1/antennad.pid" ] && kill -0 "$(cat "$1/antennad.pid")" 2>/dev/null
}

# pid_alive PIDFILE NAME: prints the pid recorded in PIDFILE if that process runs and is NAME (a
# zombie is as good as gone: it waits to be reaped; a pid file removed meanwhile is no message).
pid_alive() {
    local pidfile=$1 name=$2 pid comm state
    [ -r "$pidfile" ] || return 1
    pid=$(tr -dc '0-9' 2>/dev/null <"$pidfile")
    [ -n "$pid" ] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [ "$comm" = "$name" ] || return 1
    state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "$state" != Z ] || return 1
    printf '%s\n' "$pid"
}
