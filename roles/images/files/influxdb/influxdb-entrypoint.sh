#!/usr/bin/env bash
# Entrypoint of the inventium/influxdb:1.6 image
# (role inventium.logical_replication.images): makes sure the data volume
# belongs to the influxdb user, then execs influxd as that user (PID 1, so
# `docker stop` reaches it directly). `docker run IMAGE -opt` passes options to
# influxd; any other command runs as is.
set -Eeuo pipefail

readonly DATA=/var/lib/influxdb
readonly CONFIG="${INFLUXDB_CONFIG_PATH:-/etc/influxdb/influxdb.conf}"

if [[ "${1:-}" == -* ]]; then
    set -- influxd "$@"
fi
if [[ "${1:-}" == influxd ]]; then
    shift
    if [[ "$(id -u)" == 0 ]]; then
        mkdir -p "$DATA"
        if [[ "$(stat -c %U "$DATA")" != influxdb ]]; then
            chown -R influxdb:influxdb "$DATA"
        fi
        chmod 0750 "$DATA"
        export HOME="$DATA"
        exec setpriv --reuid=influxdb --regid=influxdb --init-groups -- influxd -config "$CONFIG" "$@"
    fi
    exec influxd -config "$CONFIG" "$@"
fi
exec "$@"
