"""The tool-use domain: tasks for the stateful tool environments of ``environments/``
(τ² airline/retail/telecom, a file system), a simulated user, and single-turn function
calling. See ``domain.py``."""

from synthesizers.domains.tool_use.domain import ToolUseDomain

__all__ = ["ToolUseDomain"]
