"""Silver: one Delta Lake table per stream, merged from validated bronze batches exactly once.

Reads manifests (``lake.documents.Manifest``) and their files; never imports ``sources``.
"""
