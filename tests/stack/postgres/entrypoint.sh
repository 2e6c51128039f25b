#!/bin/sh
# First start: initdb with POSTGRES_USER as superuser and its password (POSTGRES_PASSWORD or the file
# POSTGRES_PASSWORD_FILE names), TCP with scram-sha-256 from anywhere, then CREATE DATABASE POSTGRES_DB.
# Every start: exec the server in the foreground.
set -eu
: "${POSTGRES_USER:?POSTGRES_USER is not set}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
if [ -z "${POSTGRES_PASSWORD:-}" ] && [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE")
fi
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) is not set}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    if [ "$POSTGRES_DB" != "postgres" ]; then
        pg_ctl --pgdata="$PGDATA" --options="-c listen_addresses=''" --wait --silent start
        # psql interpolates :"db" (a quoted identifier) in its input, not in --command.
        echo 'CREATE DATABASE :"db";' | psql -v ON_ERROR_STOP=1 --quiet --username="$POSTGRES_USER" \
            --dbname=postgres --set=db="$POSTGRES_DB"
        pg_ctl --pgdata="$PGDATA" --mode=fast --wait --silent stop
    fi
    echo "postgres-standin: initialized $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
fi
exec "$@" -D "$PGDATA"
