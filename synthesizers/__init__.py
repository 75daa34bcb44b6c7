"""synthesizers — everything that produces trajectories.

- ``engines/``: the ``LLMEngine`` Protocol and its real backends (in-process
  vLLM, any OpenAI-compatible server over httpx).
- ``hermes.py``: Hermes-style ``<tool_call>{...}</tool_call>`` text <-> OpenAI tool calls.
- ``agent_loop.py``: the multi-turn loop (model writes, tools run, observations
  appended) with turn/token budgets; many loops share one engine.
- ``domains/``: one plug-in per domain (``Domain`` Protocol): seed tasks,
  prompts, tools, the critical-action rule.

Must not run Ray or write shards (that is ``pipelines/``).
"""
