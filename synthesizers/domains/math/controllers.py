"""The math domain's small-model assist: answer forcing."""

from __future__ import annotations

from schemas import Message

# When the model stops without a boxed answer (and without a tool call), its own
# turn is continued once from this text: the answer then sits right after the
# reasoning that computed it, where even a small model copies the right number
# (a separate "please box it" user turn made SmolLM2 guess instead).
ANSWER_FORCING = "\n\nThe final answer is $\\boxed{"


class AnswerForcing:
    """The math domain's 'user': once, continue the assistant's turn with ``ANSWER_FORCING``.

    Plugs into the agent loop's simulated-user hook (an assistant-role reply
    continues the assistant's own turn), so the forced words are the model's
    turn, not a user turn, and the model writes the answer itself.
    """

    def __init__(self, max_forcings: int = 1):
        self.left = max_forcings

    async def reply(self, messages: list[Message]) -> Message | None:
        if self.left <= 0:
            return None
        self.left -= 1
        return Message(role="assistant", content=ANSWER_FORCING)
