"""The schema version stamped into every trajectory store file and manifest.

2.0: token-exact shards (``token_source``, ``logprobs``, ``token_exact``, ``text_drift``
per row; the manifest's tokenizer hash and provenance counts) and token traces in the
store. 2.1: tool messages in the store carry ``result`` (a ``ToolResult``: the call's status and
fields); a 2.0 store reads with no results. Readers take every major version in ``READABLE_MAJORS``.
"""

SCHEMA_VERSION = "2.1"
READABLE_MAJORS = ("1", "2")
