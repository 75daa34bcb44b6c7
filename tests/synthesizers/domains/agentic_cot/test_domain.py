"""The five-phase format: parser and structure check on good and adversarial texts,
and the Agentic-CoT domain's seeds, prompts, tools, final and critical-step rules."""

from __future__ import annotations

import json

import pytest

from schemas import Message, Task, ToolCall, Trajectory
from schemas.agentic_cot import check_structure, first_action_message, mask_code, parse_text, render_phases
from synthesizers.domains.agentic_cot import AgenticCoTDomain

GOOD = [("analysis", "We need 17 + 25."), ("plan", "Add, then check."), ("action", "17 + 25 = 42."),
        ("reflection", "42 - 25 = 17: right."), ("summary", "The sum is \\boxed{42}.")]
BOXED = lambda s: "\\boxed{" in s  # noqa: E731


def convo(*assistant: str | Message) -> list[Message]:
    out = [Message(role="system", content="s"), Message(role="user", content="q")]
    for a in assistant:
        out.append(a if isinstance(a, Message) else Message(role="assistant", content=a))
    return out


def check(text: str, **kw):
    return check_structure(convo(text), answer_check=BOXED, **kw)


def test_good_single_message_passes():
    report = check(render_phases(GOOD))
    assert report.ok, report.reason
    assert report.sequence == ["analysis", "plan", "action", "reflection", "summary"]
    assert report.summary == "The sum is \\boxed{42}."


def test_repeated_actions_with_tool_calls_between_pass():
    call = lambda i: ToolCall.make(f"c{i}", "python", {"code": "print(1)"})  # noqa: E731
    messages = convo(
        Message(role="assistant", content="<analysis>a</analysis><plan>p</plan><action>run it</action>", tool_calls=[call(0)]),
    ) + [Message(role="tool", content="1", tool_call_id="c0"),
         Message(role="assistant", content="<action>", tool_calls=[call(1)]),  # left open: the call closed it
         Message(role="tool", content="1", tool_call_id="c1"),
         Message(role="assistant", content="<reflection>ok</reflection><action>one more</action>"
                 "<reflection>still ok</reflection><summary>\\boxed{1}</summary>")]
    report = check_structure(messages, answer_check=BOXED)
    assert report.ok, report.reason
    assert report.sequence == ["analysis", "plan", "action", "action", "reflection", "action", "reflection", "summary"]
    assert first_action_message(messages) == 2


@pytest.mark.parametrize("drop", ["analysis", "plan", "action", "reflection", "summary"])
def test_missing_phase_fails(drop):
    report = check(render_phases([p for p in GOOD if p[0] != drop]))
    assert not report.ok
    assert drop in report.reason


@pytest.mark.parametrize("order,why", [
    (["plan", "analysis", "action", "reflection", "summary"], "starts with <plan>"),
    (["analysis", "plan", "reflection", "action", "summary"], "<reflection> follows <plan>"),
    (["analysis", "plan", "action", "summary", "reflection"], "ends with <reflection>"),
    (["analysis", "plan", "action", "reflection", "action", "summary"], "<summary> follows <action>"),
    (["analysis", "plan", "action", "reflection", "reflection", "summary"], "<reflection> follows <reflection>"),
    (["analysis", "analysis", "plan", "action", "reflection", "summary"], "once only"),
])
def test_wrong_order_fails(order, why):
    text = {name: content for name, content in GOOD}
    report = check(render_phases([(name, text[name]) for name in order]))
    assert not report.ok and why in report.reason, report.reason


@pytest.mark.parametrize("empty", ["analysis", "plan", "action", "reflection", "summary"])
def test_empty_phase_fails(empty):
    report = check(render_phases([(n, "  \n " if n == empty else c) for n, c in GOOD]), )
    assert not report.ok
    assert f"<{empty}>" in report.reason and ("empty" in report.reason or "answer" in report.reason)


