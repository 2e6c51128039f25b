"""Stream identity as Airbyte forms it (rules and sources in lakehouse_ingest/sources/platform/identity.py)."""

from __future__ import annotations

import re

import pytest

from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.sources.platform.identity import (
    check_folders,
    destination_name,
    destination_namespace,
    stream_identity,
)


@pytest.mark.parametrize(
    ("name", "prefix", "expected"),
    [("pull-requests", "gh_", "gh_pull-requests"), ("x", "  ", "x"), ("x", "", "x"), ("x", None, "x")],
)
def test_destination_name_is_prefix_plus_name_unsanitized(name: str, prefix: str | None, expected: str) -> None:
    assert destination_name(name, prefix) == expected


@pytest.mark.parametrize(
    ("namespace", "definition", "namespace_format", "expected"),
    [
        ("public", "source", None, "public"),
        ("", "source", None, ""),  # a blank source namespace is kept on this branch
        ("public", "destination", None, None),
        ("public", "customformat", "${SOURCE_NAMESPACE}", "public"),
        ("public", "custom_format", "shop_${SOURCE_NAMESPACE}", "shop_public"),  # the public API's spelling
        (None, "customformat", "${SOURCE_NAMESPACE}", None),
        ("  ", "customformat", "raw_${SOURCE_NAMESPACE}", "raw_"),
        ("public", "customformat", "  ", None),
        ("public", None, None, "public"),  # no definition: follow the source
        ("public", "destination", "${SOURCE_NAMESPACE}", None),  # the format only counts for customformat
    ],
)
def test_destination_namespace(
    namespace: str | None, definition: str | None, namespace_format: str | None, expected: str | None
) -> None:
    assert destination_namespace(namespace, definition, namespace_format) == expected


def test_identity_folder_and_stats_keys() -> None:
    identity = stream_identity("Order Items", "public", "gh_", "destination", None)
    assert (identity.destination_name, identity.destination_namespace, identity.folder) == (
        "gh_Order Items",
        None,
        "gh_Order_Items",
    )
    # source name first (servers >= v0.50.24), with then without namespace; then the prefixed name (older servers)
    assert identity.stats_keys() == [
        ("Order Items", "public"),
        ("Order Items", None),
        ("gh_Order Items", None),
    ]


def test_streams_sharing_a_folder_are_refused_naming_both() -> None:
    first, second = stream_identity("Order Items", None), stream_identity("Order_Items", None)
    with pytest.raises(ConfigError) as info:
        check_folders([first, second], "source 'shop'")
    assert "'Order Items'" in str(info.value) and "'Order_Items'" in str(info.value)
    assert "'Order_Items'" in str(info.value).split("folder")[1]
    same_name = [stream_identity("users", "a"), stream_identity("users", "b")]
    with pytest.raises(ConfigError, match=re.escape("'a.users' and 'b.users'")):
        check_folders(same_name, "source 'shop'")


def test_a_name_that_would_escape_the_layout_is_refused() -> None:
    with pytest.raises(ConfigError, match="would escape"):
        stream_identity("a/b", None)
