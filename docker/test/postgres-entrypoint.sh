#!/bin/sh
set -eu
PGDATA=${PGDATA:-/var/lib/postgresql/data}
# as the official image: POSTGRES_PASSWORD_FILE (a Docker secret) instead of POSTGRES_PASSWORD
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE"); fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pw=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pw"
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pw" --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256
  rm -f "$pw"
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start
  db=${POSTGRES_DB:-$POSTGRES_USER}
  if [ "$db" != "postgres" ]; then
    createdb -U "$POSTGRES_USER" "$db"
  fi
  pg_ctl -D "$PGDATA" -w stop
fi
exec postgres -D "$PGDATA" -c listen_addresses='*'
