"""The YAML catalog, stream folder names and the bronze key layout."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from lakehouse_ingest.catalog.sources import load_catalog, parse_catalog
from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.lake import keys as layout
from lakehouse_ingest.lake.names import safe_stream_dir, to_alphanumeric_and_underscore

TWO_SOURCES = """\
sources:
  - name: faker
    connector:
      package: airbyte-source-faker
      version: "7.2.1"
    config: {count: 10}
  - name: crm.prod
    connection_id: 2c1f0b6e
"""


def catalog_with_source(body: str) -> str:
    return "sources:\n" + body


def test_default_catalog() -> None:
    catalog = load_catalog(env={})
    (faker,) = catalog.sources
    assert faker.name == "faker"
    assert faker.connector is not None
    assert faker.connector.package == "airbyte-source-faker"
    assert faker.connector.command == "source-faker"
    assert faker.connector.requirement == f"airbyte-source-faker=={faker.connector.version}"
    assert faker.connection_id is None


def test_load_catalog_from_file(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(TWO_SOURCES, encoding="utf-8")
    assert [s.name for s in load_catalog(path, env={}).sources] == ["faker", "crm.prod"]


def test_missing_catalog_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read catalog"):
        load_catalog(tmp_path / "absent.yaml", env={})


def test_malformed_yaml_names_the_line() -> None:
    text = "sources:\n  - name: a\n    connection_id: [x\n    config: {}\n  - name: b: c\n"
    with pytest.raises(ConfigError, match=r"cat\.yaml is not valid YAML at line \d+"):
        parse_catalog(text, "cat.yaml", {})


@pytest.mark.parametrize("text", ["", "foo: 1\n", "- name: a\n", "just text\n"])
def test_missing_sources_key(text: str) -> None:
    with pytest.raises(ConfigError, match="top-level 'sources:'"):
        parse_catalog(text, "cat.yaml", {})


def test_empty_sources_list() -> None:
    with pytest.raises(ConfigError, match=r"cat\.yaml: sources:"):
        parse_catalog("sources: []\n", "cat.yaml", {})


@pytest.mark.parametrize(
    ("body", "place"),
    [
        ("  - name: a\n    conector: {package: airbyte-source-faker}\n", "sources.0.conector"),
        (
            "  - name: a\n    connector: {package: airbyte-source-faker, verison: '1'}\n",
            "sources.0.connector.verison",
        ),
        (
            "  - name: a\n    connection_id: x\n    streams: [{name: s, sync_mod: incremental}]\n",
            "sources.0.streams.0.sync_mod",
        ),
    ],
)
def test_unknown_field_names_its_place(body: str, place: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_catalog(catalog_with_source(body), "cat.yaml", {})
    assert f"cat.yaml: {place}: Extra inputs are not permitted" in str(info.value)


@pytest.mark.parametrize("name", ["..", "a/b", "", "../x", " x", ".hidden", "a..b", "x" * 129])
def test_bad_source_names(name: str) -> None:
    body = f"  - name: {json.dumps(name)}\n    connection_id: c\n"
    with pytest.raises(ConfigError, match=r"sources\.0\.name: .*invalid source name"):
        parse_catalog(catalog_with_source(body), "cat.yaml", {})


def test_duplicate_source_names() -> None:
    body = "  - name: a\n    connection_id: x\n  - name: a\n    connection_id: y\n"
    with pytest.raises(ConfigError, match="source names must be unique; repeated: a"):
        parse_catalog(catalog_with_source(body), "cat.yaml", {})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  - name: a\n    config: {x: 1}\n", "needs a 'connector'"),
        (
            "  - name: a\n    connection_id: x\n    connector: {package: airbyte-source-faker}\n",
            "has connector and connection_id; give exactly one",
        ),
        ("  - name: a\n    connection_id: x\n    connection_name: y\n", "give exactly one"),
        ("  - name: a\n    connection_name: x\n    config: {k: 1}\n", "belong to embedded sources"),
        ("  - name: a\n    connector: {package: faker}\n", "airbyte-source-<name>"),
        (
            "  - name: a\n    connector: {package: airbyte-source-faker}\n    streams: [{name: s}, {name: s}]\n",
            "lists a stream twice",
        ),
    ],
)
def test_bad_engine(body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_catalog(catalog_with_source(body), "cat.yaml", {})


def test_env_references_are_resolved() -> None:
    body = (
        "  - name: a\n    connector: {package: airbyte-source-faker}\n"
        "    config: {key: 'k-${API_KEY}', list: ['${API_KEY}'], n: 3}\n"
        "  - name: b\n    connection_id: '${CONN}'\n"
    )
    catalog = parse_catalog(catalog_with_source(body), "cat.yaml", {"API_KEY": "s3cr3t", "CONN": "c-1"})
    embedded, platform = catalog.sources
    assert platform.connection_id == "c-1"
    assert embedded.config == {"key": "k-s3cr3t", "list": ["s3cr3t"], "n": 3}


def test_unset_env_reference_is_named() -> None:
    body = (
        "  - name: a\n    connector: {package: airbyte-source-faker}\n"
        "    config: {key: '${DEFINED}-${NOT_SET_ANYWHERE}'}\n"
    )
    with pytest.raises(ConfigError, match="unset environment variable NOT_SET_ANYWHERE"):
        parse_catalog(catalog_with_source(body), "cat.yaml", {"DEFINED": "1"})


PROVISIONED = """\
  - name: shop
    connection_name: shop-bronze
    airbyte:
      workspace: Default Workspace
      source_name: Shop API
      source_definition_id: dfd88b22-b603-4c3d-aad7-3701784586b1
      source_config: {api_key: "${SHOP_KEY}", count: 10}
    streams:
      - name: users
        sync_mode: incremental
        cursor_field: [updated_at]
        primary_key: [[id]]
        destination_sync_mode: append
