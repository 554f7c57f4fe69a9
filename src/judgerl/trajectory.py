"""Trajectories: what a tool-using agent wrote, as OpenAI-format chat messages, checked once.

Why this module exists: an agent's rollout is not one answer but a run of turns: assistant
messages with text and/or `tool_calls`, `tool` messages carrying each call's result. Every layer
(data files, checks, judges, adapters) needs the same reading of that list and the same refusal
of a malformed one, so it is parsed here, in the core, into one normal form:

- `{"role": "system" | "developer" | "user", "content": str}`;
- `{"role": "assistant", "content": str, "tool_calls": [{"id", "type": "function",
  "function": {"name", "arguments": <JSON text of an object>}}]}` (`tool_calls` only when there
  are some; `content` "" when the turn only calls tools);
- `{"role": "tool", "tool_call_id": str, "content": str}` (+ `name` when given).

`arguments` may arrive as JSON text (OpenAI) or as an object (TRL, Hugging Face chat
templates); either way it must be a JSON object, and it is kept as canonical JSON text. A
trajectory is refused, naming the message index, when a role is unknown, a tool message
answers no earlier call (or one already answered), a call has no id or no name, or its
arguments are not a JSON object.

A rollout is single-turn (exactly as before trajectories existed) when it is one assistant
message with text and no tool calls; `is_single_turn` says so, and such rollouts keep no
trajectory at all, so everything derived from them (prompts, cache keys) is unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

TRAJECTORY_ROLES = ("system", "developer", "user", "assistant", "tool")
#: assistant role names of other chat formats, read as "assistant"
ASSISTANT_ALIASES = ("assistant", "nova_assistant")


class TrajectoryError(ValueError):
    """A malformed trajectory; `index` is the message it is about (None: the list itself)."""

    def __init__(self, detail: str, index: int | None = None, key: str | None = None) -> None:
        self.detail = detail
        self.index = index
        self.key = key
        where = "" if index is None else f"message {index}: "
        super().__init__(where + detail)

    def field(self, prefix: str) -> str:
        """The dotted field of a row this error points at (`completion.3.tool_call_id`)."""
        parts = [prefix] + ([] if self.index is None else [str(self.index)])
        parts += [self.key] if self.key else []
        return ".".join(part for part in parts if part)


@dataclass(frozen=True)
class ToolCall:
    """One call the assistant made: its id, tool name, arguments (parsed) and message index."""

    id: str
    name: str
    arguments: dict[str, Any]
    message_index: int


def _text(content: Any, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                raise TrajectoryError("content parts must be strings or {type: text, text: ...}",
                                      index, "content")
        return "".join(texts)
    raise TrajectoryError("'content' must be a string, a list of text parts or null, "
                          f"got {type(content).__name__}", index, "content")


def _arguments(raw: Any, index: int) -> str:
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise TrajectoryError(f"tool call arguments are not JSON: {exc.msg} (column {exc.colno})",
                                  index, "tool_calls") from exc
    elif raw is None:
        parsed = {}
    else:
        parsed = raw
    if not isinstance(parsed, dict):
        raise TrajectoryError(f"tool call arguments must be a JSON object, got {type(parsed).__name__}",
                              index, "tool_calls")
    return json.dumps(parsed, ensure_ascii=False, sort_keys=True)


def _tool_calls(raw: Any, index: int, seen_ids: set[str]) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise TrajectoryError("'tool_calls' must be a list", index, "tool_calls")
    calls = []
    for position, call in enumerate(raw):
        if not isinstance(call, dict):
            raise TrajectoryError(f"tool call {position} is not an object", index, "tool_calls")
        function = call.get("function") if isinstance(call.get("function"), dict) else call
        name, call_id = function.get("name"), call.get("id")
        if not isinstance(name, str) or not name.strip():
            raise TrajectoryError(f"tool call {position} has no function name", index, "tool_calls")
        if not isinstance(call_id, str) or not call_id.strip():
            raise TrajectoryError(f"tool call {position} ({name}) has no 'id'", index, "tool_calls")
        if call_id in seen_ids:
            raise TrajectoryError(f"tool call id {call_id!r} is used twice", index, "tool_calls")
        seen_ids.add(call_id)
        calls.append({"id": call_id, "type": "function",
                      "function": {"name": name, "arguments": _arguments(function.get("arguments"), index)}})
    return calls


def parse_trajectory(value: Any) -> list[dict[str, Any]]:
    """The normal form of a trajectory, or TrajectoryError naming the message at fault.

    >>> parse_trajectory([{"role": "assistant", "content": None, "tool_calls": [
    ...     {"id": "c1", "function": {"name": "lookup", "arguments": {"id": 7}}}]},
    ...     {"role": "tool", "tool_call_id": "c1", "content": "shipped"},
    ...     {"role": "assistant", "content": "It shipped."}])[0]["tool_calls"][0]["function"]
    {'name': 'lookup', 'arguments': '{"id": 7}'}
    >>> parse_trajectory([{"role": "tool", "tool_call_id": "c9", "content": "x"}])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    judgerl.trajectory.TrajectoryError: message 0: tool message answers no call ('c9' was not called...
    """
    if not isinstance(value, list) or not value:
        raise TrajectoryError("expected a non-empty list of chat messages")
    messages: list[dict[str, Any]] = []
    called: set[str] = set()
    answered: set[str] = set()
    for index, message in enumerate(value):
        if not isinstance(message, dict):
            raise TrajectoryError(f"expected an object, got {type(message).__name__}", index)
        role = message.get("role")
        if role in ASSISTANT_ALIASES:
            role = "assistant"
        if role not in TRAJECTORY_ROLES:
            raise TrajectoryError(f"unknown role {role!r}; known: {', '.join(TRAJECTORY_ROLES)}",
                                  index, "role")
        content = _text(message.get("content"), index)
        if role == "assistant":
            normal: dict[str, Any] = {"role": "assistant", "content": content}
            if message.get("tool_calls"):
                normal["tool_calls"] = _tool_calls(message["tool_calls"], index, called)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise TrajectoryError("a tool message needs the 'tool_call_id' of the call it answers",
                                      index, "tool_call_id")
            if call_id not in called:
                raise TrajectoryError(f"tool message answers no call ({call_id!r} was not called "
                                      "before it)", index, "tool_call_id")
            if call_id in answered:
                raise TrajectoryError(f"tool call {call_id!r} is answered twice", index, "tool_call_id")
            answered.add(call_id)
            normal = {"role": "tool", "tool_call_id": call_id, "content": content}
            if isinstance(message.get("name"), str):
                normal["name"] = message["name"]
        else:
            if message.get("tool_calls"):
                raise TrajectoryError(f"only assistant messages make tool calls, not {role}",
                                      index, "tool_calls")
            normal = {"role": role, "content": content}
        messages.append(normal)
    return messages


def link_tool_results(value: list[Any]) -> list[Any]:
    """A copy of a message list with ids filled in where a format leaves them out: TRL's tool
    loop writes calls without `id` and results as `{"role": "tool", "name", "content"}`. A call
    without an id gets `call_<n>`; a result without `tool_call_id` answers the earliest call
    still unanswered with the same name (else the earliest unanswered call).

    >>> link_tool_results([{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]},
    ...                    {"role": "tool", "name": "f", "content": "1"}])[1]["tool_call_id"]
    'call_0'
    """
    linked: list[Any] = []
    unanswered: list[tuple[str, str]] = []  # (id, name), oldest first
    count = 0
    for message in value:
        if not isinstance(message, dict):
            linked.append(message)
            continue
        message = dict(message)
        if isinstance(message.get("tool_calls"), list):
            calls = []
            for call in message["tool_calls"]:
                if isinstance(call, dict):
                    call = dict(call)
                    if not call.get("id"):
                        call["id"] = f"call_{count}"
                    function = call.get("function") if isinstance(call.get("function"), dict) else call
                    unanswered.append((str(call["id"]), str(function.get("name"))))
                count += 1
                calls.append(call)
            message["tool_calls"] = calls
        elif message.get("role") == "tool":
            if not message.get("tool_call_id") and unanswered:
                match = next((item for item in unanswered if item[1] == message.get("name")), unanswered[0])
                message["tool_call_id"] = match[0]
            unanswered = [item for item in unanswered if item[0] != message.get("tool_call_id")]
        linked.append(message)
    return linked


def uses_tools(value: list[Any]) -> bool:
    """Whether a message list has a tool call or a tool message, or several assistant turns."""
    messages = [message for message in value if isinstance(message, dict)]
    tools = any(message.get("tool_calls") or message.get("role") == "tool" for message in messages)
    return tools or sum(message.get("role") in ASSISTANT_ALIASES for message in messages) > 1


def is_single_turn(messages: list[dict[str, Any]]) -> bool:
    """True for one assistant message with no tool calls: a plain completion, not a trajectory."""
    return len(messages) == 1 and messages[0]["role"] == "assistant" and not messages[0].get("tool_calls")


def final_answer(messages: list[dict[str, Any]]) -> str:
    """The text of the last assistant message ("" when it only calls tools or there is none)."""
    for message in reversed(messages):
        if message["role"] == "assistant":
            return str(message.get("content") or "")
    return ""


def tool_calls(messages: list[dict[str, Any]]) -> Iterator[ToolCall]:
    """Every tool call, in order (arguments parsed: the normal form guarantees a JSON object)."""
    for index, message in enumerate(messages):
        for call in message.get("tool_calls") or ():
            function = call["function"]
            yield ToolCall(call["id"], function["name"], json.loads(function["arguments"]), index)


def tool_results(messages: list[dict[str, Any]]) -> dict[str, str]:
    """The result text of each answered call, by call id."""
    return {message["tool_call_id"]: message["content"] for message in messages if message["role"] == "tool"}


def parse_tools(value: Any) -> list[dict[str, Any]]:
    """Tool schemas in the OpenAI `tools` shape (`{"type": "function", "function": {"name",
    "parameters"}}`; a bare `{"name", "parameters"}` is accepted too), normalised to the former.

    >>> parse_tools([{"name": "lookup", "parameters": {"type": "object"}}])[0]["function"]["name"]
    'lookup'
    """
    if not isinstance(value, list):
        raise TrajectoryError("'tools' must be a list of tool schemas")
    tools = []
    for index, tool in enumerate(value):
        nested = isinstance(tool, dict) and isinstance(tool.get("function"), dict)
        function = tool["function"] if nested else tool
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise TrajectoryError(f"tool {index} needs a 'name' (OpenAI shape: {{type: function, function: "
                                  "{name, parameters}}})", index)
        parameters = function.get("parameters", {"type": "object"})
        if not isinstance(parameters, dict):
            raise TrajectoryError(f"tool {function['name']!r}: 'parameters' must be a JSON schema object",
                                  index)
        tools.append({"type": "function", "function": {**function, "parameters": parameters}})
    return tools


def tool_schemas(tools: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Each tool's parameter schema, by name."""
    return {tool["function"]["name"]: tool["function"].get("parameters", {}) for tool in tools or ()}
