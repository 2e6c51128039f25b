"""Prefect deployments generated from the catalog, and the Airbyte provisioning command.

    python -m deployments register [--catalog FILE]   # create/update them on the Prefect server (work pools)
    python -m deployments serve [--catalog FILE]      # serve them all from this process (no worker needed)
    python -m deployments yaml [--catalog FILE]       # print the equivalent prefect.yaml (prefect deploy --all)
    python -m deployments list [--catalog FILE]       # show what would be deployed
    python -m deployments.provision [--dry-run]       # create/update the Airbyte destination and connections

Kept import-light: the submodules load Prefect and the flows only when used.
"""
