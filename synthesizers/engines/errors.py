"""Error vocabulary shared by the engine backends and the agent loop.

``Completion.error`` is free text, but a few failures need a different reaction
from the agent loop; backends mark those with a fixed prefix.
"""

CONTEXT_OVERFLOW = "context_overflow"  # the conversation no longer fits the model's context


def is_context_overflow(error: str | None) -> bool:
    return bool(error) and error.startswith(CONTEXT_OVERFLOW)
