"""The multi-turn agent loop: the model writes, tools run, observations go back in.

One ``run_agent`` call is one rollout. Many run concurrently against one
engine (``asyncio.gather``); tools run in a worker thread pool so a slow tool
never holds up another rollout's generation. Every failure the model could
learn from (unknown tool, bad arguments, a tool's error, a malformed
``<tool_call>``) becomes a ``role=tool`` observation and the loop goes on; each
observation carries the call's outcome as data (``Message.result``: status and
the tool's fields);
failures it cannot (engine error, context overflow, budgets) end the rollout
with a ``stop_reason``. The loop never raises for model or tool behaviour.

Budgets: ``max_turns`` counts assistant turns; ``max_total_tokens`` caps the
length of the whole conversation in tokens (the last prompt plus what the
model writes next), which is what a training sequence will hold.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable

from sandboxes.base import is_infrastructure_error
from schemas import Message, TokenCounts, Timings, ToolCall, ToolResult
from schemas.tokens import TokenTrace
from synthesizers.clip import clip_within
from synthesizers.controller import Continue, Controller, End, TurnInfo, TurnPolicy  # noqa: F401 (re-exported)
from synthesizers.domains.base import Tool, ToolContext, ToolError, ToolOutput
from synthesizers.engines.base import Completion, LLMEngine, SamplingParams, supports_tokens
from synthesizers.engines.errors import CONTEXT_OVERFLOW, is_context_overflow
from synthesizers.hermes import parse_tool_calls
from synthesizers.token_conversation import TokenConversation

STOP_REASONS = (
    "final_answer", "no_tool_call", "user_ended", "controller_ended", "max_turns", "max_tokens", "engine_error",
    "context_overflow", "infrastructure_error",
)

# Called when the assistant neither called a tool nor gave a final answer (and no controller went
# on with its turn): a simulated user's next message (role "user"), or None when the user ends
# the conversation.
UserTurn = Callable[[list[Message]], Awaitable["Message | None"]]

# A dedicated pool: asyncio's default executor has only cpu+4 threads, and a
# tool that overruns its timeout keeps its thread until it returns.
_TOOL_POOL = concurrent.futures.ThreadPoolExecutor(
    max_workers=int(os.environ.get("TRAJFORGE_TOOL_THREADS", "64")), thread_name_prefix="trajforge-tool"
)


@dataclass(frozen=True)
class Budget:
    max_turns: int = 8
    max_total_tokens: int = 4096
    max_tool_output_chars: int = 4000
    tool_timeout_s: float = 60.0


@dataclass
class AgentResult:
    messages: list[Message]
    stop_reason: str
    tokens: TokenCounts = field(default_factory=TokenCounts)
    timings: Timings = field(default_factory=Timings)
    error: str | None = None
    turns: int = 0
    trace: TokenTrace | None = None  # token-in/token-out rollouts: the exact ids and their sources


def turn_seed(seed: int | None, turn: int) -> int | None:
    """A per-turn seed: deterministic in (seed, turn), distinct across turns."""
    if seed is None:
        return None
    return int(hashlib.sha256(f"{seed}:{turn}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def truncate(text: str, limit: int) -> str:
    """An observation cut to at most ``limit`` characters (``clip.clip_within``: head and tail kept)."""
    return clip_within(text, limit)


async def run_agent(
    engine: LLMEngine,
    messages: list[Message],
    tools: list[Tool],
    *,
    ctx: ToolContext,
    params: SamplingParams = SamplingParams(),
    budget: Budget = Budget(),
    is_final: Callable[[Message], bool] | None = None,
    user_turn: UserTurn | None = None,
    controller: Controller | None = None,
    trace: TokenTrace | None = None,
    token_mode: bool | None = None,
) -> AgentResult:
    """Run one rollout. ``params.assistant_prefix`` starts the first assistant turn; a
    ``controller`` (``synthesizers.controller``) may set sampling fields turn by turn (they win
    over ``params``) and go on with or end the model's turn when it stops without a call.

    With an engine that supports it (``engines.base.supports_tokens``; ``token_mode``
    False forces text mode) the rollout is token-in/token-out and ``AgentResult.trace``
    holds its exact ids; ``trace`` then holds the ids of ``messages`` (a branch goes on
    from its parent's own tokens)."""
    started = time.time()
    t_start = time.perf_counter()
    convo = list(messages)
    by_name = {tool.name: tool for tool in tools}
    schemas = [tool.schema for tool in tools] or None
    tokens, timings = TokenCounts(), Timings(started_at=started)
    stop_reason, error, turn = "max_turns", None, 0
    last_context = 0  # conversation tokens after the latest turn, as the engine counted them
    prefix = params.assistant_prefix  # the first turn's opener; on a continuation, the turn so far (text mode)
    continuing = False  # this turn goes on with the model's previous one (a controller's ``Continue``)
    use_tokens = supports_tokens(engine) if token_mode is None else (token_mode and supports_tokens(engine))
    conv = TokenConversation(engine.tokenizer, convo, schemas, trace) if use_tokens else None

    while turn < budget.max_turns:
        if conv is not None:
            room = budget.max_total_tokens - len(conv.ids)
        else:
            room = budget.max_total_tokens - last_context - _tokens_since_last_turn(convo)
        if room <= 0:
            stop_reason = "max_tokens"
            break
        turn_params = replace(params, assistant_prefix=prefix)
        if controller is not None:
            fields = controller.next_turn(list(convo), TurnInfo(turn, budget.max_turns - turn, room, continuing))
            if continuing:  # the turn goes on from the continuation: no new opener
                fields = {k: v for k, v in fields.items() if k != "assistant_prefix"}
            turn_params = replace(turn_params, **fields)
        turn_params = replace(turn_params, seed=turn_seed(params.seed, turn), max_tokens=min(turn_params.max_tokens, room))
        t0 = time.perf_counter()
        if conv is not None:
            completion, text = await _token_turn(engine, conv, turn_params, continuing, budget.max_total_tokens)
        elif turn_params.forced_text is not None:
            text = turn_params.assistant_prefix + turn_params.forced_text
            completion = Completion(text=text, finish_reason="stop")
        else:
            completion = await engine.chat(convo, tools=schemas, params=turn_params)
            text = completion.text
        prefix, continuing = "", False
        timings.generate_s += time.perf_counter() - t0
        tokens.prompt += completion.prompt_tokens
        tokens.completion += completion.completion_tokens
        timings.endpoint_retries += completion.endpoint_retries
        last_context = completion.prompt_tokens + completion.completion_tokens
        if completion.error is not None:
            stop_reason = "context_overflow" if is_context_overflow(completion.error) else "engine_error"
            error = completion.error
            if conv is not None:
                conv.abandon_turn()
            break

        if completion.tool_calls:
            content, calls, parse_errors = text, list(completion.tool_calls), []
        else:
            content, calls, parse_errors = parse_tool_calls(text, turn=turn)
        assistant = Message(role="assistant", content=content, tool_calls=calls)
        convo.append(assistant)
        turn += 1

        if completion.finish_reason == "length" and not calls:
            # Cut off mid-thought: nothing to act on, and not a final answer even if it reads as
            # one (a box written before the cut); verdicts fail such a rollout (judge_finish).
            stop_reason = "max_tokens"
            break
        if is_final is not None and is_final(assistant):
            stop_reason = "final_answer"
            break
        if not calls and not parse_errors:
            step = controller.after_turn(list(convo)) if controller is not None else None
            if isinstance(step, Continue):  # the framework writes on in the model's own turn (inserted)
                convo.pop()
                if conv is not None:
                    conv.continue_turn(step.text)
                else:
                    prefix = assistant.content + step.text
                continuing = True
                continue
            if isinstance(step, End):
                stop_reason = "controller_ended"
                break
            if user_turn is None:
                stop_reason = "no_tool_call"
                break
            t0 = time.perf_counter()
            reply = await user_turn(list(convo))
            timings.tools_s += time.perf_counter() - t0
            if reply is None:
                stop_reason = "user_ended"
                break
            if reply.role != "user":
                raise ValueError(f"a simulated user replied as {reply.role!r}: it only ever speaks as the user")
            _close(conv, assistant)
            convo.append(reply)
            if conv is not None:
                conv.add_messages([reply])
            continue

        _close(conv, assistant)
        t0 = time.perf_counter()
        observations = []
        try:
            for call in calls:
                text, result = await _run_tool(call, by_name, ctx, budget.tool_timeout_s)
                observations.append(_observation(truncate(text, budget.max_tool_output_chars), call, result))
        except _InfrastructureFailure as failure:  # the sandbox failed, not the model: stop, untouched
            timings.tools_s += time.perf_counter() - t0
            stop_reason, error = "infrastructure_error", str(failure)
            break
        for problem in parse_errors:
            # No tool_call_id: the malformed call never became a ToolCall.
            text = f"Error: malformed tool call: {problem}. Write each call as <tool_call>{{\"name\": \"TOOL\", \"arguments\": {{...}}}}</tool_call>."
            observations.append(Message(role="tool", content=truncate(text, budget.max_tool_output_chars),
                                        result=_error("malformed_call")))
        convo.extend(observations)
        if conv is not None:
            conv.add_messages(observations)
        timings.tools_s += time.perf_counter() - t0

    if continuing:  # the budget ran out right after a continuation was given: keep the turn as written
        convo.append(Message(role="assistant", content=conv.turn_text() if conv is not None else prefix))
    if conv is not None and conv.is_open:
        _close(conv, convo[-1])
    timings.total_s = time.perf_counter() - t_start
    return AgentResult(messages=convo, stop_reason=stop_reason, tokens=tokens, timings=timings, error=error, turns=turn,
                       trace=conv.trace if conv is not None else None)


async def _token_turn(engine: Any, conv: TokenConversation, params: SamplingParams, continuing: bool,
                      max_total_tokens: int) -> tuple[Completion, str]:
    """One assistant turn token-in/token-out: open it (or go on with it), sample, and return the
    completion with the whole turn's text (what was inserted and what was sampled)."""
    if not continuing:
        conv.open_turn(params.assistant_prefix)
    elif params.assistant_prefix:
        conv.continue_turn(params.assistant_prefix)
    room = max_total_tokens - len(conv.ids)
    if room <= 0:
        conv.abandon_turn()
        return Completion(finish_reason="error", error=f"{CONTEXT_OVERFLOW}: no room left in max_total_tokens"), ""
    if params.forced_text is not None:
        # The turn has one possible text: the framework writes it, nothing is sampled.
        conv.insert(params.forced_text)
        return Completion(text=conv.turn_text(), finish_reason="stop"), conv.turn_text()
    completion = await engine.generate(list(conv.ids), replace(params, assistant_prefix="", max_tokens=min(params.max_tokens, room)))
    if completion.error is not None:
        return completion, ""
    ids = completion.output_ids or []
    conv.sampled(ids, completion.output_logprobs, guided=bool(params.structured_outputs))
    return completion, conv.turn_text()


def _close(conv: TokenConversation | None, message: Message) -> None:
    if conv is not None and conv.is_open:
        conv.close_turn(message)


def _tokens_since_last_turn(convo: list[Message]) -> int:
    """Estimate (4 chars a token, plus turn markup) of the tool output added since the
    engine last counted; before the first turn the engine has counted nothing, so 0."""
    if not any(m.role == "assistant" for m in convo):
        return 0
    unseen = 0
    for message in reversed(convo):
        if message.role == "assistant":
            break
        unseen += len(message.content) // 4 + 8
    return unseen


async def _run_tool(call: ToolCall, by_name: dict[str, Tool], ctx: ToolContext,
                    timeout_s: float) -> tuple[str, ToolResult]:
    """The observation text and the call's outcome as data; an error's ``reason`` says whose it was."""
    name = call.function.name
    tool = by_name.get(name)
    if tool is None:
        available = ", ".join(sorted(by_name)) or "none"
        return f"Error: unknown tool {name!r}. Available tools: {available}.", _error("unknown_tool")
    try:
        arguments = call.parsed_arguments()
    except ValueError as exc:
        return f"Error: arguments of {name!r} are not a JSON object ({exc}).", _error("bad_arguments")
    missing = _missing_required(tool.schema, arguments)
    if missing:
        return (f"Error: {name!r} is missing required argument(s): {', '.join(missing)}.",
                _error("missing_arguments", missing=missing))
    loop = asyncio.get_running_loop()
    try:
        output = await asyncio.wait_for(loop.run_in_executor(_TOOL_POOL, tool.run, arguments, ctx), timeout_s)
    except asyncio.TimeoutError:
        return f"Error: tool {name!r} timed out after {timeout_s:g} s.", ToolResult(status="timeout")
    except ToolError as exc:
        return f"Error: {exc}", ToolResult(status="error", fields={"reason": "refused", **exc.fields})
    except Exception as exc:  # any tool bug becomes an observation, never a crash
        if is_infrastructure_error(exc):
            raise _InfrastructureFailure(f"tool {name!r}: {type(exc).__name__}: {exc}") from exc
        return f"Error: tool {name!r} failed: {type(exc).__name__}: {exc}", _error("tool_failed")
    if isinstance(output, ToolOutput):
        return str(output), ToolResult(fields=output.fields)
    return (output if isinstance(output, str) else str(output)), ToolResult()


def _error(reason: str, **fields: Any) -> ToolResult:
    return ToolResult(status="error", fields={"reason": reason, **fields})


class _InfrastructureFailure(Exception):
    """A tool's sandbox failed (``sandboxes.base.is_infrastructure_error``): the rollout ends with
    ``stop_reason="infrastructure_error"`` rather than showing the model an error it did not cause."""


def _missing_required(schema: dict[str, Any], arguments: dict[str, Any]) -> list[str]:
    params = schema.get("function", schema).get("parameters") or {}
    return [key for key in params.get("required", []) if key not in arguments]


def _observation(text: str, call: ToolCall, result: ToolResult) -> Message:
    return Message(role="tool", content=text, tool_call_id=call.id, name=call.function.name, result=result)
