#!/bin/sh
# Every Lockstep container runs one `airflow` command: api-server, scheduler, dag-processor,
# triggerer, celery worker --queues ...; `sh -c ...` and `python ...` run as they are.
set -e
case "${1:-}" in
  sh|bash|python|python3|lockstep) exec "$@" ;;
  *) exec airflow "$@" ;;
esac
