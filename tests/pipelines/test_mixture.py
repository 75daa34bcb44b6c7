"""Domain mixture: token shares land on the targets within tolerance, upsampling
never passes its cap, and `run all` writes one shard set whose manifest reports
tokens per domain against the targets."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.mixture import MixtureConfig, mix_rows, plan_tokens, run_mixture, select_rows
from pipelines.shards import write_shard_set
from schemas import Manifest, ShardRow

REPO = Path(__file__).resolve().parents[2]


def rows(domain: str, n: int, seed: int = 0) -> list[ShardRow]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.randint(20, 120)
        out.append(ShardRow(trajectory_id=f"{domain}-{i:04d}", domain=domain, input_ids=list(range(k)),
                            loss_mask=[1] * k, num_tokens=k, num_loss_tokens=k))
    return out


def mixture(targets: dict[str, float], **kw) -> MixtureConfig:
    return MixtureConfig(domains={d: {"config": f"{d}.yaml", "target": t} for d, t in targets.items()}, **kw)


def test_plan_respects_the_upsample_cap_and_renormalises():
    plan = plan_tokens({"math": 10_000, "cot": 1_000}, {"math": 0.5, "cot": 0.5, "code": 0.2}, max_upsample=3.0)
    assert set(plan) == {"math", "cot"}  # code produced nothing
    assert plan["cot"] == pytest.approx(3_000) and plan["math"] == pytest.approx(3_000)  # cot capped at 3x
    # with enough of everything, the natural total is kept and only shares move
    plan = plan_tokens({"a": 5_000, "b": 5_000}, {"a": 0.8, "b": 0.2}, max_upsample=3.0)
    assert plan == pytest.approx({"a": 8_000, "b": 2_000})
    # an explicit total is lowered to honour the cap
    plan = plan_tokens({"a": 1_000, "b": 1_000}, {"a": 0.5, "b": 0.5}, max_upsample=2.0, total=10_000)
    assert plan == pytest.approx({"a": 2_000, "b": 2_000})


def test_mixed_shares_are_within_tolerance_and_upsampling_is_capped():
    domain_rows = {"math": rows("math", 600, 1), "agentic-cot": rows("agentic-cot", 80, 2), "deep-research": rows("deep-research", 300, 3)}
    config = mixture({"math": 0.3, "agentic-cot": 0.4, "deep-research": 0.3}, max_upsample=3.0, tolerance=0.02)
    mixed, report = mix_rows(domain_rows, config)
    for domain, entry in report["domains"].items():
        assert entry["within_tolerance"], (domain, entry)
        assert abs(entry["share"] - entry["renormalised_target"]) <= 0.02
        assert entry["upsample"] <= 3.0 + 1e-9
    assert report["domains"]["agentic-cot"]["upsample"] > 1.0  # the small domain was repeated
    assert report["domains"]["math"]["upsample"] < 1.0  # the big one sampled down
    ids = [r.trajectory_id for r in mixed]
    assert len(ids) == len(set(ids)), "repeated rows must get distinct ids"
    assert any("#r1" in i for i in ids)
    assert sum(r.num_tokens for r in mixed) == report["total_tokens"]
    again, _ = mix_rows(domain_rows, config)
    assert [r.trajectory_id for r in again] == ids  # seeded: same mixture every time


def test_select_rows_gets_close_to_the_desired_tokens():
    sample = rows("x", 200, 7)
    for desired in (0, 500, 5_000, 12_345, 30_000):
        picked = select_rows(sample, desired, random.Random(0))
        got = sum(r.num_tokens for r, _ in picked)
        assert abs(got - desired) <= 120  # within one row's tokens


def _fake_run(name, cfg, run_dir):
    if name == "deep-research":
        raise RuntimeError("search service down")
    n = 40 if name == "math" else 10
    write_shard_set(rows(name, n, len(name)), run_dir / "shards", tokenizer_id="tok", masking_policy="assistant",
                    rows_per_shard=16, run_config={"domain": name})


def test_run_mixture_writes_one_shard_set_with_the_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for d in ("math", "agentic-cot", "deep-research"):
        Path(f"{d}.yaml").write_text(f"domain: {d}\n")
    config = mixture({"math": 0.5, "agentic-cot": 0.4, "deep-research": 0.1, "not-built-yet": 0.2}, max_upsample=4.0, tolerance=0.03)
    report = run_mixture(config, tmp_path / "all", run_domain=_fake_run)
    assert report["runs"]["not-built-yet"]["status"] == "skipped"
    assert report["runs"]["deep-research"]["status"] == "failed" and "search service down" in report["runs"]["deep-research"]["why"]
    manifest = Manifest.model_validate(json.loads((tmp_path / "all" / "shards" / "manifest.json").read_text()))
    mix = manifest.run_config["mixture"]
    assert manifest.tokens_per_domain() == {d: e["tokens"] for d, e in mix["domains"].items() if e["tokens"]}
    assert set(manifest.tokens_per_domain()) == {"math", "agentic-cot"}
    for d in ("math", "agentic-cot"):
        assert mix["domains"][d]["within_tolerance"], mix["domains"][d]
    assert mix["domains"]["deep-research"]["missing"] and mix["domains"]["not-built-yet"]["missing"]
    assert json.loads((tmp_path / "all" / "report.json").read_text())["total_tokens"] == manifest.total_tokens
    import datasets

    files = [str(tmp_path / "all" / "shards" / s.file) for s in manifest.shards]
    ds = datasets.load_dataset("parquet", data_files=files, split="train")
    assert len(ds) == manifest.total_rows


def test_domain_overrides_and_limit_reach_the_run_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("math.yaml").write_text("domain: math\nlimit: 200\nagent: {max_turns: 4}\n")
    seen = {}

    def run(name, cfg, run_dir):
        seen[name] = cfg
        _fake_run(name, cfg, run_dir)

    config = MixtureConfig(domains={"math": {"config": "math.yaml", "target": 1.0, "limit": 3,
                                             "overrides": {"agent.max_turns": 2, "branching.k": 1}}})
    run_mixture(config, tmp_path / "all", run_domain=run)
    cfg = seen["math"]
    assert cfg.limit == 3 and cfg.agent.max_turns == 2 and cfg.branching.k == 1
    run_mixture(config, tmp_path / "all2", run_domain=run, limit=5)  # the CLI's --limit wins
    assert seen["math"].limit == 5


def test_cli_run_all_bad_config_is_one_line(tmp_path):
    bad = tmp_path / "all.yaml"
    bad.write_text("domain: math\n")
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "all", "--config", str(bad), "--out", str(tmp_path / "o")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "mixture" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_shipped_all_config_is_valid():
    from pipelines.mixture import load_mixture_config

    config = load_mixture_config(REPO / "configs" / "all.yaml")
    assert "agentic-cot" in config.domains and config.max_upsample <= 5


@pytest.mark.ray
@pytest.mark.docker
@pytest.mark.slow
def test_trajforge_run_all_end_to_end_with_scripted_engines(tmp_path):
    """`trajforge run all` through the real pipeline (Ray, Docker, tokenizer): math with the
    scripted engine, Agentic-CoT with the five-phase script, one mixed shard set."""
    math_cfg, cot_cfg, mix_cfg = tmp_path / "math.yaml", tmp_path / "cot.yaml", tmp_path / "all.yaml"
    math_cfg.write_text("""
