#!/bin/sh
# The official postgres image's start-up, the part SynergyChat's manifests rely on
# (postgres.Containerfile): on an empty PGDATA, initdb with POSTGRES_USER and
# POSTGRES_PASSWORD, password logins (scram-sha-256) from any address, POSTGRES_DB
# created; then the server in the foreground, listening on every address.
set -eu

# "-c name=value ..." alone means the server with those options, as in the official image.
if [ "${1#-}" != "${1:-}" ]; then
    set -- postgres "$@"
fi
if [ "${1:-}" != postgres ]; then
    exec "$@"
fi
shift

PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA
user=${POSTGRES_USER:-postgres}
database=${POSTGRES_DB:-$user}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "postgres-entrypoint: POSTGRES_PASSWORD is not set: no database is created without a password" >&2
        exit 1
    fi
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    password_file=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$password_file"
    initdb --username="$user" --pwfile="$password_file" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$password_file"
    # initdb allows only 127.0.0.1 and ::1 over TCP; the clients are other pods.
    printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
    if [ "$database" != postgres ]; then
        printf 'CREATE DATABASE "%s"\n' "$database" | postgres --single -D "$PGDATA" postgres >/dev/null
    fi
    echo "postgres-entrypoint: created the database cluster in $PGDATA (user $user, database $database)"
fi

exec postgres -c listen_addresses='*' "$@"
