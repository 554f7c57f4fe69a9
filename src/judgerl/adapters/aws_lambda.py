"""The judgerl reward as an Amazon Nova reinforcement fine-tuning (RFT) reward Lambda.

Why: Nova RFT (Bedrock and SageMaker) generates answers itself and calls a reward Lambda with a
batch of samples; the Lambda must answer with one score per sample id. This handler scores the
batch concurrently through one pipeline that lives as long as the Lambda container (built at
the first invocation, reused while the container is warm).

Event (a JSON list; a dict holding the list under `samples`, `batch`, `inputs`, `records` or
`body` is accepted too):

    [{"id": "123",
      "messages": [{"role": "user", "content": "..."},
                   {"role": "assistant", "content": "..."}],      # or "nova_assistant"
      "reference_answer": "..." | {...},                          # or under "metadata"
      "metadata": {"reference_answer": ..., ...}}]

Content may be a string or a list of parts (`[{"text": "..."}]`). The last assistant turn is
the answer; the turns before it are the prompt. Response, one per input id, in input order:

    [{"id": "123", "aggregate_reward_score": 0.83,
      "metrics_list": [{"name": "quality", "value": 0.9, "type": "Reward"},
                       {"name": "length", "value": 1.0, "type": "Metric"}, ...]}]

Metric types: judges are `Reward` components, checks are `Metric`s; `unscored` and `gated`
(0/1) are always present. Never-failing rules:
- a bad sample (not a dict, no `messages`, no assistant turn, no `reference_answer` when a
  judge or check of the reward needs one) scores 0.0 with the metric
  `invalid_sample` = 1 and is not sent to the pipeline; the rest of the batch is scored;
- an unscored sample gets the config's `failure_policy` value (0.0 under `unscored`, since Nova
  needs a number) and `unscored` = 1;
- a sample that uses tools (assistant `tool_calls` and `tool` messages in the OpenAI format, or
  Converse `toolUse` / `toolResult` content parts) is scored as a trajectory when the reward
  config has a component that reads trajectories (a tool check, a rubric judge with scope
  `trajectory` or `turns`; `RewardPipeline.reads_trajectories`): the turns before the first
  assistant turn are the prompt, the rest is `Rollout.trajectory` (judgerl.trajectory; a bad
  one, such as a tool result answering no call, is an invalid sample naming the message), the
  sample's `tools` (or `metadata.tools`) its tool schemas. This is how a turn that only calls
  tools gets a real score;
- without such a component, an answer with no text, only tool calls, is reported unscored with
  reason `no_text_content` and is not sent to the judge (scoring its empty text would be a
  silent 0);
- samples still being judged when the Lambda is about to time out (its remaining time minus
  `JUDGERL_LAMBDA_MARGIN_S`, default 5 s) are reported unscored with reason `lambda_deadline`.
Only a failure budget crossing (the config's `failure_budget`) fails the invocation, on purpose:
training on a batch that the judge mostly could not score is worse than a retried call. The
budget counts the judge's failures among the samples it judged: `lambda_deadline` (the
invocation ran out of time, a shortfall of this runtime, logged with its count) and
`no_text_content` samples are reported unscored but do not count.

Response shape: the list above (Nova models; the default), or with `JUDGERL_LAMBDA_RESPONSE=http`
the HTTP-style envelope that SageMaker's RLVR training expects from the reward Lambda of an
open-weight model (Llama, Qwen, ...; the SageMaker Python SDK v3 verifier's `is_nova=False`):
`{"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "<the list as JSON>"}`.

Config: `$JUDGERL_REWARD_CONFIG`, else `reward.yaml` beside the handler in the deployment
package (`$LAMBDA_TASK_ROOT/reward.yaml`). Packaging: examples/aws_lambda/README.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from judgerl.adapters import (
    component_values,
    content_text,
    load_pipeline,
    numeric_value,
    prompt_sample_id,
    reference_text,
    reference_users,
)
from judgerl.reward.pipeline import RewardPipeline
from judgerl.rubric_items import split_reference
from judgerl.trajectory import TrajectoryError, final_answer, link_tool_results, parse_tools, parse_trajectory
from judgerl.types import Reward, Rollout, Sample, rollout_id

logger = logging.getLogger(__name__)

ASSISTANT_ROLES = frozenset({"assistant", "nova_assistant"})
LIST_KEYS = ("samples", "batch", "inputs", "records", "body")
MARGIN_ENV = "JUDGERL_LAMBDA_MARGIN_S"
RESPONSE_ENV = "JUDGERL_LAMBDA_RESPONSE"
RESPONSE_SHAPES = ("list", "http")
DEFAULT_MARGIN_S = 5.0
DEADLINE_REASON = "lambda_deadline"
NO_TEXT_REASON = "no_text_content"
BUDGET_EXEMPT_REASONS = frozenset({DEADLINE_REASON, NO_TEXT_REASON})
TOOL_PART_KEYS = ("toolUse", "tool_use", "toolCall", "tool_call", "function_call")


class InvalidSample(ValueError):
    """A sample that cannot be scored (its reason goes to the log, its score is 0)."""


def event_samples(event: Any) -> list[Any]:
    """The list of samples in an event: the event itself, or a list under a known key."""
    if isinstance(event, list):
        return event
    if isinstance(event, dict):
        for key in LIST_KEYS:
            if isinstance(event.get(key), list):
                return event[key]
        if "messages" in event:
            return [event]
    raise InvalidSample(f"the event must be a list of samples (or a dict with one of {list(LIST_KEYS)}), "
                        f"not {type(event).__name__}")


def uses_tools(messages: list[Any]) -> bool:
    """Whether a message list has tool calls or tool results (OpenAI or Converse shapes)."""
    for message in messages:
        if not isinstance(message, dict):
            continue
        if message.get("tool_calls") or message.get("role") == "tool":
            return True
        if isinstance(message.get("content"), list) and _converse_tool_parts(message["content"]):
            return True
    return False


def _converse_tool_parts(parts: list[Any]) -> bool:
    return any(isinstance(part, dict) and ("toolUse" in part or "toolResult" in part) for part in parts)


def _converse_result_text(result: dict[str, Any]) -> str:
    texts = []
    for part in result.get("content") or ():
        if isinstance(part, dict) and "json" in part:
            texts.append(json.dumps(part["json"], ensure_ascii=False, sort_keys=True))
        else:
            texts.append(content_text(part))
    return "".join(texts)


def openai_messages(messages: list[Any]) -> list[Any]:
    """Converse tool parts turned into the OpenAI shape (`toolUse` -> `tool_calls`, each
    `toolResult` -> one `tool` message); messages without them are kept as they are.

    >>> openai_messages([{"role": "assistant", "content": [{"text": "Checking."}, {"toolUse": {
    ...     "toolUseId": "t1", "name": "lookup", "input": {"id": 7}}}]},
    ...     {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "ok"}]}}]}])
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'role': 'assistant', 'content': 'Checking.', 'tool_calls': [{'id': 't1', 'type': 'function',
      'function': {'name': 'lookup', 'arguments': {'id': 7}}}]},
     {'role': 'tool', 'tool_call_id': 't1', 'content': 'ok'}]
    """
    converted: list[Any] = []
    for message in messages:
        parts = message.get("content") if isinstance(message, dict) else None
        if not isinstance(parts, list) or not _converse_tool_parts(parts):
            converted.append(message)
            continue
        uses = [part["toolUse"] for part in parts
                if isinstance(part, dict) and isinstance(part.get("toolUse"), dict)]
        results = [part["toolResult"] for part in parts
                   if isinstance(part, dict) and isinstance(part.get("toolResult"), dict)]
        text = content_text([part for part in parts if isinstance(part, dict) and "text" in part])
        if uses:
            converted.append({"role": message.get("role"), "content": text, "tool_calls": [
                {"id": use.get("toolUseId"), "type": "function",
                 "function": {"name": use.get("name"), "arguments": use.get("input", {})}} for use in uses]})
        converted += [{"role": "tool", "tool_call_id": result.get("toolUseId"),
                       "content": _converse_result_text(result)} for result in results]
        if text and not uses:
            converted.append({"role": message.get("role"), "content": text})
    return converted


def _trajectory_sample(raw: dict[str, Any], messages: list[Any],
                       metadata: dict[str, Any]) -> tuple[Sample, Rollout]:
    messages = openai_messages(messages)
    first = next((index for index, message in enumerate(messages)
                  if isinstance(message, dict) and message.get("role") in ASSISTANT_ROLES), None)
    if first is None:
        raise InvalidSample("field 'messages' has no assistant (or nova_assistant) turn")
    prompt = [{"role": str(message.get("role", "user")), "content": content_text(message.get("content"))}
              for message in messages[:first] if isinstance(message, dict)]
    try:
        trajectory = parse_trajectory(link_tool_results(messages[first:]))  # ids filled where left out
    except TrajectoryError as exc:
        where = "" if exc.index is None else f".{exc.index + first}"
        raise InvalidSample(f"field 'messages{where}': {exc.detail}") from exc
    raw_tools = raw.get("tools", metadata.get("tools"))
    try:
        tools = parse_tools(raw_tools) if raw_tools is not None else None
    except TrajectoryError as exc:
        raise InvalidSample(f"field 'tools': {exc}") from exc
    reference_raw, rubric = split_reference(raw.get("reference_answer", metadata.get("reference_answer")))
    reference = reference_text(reference_raw)
    sample_id = prompt_sample_id(prompt, reference)
    extra = {key: value for key, value in metadata.items() if key not in ("reference_answer", "tools")}
    if rubric is not None:
        extra["rubric"] = rubric
    sample = Sample(id=sample_id, messages=prompt, reference=reference, metadata=extra)
    return sample, Rollout(sample_id=sample_id, completion=final_answer(trajectory),
                           id=str(raw.get("id", "")) or sample_id, trajectory=trajectory, tools=tools)


def parse_sample(raw: Any, *, trajectories: bool = False) -> tuple[Sample, Rollout]:
    """One Nova sample as (Sample, Rollout); raises InvalidSample naming the bad field.

    With `trajectories`, a sample that uses tools becomes a rollout with a trajectory (see the
    module docstring); otherwise, and for every other sample, the last assistant turn is the
    answer as always."""
    if not isinstance(raw, dict):
        raise InvalidSample(f"a sample must be an object, not {type(raw).__name__}")
    messages = raw.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidSample("field 'messages' is missing or empty")
    if trajectories and uses_tools(messages):
        metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
        return _trajectory_sample(raw, messages, metadata)
    answer_index = next((index for index in range(len(messages) - 1, -1, -1)
                         if isinstance(messages[index], dict)
                         and messages[index].get("role") in ASSISTANT_ROLES), None)
    if answer_index is None:
        raise InvalidSample("field 'messages' has no assistant (or nova_assistant) turn")
    prompt = [{"role": str(message.get("role", "user")), "content": content_text(message.get("content"))}
              for message in messages[:answer_index] if isinstance(message, dict)]
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    reference_raw, rubric = split_reference(raw.get("reference_answer", metadata.get("reference_answer")))
    reference = reference_text(reference_raw)
    sample_id = prompt_sample_id(prompt, reference)
    extra = {key: value for key, value in metadata.items() if key != "reference_answer"}
    if rubric is not None:
        extra["rubric"] = rubric
    sample = Sample(id=sample_id, messages=prompt, reference=reference, metadata=extra)
    completion = content_text(messages[answer_index].get("content"))
    return sample, Rollout(sample_id=sample_id, completion=completion, id=str(raw.get("id", "")) or sample_id)


def tool_calls_only(raw: Any) -> bool:
    """Whether the sample's answer (its last assistant turn) is tool calls with no text.

    >>> tool_calls_only({"messages": [{"role": "user", "content": "weather?"},
    ...     {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function"}]}]})
    True
    >>> tool_calls_only({"messages": [{"role": "assistant", "content": [{"toolUse": {"name": "f"}}]}]})
    True
    >>> tool_calls_only({"messages": [{"role": "assistant", "content": "sunny", "tool_calls": []}]})
    False
    """
    messages = raw.get("messages") if isinstance(raw, dict) else None
    if not isinstance(messages, list):
        return False
    answer = next((message for message in reversed(messages)
                   if isinstance(message, dict) and message.get("role") in ASSISTANT_ROLES), None)
    if answer is None or content_text(answer.get("content")).strip():
        return False
    content = answer.get("content")
    parts = content if isinstance(content, list) else []
    return bool(answer.get("tool_calls")) or any(
        isinstance(part, dict) and (any(key in part for key in TOOL_PART_KEYS)
                                    or part.get("type") in ("tool_use", "tool_call", "function_call"))
        for part in parts)


def metrics_list(reward: Reward, pipeline: RewardPipeline) -> list[dict[str, Any]]:
    """Every component and flag as Nova metrics: judges are `Reward`, the rest `Metric`."""
    judge_names = {judge.name for judge in pipeline.judges}
    return [{"name": name, "value": value, "type": "Reward" if name in judge_names else "Metric"}
            for name, value in component_values(reward).items()]


def _deadline_s(context: Any) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    margin = float(os.environ.get(MARGIN_ENV, DEFAULT_MARGIN_S))
    return max(0.5, remaining() / 1000.0 - margin)


def _unscored(sample: Sample, rollout: Rollout, pipeline: RewardPipeline, reason: str) -> Reward:
    return pipeline.unscored_reward(sample, rollout, None, reason)


def score_items(pipeline: RewardPipeline, items: Sequence[tuple[Sample, Rollout]],
                timeout_s: float | None) -> list[Reward]:
    """Score concurrently; items not done by `timeout_s` come back unscored (`lambda_deadline`)."""
    done: dict[int, Reward] = {}
    lock = threading.Lock()
    index_of = {(rollout.sample_id, rollout.id): index for index, (_sample, rollout) in enumerate(items)}

    def keep(reward: Reward) -> None:
        # Called on the pipeline's loop thread as each reward is ready.
        with lock:
            done[index_of[(reward.sample_id, reward.rollout_id)]] = reward

    async def run() -> None:
        try:
            await asyncio.wait_for(pipeline.score_batch(items, on_reward=keep, enforce_budget=False),
                                   timeout=timeout_s)
        except asyncio.TimeoutError:
            logger.warning("lambda deadline: %d of %d samples still being judged are reported unscored",
                           len(items) - len(done), len(items))

    asyncio.run(run())
    with lock:
        return [done.get(index) or _unscored(sample, rollout, pipeline, DEADLINE_REASON)
                for index, (sample, rollout) in enumerate(items)]


def _default_config_path() -> str | None:
    root = os.environ.get("LAMBDA_TASK_ROOT")
    candidate = Path(root) / "reward.yaml" if root else None
    return str(candidate) if candidate is not None and candidate.is_file() else None


def handle(event: Any, context: Any = None, *,
           pipeline: RewardPipeline | None = None) -> list[dict[str, Any]]:
    """The handler's work, with the pipeline passed in (tests, custom handlers)."""
    pipeline = pipeline or load_pipeline(default_path=_default_config_path())
    raw_samples = event_samples(event)
    results: list[dict[str, Any] | None] = [None] * len(raw_samples)
    valid: list[tuple[int, tuple[Sample, Rollout]]] = []
    seen_rollouts: dict[str, int] = {}
    trajectories = pipeline.reads_trajectories()
    needs_reference = reference_users(pipeline)
    for index, raw in enumerate(raw_samples):
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        try:
            sample, rollout = parse_sample(raw, trajectories=trajectories)
            if needs_reference and not (sample.reference or "").strip():
                raise InvalidSample("field 'reference_answer' (or 'metadata.reference_answer') is missing or "
                                    f"empty, but the reward's {', '.join(needs_reference)} needs a reference "
                                    "answer")
        except InvalidSample as exc:
            logger.warning("sample %d (id %r) is invalid and scores 0: %s", index, raw_id, exc)
            results[index] = {"id": raw_id, "aggregate_reward_score": 0.0,
                              "metrics_list": [{"name": "invalid_sample", "value": 1.0, "type": "Metric"}]}
            continue
        # Two samples with the same id would be indistinguishable in the pipeline: suffix the copy.
        occurrence = seen_rollouts.get(rollout.id, 0)
        seen_rollouts[rollout.id] = occurrence + 1
        if occurrence:
            rollout.id = rollout_id(rollout.id, occurrence)
        if rollout.trajectory is None and tool_calls_only(raw):
            reward = _unscored(sample, rollout, pipeline, NO_TEXT_REASON)
            logger.warning("sample %d (id %r) answers with tool calls only: reported unscored (%s)",
                           index, raw_id, NO_TEXT_REASON)
            results[index] = result_entry(raw_id, reward, pipeline)
            continue
        valid.append((index, (sample, rollout)))
    if valid:
        rewards = score_items(pipeline, [item for _index, item in valid], _deadline_s(context))
        late = sum(reward.reason == DEADLINE_REASON for reward in rewards)
        if late:
            logger.warning("%d of %d samples unscored at the Lambda deadline (%s): not counted against "
                           "the failure budget", late, len(rewards), DEADLINE_REASON)
        pipeline.check_failure_budget([reward for reward in rewards
                                       if reward.reason not in BUDGET_EXEMPT_REASONS])
        for (index, _item), reward in zip(valid, rewards, strict=True):
            if reward.status == "unscored":
                logger.info("sample id %r unscored: %s", raw_samples[index].get("id"), reward.reason)
            results[index] = result_entry(raw_samples[index].get("id"), reward, pipeline)
    return [result for result in results if result is not None]


def result_entry(sample_id: Any, reward: Reward, pipeline: RewardPipeline) -> dict[str, Any]:
    """Nova's answer for one scored (or unscored) sample."""
    return {"id": sample_id, "aggregate_reward_score": numeric_value(reward),
            "metrics_list": [*metrics_list(reward, pipeline),
                             {"name": "invalid_sample", "value": 0.0, "type": "Metric"}]}


def response_shape() -> str:
    """`$JUDGERL_LAMBDA_RESPONSE`: `list` (Nova, the default) or `http` (open-weight models)."""
    shape = os.environ.get(RESPONSE_ENV, "list").strip().lower() or "list"
    if shape not in RESPONSE_SHAPES:
        raise ValueError(f"environment variable {RESPONSE_ENV}={shape!r}: expected one of "
                         f"{list(RESPONSE_SHAPES)} (`list` for Nova models, `http` for open-weight "
                         "models trained by SageMaker RLVR)")
    return shape


def http_envelope(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The results in the HTTP-style envelope of an open-weight model's reward Lambda.

    >>> http_envelope([{"id": "1", "aggregate_reward_score": 1.0}])["body"]
    '[{"id": "1", "aggregate_reward_score": 1.0}]'
    """
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(results, ensure_ascii=False)}


def lambda_handler(event: Any, context: Any) -> list[dict[str, Any]] | dict[str, Any]:
    """AWS Lambda entry point (handler setting: `judgerl.adapters.aws_lambda.lambda_handler`).

    The shape is read before any scoring, so a misspelt `$JUDGERL_LAMBDA_RESPONSE` fails the
    invocation at once instead of after the judge has been paid for."""
    shape = response_shape()
    results = handle(event, context)
    return http_envelope(results) if shape == "http" else results


__all__ = ["ASSISTANT_ROLES", "BUDGET_EXEMPT_REASONS", "RESPONSE_ENV", "InvalidSample", "event_samples",
           "handle", "http_envelope", "lambda_handler", "metrics_list", "parse_sample", "response_shape",
           "result_entry", "score_items", "tool_calls_only"]
