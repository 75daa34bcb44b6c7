"""The tokenizer a shard manifest names: a name a consumer can load, and a hash of its files.

``tokenizer_identity(path) -> (name, files_sha256)``:

- the embedded model's folder (the converted SmolLM2, marked by ``model_store.MARKER``) is
  named by its hub id, ``HuggingFaceTB/SmolLM2-135M-Instruct``;
- any other local folder by its absolute path; a hub id as given;
- ``files_sha256`` is the sha256 over the tokenizer files present (``TOKENIZER_FILES``, in
  that order), each contributing ``name``, a NUL, its own sha256 hex digest and a newline, so
  a consumer with the same files gets the same hash whatever folder they sit in. A hub id
  is hashed from the local Hugging Face cache (never downloaded); ``""`` when no file is found.
"""

from __future__ import annotations

from pathlib import Path

EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
from schemas.shard import TOKENIZER_FILES, tokenizer_files_sha256


def tokenizer_identity(path: str | Path) -> tuple[str, str]:
    path_str = str(path)
    folder = Path(path_str).expanduser()
    if folder.is_dir():
        folder = folder.resolve()
        name = EMBEDDED_HUB_ID if _is_embedded(folder) else str(folder)
        return name, files_sha256({f: folder / f for f in TOKENIZER_FILES if (folder / f).is_file()})
    return path_str, files_sha256(_cached_hub_files(path_str))


def files_sha256(files: dict[str, Path]) -> str:
    return tokenizer_files_sha256(files)


def _is_embedded(folder: Path) -> bool:
    from synthesizers.engines.model_store import MARKER

    return (folder / MARKER).is_file()


def _cached_hub_files(repo_id: str) -> dict[str, Path]:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return {}
    found: dict[str, Path] = {}
    for name in TOKENIZER_FILES:
        try:
            hit = try_to_load_from_cache(repo_id, name)
        except Exception:  # noqa: BLE001 - not a valid repo id: nothing cached
            return {}
        if isinstance(hit, str):
            found[name] = Path(hit)
    return found
