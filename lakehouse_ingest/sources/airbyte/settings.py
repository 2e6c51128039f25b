"""Where the Airbyte server is, how to authenticate, and how syncs on it are awaited: from the environment.

``AirbyteSettings`` reads ``AIRBYTE_URL`` (or the seeds' ``AIRBYTE_API_URL``), ``AIRBYTE_API``, the credential
variables and ``AIRBYTE_TOKEN_URL``, refuses half-given or conflicting credentials up front, never shows a
secret (``repr``, ``str``), and builds the client (``settings.client()``). It is frozen and hashable: the
Prefect tasks share one client per settings.

A secret may also live outside the environment, named by ``AIRBYTE_PASSWORD_BLOCK``, ``AIRBYTE_TOKEN_BLOCK``
or ``AIRBYTE_CLIENT_SECRET_BLOCK`` (Prefect Secret blocks: ``tasks.airbyte`` fetches them and hands the values
over with ``with_secrets``). Until then a named secret counts as given, so a preflight without Prefect accepts
``AIRBYTE_CLIENT_ID`` with ``AIRBYTE_CLIENT_SECRET_BLOCK``.

``SyncOptions`` reads how syncs are awaited: ``AIRBYTE_POLL_INTERVAL``, ``AIRBYTE_SYNC_TIMEOUT``,
``AIRBYTE_MAX_CONCURRENT_SYNCS`` and ``AIRBYTE_LOGS_URI``.

An empty variable counts as unset, as it always has.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import httpx
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.sources.airbyte.auth import BearerToken, ClientCredentials
from lakehouse_ingest.sources.airbyte.client import AirbyteClient
from lakehouse_ingest.sources.airbyte.errors import mask_url

ApiFamily = Literal["config", "public"]
SecretName = Literal["password", "token", "client_secret"]


class AirbyteSettings(BaseSettings):
    """Where the server is and how to authenticate; secrets are never part of ``repr``."""

    model_config = SettingsConfigDict(
        case_sensitive=True,
        env_ignore_empty=True,
        env_prefix="AIRBYTE_",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )
    # Validated first, in this order, so the first problem named is the one it always was.
    url: str = Field("", validation_alias=AliasChoices("AIRBYTE_URL", "AIRBYTE_API_URL"), validate_default=True)
    api: ApiFamily = Field("config", validation_alias="AIRBYTE_API")
    public_url: str | None = Field(None, validation_alias="AIRBYTE_PUBLIC_API_URL")
    username: str | None = Field(None, validation_alias=AliasChoices("AIRBYTE_USERNAME", "AIRBYTE_API_USERNAME"))
    password: SecretStr | None = Field(None, validation_alias=AliasChoices("AIRBYTE_PASSWORD", "AIRBYTE_API_PASSWORD"))
    token: SecretStr | None = Field(None, validation_alias="AIRBYTE_TOKEN")
    client_id: str | None = Field(None, validation_alias="AIRBYTE_CLIENT_ID")
    client_secret: SecretStr | None = Field(None, validation_alias="AIRBYTE_CLIENT_SECRET")
    token_url: str | None = Field(None, validation_alias="AIRBYTE_TOKEN_URL")
    # Names of secrets kept outside the environment, not fetched yet (``with_secrets`` clears them).
    password_block: str | None = Field(None, validation_alias="AIRBYTE_PASSWORD_BLOCK")
    token_block: str | None = Field(None, validation_alias="AIRBYTE_TOKEN_BLOCK")
    client_secret_block: str | None = Field(None, validation_alias="AIRBYTE_CLIENT_SECRET_BLOCK")
    # Tuning, set in code (tests); the prefix keeps unrelated variables off them.
    request_timeout: float = 30.0
    trigger_timeout: float = 180.0
    max_retries: int = 4
    backoff_seconds: float = 0.5

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AirbyteSettings:
        """From the process environment, or from ``env`` alone when given (the provisioning CLI, tests)."""
        if env is None:
            return cls()
        return cls.model_validate({name: value for name, value in env.items() if value})

    @field_validator("url")
    @classmethod
    def _server_root(cls, url: str) -> str:
        if not url:
            raise ConfigError("AIRBYTE_URL is not set: the catalog has sources on an Airbyte server")
        return url.removesuffix("/api/v1").removesuffix("/api/v1/")

    @field_validator("api", mode="before")
    @classmethod
    def _known_api(cls, api: object) -> object:
        if api not in ("config", "public"):
            raise ConfigError("AIRBYTE_API must be 'config' or 'public'")
        return api

    @model_validator(mode="after")
    def _coherent(self) -> AirbyteSettings:
        """Refuse half-given or conflicting credentials up front."""
        if httpx.URL(self.url).scheme not in ("http", "https"):
            raise ConfigError("AIRBYTE_URL must start with http:// or https://")
        given = [mode for mode, parts in self._credentials() if any(parts)]
        if len(given) > 1:
            raise ConfigError(f"Airbyte credentials conflict: {' and '.join(given)} are both set; keep one")
        if self.auth_mode == "basic" and not (self.username and self._given("password")):
            raise ConfigError("AIRBYTE_USERNAME and AIRBYTE_PASSWORD go together")
        if self.auth_mode == "client_credentials" and not (self.client_id and self._given("client_secret")):
            raise ConfigError("AIRBYTE_CLIENT_ID and AIRBYTE_CLIENT_SECRET go together")
        return self

    def __repr_args__(self) -> Iterator[tuple[str, Any]]:
        """What ``repr`` and ``str`` show: the server without user info, the API family, the auth mode."""
        yield "url", mask_url(self.url)
        yield "api", self.api
        yield "auth", self.auth_mode

    def __str__(self) -> str:
        return repr(self)

    @property
    def auth_mode(self) -> str:
        """Which authentication these settings use."""
        return next((mode for mode, parts in self._credentials() if any(parts)), "none")

    @property
    def config_base(self) -> str:
        """The Config API root."""
        return self.url.rstrip("/") + "/api/v1"

    @property
    def public_base(self) -> str:
        """The public API root."""
        return (self.public_url or self.url.rstrip("/") + "/api/public/v1").rstrip("/")

    @property
    def secret_blocks(self) -> dict[SecretName, str]:
        """The secrets kept outside the environment and not handed over yet, by the name of what holds them."""
        named: dict[SecretName, str | None] = {
            "password": self.password_block,
            "token": self.token_block,
            "client_secret": self.client_secret_block,
        }
        return {secret: block for secret, block in named.items() if block}

    def with_secrets(
        self, *, password: str | None = None, token: str | None = None, client_secret: str | None = None
    ) -> AirbyteSettings:
        """These settings with the secrets fetched from outside filled in and checked again: each one given
        replaces what the environment said and is no longer pending."""
        given = {"password": password, "token": token, "client_secret": client_secret}
        secrets = {name: value for name, value in given.items() if value is not None}
        resolved = {f"{name}_block": None for name in secrets}
        return self.model_validate({**self.model_dump(), **secrets, **resolved})

    def auth(self) -> httpx.Auth | None:
        """The httpx auth flow for these settings."""
        mode = self.auth_mode
        if mode == "basic":
            return httpx.BasicAuth(self.username or "", _value(self.password))
        if mode == "bearer":
            return BearerToken(_value(self.token))
        if mode == "client_credentials":
            token_url = self.token_url or f"{self.config_base}/applications/token"
            return ClientCredentials(token_url, self.client_id or "", _value(self.client_secret))
        return None

    def client(
        self, transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> AirbyteClient:
        """A client for this server (``transport`` and ``sleep`` for tests)."""
        return AirbyteClient(self, transport, sleep)

    def _credentials(self) -> list[tuple[str, tuple[object, ...]]]:
        """Each auth mode with the parts of it that are given (a pending secret counts)."""
        return [
            ("basic", (self.username, self._given("password"))),
            ("bearer", (self._given("token"),)),
            ("client_credentials", (self.client_id, self._given("client_secret"))),
        ]

    def _given(self, secret: SecretName) -> bool:
        """True when the secret has a value or a block that will provide it."""
        return bool(_value(getattr(self, secret)) or getattr(self, f"{secret}_block"))


class SyncOptions(BaseSettings):
    """How syncs on the Airbyte server are awaited, and where their logs are archived (None: not archived)."""

    model_config = SettingsConfigDict(
        case_sensitive=True, env_ignore_empty=True, extra="ignore", frozen=True, populate_by_name=True
    )

    poll_interval: float = Field(10.0, validation_alias="AIRBYTE_POLL_INTERVAL")
    timeout: float = Field(6 * 3600.0, validation_alias="AIRBYTE_SYNC_TIMEOUT")
    max_concurrent_syncs: int = Field(10, validation_alias="AIRBYTE_MAX_CONCURRENT_SYNCS")
    logs_uri: str | None = Field(None, validation_alias="AIRBYTE_LOGS_URI")
    # How long a job may show a status this client does not know before it is cancelled (a status added by a newer
    # server that never ends would otherwise hold a sync slot until the overall timeout).
    unknown_status_grace: float = Field(600.0, validation_alias="AIRBYTE_UNKNOWN_STATUS_GRACE")


def _value(secret: SecretStr | None) -> str:
    return secret.get_secret_value() if secret is not None else ""
