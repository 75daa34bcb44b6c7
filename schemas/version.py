"""The schema version stamped into every trajectory store file and manifest.

2.0: token-exact shards (``token_source``, ``logprobs``, ``token_exact``, ``text_drift``
per row; the manifest's tokenizer hash and provenance counts) and token traces in the
store. Readers take every major version in ``READABLE_MAJORS``.
"""

SCHEMA_VERSION = "2.0"
READABLE_MAJORS = ("1", "2")
