#!/usr/bin/env bash
# Makes sure a PostgreSQL server is ready for larkgate's store tests:
# listening on 127.0.0.1:5432, the `postgres` role accepted there without a
# password (trust), and a database named `test`. That is the tests' default
# URL, postgres://postgres@127.0.0.1:5432/test.
#
# Steps, each only if needed: install PostgreSQL (apt-get), start the
# cluster (pg_ctlcluster), add a trust rule for postgres@127.0.0.1 to
# pg_hba.conf, create the database. Needs root (or sudo) for the first three.
# Safe to run again: it changes nothing on a machine that is already ready.
set -euo pipefail

HOST=127.0.0.1
PORT=5432
DB=test

log() { printf 'ensure-postgres: %s\n' "$*" >&2; }

# Runs a command as root: directly, or through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Runs a command as the postgres OS user (peer auth over the Unix socket).
as_postgres() {
    if [ "$(id -un)" = postgres ]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        sudo -u postgres "$@"
    fi
}

listening() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$HOST" -p "$PORT"
    else
        (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
    fi
}

wait_until_listening() {
    for _ in $(seq 1 60); do
        if listening; then return 0; fi
        sleep 0.5
    done
    log "PostgreSQL did not start listening on $HOST:$PORT within 30 s"
    return 1
}

# The newest installed server version, from /etc/postgresql/<version>/main.
cluster_version() {
    ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1
}

install_postgres() {
    log "PostgreSQL is not installed; installing it with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y postgresql || {
        as_root apt-get update
        as_root apt-get install -y postgresql
    }
}

start_cluster() {
    local version
    version="$(cluster_version)"
    if [ -z "$version" ] || ! command -v pg_ctlcluster >/dev/null 2>&1; then
        install_postgres
        version="$(cluster_version)"
    fi
    if [ -z "$version" ]; then
        log "no cluster under /etc/postgresql after installing; cannot start PostgreSQL"
        exit 1
    fi
    log "starting cluster $version/main"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    wait_until_listening
}

# Whether postgres@127.0.0.1 gets in without a password.
trust_works() {
    PGPASSWORD='' psql -w -h "$HOST" -p "$PORT" -U postgres -d postgres -tAc 'SELECT 1' \
        >/dev/null 2>&1
}

enable_trust() {
    local hba
    hba="$(as_postgres psql -p "$PORT" -tAc 'SHOW hba_file' | tr -d '[:space:]')"
    if [ -z "$hba" ]; then
        log "cannot find pg_hba.conf; allow postgres@$HOST without a password by hand"
        exit 1
    fi
    log "adding a trust rule for postgres@$HOST to $hba"
    # First matching rule wins, so the rule goes on top.
    as_root sed -i "1i host all postgres $HOST/32 trust" "$hba"
    as_postgres psql -p "$PORT" -tAc 'SELECT pg_reload_conf()' >/dev/null
}

ensure_database() {
    local exists
    exists="$(psql -w -h "$HOST" -p "$PORT" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DB'")"
    if [ "$exists" != 1 ]; then
        log "creating database $DB"
        psql -w -h "$HOST" -p "$PORT" -U postgres -d postgres -qc "CREATE DATABASE $DB"
    fi
}

if ! listening; then
    start_cluster
fi
if ! trust_works; then
    enable_trust
    if ! trust_works; then
        log "postgres@$HOST:$PORT still asks for a password; check pg_hba.conf"
        exit 1
    fi
fi
ensure_database
log "ready: postgres://postgres@$HOST:$PORT/$DB"
