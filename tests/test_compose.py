"""The local stack (docker-compose.yml, docker/, .env.example) checked without a Docker engine.

Each ``check_*`` function returns the problems it finds in a parsed compose file (a dict, so tests can feed
it a mutated copy); the real file must have none, and every check is shown to report a planted problem.
The two shell scripts of the stack run here against fake ``mc`` and ``prefect`` executables.
tests/test_stack.py builds and runs the same files in containers.
"""

from __future__ import annotations

import copy
import os
import re
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
MINIO_INIT = ROOT / "docker" / "minio-init.sh"
WORKER_ENTRYPOINT = ROOT / "docker" / "worker-entrypoint.sh"

Compose = dict[str, Any]

LONG_RUNNING = {"minio", "postgres", "redis", "prefect-server", "prefect-services", "prefect-worker"}
ONE_SHOT = {"minio-init", "deploy"}
PUBLISHED_PORTS = {"minio": {"9000:9000", "9001:9001"}, "prefect-server": {"4200:4200"}}
BUCKETS = {"bronze", "silver", "airbyte-logs"}
PREFECT_IMAGE = "prefecthq/prefect:3.8.8-python3.11"
# service -> {dependency: condition}: the start order the README describes.
START_ORDER = {
    "minio-init": {"minio": "service_healthy"},
    "prefect-server": {"postgres": "service_healthy", "redis": "service_healthy"},
    "prefect-services": {"prefect-server": "service_healthy"},
    "prefect-worker": {
        "prefect-server": "service_healthy",
        "prefect-services": "service_healthy",
        "minio-init": "service_completed_successfully",
    },
    "deploy": {"prefect-server": "service_healthy", "prefect-worker": "service_healthy"},
}
# Secrets each service must mount (source -> file under /run/secrets): this project's image loads
# /run/secrets/NAME as the variable NAME; PostgreSQL, MinIO and minio-init read the *_FILE their env names.
_LAKE_SECRETS = {"lake_s3_secret_access_key": "AWS_SECRET_ACCESS_KEY", "airbyte_client_secret": "AIRBYTE_CLIENT_SECRET"}
_DB_SECRET = {"postgres_password": "PREFECT_SERVER_DATABASE_PASSWORD"}
SECRET_TARGETS = {
    "minio": {"minio_root_password": "minio_root_password"},
    "minio-init": {
        "minio_root_password": "minio_root_password",
        "lake_s3_secret_access_key": "lake_s3_secret_access_key",
    },
    "postgres": {"postgres_password": "postgres_password"},
    "prefect-server": _DB_SECRET,
    "prefect-services": _DB_SECRET,
    "prefect-worker": _LAKE_SECRETS,
    "deploy": _LAKE_SECRETS,
}
# Settings that must agree between the API process and the services process (Prefect's self-hosting guide):
# with Prefect's in-memory defaults, events and Docket tasks would not cross from one process to the other.
SHARED_SERVER_SETTINGS = (
    "PREFECT_SERVER_DATABASE_DRIVER",
    "PREFECT_SERVER_DATABASE_HOST",
    "PREFECT_SERVER_DATABASE_PORT",
    "PREFECT_SERVER_DATABASE_USER",
    "PREFECT_SERVER_DATABASE_NAME",
    "PREFECT_MESSAGING_BROKER",
    "PREFECT_MESSAGING_CACHE",
    "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING",
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE",
    "PREFECT_REDIS_MESSAGING_HOST",
    "PREFECT_REDIS_MESSAGING_PORT",
    "PREFECT_REDIS_MESSAGING_DB",
    "PREFECT_SERVER_DOCKET_URL",
)

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, $VAR ($$ is a literal $).
VAR_REF = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_KEY|CREDENTIAL", re.IGNORECASE)
URL_WITH_PASSWORD = re.compile(r"://(?P<user>[^:/@\s]+):(?P<password>[^@/\s]+)@")
TOKEN_LIKE = re.compile(r"[A-Za-z0-9+/=_\-]{20,}")


# --- loading ------------------------------------------------------------------------------------------------


