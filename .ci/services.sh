# shellcheck shell=bash
# Throwaway PostgreSQL and Redis servers for CI, benchmarks and local trials.
#
# Source this file, then:
#     trap stop_services EXIT
#     start_postgres   # exports DATABASE_URL=postgres://postgres@127.0.0.1:PORT/streamdash
#     start_redis      # exports REDIS_URL=redis://127.0.0.1:PORT/0
#
# Both servers listen on 127.0.0.1 only, on a free port, with all state in a fresh temp
# directory that stop_services removes. PostgreSQL keeps fsync and synchronous_commit ON.
# Every function returns non-zero (with a message on stderr) instead of exiting, so it is
# safe under `set -euo pipefail` and in interactive shells alike.

# Seconds to wait for a server to accept connections.
: "${SD_SERVICE_TIMEOUT:=60}"

_SD_PG_DIR="${_SD_PG_DIR:-}"
_SD_PG_BINDIR="${_SD_PG_BINDIR:-}"
_SD_PG_PORT="${_SD_PG_PORT:-}"
_SD_REDIS_DIR="${_SD_REDIS_DIR:-}"
_SD_REDIS_PORT="${_SD_REDIS_PORT:-}"

_sd_log() { printf 'services: %s\n' "$*" >&2; }
_sd_err() { printf 'services: ERROR: %s\n' "$*" >&2; }

