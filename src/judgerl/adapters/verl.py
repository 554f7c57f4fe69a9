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
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from judgerl.adapters import (
    component_values,
    content_text,
    load_pipeline,
    numeric_value,
    prompt_sample_id,
    reference_text,
)
from judgerl.reward.budget import DEFAULT_WINDOW, rolling_budget
from judgerl.types import Reward, Rollout, Sample

PROMPT_KEYS = ("prompt", "question", "problem", "query")


def _prompt_messages(extra_info: dict[str, Any]) -> list[dict[str, str]]:
    for key in PROMPT_KEYS:
        value = extra_info.get(key)
        if isinstance(value, str) and value:
            return [{"role": "user", "content": value}]
        if isinstance(value, (list, tuple)) and value and all(isinstance(m, dict) for m in value):
            return [{"role": str(m.get("role", "user")), "content": content_text(m.get("content"))}
                    for m in value]
    return []


def build_item(data_source: Any, solution_str: str, ground_truth: Any,
               extra_info: dict[str, Any] | None) -> tuple[Sample, Rollout]:
    """One (Sample, Rollout) from verl's arguments."""
    extra = dict(extra_info) if isinstance(extra_info, dict) else {}
    messages = _prompt_messages(extra)
    reference = reference_text(ground_truth)
    row_id = extra.get("index")
    sample_id = prompt_sample_id(messages, reference, row_id)
    metadata = {key: value for key, value in extra.items() if key not in PROMPT_KEYS}
    metadata["data_source"] = data_source
    sample = Sample(id=sample_id, messages=messages, reference=reference, metadata=metadata)
    return sample, Rollout(sample_id=sample_id, completion=solution_str or "")


def reward_dict(reward: Reward) -> dict[str, float]:
    """verl's dict: the components and flags, then `score` (which always wins its key)."""
    return {**component_values(reward), "score": numeric_value(reward)}


def compute_score(data_source: Any, solution_str: str, ground_truth: Any,
                  extra_info: dict[str, Any] | None = None, *, reward_config: Any = None,
                  budget_window: int = DEFAULT_WINDOW, **kwargs: Any) -> dict[str, float]:
    """Score one response; see the module docstring for the returned keys.

    `reward_config` (a YAML path, dict or pipeline) defaults to `$JUDGERL_REWARD_CONFIG`.
    Other keyword arguments verl passes (`reward_router_address`, ...) are ignored.
    """
    pipeline = load_pipeline(reward_config)
    rewards = pipeline.score_batch_sync([build_item(data_source, solution_str, ground_truth, extra_info)],
                                        enforce_budget=False)
    rolling_budget(pipeline, window=int(budget_window)).record(rewards)
    return reward_dict(rewards[0])


async def compute_score_async(data_source: Any, solution_str: str, ground_truth: Any,
                              extra_info: dict[str, Any] | None = None, *, reward_config: Any = None,
                              budget_window: int = DEFAULT_WINDOW, **kwargs: Any) -> dict[str, float]:
    """`compute_score`, awaited on verl's reward loop (no thread per response)."""
    pipeline = load_pipeline(reward_config)
    rewards = await pipeline.score_batch([build_item(data_source, solution_str, ground_truth, extra_info)],
                                         enforce_budget=False)
    rolling_budget(pipeline, window=int(budget_window)).record(rewards)
    return reward_dict(rewards[0])


class RemoteRewardError(RuntimeError):
    """The reward service did not answer with a reward (its status and message are in the text)."""


REMOTE_ATTEMPTS = 3


async def compute_score_remote(data_source: Any, solution_str: str, ground_truth: Any,
                               extra_info: dict[str, Any] | None = None, *, reward_url: str,
                               group_size: int = 1, token_env: str = "JUDGERL_SERVER_TOKEN",
                               timeout_s: float = 900.0, **kwargs: Any) -> dict[str, float]:
    """Score one response through a `judgerl serve` service (whole groups, limits global).

    The request carries the prompt (as the judge should see it), the response, the reference,
    the prompt's sample id as `group_keys` and `group_size`. Connection errors are retried
    (3 attempts); any answer but 200 raises `RemoteRewardError` with the service's message (a
    503 is the service's failure budget: the run should stop).
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
                data = await response.json(content_type=None)
                if response.status != 200:
                    message = data.get("error") if isinstance(data, dict) else data
                    raise RemoteRewardError(f"the reward service at {url} answered {response.status}: "
                                            f"{message}")
        except aiohttp.ClientConnectionError as exc:
            if attempt == REMOTE_ATTEMPTS:
                raise RemoteRewardError(f"the reward service at {url} cannot be reached "
                                        f"({REMOTE_ATTEMPTS} attempts): {exc}") from exc
            await asyncio.sleep(attempt)
            continue
        values = {name: float(series[0]) for name, series in (data.get("extra_logs") or {}).items()}
        return {**values, "score": float(data["rewards"][0])}
    raise AssertionError("unreachable")


__all__ = ["RemoteRewardError", "build_item", "compute_score", "compute_score_async",
           "compute_score_remote", "reward_dict"]
