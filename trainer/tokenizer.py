"""Checking ``--tokenizer`` against the tokenizer a shard manifest names.

The manifest names the tokenizer (``tokenizer_id``: a hub id, or a local folder) and
hashes its files (``tokenizer_sha256``). A local folder is judged by its files when the
manifest has a hash (same files = same tokenizer, wherever they sit); otherwise, and for
hub ids, by name (a folder matches the id by its last path component).

The hash is ``schemas.shard.tokenizer_files_sha256``, the one the shard writer uses.
"""

from __future__ import annotations

from pathlib import Path

from schemas import Manifest
from schemas.shard import TOKENIZER_FILES, tokenizer_files_sha256
from trainer.errors import TokenizerMismatch



def tokenizer_id(name_or_path: str) -> str:
    """A local folder's name, else the name as given."""
    p = Path(name_or_path)
    return p.name if p.exists() else name_or_path


def files_sha256(folder: str | Path) -> str:
    """sha256 over the tokenizer files present: per file ``name``, NUL, its sha256 hex, newline."""
    folder = Path(folder)
    return tokenizer_files_sha256({name: folder / name for name in TOKENIZER_FILES if (folder / name).is_file()})


def check_tokenizer(manifest: Manifest, tokenizer: str | None) -> None:
    if tokenizer is None:
        return
    wanted = manifest.tokenizer_id
    folder = Path(tokenizer).expanduser()
    if folder.is_dir() and manifest.tokenizer_sha256:
        got = files_sha256(folder)
        if got != manifest.tokenizer_sha256:
            raise TokenizerMismatch(
                f"tokenizer files in {tokenizer} (sha256 {got[:12] or 'none found'}…) differ from the "
                f"shards' tokenizer {wanted!r} (tokenizer_sha256 {manifest.tokenizer_sha256[:12]}…, manifest.json); "
                "train with the tokenizer the shards were made with"
            )
        return
    if wanted not in (tokenizer, tokenizer_id(tokenizer)) and Path(wanted).name != Path(tokenizer).name:
        raise TokenizerMismatch(
            f"tokenizer {tokenizer!r} does not match the shards' tokenizer {wanted!r} (manifest.json); "
            "train with the tokenizer the shards were made with"
        )
