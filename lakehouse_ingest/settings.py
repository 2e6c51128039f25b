"""Runtime settings from the environment (and CLI overrides): where the lake is and where connectors live."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "airbyte-lakehouse" / "connectors"


class IngestSettings(BaseSettings):
    """Settings read from ``BRONZE_URI``, ``SILVER_URI``, ``CATALOG``, ``CONNECTOR_CACHE_DIR``, ..."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    bronze_uri: str = Field("./lakehouse/bronze", validation_alias=AliasChoices("BRONZE_URI", "bronze_uri"))
    silver_uri: str = Field("./lakehouse/silver", validation_alias=AliasChoices("SILVER_URI", "silver_uri"))
    catalog: str | None = Field(None, validation_alias=AliasChoices("CATALOG", "catalog"))
    connector_cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        validation_alias=AliasChoices("CONNECTOR_CACHE_DIR", "connector_cache_dir"),
    )
    parquet_compression: Literal["snappy", "zstd", "gzip", "none"] = Field(
        "snappy", validation_alias=AliasChoices("PARQUET_COMPRESSION", "parquet_compression")
    )
    part_max_rows: int = Field(1_000_000, ge=1, validation_alias=AliasChoices("PART_MAX_ROWS", "part_max_rows"))
    # How long a silver run waits for its source's slot (another silver run of it merging) before it merges without
    # it; a run killed holding the slot can leave it taken for good on a Prefect server without services.
    silver_slot_wait_seconds: float = Field(
        75.0, gt=0, validation_alias=AliasChoices("SILVER_SLOT_WAIT_SECONDS", "silver_slot_wait_seconds")
    )
