"""The domain shape: traits declared on the class and checked when it is defined, options
validated when a domain is built, and every domain's task kinds judged by a registered verifier."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from schemas import Message, Task
from synthesizers.domains.base import Domain, DomainOptions, DomainOptionsError
from synthesizers.domains.registry import DOMAINS, domain_class, get_domain
from verifiers.registry import verifier_class

REPO = Path(__file__).resolve().parents[3]


def test_a_domain_class_with_a_bad_trait_is_refused_when_it_is_defined():
    with pytest.raises(TypeError, match="needs_sandbox must be declared"):
        class NoSandboxSaid(Domain):  # noqa: F841
            name = "x"
    with pytest.raises(TypeError, match="sandbox_scope must be one of"):
        class BadScope(Domain):  # noqa: F841
            name, needs_sandbox, sandbox_scope = "x", True, "forever"
    with pytest.raises(TypeError, match="assists must be a tuple of names"):
        class ListedAssists(Domain):  # noqa: F841
            name, needs_sandbox, assists = "x", False, ["forcing"]
    with pytest.raises(TypeError, match="Options must be a DomainOptions subclass"):
        class DictOptions(Domain):  # noqa: F841
            name, needs_sandbox, Options = "x", False, dict


def test_a_domain_missing_a_required_method_cannot_be_built():
    class Half(Domain):
        name, needs_sandbox = "half", False

        def initial_messages(self, task: Task) -> list[Message]:
            return []

    with pytest.raises(TypeError, match="abstract"):
        Half()


def test_options_are_validated_once_when_the_domain_is_built():
    class Opts(DomainOptions):
        n: int = 1

    class Counted(Domain):
        name, needs_sandbox, Options = "counted", False, Opts

        def seed_tasks(self, *, limit, seed):
            return iter(())

        def initial_messages(self, task):
            return []

        def tools(self, task):
            return []

        def is_final(self, message):
            return True

    assert Counted({"n": "3"}).options.n == 3 and Counted().options.n == 1
    with pytest.raises(DomainOptionsError, match=r"^counted option 'n': Input should be a valid integer"):
        Counted({"n": "many"})


@pytest.mark.parametrize("name", sorted(DOMAINS))
def test_every_domain_declares_task_kinds_a_registered_verifier_judges(name):
    cls = domain_class(name)
    assert cls.name == name and issubclass(cls, Domain)
    for kind in cls.verifier_kinds:
        assert verifier_class(name, kind).domain == name
    assert get_domain(name).options == cls.Options()  # every option has a default
    # one way to steer a rollout: the controller (no per-task overrides, turn policies or assistant "users")
    assert not any(hasattr(cls, old) for old in ("sampling_overrides", "turn_policy"))


def test_pipelines_read_no_domain_trait_or_hook_with_getattr():
    found = [f"{path.relative_to(REPO)}:{n}" for path in (REPO / "pipelines").rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"getattr\((self\.)?(domain|get_domain|_domain)\b", line)]
    assert (REPO / "pipelines" / "rollout.py").is_file() and found == []
