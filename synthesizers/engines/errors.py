"""Error vocabulary shared by the engine backends and the agent loop.

``Completion.error`` is free text, but a few failures need a different reaction
from the agent loop; backends mark those with a fixed prefix.
"""

CONTEXT_OVERFLOW = "context_overflow"  # the conversation no longer fits the model's context
# The server did not answer (refused, reset, timed out) or answered it cannot now (429, 5xx):
# the request may go to another endpoint serving the same model (``engines.pool``).
ENDPOINT_UNAVAILABLE = "endpoint_unavailable"


def is_context_overflow(error: str | None) -> bool:
    return bool(error) and error.startswith(CONTEXT_OVERFLOW)


def is_endpoint_unavailable(error: str | None) -> bool:
    return bool(error) and error.startswith(ENDPOINT_UNAVAILABLE)
