"""The three kinds of embedded connector in the catalog, and the pieces behind them that need no real connector:
catalog keys, manifest paths, the ``docker run`` command, image references, what a failed pull means (with the
registry's newest tags, from a registry API served on loopback), secrets found through the spec, the warning for
a full refresh appended without a key, and a connector command that times out in a container.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support import containers

from lakehouse_ingest.catalog.sources import DECLARATIVE_VERSION, ConnectorSpec, load_catalog, parse_catalog
from lakehouse_ingest.errors import ConfigError, ConnectorError, ImagePullError
from lakehouse_ingest.sources.embedded import connector as connector_module
from lakehouse_ingest.sources.embedded.connector import Connector
from lakehouse_ingest.sources.embedded.docker import (
    CONFIG_MOUNT,
    ContainerRuntime,
    owner,
    pull_failure,
    registry_tags,
    resolve_image,
    split_reference,
)
from lakehouse_ingest.sources.embedded.plan import plan_source, secret_values

FAKE_CONNECTOR = Path(__file__).parent / "support" / "fake_connector.py"


def connector_of(body: str, base: Path | None = None) -> ConnectorSpec:
    text = f"sources:\n  - name: s\n    connector: {body}\n"
    connector = parse_catalog(text, "cat.yaml", {}, base).sources[0].connector
    assert connector is not None
    return connector


def test_the_three_kinds_and_their_keys(tmp_path: Path) -> None:
    package = connector_of("{package: airbyte-source-file, version: '0.5.3', executable: source-file}")
    assert (package.kind, package.requirement, package.command) == (
        "package",
        "airbyte-source-file==0.5.3",
        "source-file",
    )
    image = connector_of(
        "{image: 'ghcr.io/acme/source-pg:1.2@sha256:"
        + "a" * 64
        + "', network: host, pull: always, memory: 2g, cpus: 1.5}"
    )
    assert (image.kind, image.network, image.pull, image.memory, image.cpus) == ("image", "host", "always", "2g", 1.5)
    assert image.describe.startswith("image ghcr.io/acme/source-pg:1.2@sha256:")
    defaults = connector_of("{image: airbyte/source-postgres:3.6.22}")
    assert (defaults.network, defaults.pull, defaults.memory, defaults.cpus) == ("bridge", "missing", None, None)
    manifest = connector_of("{manifest: manifests/shop.yaml}", tmp_path)
    assert manifest.kind == "manifest" and manifest.manifest == tmp_path / "manifests" / "shop.yaml"
    assert manifest.requirement == f"airbyte-source-declarative-manifest=={DECLARATIVE_VERSION}"
    assert manifest.command == "source-declarative-manifest"
    pinned = connector_of("{manifest: /abs/shop.yaml, version: '6.4.0'}", tmp_path)
    assert pinned.manifest == Path("/abs/shop.yaml") and pinned.requirement.endswith("==6.4.0")


def test_a_manifest_path_is_relative_to_the_catalog_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "catalog.yaml").write_text("sources:\n  - name: s\n    connector: {manifest: shop.yaml}\n")
    monkeypatch.chdir(tmp_path)
    connector = load_catalog("conf/catalog.yaml", env={}).sources[0].connector
    assert connector is not None and connector.manifest == folder / "shop.yaml"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{version: '1.0'}", "needs exactly one of 'package' (PyPI), 'image' (Docker) or 'manifest'"),
        ("{package: airbyte-source-x, image: a/b:1}", "has package and image"),
        ("{package: airbyte-source-x, network: host}", "'network' applies only to an 'image' connector"),
        ("{manifest: m.yaml, cpus: 2}", "'cpus' applies only to an 'image' connector"),
        ("{image: a/b:1, version: '1'}", "'version' does not apply to an image: the tag goes in 'image'"),
        ("{manifest: m.yaml, executable: x}", "'executable' does not apply to a manifest"),
        ("{image: 'Airbyte/Source-X:1'}", "must be an image reference"),
        ("{image: 'a/b:1', network: 'container:abc'}", "must be bridge, host, none or the name of a Docker network"),
        ("{image: 'a/b:1', pull: sometimes}", "Input should be 'missing', 'always' or 'never'"),
        ("{image: 'a/b:1', memory: lots}", "must be a size such as 512m or 2g"),
        ("{image: 'a/b:1', cpus: 0}", "Input should be greater than 0"),
    ],
)
def test_bad_connector_keys_name_the_problem(body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"cat\.yaml: sources\.0\.connector") as raised:
        connector_of(body)
    assert message in str(raised.value)


def test_docker_run_command() -> None:
    runtime = ContainerRuntime(
        reference="airbyte/source-x:1",
        image_id="sha256:" + "b" * 64,
        entrypoint=("python", "/airbyte/integration_code/main.py"),
        network="none",
        memory="512m",
        cpus=0.5,
    )
    argv = runtime.argv("c1", "shop", ["check", "--config", f"{CONFIG_MOUNT}/config.json"], Path("/tmp/p/1-x"))
    assert argv[1:] == [
        "run", "-i", "--name", "c1", "--pull", "never",
        "--label", f"airbyte-lakehouse.owner={owner()}", "--label", "airbyte-lakehouse.source=shop",
        "--network", "none", "--log-driver", "none", "--memory", "512m", "--cpus", "0.5",
        "--volume", f"/tmp/p/1-x:{CONFIG_MOUNT}:ro",
        "--entrypoint", "python", "sha256:" + "b" * 64, "/airbyte/integration_code/main.py",
        "check", "--config", f"{CONFIG_MOUNT}/config.json",
    ]  # fmt: skip
    plain = ContainerRuntime(reference="a/b:1", image_id="sha256:c", entrypoint=None).argv("c2", "s", ["spec"], None)
    assert "--entrypoint" not in plain and "--volume" not in plain and plain[-2:] == ["sha256:c", "spec"]


@pytest.mark.parametrize(
    ("reference", "parts"),
    [
        ("airbyte/source-postgres:3.6.22", ("registry-1.docker.io", "airbyte/source-postgres", "3.6.22")),
        ("postgres", ("registry-1.docker.io", "library/postgres", "latest")),
        ("ghcr.io/acme/source-x:1.0", ("ghcr.io", "acme/source-x", "1.0")),
        ("localhost:5000/source-x", ("localhost:5000", "source-x", "latest")),
        ("quay.io/a/b:2@sha256:" + "d" * 64, ("quay.io", "a/b", "2")),
    ],
)
def test_image_references(reference: str, parts: tuple[str, str, str]) -> None:
    assert split_reference(reference) == parts


@pytest.fixture
def registry() -> Iterator[str]:
    """A registry API v2 that wants an anonymous bearer token, as Docker Hub, GHCR and Quay do."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            host = f"127.0.0.1:{self.server.server_address[1]}"
            if self.path.startswith("/token"):
                self._answer(200, {"token": "anon-token"})
            elif self.headers.get("Authorization") != "Bearer anon-token":
                challenge = f'Bearer realm="http://{host}/token",service="{host}",scope="repository:acme/x:pull"'
                self._answer(401, {"errors": [{"code": "UNAUTHORIZED"}]}, {"WWW-Authenticate": challenge})
            elif self.path.startswith("/v2/acme/source-x/tags/list"):
                tags = ["latest", "1.9.0", "2.0.0", "2.0.1", "dev", "2.1.0-rc1", "1.10.0", "0.1.0", "2.0.10"]
                self._answer(200, {"name": "acme/source-x", "tags": tags})
            else:
                self._answer(404, {"errors": [{"code": "NAME_UNKNOWN"}]})

        def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_registry_tags_newest_releases_first(registry: str) -> None:
    assert registry_tags(f"{registry}/acme/source-x:9.9") == [
        "2.0.10", "2.0.1", "2.0.0", "1.10.0", "1.9.0",
    ]  # fmt: skip
    assert registry_tags(f"{registry}/acme/unknown:1", scheme="http") == []
    assert registry_tags("127.0.0.1:9/acme/source-x:1", scheme="http", timeout=2) == []


