"""Reading a shard set through its ``manifest.json`` (DESIGN.md, "Shards").

``ShardSet.open`` checks the manifest (schema version, tokenizer), verifies every
shard's sha256 and reads only the ``num_tokens`` column for packing plans; token
columns are decoded lazily per process (each DataLoader worker keeps its own
cache) as flat numpy arrays, so fetching a document is two slices.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from schemas import SCHEMA_VERSION, Manifest, sha256_file
from schemas.version import READABLE_MAJORS


class ShardError(Exception):
    """A shard set that cannot be trained on as it is (one-line message)."""


class TokenizerMismatch(ShardError):
    pass


class ShardIntegrityError(ShardError):
    pass


def tokenizer_id(name_or_path: str) -> str:
    """The id the pipeline writes into manifests: a local folder's name, else the name as given."""
    p = Path(name_or_path)
    return p.name if p.exists() else name_or_path


def check_tokenizer(manifest: Manifest, tokenizer: str | None) -> None:
    if tokenizer is None:
        return
    wanted = manifest.tokenizer_id
    # A local folder and the hub id it came from both match by their last path component.
    if wanted not in (tokenizer, tokenizer_id(tokenizer)) and Path(wanted).name != Path(tokenizer).name:
        raise TokenizerMismatch(
            f"tokenizer {tokenizer!r} does not match the shards' tokenizer {wanted!r} (manifest.json); "
            "train with the tokenizer the shards were made with"
        )



class ShardSet:
    """A verified shard set: per-document lengths up front, token data on demand."""

    def __init__(self, root: Path, manifest: Manifest, paths: list[Path], lengths: np.ndarray,
                 doc_shard: np.ndarray, doc_row: np.ndarray, vocab_size: int | None):
        self.root, self.manifest, self.paths = root, manifest, paths
        self.lengths, self.doc_shard, self.doc_row = lengths, doc_shard, doc_row
        self.vocab_size = vocab_size
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    @classmethod
    def open(cls, shards_dir: str | Path, tokenizer: str | None = None, *, verify: bool = True,
             vocab_size: int | None = None) -> "ShardSet":
        root = Path(shards_dir)
        mpath = root / "manifest.json"
        if not mpath.is_file():
            raise ShardError(f"no manifest.json in {root}: point --shards at a shard folder")
        try:
            manifest = Manifest.model_validate(json.loads(mpath.read_text()))
        except Exception as exc:
            raise ShardError(f"{mpath}: not a valid manifest ({' '.join(str(exc).split())[:200]})") from exc
        if manifest.schema_version.split(".")[0] not in READABLE_MAJORS:
            raise ShardError(f"{mpath}: schema version {manifest.schema_version}, trainer reads "
                             f"{', '.join(m + '.x' for m in READABLE_MAJORS)} (written by {SCHEMA_VERSION})")
        check_tokenizer(manifest, tokenizer)
        if not manifest.shards:
            raise ShardError(f"{mpath} lists no shards")
        paths, lengths, shard_of, row_of = [], [], [], []
        for i, entry in enumerate(manifest.shards):
            path = root / entry.file
            if not path.is_file():
                raise ShardIntegrityError(f"shard {entry.file} listed in {mpath} is missing")
            if verify:
                digest = sha256_file(path)
                if digest != entry.sha256:
                    raise ShardIntegrityError(
                        f"shard {entry.file}: sha256 {digest[:12]}… does not match the manifest's "
                        f"{entry.sha256[:12]}…; the file changed after the manifest was written"
                    )
            n = pq.read_table(path, columns=["num_tokens"]).column("num_tokens").to_numpy()
            if len(n) != entry.rows:
                raise ShardIntegrityError(f"shard {entry.file}: {len(n)} rows, manifest says {entry.rows}")
            paths.append(path)
            lengths.append(n.astype(np.int64))
            shard_of.append(np.full(len(n), i, dtype=np.int32))
            row_of.append(np.arange(len(n), dtype=np.int64))
        return cls(root, manifest, paths, np.concatenate(lengths), np.concatenate(shard_of),
                   np.concatenate(row_of), vocab_size)

    @property
    def num_docs(self) -> int:
        return len(self.lengths)

    def _load(self, shard: int):
        if shard not in self._cache:
            table = pq.read_table(self.paths[shard], columns=["input_ids", "loss_mask"])
            ids = table.column("input_ids").combine_chunks()
            mask = table.column("loss_mask").combine_chunks()
            offsets = ids.offsets.to_numpy().astype(np.int64)
            id_values = ids.values.to_numpy(zero_copy_only=False)
            if self.vocab_size is not None and len(id_values) and int(id_values.max()) >= self.vocab_size:
                raise ShardError(
                    f"shard {self.paths[shard].name}: token id {int(id_values.max())} >= model vocab "
                    f"{self.vocab_size}; the model does not fit the shards' tokenizer"
                )
            self._cache[shard] = (offsets, id_values, mask.values.to_numpy(zero_copy_only=False))
        return self._cache[shard]

    def document(self, doc: int) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, loss_mask) of one document as numpy views."""
        offsets, ids, mask = self._load(int(self.doc_shard[doc]))
        row = int(self.doc_row[doc])
        s, e = offsets[row], offsets[row + 1]
        if e - s != self.lengths[doc]:
            raise ShardIntegrityError(f"{self.paths[self.doc_shard[doc]].name} row {row}: num_tokens disagrees")
        return ids[s:e], mask[s:e]

    def __getstate__(self):
        # Workers rebuild their own token cache: never ship decoded shards through pickling.
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state
