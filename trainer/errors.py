"""Errors the trainer reports as one line (``trajforge train`` prints them and exits 2)."""


class ShardError(Exception):
    """A shard set that cannot be trained on as it is (one-line message)."""


class TokenizerMismatch(ShardError):
    pass


class ShardIntegrityError(ShardError):
    pass
