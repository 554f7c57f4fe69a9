r"""The judgerl reward as a verl custom reward function (verl ≥ 0.9, tested with verl 0.9.1).

Why: verl (volcengine/verl) loads a reward function named in its config and its reward loop
calls it once per response, `compute_score(data_source=..., solution_str=..., ground_truth=...,
extra_info=..., **reward_kwargs)`, from `reward.num_workers` processes (default 8). This module
translates that call to the judgerl pipeline; the pipeline (backends, runtime, cache) is built
once per worker process and reused.

Wiring (verl ≥ 0.9 reads only the `reward.*` keys: `verl/trainer/ppo/reward.py`,
`get_custom_reward_fn`; a top-level `custom_reward_function.*` is a legacy key that
`verl.trainer.main_ppo` ignores, and verl then trains on its default scorer without a word):

    python -m verl.trainer.main_ppo ... \
      reward.custom_reward_function.path=pkg://judgerl.adapters.verl \
      reward.custom_reward_function.name=compute_score_async \
      +reward.custom_reward_function.reward_kwargs.reward_config=/abs/path/reward.yaml

(`+` because verl's config has no `reward_kwargs` key; or set `JUDGERL_REWARD_CONFIG` in the
workers' environment.) `compute_score_async` is awaited on the reward worker's event loop, so
every response of a worker's share is judged concurrently (bounded by the config's
`max_concurrency`); `compute_score` is the same, synchronous (verl runs it in a thread pool).
A file path to this module works too (verl then loads it as a module of its own; it uses
absolute imports only, and the pipeline cache lives in `judgerl.adapters`).

What each worker sees is one response: group and pairwise judges see groups of one, and
limits (`max_concurrency`, `rpm`, `tpm`) apply per worker process, so divide them by
`reward.num_workers`. For whole groups and global limits, name `compute_score_remote` instead:
every worker then posts its responses to one `judgerl serve --group-size N` (one runtime for all
workers), with the prompt's id as the group key and `group_size` (verl's
`actor_rollout_ref.rollout.n`) as its size; the service judges each prompt's rollouts together:

    reward.custom_reward_function.name=compute_score_remote \
    +reward.custom_reward_function.reward_kwargs.reward_url=http://reward-host:5000 \
    +reward.custom_reward_function.reward_kwargs.group_size=8

(the bearer token comes from `JUDGERL_SERVER_TOKEN` in the workers' environment, if set).
Validation rollouts (`val_kwargs.n`, default 1 per prompt) wait for the service's group timeout
when `group_size` is larger: set `val_kwargs.n` to the same size.
The batch form of verl ≤ 0.6 (`reward_model.reward_manager=batch`,
`compute_score_batch`) no longer exists in verl (its registry holds naive, dapo, gdpo,
rate_limited, remote) and was removed here.

Returned dict: `{"score": float, <component>: float, "unscored": 0/1, "gated": 0/1}`, the same
keys for every response (verl stacks each key over the batch into `reward_extra_info`). verl
needs a float: an unscored response scores the config's `failure_policy` value (0.5 under
`neutral`, 0.0 under `zero` and under the default `unscored`), always with `unscored: 1.0` so it
can be told apart. The failure policy applies per response; the `failure_budget` applies over
the last `budget_window` responses of the worker process (reward_kwargs, default 256, and only
once 32 were seen): one unscored response never fails the run, a judge outage does
(`FailureBudgetExceeded` stops training rather than train on noise).

The prompt: verl passes only the response, ground truth and `extra_info`; when `extra_info` has
`prompt` (a string or chat messages, as verl's example preprocessors write it) or `question`,
the judge sees it, and `extra_info["index"]` names the row.

Tool-using agent loops: verl's reward manager merges the agent loop's `extra_fields` into
`extra_info` (`NaiveRewardManager.run_single`). `judgerl.adapters.verl_agent.JudgerlToolAgentLoop`
puts the conversation there (`messages`, prompt first, and `tools`); such a rollout is judged as
a trajectory (`Rollout.trajectory`, `Rollout.tools`; completion = the final answer), so tool
checks and trajectory / turns judges see every call and result. A malformed conversation is
unscored (never judged). Without `messages` the decoded `solution_str` is the answer, as always.
verl takes one number per response (on its last token); with a `turns`-scope judge in the
config the dict also has `judge_turn_scores`, JSON text of each such judge's per-turn scores
(`{"tone": [[message index, score], ...]}`), which verl keeps in `reward_extra_info` (batch,
rollout dumps) but does not train on.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import TYPE_CHECKING, Any

from judgerl.adapters import (
    component_values,
    content_text,
    load_pipeline,
    numeric_value,
    prompt_sample_id,
    reference_text,
)
from judgerl.reward.budget import DEFAULT_WINDOW, rolling_budget
from judgerl.rubric_items import split_reference
from judgerl.trajectory import (
    TrajectoryError,
    final_answer,
    link_tool_results,
    parse_tools,
    parse_trajectory,
    uses_tools,
)
from judgerl.types import Reward, Rollout, Sample

if TYPE_CHECKING:
    from judgerl.reward.pipeline import RewardPipeline

PROMPT_KEYS = ("prompt", "question", "problem", "query")
#: what an agent loop puts in `extra_fields` (verl's reward manager merges it into `extra_info`):
#: the whole conversation (prompt first) and the tools' OpenAI schemas; `raw_prompt` is verl's own
TRAJECTORY_KEYS = ("messages", "tools", "raw_prompt")
#: the reward_extra_info key with the per-turn scores of `turns`-scope judges (JSON text)
TURN_SCORES_KEY = "judge_turn_scores"


def _prompt_messages(extra_info: dict[str, Any]) -> list[dict[str, str]]:
    for key in PROMPT_KEYS:
        value = extra_info.get(key)
        if isinstance(value, str) and value:
            return [{"role": "user", "content": value}]
        if isinstance(value, (list, tuple)) and value and all(isinstance(m, dict) for m in value):
            return [{"role": str(m.get("role", "user")), "content": content_text(m.get("content"))}
                    for m in value]
    return []


def _as_list(value: Any) -> Any:
    """verl's non-tensor columns may hand a list over as a numpy object array."""
    return value.tolist() if hasattr(value, "tolist") and not isinstance(value, (str, bytes)) else value


