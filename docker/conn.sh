#!/bin/sh
# Prints a connection URL holding the metadata DB's password from its secret file, for
# Airflow's _CMD variables (the password never sits in the environment):
#   conn.sh sql       postgresql+psycopg2://airflow:…@postgres:5432/airflow   ([database] sql_alchemy_conn)
#   conn.sh celery    db+postgresql://airflow:…@postgres:5432/airflow         ([celery] result_backend)
set -eu
pw=$(cat "${POSTGRES_PASSWORD_FILE:-/run/secrets/postgres_password}")
host=${POSTGRES_HOST:-postgres}
case "${1:-}" in
  sql) printf 'postgresql+psycopg2://airflow:%s@%s:5432/airflow' "$pw" "$host" ;;
  celery) printf 'db+postgresql://airflow:%s@%s:5432/airflow' "$pw" "$host" ;;
  *) echo "usage: conn.sh sql|celery" >&2; exit 2 ;;
esac
