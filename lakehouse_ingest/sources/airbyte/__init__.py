"""Talking to an Airbyte server (self-managed 0.x/1.x/2.x or Cloud): only HTTP lives here.

Read in this order:

- ``settings``:     ``AirbyteSettings`` (server, API family, credentials; builds the client) and ``SyncOptions``
                    (how syncs are awaited), from the environment through pydantic-settings.
- ``client``:       ``AirbyteClient``, the facade: the API family picked once, plus the provisioning calls.
- ``config_api``:   the Config API (``/api/v1``): jobs with per-stream stats and logs, connections, workspaces.
- ``public_api``:   the public API (``/api/public/v1``, Cloud): the same operations, totals only.
- ``provisioning``: definitions, sources, destinations, discover, connection configurations (Config API only).
- ``http``:         the one ``request()``: failures become errors in one place; transient ones retried.
- ``pages``:        paging through lists, one helper per API style.
- ``auth``:         none, HTTP basic, static bearer, client credentials (token exchange, refresh).
- ``errors``:       one hierarchy; every error carries connection/job id, status, HTTP code, method, masked URL,
                    and whether retrying can help (``retryable``).
- ``jobs``, ``connections``, ``provisioning_models``: typed records parsed on arrival (jobs, attempts and
                    per-stream stats; connections and workspaces; actors, catalogs, connection configurations).
- ``syncs``:        trigger without double-triggering, await with a deadline, cancel on timeout or interruption.

Imports only ``lakehouse_ingest.errors`` and ``lakehouse_ingest.lake.names``; used by ``sources.platform``,
``provisioning``, ``tasks`` and ``deployments``. Knows nothing of Prefect: secrets kept in Prefect Secret
blocks are fetched in ``tasks.airbyte`` and handed over with ``AirbyteSettings.with_secrets``.
"""
