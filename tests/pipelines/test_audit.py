"""`trajforge audit`: a clean token-exact shard set passes; loss on inserted tokens, drift and
non-exact rows are counted, and a failing set exits 1."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines.audit import audit_shards
from pipelines.shards import write_shard_set
from pipelines.tokenize import RowOptions, trajectories_to_rows
from tests.pipelines.test_tokenize import _trajectory


async def _shards(tokenizer, model_dir, out, *, tamper=False):
    t = await _trajectory(tokenizer, ["Thinking.", "4}$."], forcing=True)
    text = t.model_copy(update={"token_trace": None, "id": "t-2"})
    rows, _ = trajectories_to_rows([t, text], str(model_dir), RowOptions())
    if tamper:  # loss put on the inserted forcing text, as a buggy writer would
        exact = rows[0]
        exact.loss_mask = [1 if s == 3 else m for m, s in zip(exact.loss_mask, exact.token_source)]
        exact.num_loss_tokens = sum(exact.loss_mask)
        exact.text_drift = True
    write_shard_set(rows, out, tokenizer_id="tok", masking_policy="assistant", rows_per_shard=10, run_config={})
    return rows


async def test_a_clean_set_is_counted(embedded_tokenizer, model_dir, tmp_path):
    rows = await _shards(embedded_tokenizer, model_dir, tmp_path / "shards")
    audit = audit_shards(tmp_path / "shards")
    assert audit.clean and audit.rows == 2 and audit.token_exact_rows == 1
    assert audit.inserted_tokens == rows[0].inserted_tokens > 0
    assert audit.loss_tokens == sum(r.num_loss_tokens for r in rows)


async def test_loss_on_inserted_tokens_and_drift_fail_the_audit(embedded_tokenizer, model_dir, tmp_path):
    await _shards(embedded_tokenizer, model_dir, tmp_path / "shards", tamper=True)
    audit = audit_shards(tmp_path / "shards")
    assert not audit.clean and audit.loss_on_unsampled_rows == 1 and audit.drift_rows == 1
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "audit", str(tmp_path / "shards")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and '"loss_on_unsampled_rows": 1' in proc.stdout


def test_a_folder_without_a_manifest_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "audit", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no manifest.json" in proc.stderr
