#!/bin/sh
# Entrypoint of the lakehouse image (docker/Dockerfile).
#   Secrets first: each file /run/secrets/NAME (compose's `secrets:`, with `target: NAME`) becomes the environment
#   variable NAME of this process and of what it starts, so no secret is part of the container's configuration
#   (`docker inspect`) or of the image. A NAME set both ways is refused.
#   worker            create the process work pool $PREFECT_WORK_POOL if it does not exist, then run a
#                     process worker on it with its health endpoint (:8080/health) on
#   anything else     run it as given (e.g. `python -m deployments register`, `python -m flows.bronze`)
set -eu

secrets_dir="${LAKEHOUSE_SECRETS_DIR:-/run/secrets}"
if [ -d "$secrets_dir" ]; then
    for file in "$secrets_dir"/*; do
        [ -f "$file" ] || continue
        name=$(basename "$file")
        case "$name" in
            [!A-Za-z_]* | *[!A-Za-z0-9_]*)
                echo "lakehouse-entrypoint: $file: not an environment variable name, ignored" >&2
                continue
                ;;
        esac
        if eval "[ -n \"\${$name+set}\" ]"; then
            echo "lakehouse-entrypoint: $name is set both in the environment and in $file; keep one" >&2
            exit 2
        fi
        value=$(cat "$file")
        export "$name=$value"
    done
fi

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