"""


def test_airbyte_block_allows_sync_settings_on_platform_streams() -> None:
    (shop,) = parse_catalog(catalog_with_source(PROVISIONED), "cat.yaml", {"SHOP_KEY": "k"}).sources
    assert shop.airbyte is not None
    assert shop.airbyte.source_name == "Shop API" and shop.airbyte.workspace == "Default Workspace"
    assert shop.airbyte.source_config == {"api_key": "k", "count": 10}
    assert shop.airbyte.destination_name is None and shop.airbyte.source_id is None
    (users,) = shop.streams or []
    assert (users.sync_mode, users.cursor_field, users.primary_key) == ("incremental", ["updated_at"], [["id"]])
    # Without the block the refusal stays.
    bare = PROVISIONED.split("    airbyte:")[0] + "    streams:" + PROVISIONED.split("    streams:")[1]
    with pytest.raises(ConfigError, match="stream sync settings belong to embedded sources"):
        parse_catalog(catalog_with_source(bare), "cat.yaml", {})


@pytest.mark.parametrize(
    ("airbyte", "message"),
    [
        ("{}", "needs exactly one of 'source_id' \\(existing source\\) or 'source_name'"),
        ("{source_id: a, source_name: b}", "needs exactly one of"),
        ("{source_name: b, source_config: {x: 1}}", "'source_definition_id' and 'source_config' go together"),
        ("{source_id: a, source_definition_id: d, source_config: {x: 1}}", "'source_config' needs 'source_name'"),
        ("{source_name: b, destination: x}", r"sources\.0\.airbyte\.destination: Extra inputs are not permitted"),
    ],
)
def test_bad_airbyte_blocks(airbyte: str, message: str) -> None:
    body = f"  - name: a\n    connection_name: c\n    airbyte: {airbyte}\n"
    with pytest.raises(ConfigError, match=message) as info:
        parse_catalog(catalog_with_source(body), "cat.yaml", {})
    assert "\n" not in str(info.value)


def test_airbyte_block_needs_a_platform_source() -> None:
    body = "  - name: a\n    connector: {package: airbyte-source-faker}\n    airbyte: {source_name: b}\n"
    with pytest.raises(ConfigError, match="'airbyte' provisions a connection; it needs 'connection_id'"):
        parse_catalog(catalog_with_source(body), "cat.yaml", {})


def test_select() -> None:
    catalog = parse_catalog(TWO_SOURCES, "cat.yaml", {})
    assert [s.name for s in catalog.select(None)] == ["faker", "crm.prod"]
    assert [s.name for s in catalog.select([])] == ["faker", "crm.prod"]
    assert [s.name for s in catalog.select(["crm.prod", "crm.prod"])] == ["crm.prod"]
    with pytest.raises(ConfigError) as info:
        catalog.select(["faker", "nope"])
    assert str(info.value) == "unknown source 'nope'; the catalog has: faker, crm.prod"


@pytest.mark.parametrize("stream", ["..", ".", "a/b", "", "a\\b", " .. ", "nul\x00"])
def test_unsafe_stream_dirs(stream: str) -> None:
    with pytest.raises(ConfigError, match="would escape"):
        safe_stream_dir(stream)


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        # Airbyte's toS3SafeCharacters (airbyte-cdk/bulk/core/load/.../data/Transformations.kt): NFKD, marks
        # dropped, each character outside A-Za-z0-9 and /!_.*')(&$@=;:+,?- one "_" (spaces not collapsed)
        ("my stream", "my_stream"),
        ("users", "users"),
        ("a.b-c_d", "a.b-c_d"),
        ("é$", "e$"),
        ("pull-requests", "pull-requests"),
        ("Order Items", "Order_Items"),
        ("Order  Items", "Order__Items"),
        ("café", "cafe"),
        ("ﬁle", "file"),
        ("\uff21\uff22\uff23", "ABC"),  # full-width letters
        ("Straße", "Stra_e"),
        ("x(1)!", "x(1)!"),
        ("a#b", "a_b"),
        ("price€", "price_"),
        ("über-größe", "uber-gro_e"),
    ],
)
def test_safe_stream_dir(stream: str, expected: str) -> None:
    assert safe_stream_dir(stream) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pull-requests", "pull_requests"),
        ("Order Items", "Order_Items"),
        ("Order  Items", "Order_Items"),
        ("café", "cafe"),
        ("x(1)!", "x_1__"),
        ("a/b", "a_b"),
    ],
)
def test_alias_names_as_the_platform_computes_them(name: str, expected: str) -> None:
    """airbyte-platform Names.toAlphanumericAndUnderscore: what aliasName always holds (never a destination name)."""
    assert to_alphanumeric_and_underscore(name) == expected


@pytest.mark.parametrize(
    "started",
    [
        datetime(2024, 3, 5, 7, 8, 9, 123000, tzinfo=UTC),
        # Same instant in another zone: the key uses the UTC date.
        datetime(2024, 3, 5, 2, 8, 9, 123000, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_data_key(started: datetime) -> None:
    key = layout.data_key("faker", "my stream", started, 2)
    assert key == "airbyte/faker/my_stream/2024_03_05_1709622489123_2.parquet"
    match = layout.DATA_FILE.fullmatch(key.rsplit("/", 1)[1])
    assert match is not None
    assert match.group("date", "epoch", "part") == ("2024_03_05", "1709622489123", "2")


def test_data_key_refuses_bad_names() -> None:
    started = datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(ConfigError):
        layout.data_key("../x", "users", started, 0)
    with pytest.raises(ConfigError):
        layout.data_key("faker", "..", started, 0)


def test_other_keys() -> None:
    assert layout.manifest_key("faker", "users", 17) == "airbyte/faker/users/_manifests/17.json"
    assert layout.state_key("faker") == "_state/airbyte/faker/state.json"