def agent_trajectory(extra: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Any], Any] | None:
    """(prompt messages, the agent's messages after the prompt, raw tools) when `extra_info`
    carries an agent loop's conversation (`messages`, as `JudgerlToolAgentLoop` stores it) that
    used tools or took several assistant turns; None otherwise (a single-turn rollout).

    The prompt is verl's `raw_prompt` when the conversation starts with it, else every message
    before the first assistant turn."""
    messages = _as_list(extra.get("messages"))
    if not isinstance(messages, list) or not all(isinstance(message, dict) for message in messages):
        return None
    raw_prompt = _as_list(extra.get("raw_prompt"))
    if isinstance(raw_prompt, list) and 0 < len(raw_prompt) < len(messages) \
            and [message.get("content") for message in messages[:len(raw_prompt)]] == \
            [message.get("content") if isinstance(message, dict) else None for message in raw_prompt]:
        split = len(raw_prompt)
    else:
        split = next((index for index, message in enumerate(messages)
                      if message.get("role") == "assistant"), len(messages))
    rest = messages[split:]
    if not rest or not uses_tools(rest):
        return None
    prompt = [{"role": str(message.get("role", "user")), "content": content_text(message.get("content"))}
              for message in messages[:split]]
    return prompt, rest, _as_list(extra.get("tools"))


def build_item(data_source: Any, solution_str: str, ground_truth: Any,
               extra_info: dict[str, Any] | None) -> tuple[Sample, Rollout]:
    """One (Sample, Rollout) from verl's arguments.

    A tool-using agent-loop rollout (see `agent_trajectory`) becomes a rollout with a
    `trajectory` and `tools`, its completion the final answer; TrajectoryError when the
    conversation is malformed. Anything else is one answer, `solution_str`, as before."""
    extra = dict(extra_info) if isinstance(extra_info, dict) else {}
    agent = agent_trajectory(extra)
    messages = agent[0] if agent else _prompt_messages(extra)
    ground_truth, rubric = split_reference(ground_truth)
    reference = reference_text(ground_truth)
    row_id = extra.get("index")
    sample_id = prompt_sample_id(messages, reference, row_id)
    dropped = PROMPT_KEYS + TRAJECTORY_KEYS if agent else PROMPT_KEYS
    metadata = {key: value for key, value in extra.items() if key not in dropped}
    metadata["data_source"] = data_source
    if rubric is not None:
        metadata.setdefault("rubric", rubric)
    sample = Sample(id=sample_id, messages=messages, reference=reference, metadata=metadata)
    if agent is None:
        return sample, Rollout(sample_id=sample_id, completion=solution_str or "")
    trajectory = parse_trajectory(link_tool_results(agent[1]))  # verl's calls carry no ids
    tools = parse_tools(agent[2]) if agent[2] else None
    return sample, Rollout(sample_id=sample_id, completion=final_answer(trajectory),
                           trajectory=trajectory, tools=tools)


