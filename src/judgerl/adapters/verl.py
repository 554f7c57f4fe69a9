"""The judgerl reward as a verl custom reward function (`custom_reward_function.path` / `.name`).

Why: verl (volcengine/verl) loads a reward function from a file path and calls it once per
response, `compute_score(data_source, solution_str, ground_truth, extra_info, **reward_kwargs)`,
or, with `reward_model.reward_manager=batch`, once per batch as
`compute_score(data_sources, solution_strs, ground_truths, extra_infos, **reward_kwargs)`. Both
are here; the pipeline (backends, runtime, cache) is built once per worker process and reused.

    custom_reward_function:
      # the file's path: python -c "import judgerl.adapters.verl as m; print(m.__file__)"
      path: /path/to/site-packages/judgerl/adapters/verl.py
      name: compute_score            # or compute_score_batch with reward_model.reward_manager=batch
      reward_kwargs:
        reward_config: /abs/path/reward.yaml   # or set JUDGERL_REWARD_CONFIG in the workers' env

verl loads this file as a module named `custom_module`, so it uses absolute imports only, and
the pipeline cache lives in `judgerl.adapters` (shared however this file was imported).

Returned dict: `{"score": float, <component>: float, "unscored": 0/1, "gated": 0/1}`, the same
keys for every response (verl stacks each key over the batch into `reward_extra_info`). verl
needs a float: an unscored response scores the config's `failure_policy` value, and 0.0 under
the default `unscored` policy, always with `unscored: 1.0` so it can be told apart (and
filtered); components that were not computed are 0.0 (see `judgerl.adapters`). Set
`failure_policy: neutral` if a judge outage should not push the policy away from an answer.

The prompt: verl passes only the response, ground truth and `extra_info`; when `extra_info` has
`prompt` (a string or chat messages, as verl's example preprocessors write it) or `question`,
the judge sees it, and `extra_info["index"]` names the row. Rows of the same prompt form one
group in the batch form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from judgerl.adapters import (
    component_values,
    content_text,
    load_pipeline,
    numeric_value,
    prompt_sample_id,
    reference_text,
)
from judgerl.types import Reward, Rollout, Sample, rollout_id

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
                  **kwargs: Any) -> dict[str, float]:
    """Score one response; see the module docstring for the returned keys.

    `reward_config` (a YAML path, dict or pipeline) defaults to `$JUDGERL_REWARD_CONFIG`.
    Other keyword arguments verl passes (`reward_router_address`, ...) are ignored.
    """
    pipeline = load_pipeline(reward_config)
    reward, = pipeline.score_batch_sync([build_item(data_source, solution_str, ground_truth, extra_info)])
    return reward_dict(reward)


def compute_score_batch(data_sources: Sequence[Any], solution_strs: Sequence[str],
                        ground_truths: Sequence[Any],
                        extra_infos: Sequence[dict[str, Any] | None] | None = None, *,
                        reward_config: Any = None, **kwargs: Any) -> list[dict[str, float]]:
    """Score a whole batch concurrently (verl's `BatchRewardManager`); one dict per response, in order."""
    count = len(solution_strs)
    if not (len(data_sources) == len(ground_truths) == count):
        raise ValueError(f"verl passed {len(data_sources)} data sources, {count} solutions and "
                         f"{len(ground_truths)} ground truths; they must have the same length")
    infos: Sequence[dict[str, Any] | None] = list(extra_infos) if extra_infos is not None else [None] * count
    if len(infos) != count:
        raise ValueError(f"verl passed {len(infos)} extra_infos for {count} solutions")
    pipeline = load_pipeline(reward_config)
    items = [build_item(source, solution, truth, info)
             for source, solution, truth, info in zip(data_sources, solution_strs, ground_truths, infos,
                                                      strict=True)]
    # Rollouts of the same prompt share a sample id; give each its own rollout id.
    seen: dict[str, int] = {}
    for _sample, rollout in items:
        count_for_sample = seen.get(rollout.sample_id, 0)
        seen[rollout.sample_id] = count_for_sample + 1
        rollout.id = rollout_id(rollout.sample_id, count_for_sample)
    return [reward_dict(reward) for reward in pipeline.score_batch_sync(items)]


__all__ = ["build_item", "compute_score", "compute_score_batch", "reward_dict"]
