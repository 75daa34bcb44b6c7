import json

import datasets
import pyarrow.parquet as pq

from pipelines.shards import sha256_file, write_shard_set
from schemas import Manifest, ShardRow


def rows(n, domain="math"):
    out = []
    for i in range(n):
        ids = list(range(i + 3))
        mask = [0] + [1] * (len(ids) - 1)
        out.append(ShardRow(trajectory_id=f"{domain}-{i:03d}", domain=domain, input_ids=ids, loss_mask=mask,
                            num_tokens=len(ids), num_loss_tokens=sum(mask), task_id="k"))
    return out


def test_shards_follow_the_contract_and_datasets_reads_them(tmp_path):
    out = tmp_path / "shards"
    manifest = write_shard_set(rows(5), out, tokenizer_id="tok", masking_policy="assistant",
                               rows_per_shard=2, run_config={"seed": 1})
    names = sorted(p.name for p in out.glob("*.parquet"))
    assert names == ["math-00000.parquet", "math-00001.parquet", "math-00002.parquet"]
    on_disk = Manifest.model_validate(json.loads((out / "manifest.json").read_text()))
    assert on_disk == manifest
    assert on_disk.total_rows == 5
    for entry in on_disk.shards:
        assert entry.sha256 == sha256_file(out / entry.file)
    schema = pq.read_schema(out / names[0])
    assert str(schema.field("input_ids").type) == "list<element: int32>"
    assert str(schema.field("loss_mask").type) == "list<element: uint8>"
    ds = datasets.load_dataset("parquet", data_files=[str(out / n) for n in names], split="train")
    assert ds.num_rows == 5
    row = ds[0]
    assert len(row["input_ids"]) == len(row["loss_mask"]) == row["num_tokens"]
    assert sum(row["loss_mask"]) == row["num_loss_tokens"]


def test_rewriting_a_shard_set_replaces_it_whole(tmp_path):
    out = tmp_path / "shards"
    write_shard_set(rows(5), out, tokenizer_id="t", masking_policy="assistant", rows_per_shard=1, run_config={})
    write_shard_set(rows(2), out, tokenizer_id="t", masking_policy="assistant", rows_per_shard=1, run_config={})
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "math-00000.parquet", "math-00001.parquet"]
    assert not (tmp_path / "shards.staging").exists()


def test_same_rows_give_identical_bytes(tmp_path):
    a = write_shard_set(rows(4), tmp_path / "a", tokenizer_id="t", masking_policy="assistant", rows_per_shard=10, run_config={})
    b = write_shard_set(list(reversed(rows(4))), tmp_path / "b", tokenizer_id="t", masking_policy="assistant", rows_per_shard=10, run_config={})
    assert [s.sha256 for s in a.shards] == [s.sha256 for s in b.shards]
