"""A multi-turn, chat-templated text read back into a trajectory (OpenRLHF's agent rollouts).

Why: OpenRLHF's agent path keeps a rollout as one text, the chat template's markup included:
`MultiTurnAgentExecutor` appends each generated action and each environment feedback to the
observation text, and the only reward client OpenRLHF has (`_fetch_rewards_via_http`) posts
`query` (prompt + everything after it), `prompts` and `labels`: no messages, no tool calls. To
judge such a rollout as a trajectory the text has to be split back into turns, and the turns
into tool calls and tool results, for the templates agents are trained with:

- turns: ChatML (`<|im_start|>role\\n...<|im_end|>`: Qwen, SmolLM2, Hermes, ...) and Llama 3
  (`<|start_header_id|>role<|end_header_id|>\\n\\n...<|eot_id|>`); a turn left open (a model's
  text decoded without its end-of-turn token) ends where the next turn starts;
- tool calls in an assistant turn: Hermes / Qwen `<tool_call>{"name": ..., "arguments": {...}}
  </tool_call>` blocks (any number; the text around them is the turn's content), or, in Llama
  3, a turn that is only a JSON object `{"name": ..., "parameters": {...}}` (after an optional
  `<|python_tag|>`);
- tool results: a `tool` or `ipython` turn, or a `user` turn made only of Qwen's
  `<tool_response>...</tool_response>` blocks (one result per block). Templates carry no call
  ids, so results answer the calls in order (the first result the earliest unanswered call);
  a result with no call left to answer (the model's call was malformed, so it is not a call)
  is kept as a `user` message with its text: the environment said it, the model did not call;
- a `<tool_call>` block that is not a JSON object with a `name` and object `arguments` is not a
  call: it stays in the turn's text, where the judge sees it and no tool check counts it;
- the tools' schemas: Hermes / Qwen templates list them in the system prompt as JSON objects
  between `<tools>` and `</tools>`; found there, they become the rollout's `tools`.

The prompt's turns are matched by count, not by text, so a tokenizer that does not decode the
prompt back to the same text still splits correctly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from judgerl.adapters.special_tokens import DEFAULT_SPECIAL_TOKENS, chat_messages, strip_special_tokens
from judgerl.trajectory import TrajectoryError, parse_tools, parse_trajectory

_TEMPLATES = (
    re.compile(r"<\|im_start\|>(\w+)\n(.*?)(?:<\|im_end\|>|(?=<\|im_start\|>)|\Z)", re.DOTALL),
    re.compile(r"<\|start_header_id\|>(\w+)<\|end_header_id\|>\n\n(.*?)"
               r"(?:<\|eot_id\|>|<\|eom_id\|>|(?=<\|start_header_id\|>)|\Z)", re.DOTALL),
)
_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
_RESPONSE = re.compile(r"<tool_response>\s*(.*?)\s*</tool_response>", re.DOTALL)
_TOOLS = re.compile(r"<tools>\s*(.*?)\s*</tools>", re.DOTALL)
RESULT_ROLES = ("tool", "ipython")
PLAIN_ROLES = ("system", "developer", "user")


def template_turns(text: str) -> list[tuple[str, str]]:
    """The (role, raw content) turns of a ChatML or Llama 3 text; [] for other text.

    >>> template_turns("<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\nHello")
    [('user', 'Hi'), ('assistant', 'Hello')]
    """
    for pattern in _TEMPLATES:
        turns = pattern.findall(text)
        if turns:
            return [(role, content) for role, content in turns]
    return []


def _call(raw: Any) -> dict[str, Any] | None:
    """`{"name", "arguments" | "parameters"}` (text or parsed) as an OpenAI call without id."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return None
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"].strip():
        return None
    arguments = raw.get("arguments", raw.get("parameters", {}))
    if isinstance(arguments, str):  # some models write the arguments as JSON text
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    if not isinstance(arguments, dict):
        return None
    return {"type": "function", "function": {"name": raw["name"], "arguments": arguments}}


def _assistant(content: str, llama3: bool) -> dict[str, Any]:
    calls: list[dict[str, Any]] = []

    def take(match: re.Match[str]) -> str:
        call = _call(match.group(1))
        if call is None:
            return match.group(0)  # not a call: the model's text, as written
        calls.append(call)
        return ""

    text = _CALL.sub(take, content).strip()
    if llama3 and not calls:
        call = _call(text.removeprefix("<|python_tag|>").strip())
        if call is not None:
            calls, text = [call], ""
    return {"role": "assistant", "content": text, **({"tool_calls": calls} if calls else {})}


