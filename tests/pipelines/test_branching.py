from pipelines.branching import branch_prefix, branch_seed, branch_trajectory_id, cut_point
from schemas import Message, ToolCall, Trajectory, Verdict


class FirstCallDomain:
    def first_critical_step(self, messages):
        for i, m in enumerate(messages):
            if m.role == "assistant" and m.tool_calls:
                return i
        return None


def traj(passed):
    msgs = [
        Message(role="system", content="s"),
        Message(role="user", content="u"),
        Message(role="assistant", content="think"),
        Message(role="user", content="more"),
        Message(role="assistant", content="", tool_calls=[ToolCall.make("c1", "python", {"code": "1"})]),
        Message(role="tool", content="1", tool_call_id="c1"),
        Message(role="assistant", content="\\boxed{1}"),
    ]
    return Trajectory(id="t", task_id="k", domain="math", messages=msgs, verdict=Verdict(passed=passed))


def test_cut_is_just_before_the_first_critical_action():
    t = traj(False)
    cut = cut_point(FirstCallDomain(), t)
    assert cut == 4
    prefix = branch_prefix(t, cut)
    assert [m.role for m in prefix] == ["system", "user", "assistant", "user"]
    assert not any(m.tool_calls for m in prefix)


def test_passed_or_unjudged_trajectories_are_not_cut():
    assert cut_point(FirstCallDomain(), traj(True)) is None
    t = traj(False)
    t.verdict = None
    assert cut_point(FirstCallDomain(), t) is None


def test_branch_ids_and_seeds_are_deterministic_and_distinct():
    ids = {branch_trajectory_id("p", 4, i) for i in range(5)}
    assert len(ids) == 5
    assert branch_trajectory_id("p", 4, 1) == branch_trajectory_id("p", 4, 1)
    assert branch_seed(7, 4, 0) != branch_seed(7, 4, 1)
