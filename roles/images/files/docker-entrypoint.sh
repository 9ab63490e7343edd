#!/usr/bin/env bash
# Entrypoint of the inventium/postgresql images
# (role inventium.logical_replication.images).
#
# First start (no $PGDATA/PG_VERSION): initdb with scram-sha-256; the password
# of the `postgres` superuser is read from $POSTGRES_PASSWORD_FILE (a mounted
# secret) or generated once and stored, mode 0600, in
# $POSTGRES_GENERATED_PASSWORD_FILE (in the data volume). It is never logged.
# Every start: make sure postgresql.conf listens on all addresses of the
# container and includes $POSTGRES_CONF_DIR, use $POSTGRES_HBA_FILE as hba_file
# when it exists, then exec the server as the postgres user, so that it is
# PID 1 and receives `docker stop`'s signal directly.
set -Eeuo pipefail

: "${PGDATA:?PGDATA must be set}"
POSTGRES_CONF_DIR="${POSTGRES_CONF_DIR:-/etc/postgresql/conf.d}"
POSTGRES_HBA_FILE="${POSTGRES_HBA_FILE:-/etc/postgresql/hba/pg_hba.conf}"
POSTGRES_GENERATED_PASSWORD_FILE="${POSTGRES_GENERATED_PASSWORD_FILE:-/var/lib/postgresql/postgres-password}"
POSTGRES_INITDB_ARGS="${POSTGRES_INITDB_ARGS:-}"
readonly MARKER='# --- inventium.logical_replication image settings ---'

