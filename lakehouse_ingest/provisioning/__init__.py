"""Provisioning an Airbyte server for a catalog: the S3 destination per source and its connections.

Plan first (what would change, secrets masked), then apply. Uses the Airbyte client (``sources.airbyte``).
"""
