#!/bin/sh
# One-shot MinIO setup for the local stack (the minio-init service runs it in the MinIO server image, which
# ships mc). Idempotent: safe on every `docker compose up`.
#   - buckets bronze, silver and airbyte-logs;
#   - the lake's own access key (LAKE_S3_ACCESS_KEY_ID / LAKE_S3_SECRET_ACCESS_KEY), a MinIO user with the
#     built-in "readwrite" policy, so the worker and Airbyte never hold the root credentials.
# The two secrets come from the files MINIO_ROOT_PASSWORD_FILE and LAKE_S3_SECRET_ACCESS_KEY_FILE name (compose's
# secrets), or from the variables themselves. Only POSIX sh and mc are used (no grep, curl or jq needed).
set -eu

# secret NAME: the value of NAME, else the content of the file $NAME_FILE names.
secret() {
    eval "value=\${$1:-} file=\${$1_FILE:-}"
    if [ -z "$value" ] && [ -n "$file" ]; then
        if [ ! -r "$file" ]; then
            echo "minio-init: $1_FILE=$file cannot be read" >&2
            exit 1
        fi
        value=$(cat "$file")
    fi
    if [ -z "$value" ]; then
        echo "minio-init: $1 is not set (nor $1_FILE)" >&2
        exit 1
    fi
    printf '%s' "$value"
}

: "${MINIO_URL:=http://minio:9000}"
: "${MINIO_ROOT_USER:?MINIO_ROOT_USER is not set}"
: "${LAKE_S3_ACCESS_KEY_ID:?LAKE_S3_ACCESS_KEY_ID is not set}"
MINIO_ROOT_PASSWORD=$(secret MINIO_ROOT_PASSWORD)
LAKE_S3_SECRET_ACCESS_KEY=$(secret LAKE_S3_SECRET_ACCESS_KEY)
BUCKETS="${LAKE_BUCKETS:-bronze silver airbyte-logs}"

# The server is healthy before this runs (depends_on), but retry the first call anyway.
tries=0
until mc alias set local "$MINIO_URL" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -ge 10 ]; then
        echo "minio-init: cannot reach $MINIO_URL as $MINIO_ROOT_USER" >&2
        exit 1
    fi
    sleep 2
done

for bucket in $BUCKETS; do
    mc mb --ignore-existing "local/$bucket"
done

# Adding an existing user updates its secret key: idempotent.
mc admin user add local "$LAKE_S3_ACCESS_KEY_ID" "$LAKE_S3_SECRET_ACCESS_KEY"
# Attaching a policy that is already attached is an error in recent mc versions: accept it only when the
# user really has the policy.
if ! attach_output=$(mc admin policy attach local readwrite --user "$LAKE_S3_ACCESS_KEY_ID" 2>&1); then
    case "$(mc admin user info local "$LAKE_S3_ACCESS_KEY_ID" 2>&1)" in
        *readwrite*) ;;
        *)
            echo "minio-init: could not attach policy readwrite to $LAKE_S3_ACCESS_KEY_ID: $attach_output" >&2
            exit 1
            ;;
    esac
fi

echo "minio-init: buckets ready ($BUCKETS); user $LAKE_S3_ACCESS_KEY_ID has policy readwrite"
