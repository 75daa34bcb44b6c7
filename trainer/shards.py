"""Reading a shard set through its ``manifest.json`` (DESIGN.md, "Shards").

``ShardSet.open`` checks the manifest (schema version, tokenizer), verifies every
shard's sha256 and reads only the small per-row columns (``num_tokens``, and
``token_exact`` where present) for packing plans; token columns are decoded lazily
per process (each DataLoader worker keeps its own cache) as flat numpy arrays, so
fetching a document is two slices.

Schema 2 shards carry provenance (``token_source``, ``logprobs``, ``token_exact``);
schema 1 shards do not and train as before. Two options act on provenance:
``token_exact_only`` leaves out rows tokenised from text, and ``inserted_weight``
gives every inserted token (source 3) that loss weight (0 drops it) — ``None``
keeps the shard's ``loss_mask`` as written. Both refuse schema 1 shards, which
cannot say which rows or tokens they would touch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from schemas import SCHEMA_VERSION, Manifest, sha256_file
from schemas.shard import INSERTED_SOURCE
from schemas.version import READABLE_MAJORS
from trainer.errors import ShardError, ShardIntegrityError, TokenizerMismatch  # noqa: F401 (re-exported)
from trainer.tokenizer import check_tokenizer, tokenizer_id  # noqa: F401 (re-exported)

PROVENANCE = ("token_source", "logprobs", "token_exact")


def _read_manifest(root: Path, tokenizer: str | None) -> Manifest:
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
    return manifest


class ShardSet:
    """A verified shard set: per-document lengths up front, token data on demand.

    Documents are the rows kept (all, or the token-exact ones); ``doc_shard``/``doc_row``
    locate each in its file.
    """

    def __init__(self, root: Path, manifest: Manifest, paths: list[Path], lengths: np.ndarray,
                 doc_shard: np.ndarray, doc_row: np.ndarray, vocab_size: int | None,
                 has_provenance: list[bool] | None = None, inserted_weight: float | None = None,
                 skipped_rows: int = 0):
        self.root, self.manifest, self.paths = root, manifest, paths
        self.lengths, self.doc_shard, self.doc_row = lengths, doc_shard, doc_row
        self.vocab_size = vocab_size
        self.has_provenance = has_provenance or [False] * len(paths)
        self.inserted_weight, self.skipped_rows = inserted_weight, skipped_rows
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._prov: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    @classmethod
    def open(cls, shards_dir: str | Path, tokenizer: str | None = None, *, verify: bool = True,
             vocab_size: int | None = None, token_exact_only: bool = False,
             inserted_weight: float | None = None) -> "ShardSet":
        root = Path(shards_dir)
        manifest = _read_manifest(root, tokenizer)
        paths, lengths, shard_of, row_of, prov = [], [], [], [], []
        skipped = 0
        for i, entry in enumerate(manifest.shards):
            path = root / entry.file
            if not path.is_file():
                raise ShardIntegrityError(f"shard {entry.file} listed in {root / 'manifest.json'} is missing")
            if verify:
                digest = sha256_file(path)
                if digest != entry.sha256:
                    raise ShardIntegrityError(
                        f"shard {entry.file}: sha256 {digest[:12]}… does not match the manifest's "
                        f"{entry.sha256[:12]}…; the file changed after the manifest was written"
                    )
            has = all(c in pq.read_schema(path).names for c in PROVENANCE)
            if (token_exact_only or inserted_weight is not None) and not has:
                raise ShardError(f"shard {entry.file} has no token provenance (schema 1.x): token_exact_only "
                                 "and inserted_weight need schema 2 shards; unset them to train on it")
            columns = ["num_tokens"] + (["token_exact"] if token_exact_only else [])
            table = pq.read_table(path, columns=columns)
            n = table.column("num_tokens").to_numpy()
            if len(n) != entry.rows:
                raise ShardIntegrityError(f"shard {entry.file}: {len(n)} rows, manifest says {entry.rows}")
            rows = np.arange(len(n), dtype=np.int64)
            if token_exact_only:
                rows = rows[table.column("token_exact").to_numpy(zero_copy_only=False).astype(bool)]
                skipped += len(n) - len(rows)
            paths.append(path)
            prov.append(has)
            lengths.append(n[rows].astype(np.int64))
            shard_of.append(np.full(len(rows), i, dtype=np.int32))
            row_of.append(rows)
        if token_exact_only and not sum(len(r) for r in row_of):
            raise ShardError(f"{root}: no token-exact rows (token_exact_only is set)")
        return cls(root, manifest, paths, np.concatenate(lengths), np.concatenate(shard_of),
                   np.concatenate(row_of), vocab_size, prov, inserted_weight, skipped)

    @property
    def num_docs(self) -> int:
        return len(self.lengths)

    @property
    def weighted(self) -> bool:
        """True when documents come with float loss weights instead of the 0/1 loss mask."""
        return self.inserted_weight is not None

    def _load(self, shard: int):
        if shard not in self._cache:
            columns = ["input_ids", "loss_mask"] + (["token_source"] if self.weighted else [])
            table = pq.read_table(self.paths[shard], columns=columns)
            ids = table.column("input_ids").combine_chunks()
            offsets = ids.offsets.to_numpy().astype(np.int64)
            id_values = ids.values.to_numpy(zero_copy_only=False)
            if self.vocab_size is not None and len(id_values) and int(id_values.max()) >= self.vocab_size:
                raise ShardError(
                    f"shard {self.paths[shard].name}: token id {int(id_values.max())} >= model vocab "
                    f"{self.vocab_size}; the model does not fit the shards' tokenizer"
                )
            loss = table.column("loss_mask").combine_chunks().values.to_numpy(zero_copy_only=False)
            if self.weighted:
                source = table.column("token_source").combine_chunks().values.to_numpy(zero_copy_only=False)
                loss = loss.astype(np.float32)
                loss[source == INSERTED_SOURCE] = self.inserted_weight
            self._cache[shard] = (offsets, id_values, loss)
        return self._cache[shard]

    def document(self, doc: int) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, loss) of one document as numpy views: ``loss`` is the uint8 loss mask, or
        float32 loss weights when ``weighted``."""
        offsets, ids, loss = self._load(int(self.doc_shard[doc]))
        row = int(self.doc_row[doc])
        s, e = offsets[row], offsets[row + 1]
        if e - s != self.lengths[doc]:
            raise ShardIntegrityError(f"{self.paths[self.doc_shard[doc]].name} row {row}: num_tokens disagrees")
        return ids[s:e], loss[s:e]

    def provenance(self, doc: int) -> dict | None:
        """``token_source`` (uint8), ``logprobs`` (float32, NaN where not sampled) and ``token_exact``
        of one document; None for a schema 1 shard. Read on first use, apart from the token cache."""
        shard = int(self.doc_shard[doc])
        if not self.has_provenance[shard]:
            return None
        if shard not in self._prov:
            table = pq.read_table(self.paths[shard], columns=list(PROVENANCE))
            src = table.column("token_source").combine_chunks()
            self._prov[shard] = (src.offsets.to_numpy().astype(np.int64),
                                 src.values.to_numpy(zero_copy_only=False),
                                 table.column("logprobs").combine_chunks().values.to_numpy(
                                     zero_copy_only=False),
                                 table.column("token_exact").to_numpy(zero_copy_only=False))
        offsets, sources, logprobs, exact = self._prov[shard]
        row = int(self.doc_row[doc])
        s, e = offsets[row], offsets[row + 1]
        return {"token_source": sources[s:e], "logprobs": logprobs[s:e], "token_exact": bool(exact[row])}

    def __getstate__(self):
        # Workers rebuild their own token cache: never ship decoded shards through pickling.
        state = dict(self.__dict__)
        state["_cache"], state["_prov"] = {}, {}
        return state
