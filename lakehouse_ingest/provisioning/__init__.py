"""Provisioning an Airbyte server for a catalog: the S3 destination per source, the source and its connection.

Plan first (reads only, what would change, secrets masked), then apply in order source → destination →
connection; a second run makes no write request.

- ``target``   where Airbyte writes: the S3 destination into bronze (``S3Target``, from the environment), its
               path format and the keys it must never set.
- ``plan``     what a plan is: ``ProvisionPlan`` per catalog source, its ``Change`` per Airbyte object.
- ``desired``  what the catalog wants of a connection: its streams, validated against discovery, and the
               connection request bodies.
- ``diff``     what differs on the managed fields only; secret detection and masking.
- ``apply``    the reconciler (``Provisioner``): reads the server, plans, applies.
- ``render``   the plan as lines and a summary; ``scrub`` keeps secret values out of any message.

Imports the Airbyte client (``sources.airbyte``), ``catalog`` and ``lake``; imported by ``deployments`` only.
"""
