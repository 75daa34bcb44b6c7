"""Small shard sets written the way the pipeline writes them, for trainer tests and benchmarks.

Uses only ``schemas`` (``shard_arrow_schema``, ``Manifest``) so the trainer is
tested against the shard contract, not against the pipeline's writer.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas import Manifest, ShardEntry, shard_arrow_schema, shard_file_name

TOKENIZER = "test-tokenizer"
V2_COLUMNS = ("token_source", "logprobs", "token_exact", "text_drift")


def write_shards(out: Path, docs: list[tuple[list[int], list[int]]], *, rows_per_shard: int = 8,
                 domain: str = "math", tokenizer_id: str = TOKENIZER, sources: list[list[int]] | None = None,
                 logprobs: list[list[float]] | None = None, exact: list[bool] | None = None,
                 schema: int = 2) -> Manifest:
    """``docs``: (input_ids, loss_mask) per trajectory. Writes ``out/{domain}-NNNNN.parquet`` + manifest.

    Schema 2 provenance per doc defaults to: loss tokens sampled (1), the rest context (0), NaN
    logprobs, token-exact; ``schema=1`` writes the columns and manifest of a 1.0 shard set.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sources = sources or [[int(bool(x)) for x in m] for _, m in docs]
    logprobs = logprobs or [[float("nan")] * len(ids) for ids, _ in docs]
    exact = [True] * len(docs) if exact is None else exact
    arrow = shard_arrow_schema()
    if schema == 1:
        arrow = pa.schema([f for f in arrow if f.name not in V2_COLUMNS],
                          metadata={"trajforge_schema_version": "1.0"})
    entries = []
    for index, start in enumerate(range(0, len(docs), rows_per_shard)):
        chunk = docs[start:start + rows_per_shard]
        span = slice(start, start + len(chunk))
        rows = {
            "trajectory_id": [f"{domain}-{start + i}" for i in range(len(chunk))],
            "domain": [domain] * len(chunk),
            "input_ids": [list(map(int, ids)) for ids, _ in chunk],
            "loss_mask": [list(map(int, m)) for _, m in chunk],
            "num_tokens": [len(ids) for ids, _ in chunk],
            "num_loss_tokens": [int(sum(m)) for _, m in chunk],
            "task_id": [""] * len(chunk),
            "parent_id": [None] * len(chunk),
            "passed": [True] * len(chunk),
            "score": [1.0] * len(chunk),
            "token_source": sources[span],
            "logprobs": logprobs[span],
            "token_exact": exact[span],
            "text_drift": [False] * len(chunk),
        }
        if schema == 1:
            rows = {k: v for k, v in rows.items() if k not in V2_COLUMNS}
        name = shard_file_name(domain, index)
        pq.write_table(pa.Table.from_pydict(rows, schema=arrow), out / name)
        v2 = {} if schema == 1 else {"token_exact_rows": sum(exact[span]),
                                     "inserted_tokens": sum(x == 3 for src in sources[span] for x in src)}
        entries.append(ShardEntry(file=name, domain=domain, rows=len(chunk),
                                  tokens=sum(rows["num_tokens"]), loss_tokens=sum(rows["num_loss_tokens"]),
                                  sha256=hashlib.sha256((out / name).read_bytes()).hexdigest(), **v2))
    version = {"schema_version": "1.0"} if schema == 1 else {}
    manifest = Manifest(tokenizer_id=tokenizer_id, shards=entries, **version)
    (out / "manifest.json").write_text(manifest.model_dump_json(indent=2))
    return manifest


def random_docs(n: int, *, min_len: int = 4, max_len: int = 200, vocab: int = 1000, seed: int = 0):
    """Chat-like documents: a masked prompt, then loss-carrying answer tokens, sometimes masked again."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n):
        length = int(rng.integers(min_len, max_len + 1))
        ids = rng.integers(0, vocab, size=length).tolist()
        mask = np.zeros(length, dtype=int)
        cut = int(rng.integers(1, length))
        mask[cut:] = 1
        if length > 6 and rng.random() < 0.5:  # a masked tool turn in the middle
            a = int(rng.integers(cut, length))
            mask[a:a + 3] = 0
        docs.append((ids, mask.tolist()))
    return docs


def pattern_docs(n: int, *, length: int = 96, vocab: int = 64, seed: int = 0):
    """Learnable documents: each repeats a short random motif, so next-token loss can fall fast."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n):
        motif = rng.integers(1, vocab, size=int(rng.integers(3, 7)))
        ids = np.resize(motif, length).tolist()
        mask = [0] * 8 + [1] * (length - 8)
        docs.append((ids, mask))
    return docs
