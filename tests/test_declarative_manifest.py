"""Declarative manifests as connectors: the README's example, verbatim, against a small JSON API served by this test
on loopback (bearer auth, page-number pagination, an incremental cursor, nested objects, a value of the wrong
type), end to end through ``python -m flows.bronze``; and the bad inputs a manifest source can have, each one line,
exit 2, nothing written.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pyarrow.dataset as ds
import pytest
import yaml
from deltalake import DeltaTable

from flows.cli import bronze_main

README = Path(__file__).resolve().parent.parent / "README.md"
API_KEY = "shop-key-7d1e0c"

pytestmark = pytest.mark.connector  # installs airbyte-source-declarative-manifest on first use (~2 min)


def readme_example(name: str) -> str:
    """The fenced block after ``<!-- example:<kind> <name> -->`` in the README."""
    text = README.read_text()
    match = re.search(rf"<!-- example:\w+ {re.escape(name)} -->\n```yaml\n(.*?)\n```", text, re.DOTALL)
    assert match, f"README has no example {name}"
    return match.group(1) + "\n"


def item(i: int, updated: str, **changes: Any) -> dict[str, Any]:
    return {
        "id": i,
        "name": f"item {i}",
        "price": 1.5 * i,
        "tags": ["new", f"t{i}"],
        "owner": {"login": f"user{i}", "age": 30 + i},
        "updated_at": updated,
        **changes,
    }


@dataclass
class ShopApi:
    """The example's API: ``GET /v1/items?updated_since=&page=&per_page=`` with a bearer key."""

    items: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, list[str]]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def shop_api() -> Iterator[ShopApi]:
    api = ShopApi(
        items=[
            item(1, "2024-01-02T00:00:00Z"),
            item(2, "2024-01-03T00:00:00Z"),
            item(3, "2024-01-04T00:00:00Z", price="n/a"),  # not a number: nulled and recorded
            item(4, "2024-01-05T00:00:00Z"),
            item(5, "2024-01-06T00:00:00Z"),
        ]
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                self._answer(401, {"error": "invalid API key"})
                return
            if url.path != "/v1/items":
                self._answer(404, {"error": "no such endpoint"})
                return
            api.requests.append(query)
            since = query.get("updated_since", [""])[0]
            page, size = int(query.get("page", ["1"])[0]), int(query.get("per_page", ["100"])[0])
            selected = sorted((i for i in api.items if i["updated_at"] >= since), key=lambda i: i["updated_at"])
            self._answer(200, {"data": selected[(page - 1) * size : page * size]})

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def example(tmp_path: Path, shop_api: ShopApi, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The README's two files, side by side; the catalog's ${SHOP_API_URL} and ${SHOP_API_KEY} set."""
    folder = tmp_path / "example"
    folder.mkdir()
    (folder / "shop_api.yaml").write_text(readme_example("shop_api.yaml"))
    (folder / "manifest-catalog.yaml").write_text(readme_example("manifest-catalog.yaml"))
    monkeypatch.setenv("SHOP_API_URL", shop_api.url)
    monkeypatch.setenv("SHOP_API_KEY", API_KEY)
    monkeypatch.chdir(tmp_path)  # the manifest path resolves against the catalog's folder, not here
    return folder / "manifest-catalog.yaml"


def lake(tmp_path: Path) -> list[str]:
    return ["--bronze", str(tmp_path / "bronze"), "--silver", str(tmp_path / "silver")]


def items_batches(bronze: Path) -> list[list[dict[str, Any]]]:
    folder = bronze / "airbyte" / "shop" / "items"
    batches = []
    for manifest in sorted((folder / "_manifests").glob("*.json")):
        files = [bronze / f["key"] for f in json.loads(manifest.read_text())["files"]]
        rows = ds.dataset([str(f) for f in files]).to_table().to_pylist() if files else []
        batches.append(sorted(rows, key=lambda r: r["id"]))
    return batches


@pytest.mark.usefixtures("prefect_server")
def test_readme_manifest_example_syncs_incrementally_into_bronze_and_silver(
    tmp_path: Path, example: Path, shop_api: ShopApi, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bronze_main(["--catalog", str(example), *lake(tmp_path)]) == 0
    (first,) = items_batches(tmp_path / "bronze")
    assert [r["id"] for r in first] == [1, 2, 3, 4, 5]
    assert first[0]["owner"] == {"login": "user1", "age": 31} and first[0]["tags"] == ["new", "t1"]
    assert first[2]["price"] is None
    assert first[2]["_airbyte_meta"]["changes"] == [
        {"field": "price", "change": "NULLED", "reason": "DESTINATION_SERIALIZATION_ERROR"}
    ]
    assert first[1]["price"] == 3.0 and all(not r["_airbyte_meta"]["changes"] for r in first if r["id"] != 3)
    assert {q.get("page", ["1"])[0] for q in shop_api.requests} >= {"1", "2", "3"}, "paginated, 2 per page"
    assert all(q["updated_since"] == ["2024-01-01T00:00:00Z"] for q in shop_api.requests)

    shop_api.items[1] = item(2, "2024-02-01T00:00:00Z", name="item 2, renamed")
    shop_api.items.append(item(6, "2024-02-02T00:00:00Z"))
    shop_api.requests.clear()
    assert bronze_main(["--catalog", str(example), *lake(tmp_path)]) == 0
    second = items_batches(tmp_path / "bronze")[1]
    assert all(q["updated_since"] == ["2024-01-06T00:00:00Z"] for q in shop_api.requests), "from the last cursor"
    assert [r["id"] for r in second] == [2, 5, 6]  # the cursor is inclusive: item 5 is read again
    silver = DeltaTable(str(tmp_path / "silver" / "shop" / "items")).to_pyarrow_table().to_pylist()
    assert sorted(r["id"] for r in silver) == [1, 2, 3, 4, 5, 6], "one row per id"
    assert next(r for r in silver if r["id"] == 2)["name"] == "item 2, renamed"
    output = capsys.readouterr()
    assert API_KEY not in output.out + output.err


def refused(tmp_path: Path, catalog: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code = bronze_main(["--catalog", str(catalog), *lake(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err and API_KEY not in err
    assert not (tmp_path / "bronze").exists() and not (tmp_path / "silver").exists(), "nothing written"
    return err.splitlines()[-1]


def test_an_invalid_manifest_is_refused_with_the_cdks_reason(
    tmp_path: Path, example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = example.with_name("shop_api.yaml")
    manifest.write_text(manifest.read_text().replace("type: DpathExtractor", "type: DpathExtracter"))
    assert refused(tmp_path, example, capsys) == (
        f"error: source 'shop': invalid manifest {manifest}: streams.0.retriever.record_selector.extractor.type: "
        "'DpathExtracter' is not one of ['CustomRecordExtractor'] (did you mean 'DpathExtractor'?)"
    )


def test_a_config_missing_a_field_the_manifests_spec_requires_is_refused(
    tmp_path: Path, example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = yaml.safe_load(example.read_text())
    del catalog["sources"][0]["config"]["api_key"]
    example.write_text(yaml.safe_dump(catalog))
    assert refused(tmp_path, example, capsys) == (
        "error: source 'shop': invalid connector config: config: 'api_key' is required"
    )


def test_a_config_the_manifests_check_rejects_is_refused_with_its_reason(
    tmp_path: Path, example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHOP_API_KEY", "wrong-key-0042")
    line = refused(tmp_path, example, capsys)
    assert line.startswith("error: source 'shop': the connector's check rejected the config: ")
    assert line.endswith("'Unauthorized. Please ensure you are authenticated correctly.'")
    assert "wrong-key-0042" not in line


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read manifest {path}: No such file or directory"),
        ("streams: [unclosed\n", "manifest {path} is not valid YAML at line 2"),
        ("- just\n- a list\n", "manifest {path} must be a mapping (version, streams, spec, ...)"),
    ],
)
def test_a_manifest_that_cannot_be_read_is_refused(
    tmp_path: Path, example: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    manifest = example.with_name("shop_api.yaml")
    if content is None:
        manifest.unlink()
    else:
        manifest.write_text(content)
    assert refused(tmp_path, example, capsys) == f"error: source 'shop': {message.format(path=manifest)}"


def test_a_manifest_without_streams_is_refused(
    tmp_path: Path, example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = example.with_name("shop_api.yaml")
    document = yaml.safe_load(manifest.read_text())
    broken = copy.deepcopy(document)
    broken["streams"] = []
    manifest.write_text(yaml.safe_dump(broken))
    line = refused(tmp_path, example, capsys)
    assert line.startswith(f"error: source 'shop': invalid manifest {manifest}: ")
    assert "stream" in line