def _results(role: str, content: str) -> list[str] | None:
    """The tool results a turn carries, or None when it is not a tool-result turn."""
    blocks = _RESPONSE.findall(content)
    if role in RESULT_ROLES:
        return blocks or [content]
    if role == "user" and blocks and not _RESPONSE.sub("", content).strip():
        return blocks
    return None


def turns_to_messages(turns: Sequence[tuple[str, str]], *, llama3: bool = False,
                      tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS) -> list[dict[str, Any]]:
    """Template turns as OpenAI-format messages: calls given ids in order, results linked to them.

    >>> turns_to_messages([("assistant", '<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call>'),
    ...                    ("user", "<tool_response>2</tool_response>"), ("assistant", "It is 2.")])
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'role': 'assistant', 'content': '', 'tool_calls': [{'type': 'function',
      'function': {'name': 'f', 'arguments': {'x': 1}}, 'id': 'call_0'}]},
     {'role': 'tool', 'content': '2', 'tool_call_id': 'call_0'},
     {'role': 'assistant', 'content': 'It is 2.'}]
    """
    messages: list[dict[str, Any]] = []
    unanswered: list[str] = []
    count = 0
    for role, raw in turns:
        content = strip_special_tokens(raw, tokens).strip()
        role = role.lower()
        if role == "assistant":
            message = _assistant(content, llama3)
            for call in message.get("tool_calls", ()):
                call["id"] = f"call_{count}"
                unanswered.append(call["id"])
                count += 1
            messages.append(message)
            continue
        results = _results(role, content)
        if results is None:
            messages.append({"role": role if role in PLAIN_ROLES else "user", "content": content})
            continue
        for result in results:
            if unanswered:
                messages.append({"role": "tool", "content": result.strip(),
                                 "tool_call_id": unanswered.pop(0)})
            else:
                messages.append({"role": "user", "content": result.strip()})
    return messages


def prompt_tools(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The tool schemas a Hermes / Qwen prompt lists between `<tools>` and `</tools>`, or None.

    >>> prompt_tools([{"role": "system", "content": 'Tools: <tools>\\n{"type": "function", "function": '
    ...               '{"name": "f", "parameters": {"type": "object"}}}\\n</tools>'}])[0]["function"]["name"]
    'f'
    """
    decoder = json.JSONDecoder()
    found: list[Any] = []
    for message in messages:
        for block in _TOOLS.findall(str(message.get("content", ""))):
            position = 0
            while position < len(block):
                while position < len(block) and block[position] in " \t\r\n,":
                    position += 1
                if position >= len(block):
                    break
                try:
                    value, position = decoder.raw_decode(block, position)
                except json.JSONDecodeError:
                    return None
                found += value if isinstance(value, list) else [value]
    if not found:
        return None
    try:
        return parse_tools(found)
    except TrajectoryError:
        return None


def templated_trajectory(query: str, prompt: str | None,
                         tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
                         ) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None] | None:
    """(trajectory, tools) of a multi-turn `query` (prompt + rollout), or None when the rollout
    is one assistant turn without tool calls (a plain completion: read as before) or the text
    has no known template. Raises TrajectoryError only for what the normal form refuses after
    this lenient reading (in practice: nothing a model can write).
    """
    turns = template_turns(query)
    if not turns:
        return None
    prompt_turns = template_turns(prompt or "")
    if prompt_turns and prompt_turns[-1][0] == "assistant" and not prompt_turns[-1][1].strip():
        prompt_turns = prompt_turns[:-1]  # the generation prompt: the rollout's first turn
    if len(turns) <= len(prompt_turns):
        return None
    llama3 = "<|start_header_id|>" in query
    messages = turns_to_messages(turns[len(prompt_turns):], llama3=llama3, tokens=tokens)
    assistants = [message for message in messages if message["role"] == "assistant"]
    if len(assistants) <= 1 and not any(message.get("tool_calls") or message["role"] == "tool"
                                        for message in messages):
        return None
    tools = prompt_tools(chat_messages(prompt, tokens)) if prompt else None
    return parse_trajectory(messages), tools


__all__ = ["prompt_tools", "template_turns", "templated_trajectory", "turns_to_messages"]