# What engines print for a tag or repository that does not exist, and for a registry that cannot be reached.
DOCKER_NO_TAG = (
    "Error response from daemon: manifest for airbyte/source-x:9.9 not found: manifest unknown: manifest unknown"
)
DOCKER_NO_REPO = (
    "Error response from daemon: pull access denied for airbyte/source-nope, repository does not exist or may "
    "require 'docker login': denied: requested access to the resource is denied"
)
PODMAN_NO_TAG = (
    "Error: initializing source docker://airbyte/source-x:9.9: reading manifest 9.9 in "
    "docker.io/airbyte/source-x: manifest unknown"
)
PODMAN_OFFLINE = (
    'Error: initializing source docker://airbyte/source-x:1: pinging container registry registry-1.docker.io: Get "'
    'https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io on 10.0.0.53:53: no such host'
)


@pytest.mark.parametrize("output", [DOCKER_NO_TAG, DOCKER_NO_REPO, PODMAN_NO_TAG])
def test_an_image_that_does_not_exist_is_bad_input_naming_the_newest_tags(output: str, registry: str) -> None:
    reference = f"{registry}/acme/source-x:9.9"
    error = pull_failure(reference, output, Path("/tmp/pull.log"))
    assert isinstance(error, ConfigError)
    assert str(error).startswith(f"no image {reference}: ")
    assert str(error).endswith("; newest tags: 2.0.10, 2.0.1, 2.0.0, 1.10.0, 1.9.0 (log: /tmp/pull.log)")