def _unreadable(pipeline: RewardPipeline, data_source: Any, extra_info: dict[str, Any] | None,
                error: TrajectoryError) -> Reward:
    """The reward of a rollout whose conversation cannot be read: unscored, under the failure policy."""
    row = (extra_info or {}).get("index") if isinstance(extra_info, dict) else None
    return pipeline.unscored_reward(Sample(id=str(row), messages=[]),
                                    Rollout(sample_id=str(row), completion="", id=str(row)), None,
                                    f"bad trajectory (data_source {data_source!r}, index {row}): {error}")


def turn_scores_text(reward: Reward, judges: list[str]) -> str:
    """The per-turn values of each `turns`-scope judge as JSON text:
    `{"tone": [[2, 1.0], [4, 0.5]]}` (message index in the trajectory, value); `[]` for a judge
    that gave none (unscored, gated, or a single-turn rollout judged as one answer)."""
    scores = reward.details.get("scores", {}) if isinstance(reward.details, dict) else {}
    table = {}
    for name in judges:
        turns = ((scores.get(name) or {}).get("details") or {}).get("turns") or []
        table[name] = [[turn["message_index"], turn["value"]] for turn in turns]
    return json.dumps(table, sort_keys=True)


def turn_judges(pipeline: RewardPipeline) -> list[str]:
    """The names of the pipeline's judges with scope `turns` (their scores have per-turn values)."""
    return [judge.name for judge in pipeline.judges
            if getattr(getattr(judge, "options", None), "scope", None) == "turns"]


def reward_dict(reward: Reward, turn_judge_names: list[str] | None = None) -> dict[str, Any]:
    """verl's dict: the components and flags, then `score` (which always wins its key); with
    `turns`-scope judges, also `judge_turn_scores` (`turn_scores_text`), the same key for every
    response of the run, as verl stacks each key over the batch."""
    values: dict[str, Any] = {**component_values(reward), "score": numeric_value(reward)}
    if turn_judge_names:
        values[TURN_SCORES_KEY] = turn_scores_text(reward, turn_judge_names)
    return values


def _score_items(pipeline: RewardPipeline, data_source: Any, solution_str: str, ground_truth: Any,
                 extra_info: dict[str, Any] | None) -> tuple[list[tuple[Sample, Rollout]], Reward | None]:
    try:
        return [build_item(data_source, solution_str, ground_truth, extra_info)], None
    except TrajectoryError as exc:
        return [], _unreadable(pipeline, data_source, extra_info, exc)


def compute_score(data_source: Any, solution_str: str, ground_truth: Any,
                  extra_info: dict[str, Any] | None = None, *, reward_config: Any = None,
                  budget_window: int = DEFAULT_WINDOW, **kwargs: Any) -> dict[str, Any]:
    """Score one response; see the module docstring for the returned keys.

    `reward_config` (a YAML path, dict or pipeline) defaults to `$JUDGERL_REWARD_CONFIG`.
    Other keyword arguments verl passes (`reward_router_address`, ...) are ignored.
    """
    pipeline = load_pipeline(reward_config)
    items, unreadable = _score_items(pipeline, data_source, solution_str, ground_truth, extra_info)
    rewards = pipeline.score_batch_sync(items, enforce_budget=False) if items else [unreadable]
    rolling_budget(pipeline, window=int(budget_window)).record(rewards)
    return reward_dict(rewards[0], turn_judges(pipeline))


