"""Deployments built from the catalog (one bronze deployment per source, silver triggered by the
``bronze.batch.validated`` event). Not built yet: tracked as its own issue; nothing here is used today.
"""