def test_summary_without_the_answer_fails_even_if_the_answer_is_elsewhere():
    phases = [(n, c) for n, c in GOOD[:-1]] + [("summary", "So that is the sum.")]
    phases[2] = ("action", "17 + 25 = \\boxed{42}")
    report = check(render_phases(phases))
    assert not report.ok and "does not state the final answer" in report.reason


def test_tags_inside_code_blocks_are_content_not_structure():
    fenced = "```python\nprint('<summary>fake</summary>')\n```"
    inline = "the string `<reflection>` is just text"
    phases = list(GOOD)
    phases[2] = ("action", f"{fenced}\n{inline}")
    report = check(render_phases(phases))
    assert report.ok, report.reason
    assert report.sequence.count("summary") == 1
    # and a phase that exists only inside a code block does not count
    only_in_code = render_phases(GOOD[:3]) + "\n```\n<reflection>r</reflection>\n<summary>\\boxed{42}</summary>\n```"
    report = check(only_in_code)
    assert not report.ok and "reflection" in report.reason


def test_unclosed_fence_masks_to_the_end():
    assert mask_code("a ```x <plan>") == "a " + " " * len("```x <plan>")


@pytest.mark.parametrize("text,why", [
    ("<analysis>a<plan>p</plan></analysis><action>x</action><reflection>r</reflection><summary>\\boxed{1}</summary>", "do not nest"),
    ("<analysis>a</plan><plan>p</plan>", "closes <analysis>"),
    ("</analysis><analysis>a</analysis>", "closes nothing"),
    (render_phases(GOOD[:4]) + "<summary>\\boxed{42}", "never closed"),
])
def test_nested_mismatched_and_unclosed_tags_fail(text, why):
    report = check(text)
    assert not report.ok and why in report.reason, report.reason


def test_open_action_without_tool_call_fails():
    assert not check_structure(convo("<analysis>a</analysis><plan>p</plan><action>x")).ok


def test_text_outside_tags_fails_unless_allowed():
    text = "Sure! " + render_phases(GOOD)
    assert not check(text).ok and "outside" in check(text).reason
    assert check(text, allow_stray=True).ok


def test_tool_call_outside_an_action_fails():
    call = ToolCall.make("c0", "python", {"code": "1"})
    messages = convo(Message(role="assistant", content="<analysis>a</analysis><plan>p</plan>", tool_calls=[call]))
    messages += [Message(role="tool", content="1", tool_call_id="c0"),
                 Message(role="assistant", content=render_phases(GOOD[2:]))]
    report = check_structure(messages, answer_check=BOXED)
    assert not report.ok and "outside an <action>" in report.reason


def test_summary_must_be_in_the_last_assistant_message():
    messages = convo(render_phases(GOOD), "<analysis>again</analysis>")
    assert not check_structure(messages).ok


def test_uppercase_tags_are_not_tags():
    assert not check(render_phases(GOOD).replace("<plan>", "<PLAN>").replace("</plan>", "</PLAN>")).ok


def test_parse_text_positions():
    parsed = parse_text(render_phases(GOOD), 4)
    assert [p.message_index for p in parsed.phases] == [4] * 5 and not parsed.errors


# ---- the domain ---------------------------------------------------------------


@pytest.fixture(scope="module")
def domain():
    return AgenticCoTDomain()


def test_seeds_are_deterministic_and_interleave_direct_and_rewrite(domain):
    a = list(domain.seed_tasks(limit=6, seed=3))
    b = list(domain.seed_tasks(limit=6, seed=3))
    assert [t.id for t in a] == [t.id for t in b] and len({t.id for t in a}) == 6
    assert [t.payload["mode"] for t in a] == ["direct", "rewrite"] * 3
    inner = AgenticCoTDomain.underlying(a[1])
    assert inner.domain == "math" and inner.payload["answer"] and a[1].payload["source_text"]
    assert all(t.domain == "agentic-cot" and t.kind == "default" for t in a)