log() { printf '%s [entrypoint] %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ "$(id -u)" == 0 ]]; then
    # `setpriv` (util-linux) switches user without forking, so `exec` keeps the
    # server as PID 1.
    as_postgres() { HOME=/var/lib/postgresql setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }
else
    as_postgres() { "$@"; }
fi

prepare_directories() {
    if [[ "$(id -u)" == 0 ]]; then
        mkdir -p "$PGDATA"
        if [[ "$(stat -c %U "$PGDATA")" != postgres ]]; then
            chown -R postgres:postgres "$PGDATA"
        fi
        chmod 0700 "$PGDATA"
        # `mkdir -p` may have created PGDATA's parent (/var/lib/postgresql/<major>)
        # as root: give it to postgres (pg_upgrade works next to PGDATA).
        local parent
        parent="$(dirname "$PGDATA")"
        [[ "$(stat -c %U "$parent")" == postgres ]] || chown postgres:postgres "$parent"
        install -d -o postgres -g postgres -m 2775 /var/run/postgresql
    else
        if ! { mkdir -p "$PGDATA" && chmod 0700 "$PGDATA"; }; then
            die "cannot create $PGDATA as uid $(id -u)"
        fi
    fi
}

# Prints the path of a temporary copy of the password, readable by postgres.
password_file_for_initdb() {
    local tmp
    tmp="$(mktemp /tmp/pwfile.XXXXXX)"
    if [[ -n "${POSTGRES_PASSWORD_FILE:-}" ]]; then
        [[ -r "$POSTGRES_PASSWORD_FILE" ]] || die "POSTGRES_PASSWORD_FILE=$POSTGRES_PASSWORD_FILE is not readable"
        [[ -s "$POSTGRES_PASSWORD_FILE" ]] || die "POSTGRES_PASSWORD_FILE=$POSTGRES_PASSWORD_FILE is empty"
        head -n 1 "$POSTGRES_PASSWORD_FILE" > "$tmp"
        log "superuser password: from POSTGRES_PASSWORD_FILE"
    else
        local file="$POSTGRES_GENERATED_PASSWORD_FILE"
        if [[ ! -s "$file" ]]; then
            mkdir -p "$(dirname "$file")"
            local password
            password="$(head -c 48 /dev/urandom | base64 -w 0 | tr -d '+/=')"
            (umask 077; printf '%s' "${password:0:32}" > "$file")
            unset password
            log "superuser password: generated, stored in $file (mode 0600)"
        else
            log "superuser password: reusing $file"
        fi
        [[ "$(id -u)" != 0 ]] || chown postgres:postgres "$file"
        chmod 0600 "$file"
        cat "$file" > "$tmp"
    fi
    [[ "$(id -u)" != 0 ]] || chown postgres:postgres "$tmp"
    chmod 0600 "$tmp"
    printf '%s' "$tmp"
}

initialize() {
    if [[ -n "$(ls -A "$PGDATA")" ]]; then
        die "$PGDATA is not empty but has no PG_VERSION; refusing to initialize over it"
    fi
    [[ -z "${POSTGRES_PASSWORD:-}" ]] \
        || die "POSTGRES_PASSWORD is not supported (it would show in 'docker inspect'); mount a file and set POSTGRES_PASSWORD_FILE"
    local pwfile
    pwfile="$(password_file_for_initdb)"
    trap 'rm -f "$pwfile"' EXIT
    log "initializing PostgreSQL ${PG_MAJOR:-} in $PGDATA"
    # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of words
    as_postgres initdb --pgdata="$PGDATA" --username=postgres --pwfile="$pwfile" \
        --auth-local=peer --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 $POSTGRES_INITDB_ARGS >&2
    rm -f "$pwfile"
    trap - EXIT
    # Local socket: peer (`docker exec -u postgres psql`); TCP: password for
    # every address (the container's ports are what the host publishes).
    cat > "$PGDATA/pg_hba.conf" <<'HBA'
# TYPE  DATABASE     USER  ADDRESS  METHOD
local   all          all            peer
local   replication  all            peer
host    all          all   all      scram-sha-256
host    replication  all   all      scram-sha-256
HBA
    [[ "$(id -u)" != 0 ]] || chown postgres:postgres "$PGDATA/pg_hba.conf"
}

ensure_settings() {
    local conf="$PGDATA/postgresql.conf"
    grep -qxF "$MARKER" "$conf" && return 0
    # Appended last, so files in the include_dir override initdb's settings;
    # ALTER SYSTEM (postgresql.auto.conf) still overrides both.
    cat >> "$conf" <<EOF

$MARKER
listen_addresses = '*'
include_dir = '$POSTGRES_CONF_DIR'
EOF
}

main() {
    prepare_directories
    [[ -s "$PGDATA/PG_VERSION" ]] || initialize
    [[ -d "$POSTGRES_CONF_DIR" ]] || die "configuration directory $POSTGRES_CONF_DIR does not exist"
    ensure_settings
    local -a extra=()
    if [[ -e "$POSTGRES_HBA_FILE" ]]; then
        as_postgres test -r "$POSTGRES_HBA_FILE" || die "$POSTGRES_HBA_FILE is not readable by the postgres user"
        extra+=(-c "hba_file=$POSTGRES_HBA_FILE")
        log "client authentication: $POSTGRES_HBA_FILE"
    fi
    log "starting PostgreSQL ${PG_MAJOR:-}"
    exec_postgres "${extra[@]}" "$@"
}

exec_postgres() {
    if [[ "$(id -u)" == 0 ]]; then
        export HOME=/var/lib/postgresql
        exec setpriv --reuid=postgres --regid=postgres --init-groups -- postgres -D "$PGDATA" "$@"
    fi
    exec postgres -D "$PGDATA" "$@"
}

# HEALTHCHECK: connect as the postgres user over the local socket (peer
# authentication), so that health probes do not log authentication failures.
if [[ "${1:-}" == healthcheck ]]; then
    as_postgres pg_isready --quiet --username=postgres --dbname=postgres
    exit $?
fi
# `docker run IMAGE -c work_mem=64MB` passes server options; any other command
# (`docker run -it IMAGE bash`) runs as is.
if [[ "${1:-}" == -* ]]; then
    set -- postgres "$@"
fi
if [[ "${1:-}" == postgres ]]; then
    shift
    main "$@"
fi
exec "$@"