def load_compose(path: Path = COMPOSE_FILE) -> Compose:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def load_env_example(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    env: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f".env.example: not NAME=value: {raw!r}"
        env[name.strip()] = value.strip()
    return env


def services(compose: Compose) -> dict[str, dict[str, Any]]:
    return compose.get("services") or {}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def strings(node: Any) -> Iterator[str]:
    """Every string value in the compose tree (keys excluded), so comments never count."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def var_refs(text: str) -> Iterator[re.Match[str]]:
    """Compose interpolations in ``text``; ``$$`` is an escaped ``$`` and is skipped."""
    yield from VAR_REF.finditer(text.replace("$$", "\0"))


def ref_name(match: re.Match[str]) -> str:
    return match.group("braced") or match.group("bare")


# --- checks (each returns a list of problems) -----------------------------------------------------------------


def check_services(compose: Compose) -> list[str]:
    missing = (LONG_RUNNING | ONE_SHOT) - set(services(compose))
    return [f"service {name} is missing" for name in sorted(missing)]


def _image_problem(name: str, image: str) -> str | None:
    repository, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
    if "@sha256:" in image:
        return None
    if not tag:
        return f"{name}: image {image} has no tag"
    if tag == "latest" or tag.endswith("-latest") or tag.startswith("latest"):
        return f"{name}: image {image} is not pinned (latest)"
    if "minio" in repository:
        if not repository.startswith("quay.io/minio/"):
            return f"{name}: image {image} must come from quay.io/minio (the Docker Hub repositories are gone)"
        if not tag.startswith("RELEASE."):
            return f"{name}: image {image} must pin a RELEASE.* tag"
        return None
    if repository == "prefecthq/prefect":
        return None if image == PREFECT_IMAGE else f"{name}: image {image} is not {PREFECT_IMAGE}"
    if not re.match(r"^\d+\.\d+", tag):
        return f"{name}: image {image} pins only a major version (want at least major.minor)"
    return None


def check_images(compose: Compose) -> list[str]:
    problems = []
    for name, service in services(compose).items():
        image, build = service.get("image"), service.get("build")
        if build:
            continue  # built here from a pinned base image: check_worker_build
        if not image:
            problems.append(f"{name}: neither image nor build")
        elif problem := _image_problem(name, image):
            problems.append(problem)
    return problems


def check_ports(compose: Compose) -> list[str]:
    problems = []
    for name, wanted in PUBLISHED_PORTS.items():
        published = {str(p).split("#")[0].strip() for p in services(compose).get(name, {}).get("ports") or []}
        problems += [f"{name}: port {port} is not published" for port in sorted(wanted - published)]
    for name, service in services(compose).items():
        if name not in PUBLISHED_PORTS and service.get("ports"):
            problems.append(f"{name}: publishes ports {service['ports']} (only the UI, S3 API and console are)")
    return problems


def check_volumes(compose: Compose) -> list[str]:
    declared = set((compose.get("volumes") or {}).keys())
    used: set[str] = set()
    problems = []
    for name, service in services(compose).items():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/", "~")):
                if not (ROOT / source).exists():
                    problems.append(f"{name}: bind mount source {source} does not exist")
                continue
            used.add(source)
            if source not in declared:
                problems.append(f"{name}: named volume {source} is not declared under volumes:")
    problems += [f"volume {v} is declared but no service uses it" for v in sorted(declared - used)]
    for name, path in {"minio": "/data", "postgres": "/var/lib/postgresql/data"}.items():
        mounts = [v for v in services(compose).get(name, {}).get("volumes") or [] if isinstance(v, str)]
        if not any(m.split(":")[0] in declared and m.split(":")[1] == path for m in mounts):
            problems.append(f"{name}: {path} is not on a named volume")
    return problems


def check_healthchecks(compose: Compose) -> list[str]:
    problems = []
    for name, service in services(compose).items():
        check = service.get("healthcheck") or {}
        if name in ONE_SHOT:
            if service.get("restart", "no") != "no":
                problems.append(f"{name}: a one-shot must not restart")
            continue
        if check.get("disable") or not check.get("test") or check.get("test") == ["NONE"]:
            problems.append(f"{name}: long-running service without a healthcheck")
        elif service.get("restart") not in ("unless-stopped", "always", "on-failure"):
            problems.append(f"{name}: long-running service without a restart policy")
    return problems


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        if state.get(node) == 1:
            return [*path, node]
        if state.get(node) == 2:
            return None
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if found := visit(dep, [*path, node]):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if found := visit(start, []):
            return found
    return None


def check_depends_on(compose: Compose) -> list[str]:
    svcs = services(compose)
    problems = []
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in svcs.items():
        for dep, condition in depends_on(service).items():
            if dep not in svcs:
                problems.append(f"{name}: depends on unknown service {dep}")
                continue
            if condition not in conditions:
                problems.append(f"{name}: unknown condition {condition} on {dep}")
            if condition == "service_healthy" and not (svcs[dep].get("healthcheck") or {}).get("test"):
                problems.append(f"{name}: waits for {dep} to be healthy, but {dep} has no healthcheck")
            if dep in ONE_SHOT and condition != "service_completed_successfully":
                problems.append(f"{name}: must wait for one-shot {dep} to complete successfully, not {condition}")
            if dep in LONG_RUNNING and condition != "service_healthy":
                problems.append(f"{name}: must wait for {dep} to be healthy, not {condition}")
    for name, wanted in START_ORDER.items():
        have = depends_on(svcs.get(name, {}))
        for dep, condition in wanted.items():
            if have.get(dep) != condition:
                problems.append(f"{name}: must depend on {dep} with condition {condition} (has {have.get(dep)})")
    if cycle := _cycle({name: set(depends_on(s)) for name, s in svcs.items()}):
        problems.append(f"depends_on cycle: {' -> '.join(cycle)}")
    return problems


def secret_sources(compose: Compose) -> dict[str, str]:
    """Top-level secret name -> the variable (from .env) its value is read from."""
    return {name: str((spec or {}).get("environment", "")) for name, spec in (compose.get("secrets") or {}).items()}


def service_secrets(service: dict[str, Any]) -> dict[str, str]:
    """The service's secrets: source -> target (the file name under /run/secrets)."""
    found = {}
    for entry in service.get("secrets") or []:
        source = entry if isinstance(entry, str) else entry["source"]
        found[source] = source if isinstance(entry, str) else entry.get("target", source)
    return found


def check_env_refs(compose: Compose, env_example: dict[str, str]) -> list[str]:
    referenced = {ref_name(m) for text in strings(compose) for m in var_refs(text)}
    referenced |= {var for var in secret_sources(compose).values() if var}
    problems = [f"${{{name}}} is not in .env.example" for name in sorted(referenced - set(env_example))]
    problems += [
        f".env.example: {name} is not used by docker-compose.yml" for name in sorted(set(env_example) - referenced)
    ]
    return problems


def _literal_secret(name: str, value: str) -> str | None:
    """A secret a container's environment would show in `docker inspect`: it must come as a file instead."""
    if SECRET_NAME.search(name):
        if name.endswith("_FILE"):
            return None if value.startswith("/run/secrets/") else f"{name} must name a file under /run/secrets"
        return f"{name} would show in `docker inspect`: mount it as a secret file (secrets:), not {value!r}"
    masked = VAR_REF.sub("\x01", value.replace("$$", "\0"))  # each ${...} becomes one \x01
    if URL_WITH_PASSWORD.search(masked):
        return f"{name} holds a URL with a password (shown by `docker inspect`)"
    for token in TOKEN_LIKE.findall(masked):
        if re.search(r"\d", token) and re.search(r"[A-Za-z]", token):
            return f"{name} holds a token-like literal {token[:4]}..."
    return None


def check_no_secret_literals(compose: Compose) -> list[str]:
    problems = []
    for svc_name, service in services(compose).items():
        for name, value in environment(service).items():
            if problem := _literal_secret(name, value):
                problems.append(f"{svc_name}: {problem}")
    return problems


def check_secret_files(compose: Compose) -> list[str]:
    """Secrets travel as files: each comes from a .env variable, and each service mounts only declared ones."""
    sources = secret_sources(compose)
    problems = [
        f"secret {name}: no `environment:` variable to read it from" for name, var in sources.items() if not var
    ]
    for svc_name, service in services(compose).items():
        mounted = service_secrets(service)
        problems += [f"{svc_name}: secret {s} is not declared under secrets:" for s in mounted if s not in sources]
        for name, value in environment(service).items():
            target = value.removeprefix("/run/secrets/")
            if name.endswith("_FILE") and value.startswith("/run/secrets/") and target not in mounted.values():
                problems.append(f"{svc_name}: {name} names {value}, which the service does not mount")
    for svc_name, wanted in SECRET_TARGETS.items():
        mounted = service_secrets(services(compose).get(svc_name, {}))
        problems += [
            f"{svc_name}: secret {source} must be mounted as {target}"
            for source, target in wanted.items()
            if mounted.get(source) != target
        ]
    return problems


def check_env_example_secrets(env_example: dict[str, str]) -> list[str]:
    return [
        f".env.example: {name} must be a placeholder (contain 'change-me') or empty"
        for name, value in env_example.items()
        if SECRET_NAME.search(name) and not name.endswith("_ID") and value and "change-me" not in value
    ]


def check_dockerfile(text: str) -> list[str]:
    problems = []
    base = re.search(r"^FROM\s+(\S+)", text, re.MULTILINE)
    if not base:
        return ["Dockerfile: no FROM"]
    image = base.group(1)
    if arg := re.fullmatch(r"\$\{?(\w+)\}?", image):  # FROM ${BASE_IMAGE}: its ARG's default is what users get
        default = re.search(rf"^ARG\s+{arg.group(1)}=(\S+)", text, re.MULTILINE)
        image = default.group(1) if default else f"${arg.group(1)} without a default"
    if not re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", image):
        problems.append(f"Dockerfile: base image {image} is not a pinned python:3.11.X-slim")
    if not re.search(r"^HEALTHCHECK\s+(?!NONE)", text, re.MULTILINE):
        problems.append("Dockerfile: no HEALTHCHECK")
    for name in re.findall(r"^(?:ENV|ARG)\s+(\w+)", text, re.MULTILINE):
        if SECRET_NAME.search(name):
            problems.append(f"Dockerfile: {name} would be kept in the image's layers and history")
    if not re.search(r"pip install\b[^\n]*-c constraints\.txt[^\n]*\s\"?\.(\[server\])?\"?(\s|$)", text):
        problems.append('Dockerfile: does not `pip install -c constraints.txt .` (or ".[server]")')
    if "[server]" not in text:
        problems.append("Dockerfile: does not install the [server] extra (prefect-redis) the Prefect services need")
    if not re.search(r"^COPY\s+[^\n]*constraints\.txt", text, re.MULTILINE):
        problems.append("Dockerfile: does not copy constraints.txt")
    if not re.search(r"^USER\s+(?!root\b)\S+", text, re.MULTILINE):
        problems.append("Dockerfile: runs as root")
    return problems


def check_worker_build(compose: Compose) -> list[str]:
    problems = []
    # The Prefect server and services run our image too: the pins the tests ran (SQLAlchemy < 2.1 for the
    # scheduler), not whatever the stock prefecthq/prefect image resolved when it was built.
    for name in ("prefect-server", "prefect-services", "prefect-worker", "deploy"):
        build = services(compose).get(name, {}).get("build")
        if not isinstance(build, dict):
            problems.append(f"{name}: no build: section")
            continue
        context = ROOT / build.get("context", ".")
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        if not context.is_dir():
            problems.append(f"{name}: build context {context} does not exist")
        elif not dockerfile.is_file():
            problems.append(f"{name}: Dockerfile {dockerfile} does not exist")
        else:
            problems += [f"{name}: {p}" for p in check_dockerfile(dockerfile.read_text(encoding="utf-8"))]
    return problems


def check_bucket_init(compose: Compose) -> list[str]:
    init = services(compose).get("minio-init", {})
    script_text = MINIO_INIT.read_text(encoding="utf-8")
    buckets = environment(init).get("LAKE_BUCKETS")
    if buckets is None:
        default = re.search(r'LAKE_BUCKETS:-([^}"]*)', script_text)
        buckets = default.group(1) if default else ""
    problems = [f"minio-init: bucket {b} is not created" for b in sorted(BUCKETS - set(buckets.split()))]
    mounted = any(str(v).startswith("./docker/minio-init.sh:") for v in init.get("volumes") or [])
    runs = "/minio-init.sh" in " ".join(strings(init.get("entrypoint") or init.get("command") or []))
    if not (mounted and runs):
        problems.append("minio-init: does not run docker/minio-init.sh")
    minio_image = services(compose).get("minio", {}).get("image")
    if init.get("image") != minio_image:
        problems.append(
            f"minio-init: image {init.get('image')} is not the minio service's {minio_image} (which has mc)"
        )
    if "mc mb --ignore-existing" not in script_text:
        problems.append("minio-init.sh: bucket creation is not idempotent (mc mb --ignore-existing)")
    return problems


def check_prefect_topology(compose: Compose) -> list[str]:
    svcs = services(compose)
    server, background = svcs.get("prefect-server", {}), svcs.get("prefect-services", {})
    problems = []
    server_cmd = " ".join(strings(server.get("command") or []))
    if "--no-services" not in server_cmd:
        problems.append("prefect-server: expected --no-services (the services run in prefect-services)")
    if "services start" not in " ".join(strings(background.get("command") or [])):
        problems.append("prefect-services: does not run `prefect server services start`")
    server_env, background_env = environment(server), environment(background)
    for name in SHARED_SERVER_SETTINGS:
        if not server_env.get(name) or server_env.get(name) != background_env.get(name):
            problems.append(f"{name} must be set, and equal, in prefect-server and prefect-services")
    if server_env.get("PREFECT_SERVER_DATABASE_DRIVER") != "postgresql+asyncpg":
        problems.append("prefect-server: the database driver is not postgresql+asyncpg")
    if server_env.get("PREFECT_SERVER_DATABASE_HOST") != "postgres":
        problems.append("prefect-server: the database host is not the postgres service")
    if "redis" not in server_env.get("PREFECT_MESSAGING_BROKER", ""):
        problems.append("prefect-server: events do not go through Redis")
    for name in ("prefect-worker", "deploy"):
        if environment(svcs.get(name, {})).get("PREFECT_API_URL") != "http://prefect-server:4200/api":
            problems.append(f"{name}: PREFECT_API_URL does not point at prefect-server")
    return problems


def check_lake_env(compose: Compose) -> list[str]:
    env = environment(services(compose).get("prefect-worker", {}))
    wanted = {
        "AWS_ENDPOINT_URL": "http://minio:9000",
        "BRONZE_URI": "s3://bronze",
        "SILVER_URI": "s3://silver",
        "AIRBYTE_LOGS_URI": "s3://airbyte-logs",
    }
    problems = [
        f"prefect-worker: {k} is {env.get(k)!r}, want {v!r}"
        for k, v in wanted.items()
        if v not in env.get(k, "")  # BRONZE_URI is ${BRONZE_URI:-s3://bronze}
    ]
    problems += [
        f"prefect-worker: {k} is not set"
        for k in ("AWS_ACCESS_KEY_ID", "AWS_REGION", "PREFECT_WORK_POOL")
        if not env.get(k)
    ]
    if "AWS_SECRET_ACCESS_KEY" not in service_secrets(services(compose).get("prefect-worker", {})).values():
        problems.append("prefect-worker: no secret is mounted as AWS_SECRET_ACCESS_KEY")
    return problems


CHECKS: dict[str, Callable[[Compose], list[str]]] = {
    "services": check_services,
    "images": check_images,
    "ports": check_ports,
    "volumes": check_volumes,
    "healthchecks": check_healthchecks,
    "depends_on": check_depends_on,
    "env_refs": lambda c: check_env_refs(c, load_env_example()),
    "secrets": check_no_secret_literals,
    "secret_files": check_secret_files,
    "worker_build": check_worker_build,
    "bucket_init": check_bucket_init,
    "prefect_topology": check_prefect_topology,
    "lake_env": check_lake_env,
}


# --- the real files pass --------------------------------------------------------------------------------------


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_compose_file_passes(check: str) -> None:
    assert CHECKS[check](load_compose()) == []


def test_env_example_holds_placeholders_only() -> None:
    assert check_env_example_secrets(load_env_example()) == []


def test_dockerignore_keeps_secrets_and_state_out_of_the_build() -> None:
    lines = [ln.strip() for ln in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()]
    assert lines[lines.index("*")] == "*", "allow-list .dockerignore starts by excluding everything"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert not allowed & {".env", ".git", "lakehouse", ".venv", "tests"}
    copied = re.findall(r"^COPY\s+(.+?)\s+\S+$", DOCKERFILE.read_text(encoding="utf-8"), re.MULTILINE)
    for sources in copied:
        for source in sources.split():
            assert source in allowed or source.rstrip("/") in allowed, f"COPY {source} is not in .dockerignore"


# --- every check reports what it is for ---------------------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[Compose], None]:
    def mutate(compose: Compose) -> None:
        *parents, last = path.split(".")
        node = compose
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


def _delete(path: str) -> Callable[[Compose], None]:
    def mutate(compose: Compose) -> None:
        *parents, last = path.split(".")
        node = compose
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


def _env(service: str, name: str, value: str) -> Callable[[Compose], None]:
    return _set(f"services.{service}.environment.{name}", value)


MUTATIONS: list[tuple[str, Callable[[Compose], None], str, str]] = [
    ("no redis", _delete("services.redis"), "services", "service redis is missing"),
    ("minio latest", _set("services.minio.image", "quay.io/minio/minio:latest"), "images", "not pinned (latest)"),
    ("minio untagged", _set("services.minio.image", "quay.io/minio/minio"), "images", "has no tag"),
    (
        "minio from docker hub",
        _set("services.minio.image", "minio/minio:RELEASE.2025-09-07T16-13-09Z"),
        "images",
        "must come from quay.io/minio",
    ),
    ("mc latest", _set("services.minio-init.image", "quay.io/minio/mc:latest"), "images", "not pinned"),
    ("postgres major only", _set("services.postgres.image", "postgres:16"), "images", "only a major version"),
    ("redis latest", _set("services.redis.image", "redis:latest"), "images", "latest"),
    ("stock prefect image", _delete("services.prefect-services.build"), "worker_build", "prefect-services: no build"),
    ("no UI port", _set("services.prefect-server.ports", []), "ports", "port 4200:4200 is not published"),
    ("redis published", _set("services.redis.ports", ["6379:6379"]), "ports", "redis: publishes ports"),
    (
        "undeclared volume",
        _set("services.postgres.volumes", ["pgdata:/var/lib/postgresql/data"]),
        "volumes",
        "named volume pgdata is not declared",
    ),
    ("unused volume", _set("volumes.spare", None), "volumes", "volume spare is declared but no service uses it"),
    ("anonymous minio data", _set("services.minio.volumes", []), "volumes", "minio: /data is not on a named volume"),
    ("no services healthcheck", _delete("services.prefect-services.healthcheck"), "healthchecks", "prefect-services"),
    ("disabled healthcheck", _set("services.prefect-worker.healthcheck", {"disable": True}), "healthchecks", "worker"),
    ("restarting one-shot", _set("services.minio-init.restart", "always"), "healthchecks", "must not restart"),
    (
        "worker starts before buckets",
        _set("services.prefect-worker.depends_on.minio-init.condition", "service_started"),
        "depends_on",
        "must wait for one-shot minio-init to complete successfully",
    ),
    (
        "server not waiting for postgres",
        _delete("services.prefect-server.depends_on.postgres"),
        "depends_on",
        "prefect-server: must depend on postgres",
    ),
    (
        "unknown dependency",
        _set("services.prefect-worker.depends_on.ghost", {"condition": "service_healthy"}),
        "depends_on",
        "depends on unknown service ghost",
    ),
    (
        "healthy without healthcheck",
        _delete("services.redis.healthcheck"),
        "depends_on",
        "waits for redis to be healthy, but redis has no healthcheck",
    ),
    (
        "cycle",
        _set("services.postgres.depends_on", {"prefect-worker": {"condition": "service_healthy"}}),
        "depends_on",
        "depends_on cycle",
    ),
    ("braced ref", _env("prefect-worker", "X", "${NOT_IN_EXAMPLE}"), "env_refs", "${NOT_IN_EXAMPLE} is not in"),
    ("default ref", _env("prefect-worker", "X", "${NOPE_A:-x}"), "env_refs", "${NOPE_A} is not in"),
    ("required ref", _env("prefect-worker", "X", "${NOPE_B:?set it}"), "env_refs", "${NOPE_B} is not in"),
    ("bare ref", _env("prefect-worker", "X", "a-$NOPE_C"), "env_refs", "${NOPE_C} is not in"),
    ("unused example key", _delete("services.prefect-worker.environment.PREFECT_WORKER_LIMIT"), "env_refs", "not used"),
    ("literal password", _env("postgres", "POSTGRES_PASSWORD", "hunter2hunter2"), "secrets", "POSTGRES_PASSWORD would"),
    (
        "password from .env in the environment",
        _env("minio", "MINIO_ROOT_PASSWORD", "${MINIO_ROOT_PASSWORD:?set it}"),
        "secrets",
        "MINIO_ROOT_PASSWORD would show in `docker inspect`",
    ),
    ("secret file elsewhere", _env("postgres", "POSTGRES_PASSWORD_FILE", "/tmp/pw"), "secrets", "under /run/secrets"),
    (
        "password in URL",
        _env("prefect-server", "PREFECT_API_DATABASE_CONNECTION_URL", "postgresql+asyncpg://prefect:pw@postgres/p"),
        "secrets",
        "URL with a password",
    ),
    (
        "password from .env in URL",
        _env(
            "prefect-server",
            "PREFECT_API_DATABASE_CONNECTION_URL",
            "postgresql+asyncpg://${POSTGRES_USER:?set it}:${POSTGRES_PASSWORD}@postgres:5432/${POSTGRES_DB}",
        ),
        "secrets",
        "URL with a password",
    ),
    (
        "undeclared secret",
        _set("services.postgres.secrets", ["postgres_password", "nope"]),
        "secret_files",
        "postgres: secret nope is not declared",
    ),
    (
        "secret file not mounted",
        _set("services.postgres.secrets", []),
        "secret_files",
        "POSTGRES_PASSWORD_FILE names /run/secrets/postgres_password, which the service does not mount",
    ),
    (
        "worker without its S3 secret",
        _set(
            "services.prefect-worker.secrets", [{"source": "airbyte_client_secret", "target": "AIRBYTE_CLIENT_SECRET"}]
        ),
        "secret_files",
        "prefect-worker: secret lake_s3_secret_access_key must be mounted as AWS_SECRET_ACCESS_KEY",
    ),
    ("secret without source", _set("secrets.postgres_password", {}), "secret_files", "no `environment:` variable"),
    ("secret source not in .env.example", _set("secrets.extra", {"environment": "NOPE_D"}), "env_refs", "${NOPE_D}"),
    (
        "init on the mc image",
        _set("services.minio-init.image", "quay.io/minio/mc:RELEASE.2025-08-13T08-35-41Z-cpuv1"),
        "bucket_init",
        "is not the minio service's",
    ),
    ("token literal", _env("prefect-worker", "AIRBYTE_URL", "tok_9f8e7d6c5b4a39281706"), "secrets", "token-like"),
    ("build context gone", _set("services.prefect-worker.build.context", "nowhere"), "worker_build", "does not exist"),
    (
        "Dockerfile gone",
        _set("services.prefect-worker.build.dockerfile", "docker/Nope"),
        "worker_build",
        "does not exist",
    ),
    ("no build", _delete("services.deploy.build"), "worker_build", "deploy: no build"),
    ("two buckets", _env("minio-init", "LAKE_BUCKETS", "bronze silver"), "bucket_init", "airbyte-logs is not created"),
    ("init not run", _set("services.minio-init.entrypoint", ["/bin/true"]), "bucket_init", "does not run"),
    (
        "one server",
        _set("services.prefect-server.command", "prefect server start"),
        "prefect_topology",
        "--no-services",
    ),
    (
        "services without redis",
        _delete("services.prefect-services.environment.PREFECT_MESSAGING_BROKER"),
        "prefect_topology",
        "PREFECT_MESSAGING_BROKER must be set, and equal",
    ),
    ("sqlite", _env("prefect-server", "PREFECT_SERVER_DATABASE_DRIVER", "sqlite+aiosqlite"), "prefect_topology", "not"),
    (
        "worker on localhost",
        _env("prefect-worker", "PREFECT_API_URL", "http://localhost:4200/api"),
        "prefect_topology",
        "prefect-worker: PREFECT_API_URL does not point at prefect-server",
    ),
    ("worker on AWS", _delete("services.prefect-worker.environment.AWS_ENDPOINT_URL"), "lake_env", "AWS_ENDPOINT_URL"),
]


@pytest.mark.parametrize(
    ("check", "mutate", "expected"),
    [pytest.param(check, mutate, expected, id=name) for name, mutate, check, expected in MUTATIONS],
)
def test_check_reports_a_planted_problem(check: str, mutate: Callable[[Compose], None], expected: str) -> None:
    compose = copy.deepcopy(load_compose())
    mutate(compose)
    problems = CHECKS[check](compose)
    assert problems, f"{check} did not notice"
    assert any(expected in p for p in problems), problems


_COPY = "COPY constraints.txt .\n"
_INSTALL = 'RUN pip install -c constraints.txt ".[server]"\n'
_TAIL = "USER x\nHEALTHCHECK CMD true\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FROM python:3.11-slim\n" + _COPY + _INSTALL + _TAIL, "pinned"),
        ("FROM python:latest\n" + _COPY + _INSTALL + _TAIL, "pinned"),
        ("ARG BASE_IMAGE=python:3.11-slim\nFROM ${BASE_IMAGE}\n" + _COPY + _INSTALL + _TAIL, "python:3.11-slim is"),
        ("ARG BASE_IMAGE\nFROM $BASE_IMAGE\n" + _COPY + _INSTALL + _TAIL, "$BASE_IMAGE without a default"),
        ("FROM python:3.11.13-slim\n" + _COPY + "RUN pip install .\n" + _TAIL, "-c constraints.txt"),
        ("FROM python:3.11.13-slim\n" + _COPY + "RUN pip install -c constraints.txt .\n" + _TAIL, "[server]"),
        ("FROM python:3.11.13-slim\n" + _COPY + _INSTALL + "HEALTHCHECK CMD true\n", "root"),
        ("FROM python:3.11.13-slim\n" + _COPY + _INSTALL + "USER x\n", "no HEALTHCHECK"),
        ("FROM python:3.11.13-slim\n" + _COPY + _INSTALL + _TAIL + "ENV AIRBYTE_CLIENT_SECRET=x\n", "layers"),
    ],
)
def test_dockerfile_check_reports(text: str, expected: str) -> None:
    assert any(expected in p for p in check_dockerfile(text)), check_dockerfile(text)