domain: math
seed: 7
engine: {model: "python:tests.fakes:ScriptedEngine"}
agent: {max_turns: 3, concurrency: 8}
branching: {enabled: true, k: 1}
sandbox: {pool_size: 2}
domain_options: {sources: [generator]}
""")
    cot_cfg.write_text("""
domain: agentic-cot
seed: 7
engine: {model: "python:tests.synthesizers.domains.agentic_cot.test_domain:FivePhaseEngine"}
agent: {max_turns: 3, concurrency: 8}
branching: {enabled: false}
sandbox: {pool_size: 2}
domain_options: {phased: false, sources: [{mode: rewrite, dataset: {}, count: 16}]}
""")
    mix_cfg.write_text(f"""
mixture:
  max_upsample: 3.0
  tolerance: 0.05
  domains:
    math: {{config: {math_cfg}, target: 0.5, limit: 12}}
    agentic-cot: {{config: {cot_cfg}, target: 0.5, limit: 16}}
    not-built-yet: {{config: nowhere.yaml, target: 0.2}}
""")
    out = tmp_path / "all"
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "all", "--config", str(mix_cfg), "--out", str(out), "--quiet"],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    manifest = Manifest.model_validate(json.loads((out / "shards" / "manifest.json").read_text()))
    mix = manifest.run_config["mixture"]
    assert set(manifest.tokens_per_domain()) == {"math", "agentic-cot"}
    for domain in ("math", "agentic-cot"):
        entry = mix["domains"][domain]
        assert entry["tokens"] == manifest.tokens_per_domain()[domain]
        assert entry["within_tolerance"] and entry["upsample"] <= 3.0, entry
    assert mix["runs"]["not-built-yet"]["status"] == "skipped"
    assert (out / "math" / "shards" / "manifest.json").exists() and (out / "agentic-cot" / "report.json").exists()
    cross = mix["cross_domain_dedupe"]  # both domains' rows were compared in one near-duplicate space
    domain_rows = sum(Manifest.model_validate(json.loads((out / d / "shards" / "manifest.json").read_text())).total_rows
                      for d in ("math", "agentic-cot"))
    assert cross["documents"] == domain_rows > 0
    assert set(cross["pairs"]) == {"agentic-cot|agentic-cot", "agentic-cot|math", "math|math"}
    assert cross["unchecked_rows"] == {"math": 0, "agentic-cot": 0}


# ---- one near-duplicate space over the mixture ----------------------------

def _words(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(3, 8))) for _ in range(n)]


def _domain_run(trajectories):
    """A fake domain run: a store holding ``trajectories`` (plus rows with no stored trajectory)
    and shard rows for them, as `trajforge run` leaves a run folder."""
    from pipelines.store import TrajectoryStore

    def run(name, cfg, run_dir):
        mine = trajectories[name]
        TrajectoryStore(run_dir).write_unit("u0", mine)
        out = [ShardRow(trajectory_id=t.id, domain=name, input_ids=list(range(50)), loss_mask=[1] * 50, num_tokens=50,
                        num_loss_tokens=50, passed=t.verdict.passed, score=t.verdict.score) for t in mine]
        out.append(ShardRow(trajectory_id=f"{name}-unstored", domain=name, input_ids=[1, 2], loss_mask=[1, 1],
                            num_tokens=2, num_loss_tokens=2))
        write_shard_set(out, run_dir / "shards", tokenizer_id="tok", masking_policy="assistant", rows_per_shard=16,
                        run_config={"domain": name})
    return run


def test_mixture_dedupes_across_domains_and_reports_each_pair(tmp_path, monkeypatch):
    from schemas import Message, Trajectory, Verdict

    monkeypatch.chdir(tmp_path)
    rng = random.Random(4)

    def traj(domain, i, words, passed=True):
        return Trajectory(id=f"{domain}-{i:02d}", task_id=f"{domain}-t{i}", domain=domain,
                          messages=[Message(role="user", content="q"), Message(role="assistant", content=" ".join(words))],
                          verdict=Verdict(passed=passed, score=1.0 if passed else 0.0))

    docs = [_words(rng, 150) for _ in range(12)]
    edited = list(docs[1])
    edited[75] = "changed"  # one word of 150: Jaccard about 0.94
    trajectories = {
        "math": [traj("math", i, docs[i]) for i in range(4)] + [traj("math", 4, docs[4]), traj("math", 5, docs[4] + ["end"])],
        "tool-use": [traj("tool-use", 0, [w.upper() for w in docs[0]], passed=False), traj("tool-use", 1, docs[6]),
                     traj("tool-use", 2, docs[7])],
        "agentic-cot": [traj("agentic-cot", 0, edited + ["and", "more"]), traj("agentic-cot", 1, docs[8])],
    }
    for d in trajectories:
        Path(f"{d}.yaml").write_text(f"domain: {d}\n")
    config = mixture({"math": 0.4, "tool-use": 0.3, "agentic-cot": 0.3})
    report = run_mixture(config, tmp_path / "all", run_domain=_domain_run(trajectories))
    cross = report["cross_domain_dedupe"]
    spanned = {pair: counts for pair, counts in cross["pairs"].items() if counts["exact"] or counts["near"]}
    # the failed tool-use copy of math-00 goes (exact), the longer Agentic-CoT edit of math-01 goes (near),
    # and the near pair inside math that the domain's own dedupe would have caught
    assert spanned == {"math|tool-use": {"exact": 1, "near": 0}, "agentic-cot|math": {"exact": 0, "near": 1},
                       "math|math": {"exact": 0, "near": 1}}
    assert set(cross["pairs"]) == {"agentic-cot|agentic-cot", "agentic-cot|math", "agentic-cot|tool-use", "math|math",
                                   "math|tool-use", "tool-use|tool-use"}
    assert cross["removed"] == {"tool-use": {"exact": 1, "near": 0}, "agentic-cot": {"exact": 0, "near": 1},
                                "math": {"exact": 0, "near": 1}}
    assert cross["documents"] == 11 and cross["clusters"] == 3
    assert cross["unchecked_rows"] == {"math": 1, "tool-use": 1, "agentic-cot": 1}
    # removed rows are not available to the mixture: 50 tokens per kept trajectory + 2 unstored
    assert {d: e["available_tokens"] for d, e in report["domains"].items()} == {"math": 252, "tool-use": 102, "agentic-cot": 52}
    manifest = Manifest.model_validate(json.loads((tmp_path / "all" / "shards" / "manifest.json").read_text()))
    assert manifest.run_config["mixture"]["cross_domain_dedupe"] == cross
    import pyarrow.parquet as pq

    ids = {i.split("#")[0] for s in manifest.shards for i in pq.read_table(tmp_path / "all" / "shards" / s.file)["trajectory_id"].to_pylist()}
    assert not ids & {"tool-use-00", "agentic-cot-00", "math-05"}
    assert {i.rsplit("-", 1)[0] for i in ids} == {"math", "tool-use", "agentic-cot"}


def test_mixture_dedupe_off_keeps_every_row(tmp_path, monkeypatch):
    from schemas import Message, Trajectory, Verdict

    monkeypatch.chdir(tmp_path)
    words = _words(random.Random(1), 100)
    same = {d: [Trajectory(id=f"{d}-0", task_id="t", domain=d, verdict=Verdict(passed=True, score=1.0),
                           messages=[Message(role="assistant", content=" ".join(words))])] for d in ("math", "tool-use")}
    for d in same:
        Path(f"{d}.yaml").write_text(f"domain: {d}\n")
    config = mixture({"math": 0.5, "tool-use": 0.5})
    on = run_mixture(config, tmp_path / "on", run_domain=_domain_run(same))
    assert on["cross_domain_dedupe"]["pairs"]["math|tool-use"] == {"exact": 1, "near": 0}
    config.dedupe.exact = config.dedupe.near = False
    off = run_mixture(config, tmp_path / "off", run_domain=_domain_run(same))
    assert off["cross_domain_dedupe"]["removed"] == {} and off["domains"]["math"]["available_tokens"] == 52