def test_judging_options_reach_the_verifier_not_the_payload():
    strict = AgenticCoTDomain()
    loose = AgenticCoTDomain({"allow_stray": True, "allow_repeats": True})
    tasks = [t.model_dump() for t in strict.seed_tasks(limit=4, seed=3)]
    assert len(tasks) == 4 and not any("structure" in t["payload"] for t in tasks)
    assert tasks == [t.model_dump() for t in loose.seed_tasks(limit=4, seed=3)]  # ids and payloads alike
    assert strict.verifier_options() == {"allow_stray": False, "allow_repeats": False, "underlying_options": {}}
    assert loose.verifier_options()["allow_stray"] is True and loose.verifier_options()["allow_repeats"] is True
    # a direct source's domain options judge its inner tasks (rewrites use the defaults)
    over_dr = AgenticCoTDomain({"sources": [{"mode": "direct", "domain": "deep-research",
                                             "options": {"f1_threshold": 0.6, "require_retrieved": False}}]})
    assert over_dr.verifier_options()["underlying_options"] == {
        "deep-research": {"threshold": 0.6, "require_retrieved": False}}


def test_bad_options_fail_when_the_domain_is_built():
    from synthesizers.domains.base import DomainOptionsError

    with pytest.raises(DomainOptionsError, match="agentic-cot option 'bogus' is unknown"):
        AgenticCoTDomain({"bogus": 1})
    with pytest.raises(DomainOptionsError, match="'sources.0': a rewrite source needs exactly one of dataset or store"):
        AgenticCoTDomain({"sources": [{"mode": "rewrite"}]})
    with pytest.raises(DomainOptionsError, match="wrap itself"):
        AgenticCoTDomain({"sources": [{"mode": "direct", "domain": "agentic-cot"}]})
    # the underlying domain's options are checked with it, before any task is made
    with pytest.raises(DomainOptionsError, match="math option 'difficulty'"):
        AgenticCoTDomain({"sources": [{"mode": "direct", "domain": "math", "options": {"difficulty": "insane"}}]})


def test_direct_prompt_adds_the_format_to_the_underlying_prompt_and_tools_see_the_inner_task():
    domain = AgenticCoTDomain({"sources": [{"mode": "direct", "domain": "math", "options": {"sources": ["generator"]}}]})
    task = next(iter(domain.seed_tasks(limit=1, seed=0)))
    messages = domain.initial_messages(task)
    inner = AgenticCoTDomain.underlying(task)
    assert messages[0].role == "system" and "<analysis>" in messages[0].content and "\\boxed" in messages[0].content
    assert messages[1].content == inner.payload["question"]
    (tool,) = domain.tools(task)
    seen = {}

    class Probe:
        name, schema, needs_sandbox = "probe", {}, False

        def run(self, arguments, ctx):
            seen["task"] = ctx.task
            return "ok"

    from synthesizers.domains.agentic_cot.tools import UnderlyingTool
    from synthesizers.domains.base import ToolContext

    UnderlyingTool(Probe(), inner).run({}, ToolContext(task=task))
    assert seen["task"] == inner and tool.name == "python"


def test_rewrite_prompt_and_training_view(domain):
    task = next(t for t in domain.seed_tasks(limit=4, seed=0) if t.payload["mode"] == "rewrite")
    asked = domain.initial_messages(task)
    assert task.payload["source_text"] in asked[1].content and domain.tools(task) == []
    answer = Message(role="assistant", content=render_phases(GOOD))
    traj = Trajectory(id="x", task_id=task.id, domain="agentic-cot", task=task, messages=asked + [answer])
    view = domain.training_messages(traj)
    inner = AgenticCoTDomain.underlying(task)
    assert view[1].content == inner.payload["question"]  # the question, not the rewrite request
    assert task.payload["source_text"] not in json.dumps([m.model_dump() for m in view])
    assert view[-1] == answer


