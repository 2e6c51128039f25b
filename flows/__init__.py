"""The Prefect flows, and the command line that runs them.

- ``bronze/``  ``bronze-ingest`` (sync, validate, hand off) and ``bronze-revalidate``; ``python -m flows.bronze``.
- ``silver/``  ``silver-merge`` (manifests into Delta tables); ``python -m flows.silver``.
- ``cli``      the one command line both entry points share: options, exit codes, output.

Flows only compose: they call ``tasks/`` (thin Prefect wrappers of the core) and act on the plans the core's
``lakehouse_ingest.runs`` computes; they hold no decisions of their own.
"""
