#!/bin/sh
# Every Lockstep container runs one `airflow` command: api-server, scheduler, dag-processor,
# triggerer, celery worker --queues ...; `sh -c ...` and `python ...` run as they are.
#
# Secrets come in files (compose's `secrets:` under /run/secrets, the role's S3 key under
# /run/lockstep/s3), never in the environment compose shows: each LOCKSTEP_<NAME>_FILE=path
# is exported here as LOCKSTEP_<NAME> (Docker's _FILE convention) for the process started.
# Airflow reads its own secrets through its _CMD variables (docker/compose.yaml).
set -e
for var in $(env | sed -n 's/^\(LOCKSTEP_[A-Z0-9_]*\)_FILE=.*/\1/p'); do
  eval "file=\${${var}_FILE}"
  if [ ! -r "$file" ]; then
    echo "entrypoint: ${var}_FILE=$file is not a readable file" >&2
    exit 1
  fi
  export "$var=$(cat "$file")"
done
case "${1:-}" in
  sh|bash|python|python3|lockstep) exec "$@" ;;
  *) exec airflow "$@" ;;
esac