# free_port: print a TCP port on 127.0.0.1 that is free right now.
free_port() {
    local py
    py="$(command -v python3 || command -v python || true)"
    if [[ -z "$py" ]]; then
        _sd_err "free_port needs python3"
        return 1
    fi
    "$py" -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Directory holding initdb/pg_ctl/postgres of one PostgreSQL version (prefers the initdb on PATH).
_sd_pg_bindir() {
    local initdb_path
    initdb_path="$(command -v initdb 2>/dev/null || true)"
    if [[ -n "$initdb_path" ]]; then
        dirname "$(readlink -f "$initdb_path")"
        return 0
    fi
    local d
    # shellcheck disable=SC2012
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [[ -n "$d" && -x "$d/initdb" ]]; then
        printf '%s\n' "$d"
        return 0
    fi
    return 1
}

# Run a command as the postgres user when we are root (initdb refuses to run as root).
_sd_as_postgres() {
    if [[ "$(id -u)" -eq 0 ]]; then
        if command -v runuser >/dev/null 2>&1; then
            runuser -u postgres -- "$@"
        else
            local q
            printf -v q '%q ' "$@"
            su -s /bin/sh postgres -c "$q"
        fi
    else
        "$@"
    fi
}

_sd_ensure_postgres_user() {
    [[ "$(id -u)" -eq 0 ]] || return 0
    if ! id -u postgres >/dev/null 2>&1; then
        _sd_log "creating system user 'postgres'"
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin postgres || {
            _sd_err "could not create the 'postgres' user"
            return 1
        }
    fi
}

_sd_pg_log_tail() {
    if [[ -n "$_SD_PG_DIR" && -f "$_SD_PG_DIR/postgres.log" ]]; then
        _sd_err "last lines of $_SD_PG_DIR/postgres.log:"
        tail -n 30 "$_SD_PG_DIR/postgres.log" >&2 || true
    fi
}

# start_postgres: initdb + start a private PostgreSQL, create database `streamdash`,
# export DATABASE_URL. Retries on another port if the chosen one was grabbed meanwhile.
start_postgres() {
    if [[ -n "$_SD_PG_DIR" ]]; then
        _sd_err "start_postgres: already running (data in $_SD_PG_DIR); call stop_services first"
        return 1
    fi
    local bindir
    if ! bindir="$(_sd_pg_bindir)"; then
        _sd_err "PostgreSQL server binaries not found (no initdb on PATH or in /usr/lib/postgresql/*/bin)"
        return 1
    fi
    _sd_ensure_postgres_user || return 1

    local dir
    dir="$(mktemp -d /tmp/streamdash-pg.XXXXXX)" || {
        _sd_err "mktemp failed"
        return 1
    }
    _SD_PG_DIR="$dir"
    _SD_PG_BINDIR="$bindir"
    mkdir -p "$dir/data" "$dir/sock"
    if [[ "$(id -u)" -eq 0 ]]; then
        chown -R postgres: "$dir"
    fi
    chmod 700 "$dir" "$dir/data"

    _sd_log "initdb ($("$bindir/postgres" --version 2>/dev/null || echo postgres)) in $dir/data"
    if ! _sd_as_postgres "$bindir/initdb" -D "$dir/data" -U postgres \
        --auth-local=trust --auth-host=trust --encoding=UTF8 --no-locale \
        >"$dir/initdb.log" 2>&1; then
        _sd_err "initdb failed:"
        cat "$dir/initdb.log" >&2 || true
        stop_postgres
        return 1
    fi

    local attempt port started=0
    for attempt in 1 2 3; do
        port="$(free_port)" || {
            stop_postgres
            return 1
        }
        # Later settings win: rewrite our block each attempt via postgresql.auto.conf.
        # fsync / synchronous_commit / full_page_writes are stated explicitly: durability is
        # part of what CI checks, so never turn them off here.
        cat >"$dir/data/postgresql.auto.conf" <<EOF
# written by .ci/services.sh
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/sock'
fsync = on
synchronous_commit = on
full_page_writes = on
max_connections = 200
EOF
        [[ "$(id -u)" -eq 0 ]] && chown postgres: "$dir/data/postgresql.auto.conf"
        _sd_log "starting PostgreSQL on 127.0.0.1:$port (attempt $attempt)"
        if _sd_as_postgres "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" \
            -w -t "$SD_SERVICE_TIMEOUT" start >"$dir/pg_ctl.log" 2>&1; then
            started=1
            break
        fi
        _sd_err "pg_ctl start failed on port $port:"
        cat "$dir/pg_ctl.log" >&2 || true
        _sd_pg_log_tail
        # Make sure nothing half-started lingers before retrying.
        _sd_as_postgres "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    done
    if [[ "$started" -ne 1 ]]; then
        _sd_err "could not start PostgreSQL"
        stop_postgres
        return 1
    fi
    _SD_PG_PORT="$port"

    local isready deadline
    isready="$(command -v pg_isready || true)"
    [[ -z "$isready" && -x "$bindir/pg_isready" ]] && isready="$bindir/pg_isready"
    deadline=$((SECONDS + SD_SERVICE_TIMEOUT))
    until "$isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 2; do
        if ((SECONDS >= deadline)); then
            _sd_err "PostgreSQL did not accept connections on 127.0.0.1:$port within ${SD_SERVICE_TIMEOUT}s"
            _sd_pg_log_tail
            stop_postgres
            return 1
        fi
        sleep 0.2
    done

    if ! "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres streamdash 2>"$dir/createdb.log"; then
        _sd_err "createdb streamdash failed:"
        cat "$dir/createdb.log" >&2 || true
        stop_postgres
        return 1
    fi

    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/streamdash"
    _sd_log "PostgreSQL ready: DATABASE_URL=$DATABASE_URL"
}

# stop_postgres: stop the server started by start_postgres and delete its directory.
stop_postgres() {
    [[ -n "$_SD_PG_DIR" ]] || return 0
    local dir="$_SD_PG_DIR" bindir="$_SD_PG_BINDIR"
    if [[ -f "$dir/data/postmaster.pid" && -n "$bindir" ]]; then
        if ! _sd_as_postgres "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1; then
            _sd_err "pg_ctl stop (fast) failed; forcing immediate shutdown"
            _sd_as_postgres "$bindir/pg_ctl" -D "$dir/data" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
        fi
    fi
    rm -rf -- "$dir"
    if [[ "${DATABASE_URL:-}" == "postgres://postgres@127.0.0.1:${_SD_PG_PORT}/streamdash" ]]; then
        unset DATABASE_URL
    fi
    _SD_PG_DIR=""
    _SD_PG_BINDIR=""
    _SD_PG_PORT=""
}

_sd_redis_ping() {
    # redis-cli ships with redis-server (redis-tools); fall back to a raw socket just in case.
    if command -v redis-cli >/dev/null 2>&1; then
        [[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == "PONG" ]]
    else
        python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as s:
    s.sendall(b"PING\r\n")
    sys.exit(0 if s.recv(64).startswith(b"+PONG") else 1)
EOF
    fi
}

_sd_redis_log_tail() {
    if [[ -n "$_SD_REDIS_DIR" && -f "$_SD_REDIS_DIR/redis.log" ]]; then
        _sd_err "last lines of $_SD_REDIS_DIR/redis.log:"
        tail -n 20 "$_SD_REDIS_DIR/redis.log" >&2 || true
    fi
}

# start_redis: a daemonized redis-server without persistence; exports REDIS_URL.
start_redis() {
    if [[ -n "$_SD_REDIS_DIR" ]]; then
        _sd_err "start_redis: already running (in $_SD_REDIS_DIR); call stop_services first"
        return 1
    fi
    if ! command -v redis-server >/dev/null 2>&1; then
        _sd_err "redis-server not found (apt-get install redis-server)"
        return 1
    fi
    local dir
    dir="$(mktemp -d /tmp/streamdash-redis.XXXXXX)" || {
        _sd_err "mktemp failed"
        return 1
    }
    _SD_REDIS_DIR="$dir"

    local attempt port deadline ok=0
    for attempt in 1 2 3; do
        port="$(free_port)" || {
            stop_redis
            return 1
        }
        _sd_log "starting redis-server on 127.0.0.1:$port (attempt $attempt)"
        rm -f "$dir/redis.pid"
        if ! redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes \
            --save '' --appendonly no --dir "$dir" \
            --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
            >"$dir/start.log" 2>&1; then
            _sd_err "redis-server failed to start:"
            cat "$dir/start.log" >&2 || true
            _sd_redis_log_tail
            continue
        fi
        local t0=$SECONDS pid
        deadline=$((SECONDS + SD_SERVICE_TIMEOUT))
        while ! _sd_redis_ping "$port"; do
            if ((SECONDS >= deadline)); then
                _sd_err "redis did not answer PING on 127.0.0.1:$port within ${SD_SERVICE_TIMEOUT}s"
                break
            fi
            # The daemonized server died (e.g. port taken meanwhile) or never wrote its
            # pidfile: stop waiting and retry on another port.
            pid="$(cat "$dir/redis.pid" 2>/dev/null || true)"
            if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
                _sd_err "redis-server (pid $pid) exited during startup"
                break
            fi
            if [[ -z "$pid" ]] && ((SECONDS - t0 >= 10)); then
                _sd_err "redis-server wrote no pidfile within 10s"
                break
            fi
            sleep 0.1
        done
        if _sd_redis_ping "$port"; then
            ok=1
            break
        fi
        _sd_redis_log_tail
        _SD_REDIS_PORT="$port"
        _sd_redis_kill
    done
    if [[ "$ok" -ne 1 ]]; then
        _sd_err "could not start redis-server"
        stop_redis
        return 1
    fi
    _SD_REDIS_PORT="$port"
    export REDIS_URL="redis://127.0.0.1:$port/0"
    _sd_log "Redis ready: REDIS_URL=$REDIS_URL"
}

_sd_redis_kill() {
    local dir="$_SD_REDIS_DIR" pid=""
    [[ -n "$dir" && -f "$dir/redis.pid" ]] && pid="$(cat "$dir/redis.pid" 2>/dev/null || true)"
    if [[ -n "$_SD_REDIS_PORT" ]] && command -v redis-cli >/dev/null 2>&1; then
        redis-cli -h 127.0.0.1 -p "$_SD_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    fi
    if [[ -n "$pid" ]]; then
        kill "$pid" 2>/dev/null || true
        local i
        for i in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
}

# stop_redis: stop the server started by start_redis and delete its directory.
stop_redis() {
    [[ -n "$_SD_REDIS_DIR" ]] || return 0
    _sd_redis_kill
    rm -rf -- "$_SD_REDIS_DIR"
    if [[ "${REDIS_URL:-}" == "redis://127.0.0.1:${_SD_REDIS_PORT}/0" ]]; then
        unset REDIS_URL
    fi
    _SD_REDIS_DIR=""
    _SD_REDIS_PORT=""
}

# stop_services: idempotent cleanup of everything started above; preserves the caller's
# exit status so it can be used directly as `trap stop_services EXIT`.
stop_services() {
    local rc=$?
    stop_redis || true
    stop_postgres || true
    return "$rc"
}
