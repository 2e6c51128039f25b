"""Talking to an Airbyte server (self-managed 0.x/1.x/2.x or Cloud): only HTTP lives here.

- ``jobs``, ``connections``, ``provisioning_models``: typed records parsed on arrival (jobs, attempts and
  per-stream stats; connections and workspaces; actors, catalogs and connection configurations).
- ``settings``: ``AirbyteSettings`` (server, API family, credentials; builds the client) and ``SyncOptions``
  (how syncs are awaited), from the environment through pydantic-settings.
- ``errors``:   one hierarchy; every error carries connection/job id, status, HTTP code, method, masked URL.
- ``auth``:     none, HTTP basic, static bearer, client credentials (token exchange, refresh).
- ``client``:   the Config API (/api/v1) and the public API (/api/public/v1) behind one client.
- ``syncs``:    trigger without double-triggering, await with a deadline, cancel on timeout or interruption.
"""