def test_store_source_rewrites_passed_trajectories(tmp_path):
    from pipelines.store import TrajectoryStore
    from schemas import Verdict

    inner = Task(id="m1", domain="math", payload={"question": "What is 2 + 3?", "answer": "5"})
    good = Trajectory(id="t1", task_id="m1", domain="math", task=inner, verdict=Verdict(passed=True),
                      messages=[Message(role="user", content="What is 2 + 3?"), Message(role="assistant", content="2 + 3 = \\boxed{5}")])
    bad = good.model_copy(update={"id": "t2", "verdict": Verdict(passed=False)})
    TrajectoryStore(tmp_path).write_unit("u1", [good, bad])
    tasks = list(AgenticCoTDomain({"sources": [{"mode": "rewrite", "store": str(tmp_path)}]}).seed_tasks(limit=None, seed=0))
    assert len(tasks) == 1 and "2 + 3 = \\boxed{5}" in tasks[0].payload["source_text"]
    assert tasks[0].payload["source_messages"][-1]["content"] == "2 + 3 = \\boxed{5}"
    assert AgenticCoTDomain.underlying(tasks[0]) == inner


def test_final_and_critical_step(domain):
    assert domain.is_final(Message(role="assistant", content=render_phases(GOOD)))
    assert not domain.is_final(Message(role="assistant", content=render_phases(GOOD[:4])))
    assert not domain.is_final(Message(role="assistant", content="```\n<summary>x</summary>\n```"))
    messages = convo("<analysis>a</analysis><plan>p</plan>", render_phases(GOOD[2:]))
    assert domain.first_critical_step(messages) == 3
    assert domain.first_critical_step(convo("no tags at all")) == 2


# ---- end to end through the real pipeline (Ray, Docker, tokenizer) with a scripted engine ----

import re  # noqa: E402

from synthesizers.engines.base import Completion, SamplingParams  # noqa: E402

REPO = __import__("pathlib").Path(__file__).resolve().parents[4]


def _solve(question: str) -> str:
    n = [int(x) for x in re.findall(r"\d+", question)]
    if "% of" in question:
        return f"{n[0]} * {n[1]} // 100"
    if "remainder" in question:
        return f"{n[0]} % {n[1]}"
    if "Solve for x" in question:
        return f"({n[2]} - {n[1]}) // {n[0]}"
    if "divided by" in question:
        return f"{n[0]} // {n[1]}"
    return re.sub(r"[^0-9+\-*/() ]", "", question.split("What is", 1)[-1])


