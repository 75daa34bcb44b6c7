"""The math domain's small-model assist: answer forcing (docs/small-model-assists.md)."""

from __future__ import annotations

from schemas import Message
from synthesizers.controller import Continue, Controller, End

# When the model stops without a boxed answer (and without a tool call), its own
# turn is continued once from this text: the answer then sits right after the
# reasoning that computed it, where even a small model copies the right number
# (a separate "please box it" user turn made SmolLM2 guess instead).
ANSWER_FORCING = "\n\nThe final answer is $\\boxed{"


class AnswerForcing(Controller):
    """Once per rollout, a turn that stops without a box (or a call) goes on from ``ANSWER_FORCING``:
    the forced words are the model's own turn (inserted), and the model writes the answer itself.
    Past that, the rollout ends."""

    def __init__(self, max_forcings: int = 1):
        self.left = max_forcings

    def after_turn(self, messages: list[Message]) -> Continue | End:
        if self.left <= 0:
            return End()
        self.left -= 1
        return Continue(ANSWER_FORCING)
