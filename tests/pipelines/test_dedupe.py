from pipelines.dedupe import dedupe
from schemas import Message, Trajectory, Verdict

BASE = (
    "first we read the problem carefully and note that the sum of the two numbers is needed "
    "so we add seventeen and twenty five to get forty two which we check twice before answering"
)


def make(tid, text, passed=True, score=1.0):
    return Trajectory(
        id=tid, task_id="k", domain="math",
        messages=[Message(role="user", content="q"), Message(role="assistant", content=text)],
        verdict=Verdict(passed=passed, score=score),
    )


def test_exact_duplicates_differing_in_case_and_space_are_removed():
    a = make("a", BASE)
    b = make("b", "  " + BASE.upper().replace(" ", "   "))
    res = dedupe([a, b], near=False)
    assert [t.id for t in res.kept] == ["a"]
    assert res.removed_exact == ["b"]


def test_near_duplicates_keep_the_passed_one():
    failed = make("a", BASE + " done", passed=False, score=0.0)
    passed = make("z", BASE + " finished")
    distinct = make("m", "a completely different trajectory about geometry and circles with radius three")
    res = dedupe([failed, passed, distinct], threshold=0.7)
    kept = {t.id for t in res.kept}
    assert kept == {"z", "m"}
    assert res.removed_near == ["a"]


def test_user_text_does_not_make_trajectories_duplicates():
    a = make("a", "answer one is twelve because of the rule")
    b = make("b", "totally unrelated reasoning about prime factors of ninety")
    res = dedupe([a, b])
    assert len(res.kept) == 2
