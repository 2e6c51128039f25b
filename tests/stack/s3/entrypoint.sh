#!/bin/sh
# server: SeaweedFS (`weed mini`) as the stack's S3 server, the MinIO root user as its admin key.
# init:   what docker/minio-init.sh does on MinIO, on this server: the buckets LAKE_BUCKETS and the key
#         LAKE_S3_ACCESS_KEY_ID with read/write/list rights. Idempotent.
# Secrets come from the files the *_FILE variables name (compose's secrets); none is printed.
set -eu
read_secret() { eval "file=\${$1_FILE:?$1_FILE is not set}"; cat "$file"; }
: "${MINIO_ROOT_USER:?MINIO_ROOT_USER is not set}"
host="${S3_STANDIN_HOST:-minio}"

case "${1:-server}" in
server)
    AWS_ACCESS_KEY_ID="$MINIO_ROOT_USER"
    AWS_SECRET_ACCESS_KEY=$(read_secret MINIO_ROOT_PASSWORD)
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    exec weed -logtostderr mini -dir=/data -ip="$host" -ip.bind=0.0.0.0 \
        -master.telemetry=false -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 -s3.port=9000
    ;;
init)
    : "${LAKE_S3_ACCESS_KEY_ID:?LAKE_S3_ACCESS_KEY_ID is not set}"
    lake_secret=$(read_secret LAKE_S3_SECRET_ACCESS_KEY)
    shell() { weed shell -master="$host:9333" -filer="$host:8888"; }
    tries=0
    until existing=$(echo "s3.bucket.list" | shell 2>&1); do
        tries=$((tries + 1))
        [ "$tries" -lt 30 ] || { echo "s3-standin init: $host does not answer: $existing" >&2; exit 1; }
        sleep 1
    done
    for bucket in ${LAKE_BUCKETS:-bronze silver airbyte-logs}; do
        case "$existing" in
            *"  $bucket"*) echo "s3-standin init: bucket $bucket exists" ;;
            *) echo "s3.bucket.create -name $bucket" | shell >/dev/null && echo "s3-standin init: bucket $bucket created" ;;
        esac
    done
    # s3.configure prints the whole identity file, secrets included: keep it out of the logs.
    printf 's3.configure -user %s -access_key %s -secret_key %s -actions Read,Write,List,Tagging -apply\n' \
        "$LAKE_S3_ACCESS_KEY_ID" "$LAKE_S3_ACCESS_KEY_ID" "$lake_secret" | shell >/dev/null
    echo "s3-standin init: key $LAKE_S3_ACCESS_KEY_ID may read, write and list"
    ;;
*)
    exec "$@"
    ;;
esac
