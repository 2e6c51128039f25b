#!/bin/sh
# Entrypoint of the lakehouse image (docker/Dockerfile).
#   worker            create the process work pool $PREFECT_WORK_POOL if it does not exist, then run a
#                     process worker on it with its health endpoint (:8080/health) on
#   anything else     run it as given (e.g. `python -m deployments register`, `python -m flows.bronze`)
set -eu

if [ "$#" -eq 0 ] || [ "$1" != "worker" ]; then
    exec "$@"
fi
shift

: "${PREFECT_API_URL:?PREFECT_API_URL is not set: the worker needs the Prefect server}"
pool="${PREFECT_WORK_POOL:?PREFECT_WORK_POOL is not set}"

# `prefect worker start` would create a missing pool too; creating it first makes the pool's existence
# independent of the worker's own start-up and gives deployments a pool to target right away. Two workers
# starting together may both try: the loser's create fails, and the inspect after it must then succeed.
if ! prefect work-pool inspect "$pool" >/dev/null 2>&1; then
    prefect work-pool create "$pool" --type process || prefect work-pool inspect "$pool" >/dev/null
fi

set -- prefect worker start --pool "$pool" --type process --with-healthcheck \
    --name "${PREFECT_WORKER_NAME:-${HOSTNAME:-lakehouse-worker}}" "$@"
if [ -n "${PREFECT_WORKER_LIMIT:-}" ]; then
    set -- "$@" --limit "$PREFECT_WORKER_LIMIT"
fi
exec "$@"