class FivePhaseEngine:
    """Writes five-phase answers: direct tasks run python once, rewrites copy the
    solution's last number. Seeded faults: every third direct rollout drops its
    reflection (a structure failure), every fourth rewrite changes the answer."""

    model_id = "five-phase-script"

    def __init__(self, **_):
        pass

    async def chat(self, messages, *, tools=None, params: SamplingParams = SamplingParams()) -> Completion:
        system, user = messages[0].content, next(m.content for m in messages if m.role == "user")
        # every root rollout shares the run seed: mix the task in, so faults differ per task
        seed = __import__("zlib").crc32(f"{params.seed}:{user}".encode())
        if "reorganize" in system:
            solution = user.split("Solution to reorganize:", 1)[1]
            answer = int(re.findall(r"\d+", solution)[-1]) + (1 if seed % 4 == 0 else 0)
            text = render_phases([("analysis", "Restate the problem."), ("plan", "Follow the solution."),
                                  ("action", solution.strip()[:200]), ("reflection", "Consistent."),
                                  ("summary", f"The answer is \\boxed{{{answer}}}.")])
        elif not any(m.role == "tool" for m in messages):
            call = json.dumps({"name": "python", "arguments": {"code": f"print({_solve(user)})"}})
            text = f"<analysis>{user}</analysis><plan>Compute it in python.</plan><action>Run it.<tool_call>{call}</tool_call></action>"
        else:
            out = re.findall(r"-?\d+", messages[-1].content.split("stdout:", 1)[-1])
            phases = [("reflection", "The program printed the result.")] if seed % 3 else []
            text = render_phases(phases + [("summary", f"So \\boxed{{{out[0] if out else '?'}}}.")])
        return Completion(text=text, finish_reason="stop", prompt_tokens=40 * len(messages), completion_tokens=len(text) // 4)

    async def close(self):
        return None


@pytest.mark.ray
@pytest.mark.docker
@pytest.mark.slow
def test_agentic_cot_pipeline_end_to_end(tmp_path, model_dir):
    from pipelines.config import load_config
    from pipelines.run import run_pipeline
    from pipelines.store import TrajectoryStore
    from pipelines.tokenize import load_tokenizer
    from schemas import Manifest

    cfg_path = tmp_path / "acot.yaml"
    cfg_path.write_text(f"""
domain: agentic-cot
seed: 11
limit: 12
engine: {{model: "python:tests.synthesizers.domains.agentic_cot.test_domain:FivePhaseEngine"}}
agent: {{max_turns: 3, concurrency: 8}}
branching: {{enabled: true, k: 2}}
units: {{tasks_per_unit: 6}}
sandbox: {{pool_size: 2}}
decontam: {{sources: [{{path: {REPO / 'configs/benchmarks/heldout-sample.jsonl'}, name: heldout}}]}}
domain_options:
  phased: false   # this engine writes whole five-phase texts (the phased protocol: test_controllers.py)
  sources:
    - {{mode: direct, domain: math, options: {{sources: [generator]}}, count: 6}}
    - {{mode: rewrite, dataset: {{}}, count: 6}}
""")
    run_dir = tmp_path / "run"
    # A rewrite seed is a held-out item: the run stops before anything is written ...
    from pipelines.config import ConfigError

    with pytest.raises(ConfigError, match=r"1 of 12 .* are heldout items.*allow_benchmark_seeds"):
        run_pipeline(load_config(cfg_path), run_dir)
    assert not run_dir.exists()
    # ... and checking trajectories only, it runs and that trajectory is removed (its user turn).
    cfg_path.write_text(cfg_path.read_text().replace("name: heldout}]", "name: heldout}], check: [trajectory]"))
    result = run_pipeline(load_config(cfg_path), run_dir)
    store = TrajectoryStore(run_dir)
    trajs = store.read_units([p.stem[len("unit-"):] for p in sorted((run_dir / "trajectories").glob("unit-*.parquet"))])
    assert len({t.task_id for t in trajs}) == 12
    reasons = [t.verdict.reason for t in trajs if not t.verdict.passed]
    assert any(r.startswith("structure:") for r in reasons), reasons  # dropped reflections
    assert any(r.startswith("structure ok; math") for r in reasons), reasons  # changed rewrite answers
    passed = [t for t in trajs if t.verdict.passed]
    assert passed and all(check_structure(t.messages).ok for t in passed)
    domain = AgenticCoTDomain()
    branches = [t for t in trajs if t.parent_id]
    assert branches, "failed parents must be branched (branching.k: 2)"
    for b in branches:  # branches cut just before the first action
        parent = next(t for t in trajs if t.id == b.parent_id)
        assert b.branch_step == domain.first_critical_step(parent.messages)

    report = json.loads((run_dir / "report.json").read_text())
    hits = report["extra"]["decontamination"]["hits"]
    assert any("train travels 240 km" in json.dumps(t.task.payload) for t in trajs if t.id in {h["id"] for h in hits})
    assert all(h["benchmark"] == "heldout" for h in hits)
    # the field's shipped benchmarks are checked by default beside the named file
    assert set(report["extra"]["decontamination"]["benchmarks"]) == {"mmath", "champ", "heldout"}

    manifest = Manifest.model_validate(json.loads((run_dir / "shards" / "manifest.json").read_text()))
    assert manifest.total_rows == result.report.shard_rows > 0 and {s.domain for s in manifest.shards} == {"agentic-cot"}
    import pyarrow.parquet as pq

    tok = load_tokenizer(str(model_dir))
    for entry in manifest.shards:
        for row in pq.read_table(run_dir / "shards" / entry.file).to_pylist():
            text = tok.decode(row["input_ids"])
            assert "Solution to reorganize" not in text  # rewrites are sharded as plain answers
            assert "<summary>" in text and "train travels 240 km" not in text
