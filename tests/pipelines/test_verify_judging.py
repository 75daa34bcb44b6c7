"""`trajforge verify --config`: rows judged as a run of that config judges them (its domain options,
verifier section and sandbox limits); without a config, each domain's defaults."""

from __future__ import annotations

import json

import pytest

from pipelines.config import ConfigError
from pipelines.verify_cmd import verify_file
from pipelines.verify_judging import default_judging, judging_from_config
from schemas.agentic_cot import render_phases
from synthesizers.domains.base import DomainOptionsError

DR_TASK = {"question": "Which range?", "answer": "Ural Mountains", "aliases": ["the Urals"],
           "answer_doc_ids": ["d02954"]}
PHASES = [("analysis", "Seven pencils at 3 dollars, paid with 50."), ("plan", "Cost, then change."),
          ("action", "7 * 3 = 21; 50 - 21 = 29."), ("reflection", "21 + 29 = 50, consistent."),
          ("summary", "The change is \\boxed{29} dollars.")]


def dr_row(rid: str, answer: str) -> dict:
    return {"id": rid, "domain": "deep-research", "task": DR_TASK, "messages": [
        {"role": "user", "content": DR_TASK["question"]},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "function": {"name": "search", "arguments": {"query": "range"}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "[d02954] Ural Mountains\n    a range"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c2", "function": {"name": "answer", "arguments": {"answer": answer, "citations": ["d02954"]}}}]}]}


def acot_row(rid: str, text: str) -> dict:
    underlying = {"domain": "math", "payload": {"question": "Maya's change?", "answer": "29"}}
    return {"id": rid, "domain": "agentic-cot", "task": {"underlying": underlying},
            "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": text}]}


def verdicts(tmp_path, rows: list[dict], config=None) -> dict[str, dict]:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    verify_file(src, out, config=config)
    return {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}


def write(path, text: str):
    path.write_text(text)
    return path


def test_a_run_config_gives_the_looser_verdict_its_domain_options_imply(tmp_path):
    rows = [dr_row("partial", "Ural"), dr_row("exact", "Ural Mountains")]  # F1 2/3; exact match
    default = verdicts(tmp_path, rows)
    assert not default["partial"]["passed"] and "F1 0.67 < 0.8" in default["partial"]["reason"]
    assert default["exact"]["passed"]
    config = write(tmp_path / "dr.yaml", "domain: deep-research\ndomain_options: {f1_threshold: 0.6}\n")
    loose = verdicts(tmp_path, rows, config=config)
    assert loose["partial"]["passed"] and loose["exact"]["passed"], loose
    # the config's verifier.options override the domain's, key by key
    stricter = write(tmp_path / "dr2.yaml", "domain: deep-research\ndomain_options: {f1_threshold: 0.6}\n"
                                            "verifier: {options: {threshold: 0.7}}\n")
    assert not verdicts(tmp_path, rows, config=stricter)["partial"]["passed"]


def test_a_mixture_config_judges_each_domain_by_its_own_config(tmp_path):
    stray = acot_row("stray", "Sure! " + render_phases(PHASES))
    rows = [stray, dr_row("partial", "Ural")]
    default = verdicts(tmp_path, rows)
    assert not default["stray"]["passed"] and "outside the phase tags" in default["stray"]["reason"]
    acot = write(tmp_path / "acot.yaml", "domain: agentic-cot\ndomain_options: {allow_stray: true}\n")
    dr = write(tmp_path / "dr.yaml", "domain: deep-research\n")
    mixture = write(tmp_path / "all.yaml", "mixture:\n  domains:\n"
                    f"    agentic-cot: {{config: {acot}, target: 0.5}}\n"
                    f"    deep-research: {{config: {dr}, target: 0.3,"
                    " overrides: {domain_options.f1_threshold: 0.6}}\n"
                    f"    math: {{config: {tmp_path / 'none.yaml'}, target: 0.2}}\n")  # the run skips it too
    got = verdicts(tmp_path, rows, config=mixture)
    assert got["stray"]["passed"] and got["partial"]["passed"], got
    judging = judging_from_config(mixture)
    assert set(judging) == {"agentic-cot", "deep-research"}


def test_the_shipped_mixture_names_every_domains_config():
    judging = judging_from_config("configs/all.yaml")
    assert set(judging) == {"agentic-cot", "math", "code", "tool-use", "deep-research"}
    assert judging["code"].sandbox.memory_mb == 768  # code runs' limits, as the run has them
    assert judging["deep-research"].domain.verifier_options() == {"threshold": 0.8, "require_retrieved": True}


def test_without_a_config_each_domain_keeps_its_defaults():
    assert default_judging("deep-research").domain.verifier_options() == {"threshold": 0.8, "require_retrieved": True}
    assert default_judging("code").sandbox.memory_mb == 768
    assert default_judging("no-such-domain").domain is None


@pytest.mark.parametrize("text, error, needle", [
    (None, ConfigError, "config file not found"),
    ("domain: deep-research\nverifier: {options: {f1_threshold: 0.6}}\n", ConfigError,
     "f1_threshold not taken by the deep-research verifiers"),
    ("domain: deep-research\nverifier: {options: {threshold: 3}}\n", ConfigError, "threshold must be a number"),
    ("domain: deep-research\ndomain_options: {f1_treshold: 0.6}\n", DomainOptionsError, "'f1_treshold' is unknown"),
    ("domain: agentic-cot\nengine: {modle: x}\n", ConfigError, "engine.modle"),
    ("mixture:\n  domains:\n    deep-research: {config: configs/math.yaml, target: 1}\n", ConfigError,
     "a config for 'math'"),
])
def test_a_bad_config_stops_before_anything_is_written(tmp_path, text, error, needle):
    config = tmp_path / "c.yaml"
    if text is not None:
        config.write_text(text)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps(dr_row("a", "Ural")) + "\n")
    with pytest.raises(error, match=needle):
        verify_file(src, out, config=config)
    assert not out.exists()
