"""Checks that the SeaweedFS test server is a usable S3 for boto3 and pyarrow."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from support.seaweed import S3Endpoint, SeaweedS3Server


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """One server per module: starting and stopping costs ~6 s."""
    with SeaweedS3Server(tmp_path_factory.mktemp("seaweed")) as endpoint:
        yield endpoint


def test_env_points_at_endpoint(s3: S3Endpoint) -> None:
    assert s3.env() == {
        "AWS_ENDPOINT_URL": s3.url,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_REGION": "us-east-1",
    }


def test_buckets_exist(s3: S3Endpoint) -> None:
    names = {b["Name"] for b in s3.boto3_client().list_buckets()["Buckets"]}
    assert {"bronze", "silver"} <= names


def test_boto3_round_trip(s3: S3Endpoint) -> None:
    client = s3.boto3_client()
    client.put_object(Bucket="bronze", Key="rt/a.txt", Body=b"hello")
    client.put_object(Bucket="bronze", Key="rt/b.txt", Body=b"world")

    assert client.get_object(Bucket="bronze", Key="rt/a.txt")["Body"].read() == b"hello"
    listed = client.list_objects_v2(Bucket="bronze", Prefix="rt/")
    assert [o["Key"] for o in listed["Contents"]] == ["rt/a.txt", "rt/b.txt"]


def test_wrong_secret_is_rejected(s3: S3Endpoint) -> None:
    bad = dataclasses.replace(s3, secret_key=s3.secret_key + "x").boto3_client()
    with pytest.raises(ClientError) as info:
        bad.put_object(Bucket="bronze", Key="nope.txt", Body=b"x")
    assert info.value.response["Error"]["Code"] in ("SignatureDoesNotMatch", "AccessDenied")


def test_pyarrow_parquet_round_trip(s3: S3Endpoint) -> None:
    table = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]})
    fs = pafs.S3FileSystem(
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        endpoint_override=s3.host_port,
        scheme="http",
        region=s3.region,
    )
    try:
        pq.write_table(table, "bronze/x/t.parquet", filesystem=fs)
        assert pq.read_table("bronze/x/t.parquet", filesystem=fs).equals(table)
    finally:
        # Drop every S3FileSystem before interpreter exit so pyarrow's own
        # atexit S3 finalisation does not race live clients.
        del fs
        gc.collect()
