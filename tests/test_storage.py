"""LakeStorage: the same behaviour on a local directory and on a real S3 server (SeaweedFS)."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.seaweed import S3Endpoint

from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.lake.local import LocalStorage
from lakehouse_ingest.lake.roots import open_storage
from lakehouse_ingest.lake.s3 import S3Storage
from lakehouse_ingest.lake.storage import LakeStorage, StoredObject


def add_folder_marker_and_hidden_files(storage: LakeStorage, s3: S3Endpoint | None) -> None:
    """Objects that exist under the root but are not data: none of them may be listed."""
    if isinstance(storage, S3Storage):
        assert s3 is not None
        client = s3.boto3_client()
        client.put_object(Bucket=storage.bucket, Key=f"{storage.prefix}/airbyte/x/", Body=b"")
        client.put_object(Bucket=storage.bucket, Key=f"{storage.prefix}/airbyte/", Body=b"")
    else:
        assert isinstance(storage, LocalStorage)
        staged = storage.root / ".staging" / "sync-1" / "part.parquet"
        staged.parent.mkdir(parents=True)
        staged.write_bytes(b"staged")
        (storage.root / "airbyte" / "x").mkdir(parents=True)
        (storage.root / "airbyte" / "x" / ".a.parquet.0123.tmp").write_bytes(b"partial")


def test_put_get_round_trip(storage: LakeStorage) -> None:
    storage.put_bytes("airbyte/faker/users/a.json", b'{"a": 1}')
    storage.put_bytes("airbyte/faker/users/a.json", b"replaced")
    storage.put_bytes("top.bin", bytes(range(256)))
    assert storage.get_bytes("airbyte/faker/users/a.json") == b"replaced"
    assert storage.get_bytes("top.bin") == bytes(range(256))


def test_get_missing_key(storage: LakeStorage) -> None:
    with pytest.raises(FileNotFoundError):
        storage.get_bytes("airbyte/nothing/here.json")


def test_exists(storage: LakeStorage) -> None:
    storage.put_bytes("dir/file.txt", b"x")
    assert storage.exists("dir/file.txt")
    assert not storage.exists("dir/other.txt")
    assert not storage.exists("dir")  # a folder is not an object


def test_list(storage: LakeStorage, request: pytest.FixtureRequest) -> None:
    s3 = request.getfixturevalue("s3") if isinstance(storage, S3Storage) else None
    storage.put_bytes("airbyte/faker/users/b.parquet", b"bb")
    storage.put_bytes("airbyte/faker/users/a.parquet", b"a")
    storage.put_bytes("airbyte/faker/users/_manifests/1.json", b"{}")
    storage.put_bytes("airbyte/faker/products/p.parquet", b"ppp")
    storage.put_bytes("airbyte/fakerx/users/z.parquet", b"z")
    storage.put_bytes("_state/airbyte/faker/state.json", b"{}")
    add_folder_marker_and_hidden_files(storage, s3)

    assert storage.list("airbyte/faker") == [
        StoredObject("airbyte/faker/products/p.parquet", 3),
        StoredObject("airbyte/faker/users/_manifests/1.json", 2),
        StoredObject("airbyte/faker/users/a.parquet", 1),
        StoredObject("airbyte/faker/users/b.parquet", 2),
    ]
    assert storage.list("airbyte/faker/users/") == storage.list("airbyte/faker/users")
    assert [o.key for o in storage.list("")] == [
        "_state/airbyte/faker/state.json",
        "airbyte/faker/products/p.parquet",
        "airbyte/faker/users/_manifests/1.json",
        "airbyte/faker/users/a.parquet",
        "airbyte/faker/users/b.parquet",
        "airbyte/fakerx/users/z.parquet",
    ]
    assert storage.list("airbyte/x") == []
    assert storage.list("missing/prefix") == []


def test_delete(storage: LakeStorage) -> None:
    storage.put_bytes("a/b.txt", b"x")
    storage.put_bytes("a/c.txt", b"y")
    storage.delete("a/b.txt")
    storage.delete("a/b.txt")  # already gone: fine
    storage.delete("never/existed.txt")
    assert not storage.exists("a/b.txt")
    assert [o.key for o in storage.list("a")] == ["a/c.txt"]


def test_publish_file_and_open_parquet(storage: LakeStorage) -> None:
    table = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": ["a", None, "c"]})
    with storage.staging_dir() as staging:
        local = staging / "part-0.parquet"
        pq.write_table(table, local)
        size = local.stat().st_size
        key = "airbyte/faker/users/2024_01_01_1704067200000_0.parquet"

        assert storage.publish_file(local, key) == size
        assert not local.exists()

    assert storage.list("airbyte") == [StoredObject(key, size)]
    parquet = storage.open_parquet(key)
    assert parquet.metadata.num_rows == 3
    assert parquet.read().equals(table)


def test_publish_file_replaces(storage: LakeStorage, tmp_path: Path) -> None:
    storage.put_bytes("data/f.bin", b"old contents")
    local = tmp_path / "new.bin"
    local.write_bytes(b"new")
    assert storage.publish_file(local, "data/f.bin") == 3
    assert storage.get_bytes("data/f.bin") == b"new"
    assert not local.exists()


@pytest.mark.parametrize(
    "key", ["", "/abs/key", "../up", "a/../../b", "a/..", "a\\b", "a//b", "a/./b", "a/", ".", "./a"]
)
def test_bad_keys_are_refused(storage: LakeStorage, key: str) -> None:
    with pytest.raises(ConfigError, match="invalid object key"):
        storage.put_bytes(key, b"x")
    with pytest.raises(ConfigError, match="invalid object key"):
        storage.get_bytes(key)
    with pytest.raises(ConfigError, match="invalid object key"):
        storage.open_parquet(key)


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "   ",
        "gs://x/y",
        "s3://Bad_Bucket",
        "s3://bucket/../x",
        "s3://bucket/a?b=1",
        "s3://ab",
        "s3://bucket/a//b",
    ],
)
def test_open_storage_refuses_bad_uris(uri: str) -> None:
    with pytest.raises(ConfigError):
        open_storage(uri, env={})


def test_open_storage_local(tmp_path: Path) -> None:
    for uri in (f"file://{tmp_path}/x", str(tmp_path / "x")):
        storage = open_storage(uri, env={})
        assert isinstance(storage, LocalStorage)
        assert storage.root == tmp_path / "x"


def test_open_storage_s3_reads_aws_env() -> None:
    env = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_DEFAULT_REGION": "eu-west-3",
    }
    storage = open_storage("s3://bronze/some/prefix/", env=env)
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix, storage.uri) == (
        "bronze",
        "some/prefix",
        "s3://bronze/some/prefix",
    )
    assert storage.url_for("a/b.json") == "s3://bronze/some/prefix/a/b.json"
    assert storage.settings.endpoint_url == "http://127.0.0.1:1"
    assert storage.settings.region == "eu-west-3"
    assert storage.settings.secret_key is None


def test_open_storage_refuses_non_http_endpoint() -> None:
    with pytest.raises(ConfigError, match="AWS_ENDPOINT_URL"):
        open_storage("s3://bronze", env={"AWS_ENDPOINT_URL": "ftp://example"})


def test_staging_left_by_a_killed_process_is_removed_by_the_next(
    storage: LakeStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process killed while it staged a part leaves half a Parquet file: the next staging on this host removes it
    (and only what a process that is gone left on this host)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    parent = storage.root / ".staging" if isinstance(storage, LocalStorage) else tmp_path / "tmp"
    prefix = "sync-" if isinstance(storage, LocalStorage) else "lake-staging-"
    host = socket.gethostname()
    dead = parent / f"{prefix}{2**22 + 7}~{host}~abc"  # above Linux's default pid_max: no such process
    alive, elsewhere = parent / f"{prefix}{os.getpid()}~{host}~def", parent / f"{prefix}{2**22 + 7}~other-host~ghi"
    for folder in (dead, alive, elsewhere):
        (folder / "items").mkdir(parents=True)
        (folder / "items" / "part-1.parquet").write_bytes(b"PAR1 half")
    with storage.staging_dir() as staging:
        assert staging.parent == parent and staging.is_dir()
        assert not dead.exists() and alive.exists() and elsewhere.exists()
    assert not staging.exists()
