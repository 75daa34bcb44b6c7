"""Bad input gets one clear error line, a non-zero exit, and nothing half-written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def trajforge(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, stdin=subprocess.DEVNULL,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, needle: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]


def test_broken_config(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("domain: math\nagent: {max_turns: [\n")
    proc = trajforge("run", "math", "--config", str(cfg), "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, "not valid YAML")
    assert not (tmp_path / "out").exists()


def test_config_for_another_domain(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("domain: math\n")
    proc = trajforge("run", "code", "--config", str(cfg), "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, "not 'code'")


def test_bad_domain_options_one_line_each_before_anything_is_written(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("domain: tool-use\ndomain_options: {sorces: [files], guided: maybe}\n")
    proc = trajforge("run", "tool-use", "--config", str(cfg), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["error: tool-use option 'guided': Input should be a valid boolean, unable to interpret input",
                     "error: tool-use option 'sorces' is unknown (known: sources, mix, counts, user_sim, files_kinds, "
                     "guided)"], proc.stderr
    assert not (tmp_path / "out").exists()


def test_missing_model_path(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("domain: math\n")
    proc = trajforge("run", "math", "--config", str(cfg), "--out", str(tmp_path / "out"), "--model", str(tmp_path / "nomodel"))
    assert_one_line_error(proc, "model path not found")
    assert not (tmp_path / "out").exists()


def test_unreachable_model_server(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("domain: math\n")
    proc = trajforge("run", "math", "--config", str(cfg), "--out", str(tmp_path / "out"), "--model", "http://127.0.0.1:9")
    assert_one_line_error(proc, "no OpenAI-compatible server answers")


def test_docker_unavailable(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text('domain: math\nlimit: 2\nengine: {model: "python:tests.fakes:ScriptedEngine"}\ndomain_options: {sources: [generator]}\n')
    proc = trajforge("run", "math", "--config", str(cfg), "--out", str(tmp_path / "out"),
                     env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"})
    assert_one_line_error(proc, "Docker daemon not reachable")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("options, needle", [
    ("{bogus: 1}", "verifier.options: bogus not taken by the math verifiers"),
    ("{arithmetic: strict}", "arithmetic must be one of reject, flag, off"),
])
def test_bad_verifier_options(tmp_path, options, needle):
    cfg = tmp_path / "c.yaml"
    cfg.write_text('domain: math\nlimit: 2\nengine: {model: "python:tests.fakes:ScriptedEngine"}\n'
                   f'domain_options: {{sources: [generator]}}\nverifier: {{options: {options}}}\n')
    proc = trajforge("run", "math", "--config", str(cfg), "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "out").exists()


def test_verify_missing_input(tmp_path):
    proc = trajforge("verify", "--input", str(tmp_path / "none.jsonl"), "--output", str(tmp_path / "o.jsonl"))
    assert_one_line_error(proc, "input file not found")
    assert not (tmp_path / "o.jsonl").exists()


def test_verify_with_a_missing_config(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "domain": "math", "task": {"question": "q", "answer": "1"}, "messages": []}\n')
    proc = trajforge("verify", "--input", str(src), "--output", str(tmp_path / "o.jsonl"),
                     "--config", str(tmp_path / "missing.yaml"))
    assert_one_line_error(proc, "config file not found")
    assert not (tmp_path / "o.jsonl").exists()


def test_train_refuses_a_tokenizer_that_does_not_match_the_shards(tmp_path):
    from tests.trainer.shard_factory import write_shards

    write_shards(tmp_path / "shards", [([1, 2, 3, 4], [0, 1, 1, 1])] * 4, tokenizer_id="test-tokenizer")
    proc = trajforge("train", "--config", str(REPO / "configs" / "train-tiny.yaml"), "--shards", str(tmp_path / "shards"),
                     "--out", str(tmp_path / "train"), "--tokenizer", "gpt2")
    assert_one_line_error(proc, "gpt2")
    assert not (tmp_path / "train" / "checkpoints").exists()


@pytest.mark.parametrize("args, names", [
    (("run", "math", "--out", "X", "--limit", "2", "--frobnicate"), "--frobnicate"),
    (("run",), "domain"),
    (("run", "math"), "--out"),
    (("run", "math", "--out", "X", "--limit", "two"), "--limit"),
    (("audit",), "shards"),
])
def test_usage_errors_are_one_line_with_exit_2(args, names, tmp_path):
    proc = trajforge(*args)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and names in proc.stderr
    assert "Traceback" not in proc.stderr and "╭" not in proc.stderr


def test_run_without_config_uses_the_domains_own(tmp_path):
    from pipelines.cli import default_config

    assert default_config("math").name == "math.yaml" and default_config("math").is_file()
    proc = trajforge("run", "no-such-domain", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "no configs/no-such-domain.yaml" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_set_overrides_are_dotted_yaml_values_and_a_bad_one_is_one_line(tmp_path):
    from pipelines.cli import UserError, overrides

    assert overrides(["ray.num_workers=4", "shards.include=all", "decontam.benchmarks=[mmath]"]) == {
        "ray.num_workers": 4, "shards.include": "all", "decontam.benchmarks": ["mmath"]}
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        overrides(["ray.num_workers"])
    proc = trajforge("run", "math", "--out", str(tmp_path / "x"), "--set", "sampling.temperature.x=1")
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1
    assert "not a section" in proc.stderr and not (tmp_path / "x").exists()