def test_env_example_check_reports_a_real_looking_secret() -> None:
    env = load_env_example() | {"POSTGRES_PASSWORD": "s3cr3t-from-prod"}
    assert check_env_example_secrets(env) == [
        ".env.example: POSTGRES_PASSWORD must be a placeholder (contain 'change-me') or empty"
    ]


# --- the scripts, against fake executables -------------------------------------------------------------------


def _executable(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _run(script: Path, bin_dir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full_env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", **env}
    return subprocess.run(
        ["/bin/sh", str(script), *args], env=full_env, capture_output=True, text=True, timeout=30, check=False
    )


FAKE_MC = r"""
state="$FAKE_STATE"; echo "$*" >> "$state/calls"
case "$1 $2 $3" in
  "alias set"*) exit 0 ;;
  "mb --ignore-existing"*) touch "$state/bucket-$(basename "$3")"; exit 0 ;;
  "admin user add") touch "$state/user"; exit 0 ;;
  "admin policy attach")
    if [ -e "$state/attached" ]; then echo "The specified policy change is already in effect." >&2; exit 1; fi
    if [ -n "${FAKE_ATTACH_BROKEN:-}" ]; then echo "broken" >&2; exit 1; fi
    touch "$state/attached"; exit 0 ;;
  "admin user info") if [ -e "$state/attached" ]; then echo "PolicyName: readwrite"; fi; exit 0 ;;
esac
echo "fake mc: unexpected $*" >&2; exit 2
"""

MINIO_ENV = {
    "MINIO_ROOT_USER": "root",
    "MINIO_ROOT_PASSWORD": "root-password",
    "LAKE_S3_ACCESS_KEY_ID": "lakehouse",
    "LAKE_S3_SECRET_ACCESS_KEY": "lake-secret",
}


def test_minio_init_creates_buckets_and_user_idempotently(tmp_path: Path) -> None:
    _executable(tmp_path / "mc", FAKE_MC)
    env = {**MINIO_ENV, "FAKE_STATE": str(tmp_path)}
    for _ in range(2):  # the second run meets existing buckets and an attached policy
        result = _run(MINIO_INIT, tmp_path, env)
        assert result.returncode == 0, result.stderr
    assert {p.name for p in tmp_path.glob("bucket-*")} == {f"bucket-{b}" for b in BUCKETS}
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls.count("admin user add local lakehouse lake-secret") == 2
    assert all(c.startswith("mb --ignore-existing") for c in calls if c.startswith("mb"))


def test_minio_init_fails_when_the_policy_cannot_be_attached(tmp_path: Path) -> None:
    _executable(tmp_path / "mc", FAKE_MC)
    result = _run(MINIO_INIT, tmp_path, {**MINIO_ENV, "FAKE_STATE": str(tmp_path), "FAKE_ATTACH_BROKEN": "1"})
    assert result.returncode == 1
    assert "could not attach policy readwrite to lakehouse: broken" in result.stderr


def test_minio_init_refuses_missing_credentials(tmp_path: Path) -> None:
    _executable(tmp_path / "mc", FAKE_MC)
    env = {k: v for k, v in MINIO_ENV.items() if k != "LAKE_S3_SECRET_ACCESS_KEY"} | {"FAKE_STATE": str(tmp_path)}
    result = _run(MINIO_INIT, tmp_path, env)
    assert result.returncode != 0
    assert "LAKE_S3_SECRET_ACCESS_KEY is not set" in result.stderr
    assert not (tmp_path / "calls").exists()


FAKE_PREFECT = r"""
state="$FAKE_STATE"; echo "$*" >> "$state/calls"
case "$1 $2" in
  "work-pool inspect") [ -e "$state/pool" ] && exit 0; exit 1 ;;
  "work-pool create")
    if [ -n "${FAKE_RACE:-}" ]; then touch "$state/pool"; exit 1; fi
    touch "$state/pool"; exit 0 ;;
  "worker start") exit 0 ;;
esac
exit 2
"""

WORKER_ENV = {"PREFECT_API_URL": "http://prefect-server:4200/api", "PREFECT_WORK_POOL": "lakehouse-process"}


@pytest.mark.parametrize(
    ("pool_exists", "race", "creates"),
    [(False, False, True), (True, False, False), (False, True, True)],
    ids=["pool-missing", "pool-exists", "two-workers-race"],
)
def test_worker_entrypoint_creates_the_pool_then_starts(
    tmp_path: Path, pool_exists: bool, race: bool, creates: bool
) -> None:
    _executable(tmp_path / "prefect", FAKE_PREFECT)
    if pool_exists:
        (tmp_path / "pool").touch()
    env = {**WORKER_ENV, "FAKE_STATE": str(tmp_path), "PREFECT_WORKER_LIMIT": "4", "HOSTNAME": "w1"}
    if race:
        env["FAKE_RACE"] = "1"
    result = _run(WORKER_ENTRYPOINT, tmp_path, env, "worker")
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert ("work-pool create lakehouse-process --type process" in calls) == creates
    assert calls[-1] == ("worker start --pool lakehouse-process --type process --with-healthcheck --name w1 --limit 4")


def test_worker_entrypoint_runs_other_commands_as_given(tmp_path: Path) -> None:
    _executable(tmp_path / "prefect", FAKE_PREFECT)
    result = _run(WORKER_ENTRYPOINT, tmp_path, {"FAKE_STATE": str(tmp_path)}, "prefect", "worker", "start", "-p", "x")
    assert result.returncode == 0
    assert (tmp_path / "calls").read_text().splitlines() == ["worker start -p x"]


def test_worker_entrypoint_needs_the_api_url(tmp_path: Path) -> None:
    _executable(tmp_path / "prefect", FAKE_PREFECT)
    result = _run(WORKER_ENTRYPOINT, tmp_path, {"FAKE_STATE": str(tmp_path), "PREFECT_WORK_POOL": "p"}, "worker")
    assert result.returncode != 0
    assert "PREFECT_API_URL is not set" in result.stderr


def test_minio_init_reads_its_secrets_from_files(tmp_path: Path) -> None:
    _executable(tmp_path / "mc", FAKE_MC)
    (tmp_path / "root").write_text("root-from-file\n")
    (tmp_path / "lake").write_text("lake-from-file")
    env = {
        "MINIO_ROOT_USER": "root",
        "MINIO_ROOT_PASSWORD_FILE": str(tmp_path / "root"),
        "LAKE_S3_ACCESS_KEY_ID": "lakehouse",
        "LAKE_S3_SECRET_ACCESS_KEY_FILE": str(tmp_path / "lake"),
        "FAKE_STATE": str(tmp_path),
    }
    result = _run(MINIO_INIT, tmp_path, env)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0] == "alias set local http://minio:9000 root root-from-file"
    assert "admin user add local lakehouse lake-from-file" in calls
    assert "from-file" not in result.stdout + result.stderr


def test_minio_init_names_an_unreadable_secret_file(tmp_path: Path) -> None:
    _executable(tmp_path / "mc", FAKE_MC)
    env = {**MINIO_ENV, "FAKE_STATE": str(tmp_path), "MINIO_ROOT_PASSWORD": "", "MINIO_ROOT_PASSWORD_FILE": "/nope"}
    result = _run(MINIO_INIT, tmp_path, env)
    assert result.returncode == 1
    assert result.stderr.strip() == "minio-init: MINIO_ROOT_PASSWORD_FILE=/nope cannot be read"
    assert not (tmp_path / "calls").exists()


PRINT_ENV = ["/bin/sh", "-c", 'echo "$AWS_SECRET_ACCESS_KEY|${AIRBYTE_CLIENT_SECRET-unset}|$PLAIN"']


def test_worker_entrypoint_loads_secret_files_into_the_environment(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "AWS_SECRET_ACCESS_KEY").write_text("s3-secret\n")
    (secrets / "not-a-name").write_text("ignored")
    env = {"LAKEHOUSE_SECRETS_DIR": str(secrets), "PLAIN": "plain"}
    result = _run(WORKER_ENTRYPOINT, tmp_path, env, *PRINT_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "s3-secret|unset|plain\n"  # an absent file (an empty secret) leaves the variable unset
    assert (
        result.stderr == f"lakehouse-entrypoint: {secrets / 'not-a-name'}: not an environment variable name, ignored\n"
    )


def test_worker_entrypoint_refuses_a_secret_set_twice(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "AWS_SECRET_ACCESS_KEY").write_text("from-file")
    env = {"LAKEHOUSE_SECRETS_DIR": str(secrets), "AWS_SECRET_ACCESS_KEY": "from-env"}
    result = _run(WORKER_ENTRYPOINT, tmp_path, env, *PRINT_ENV)
    assert result.returncode == 2
    assert "AWS_SECRET_ACCESS_KEY is set both in the environment and in" in result.stderr
    assert "from-" not in result.stdout + result.stderr