def test_a_registry_that_cannot_be_reached_is_retryable() -> None:
    error = pull_failure("airbyte/source-x:1", PODMAN_OFFLINE, Path("/tmp/pull.log"))
    assert isinstance(error, ImagePullError) and error.retryable
    assert str(error).startswith("could not pull airbyte/source-x:1: the registry did not answer (Error: initializing")


def test_secrets_are_found_through_the_spec() -> None:
    schema = {
        "type": "object",
        "properties": {
            "host": {"type": "string"},
            "password": {"type": "string", "airbyte_secret": True},
            "tunnel": {
                "oneOf": [
                    {"properties": {"method": {"const": "none"}}},
                    {"properties": {"method": {"const": "key"}, "ssh_key": {"type": "string", "airbyte_secret": True}}},
                ]
            },
            "keys": {"type": "array", "items": {"type": "string", "airbyte_secret": True}},
        },
    }
    config = {"host": "db", "password": "pw-1", "tunnel": {"method": "key", "ssh_key": "KEY"}, "keys": ["k1", "k2"]}
    assert sorted(secret_values(config, schema)) == ["KEY", "k1", "k2", "pw-1"]


@pytest.fixture
def fake_cache(tmp_path: Path) -> Path:
    venv = tmp_path / "connectors" / "airbyte-source-fake-0.0.1"
    (venv / "bin").mkdir(parents=True)
    exe = venv / "bin" / "source-fake"
    exe.write_text(f'#!/bin/sh\nexec "{__import__("sys").executable}" "{FAKE_CONNECTOR}" "$@"\n')
    exe.chmod(0o755)
    (venv / ".installed").write_text("airbyte-source-fake==0.0.1\n")
    return tmp_path / "connectors"


def test_full_refresh_appended_without_a_key_warns_once_when_planning(
    fake_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from lakehouse_ingest.catalog.sources import SourceEntry
    from lakehouse_ingest.sources.embedded.connector import ConnectorInstaller

    installer = ConnectorInstaller(fake_cache, lambda _: None)
    connector = {"package": "airbyte-source-fake", "version": "0.0.1"}
    keyless = SourceEntry.model_validate(
        {"name": "fake", "connector": connector, "config": {"records": 1, "no_primary_key": True}}
    )
    with caplog.at_level(logging.WARNING, logger="lakehouse_ingest"):
        plan = plan_source(keyless, installer)
    (stream,) = plan.streams
    assert (stream.sync_mode, stream.destination_sync_mode, stream.primary_key) == ("full_refresh", "append", [])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "fake.items: full_refresh appended without a primary key: each sync adds a full copy to bronze, and silver "
        "keeps every copy (it has no key to merge by); set destination_sync_mode: overwrite to keep only the latest "
        "snapshot, or a primary_key to merge"
    ]
    caplog.clear()
    keyed = SourceEntry.model_validate({"name": "fake", "connector": connector, "config": {"records": 1}})
    overwrite = SourceEntry.model_validate(
        {**keyless.model_dump(exclude_none=True), "streams": [{"name": "items", "destination_sync_mode": "overwrite"}]}
    )
    with caplog.at_level(logging.WARNING, logger="lakehouse_ingest"):
        plan_source(keyed, installer)
        plan_source(overwrite, installer)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_a_container_command_that_times_out_is_removed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    reason = containers.docker_api()
    if reason is not None:
        pytest.skip(reason)
    image = containers.fake_image()
    runtime = resolve_image(ConnectorSpec(image=image, pull="never"), lambda _: None, tmp_path)
    assert runtime.entrypoint == ("python3", "/airbyte/integration_code/main.py"), "from AIRBYTE_ENTRYPOINT"
    connector = Connector(runtime, "slow")
    before = set(containers.our_containers())
    monkeypatch.setattr(connector_module, "SINGLE_TIMEOUT", 3.0)
    with pytest.raises(ConnectorError, match="'check' did not finish within 3 s"):
        connector.check({"records": 1, "sleep": 60})
    assert set(containers.our_containers()) == before, "the container is removed"
    monkeypatch.setattr(connector_module, "SINGLE_TIMEOUT", 120.0)
    connector.check({"records": 1})  # and the same image answers when it is quick
