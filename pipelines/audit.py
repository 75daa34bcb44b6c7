"""Audit a shard set: is every row what it says it is?

``trajforge audit SHARDS`` reads every row and counts: rows not token-exact,
rows whose assistant turns drifted from their messages, rows with loss on a
token the model did not sample (only allowed for inserted tokens when the
manifest says ``train_on_inserted``). With ``--rescore MODEL`` it also feeds
rows back to that model (``score``: in-process vLLM, or a vLLM server's
``prompt_logprobs``) and compares the stored logprobs of freely sampled tokens
with the model's own (a same-model, same-ids check: CPU numerics move them by
~0.01). A shuffled pairing of the same numbers is reported beside it, so a
reader can see the comparison would tell rows apart.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
from pathlib import Path

import pyarrow.parquet as pq
from pydantic import BaseModel

from schemas import Manifest

SAMPLED = (1, 2)
INSERTED = 3


class LogprobAgreement(BaseModel):
    rows: int
    tokens: int
    median_abs_diff: float
    p90_abs_diff: float
    max_abs_diff: float
    shuffled_median_abs_diff: float  # the same numbers paired with other positions


class ShardAudit(BaseModel):
    rows: int = 0
    token_exact_rows: int = 0
    drift_rows: int = 0
    loss_on_unsampled_rows: int = 0
    inserted_tokens: int = 0
    loss_tokens: int = 0
    logprobs: LogprobAgreement | None = None

    @property
    def clean(self) -> bool:
        return self.drift_rows == 0 and self.loss_on_unsampled_rows == 0


def audit_shards(shards_dir: str | Path, *, rescore_model: str | None = None, rescore_rows: int = 8,
                 engine=None) -> ShardAudit:
    """``engine``: an already started engine with ``score`` to rescore with (instead of ``rescore_model``)."""
    root = Path(shards_dir)
    manifest = Manifest.model_validate(json.loads((root / "manifest.json").read_text()))
    allowed = set(SAMPLED) | ({INSERTED} if manifest.train_on_inserted else set())
    audit, sample = ShardAudit(), []
    for entry in manifest.shards:
        for row in pq.read_table(root / entry.file).to_pylist():
            sources = row.get("token_source") or [0] * len(row["input_ids"])
            audit.rows += 1
            audit.token_exact_rows += bool(row.get("token_exact"))
            audit.drift_rows += bool(row.get("text_drift"))
            audit.inserted_tokens += sum(1 for s in sources if s == INSERTED)
            audit.loss_tokens += sum(row["loss_mask"])
            # Context tokens may carry loss under the wider policies; model-turn tokens only when sampled.
            if any(m and s != 0 and s not in allowed for m, s in zip(row["loss_mask"], sources)):
                audit.loss_on_unsampled_rows += 1
            if row.get("token_exact") and len(sample) < rescore_rows:
                sample.append(row)
    if (rescore_model is not None or engine is not None) and sample:
        audit.logprobs = asyncio.run(_rescore(rescore_model, sample, engine))
    return audit


async def _rescore(model: str | None, rows: list[dict], engine=None) -> LogprobAgreement:
    from synthesizers.engines.factory import make_engine

    own = engine is None
    engine = make_engine(model) if own else engine
    stored, scored = [], []
    try:
        if not hasattr(engine, "score"):
            raise ValueError(f"--rescore {model!r}: needs a vLLM model ('embedded', a model folder or a vLLM server URL)")
        for row in rows:
            reference = await engine.score(row["input_ids"])
            for lp, ref, s in zip(row["logprobs"], reference, row["token_source"]):
                if s == 1 and lp is not None and not math.isnan(lp) and not math.isnan(ref):
                    stored.append(lp)
                    scored.append(ref)
    finally:
        if own:
            await engine.close()
    if not stored:
        raise ValueError("no freely sampled token with a logprob in the rows to rescore")
    diffs = sorted(abs(a - b) for a, b in zip(stored, scored))
    shift = len(stored) // 2 or 1
    shuffled = sorted(abs(a - b) for a, b in zip(stored[shift:] + stored[:shift], scored))
    return LogprobAgreement(
        rows=len(rows), tokens=len(diffs), median_abs_diff=round(statistics.median(diffs), 4),
        p90_abs_diff=round(diffs[int(0.9 * (len(diffs) - 1))], 4), max_abs_diff=round(diffs[-1], 4),
        shuffled_median_abs_diff=round(statistics.median(shuffled), 4),
    )
