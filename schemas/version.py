"""The schema version stamped into every trajectory store file and manifest."""

SCHEMA_VERSION = "1.0"