async def compute_score_async(data_source: Any, solution_str: str, ground_truth: Any,
                              extra_info: dict[str, Any] | None = None, *, reward_config: Any = None,
                              budget_window: int = DEFAULT_WINDOW, **kwargs: Any) -> dict[str, Any]:
    """`compute_score`, awaited on verl's reward loop (no thread per response)."""
    pipeline = load_pipeline(reward_config)
    items, unreadable = _score_items(pipeline, data_source, solution_str, ground_truth, extra_info)
    rewards = await pipeline.score_batch(items, enforce_budget=False) if items else [unreadable]
    rolling_budget(pipeline, window=int(budget_window)).record(rewards)
    return reward_dict(rewards[0], turn_judges(pipeline))


class RemoteRewardError(RuntimeError):
    """The reward service did not answer with a reward (its status and message are in the text)."""


REMOTE_ATTEMPTS = 3
RETRY_AFTER_MAX_S = 60.0


async def compute_score_remote(data_source: Any, solution_str: str, ground_truth: Any,
                               extra_info: dict[str, Any] | None = None, *, reward_url: str,
                               group_size: int = 1, token_env: str = "JUDGERL_SERVER_TOKEN",
                               timeout_s: float = 900.0, **kwargs: Any) -> dict[str, float]:
    """Score one response through a `judgerl serve` service (whole groups, limits global).

    The request carries the prompt (as the judge should see it), the response, the reference,
    the prompt's sample id as `group_keys` and `group_size`. Connection errors are retried
    (3 attempts), and so is a 503 with `Retry-After` (the service refused for memory: it is
    tried again after the seconds it says, at most `RETRY_AFTER_MAX_S`); any other answer but
    200 raises `RemoteRewardError` with the service's message (a 503 without `Retry-After` is
    the service's failure budget: the run should stop). So do no answer within `timeout_s` and an
    answer that is not the service's (a proxy's HTML error page, a 200 without `rewards`): the
    error names the URL, the status and the start of the body.
    """
    import aiohttp

    sample, rollout = build_item(data_source, solution_str, ground_truth, extra_info)
    prompt = "\n\n".join(message["content"] for message in sample.messages if message.get("content"))
    payload = {"query": [prompt + rollout.completion], "prompts": [prompt],
               "labels": [sample.reference if sample.reference is not None else ""],
               "group_keys": [sample.id], "group_size": int(group_size)}
    token = os.environ.get(token_env, "").strip()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = reward_url.rstrip("/") + ("" if reward_url.rstrip("/").endswith("/get_reward") else "/get_reward")
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    for attempt in range(1, REMOTE_ATTEMPTS + 1):
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, \
                    session.post(url, json=payload, headers=headers) as response:
                raw = await response.read()
                retry_after = response.headers.get("Retry-After", "")
                if response.status == 503 and retry_after.strip().isdigit() and attempt < REMOTE_ATTEMPTS:
                    await asyncio.sleep(min(float(retry_after), RETRY_AFTER_MAX_S))
                    continue
                status = response.status
        except aiohttp.ClientConnectionError as exc:
            if attempt == REMOTE_ATTEMPTS:
                raise RemoteRewardError(f"the reward service at {url} cannot be reached "
                                        f"({REMOTE_ATTEMPTS} attempts): {exc}") from exc
            await asyncio.sleep(attempt)
            continue
        except asyncio.TimeoutError as exc:
            raise RemoteRewardError(f"the reward service at {url} did not answer within {timeout_s:g}s "
                                    "(the timeout_s of compute_score_remote)") from exc
        return _remote_reward(url, status, raw)
    raise AssertionError("unreachable")


def _remote_reward(url: str, status: int, raw: bytes) -> dict[str, float]:
    """verl's dict from the service's answer; anything but a reward answer is a `RemoteRewardError`
    naming the URL, the status and the start of the body (a proxy's HTML page, a wrong URL)."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if status != 200:
        message = data.get("error") if isinstance(data, dict) else raw[:200].decode("utf-8", "replace")
        raise RemoteRewardError(f"the reward service at {url} answered {status}: {message}")
    try:
        values = {name: float(series[0]) for name, series in (data.get("extra_logs") or {}).items()}
        return {**values, "score": float(data["rewards"][0])}
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise RemoteRewardError(f"the reward service at {url} answered 200 without a reward "
                                f"(is it judgerl serve's /get_reward?): "
                                f"{raw[:200].decode('utf-8', 'replace')}") from exc


__all__ = ["TURN_SCORES_KEY", "RemoteRewardError", "agent_trajectory", "build_item", "compute_score",
           "compute_score_async", "compute_score_remote", "reward_dict", "turn_scores_text"]
