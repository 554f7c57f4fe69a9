"""The judgerl reward as a TRL `GRPOTrainer` reward function.

Why: TRL calls reward functions as `f(prompts, completions, completion_ids, **columns)` and
awaits `async def` ones on its own event loop, in parallel with other reward functions. This
module turns one such call into one `RewardPipeline.score_batch` (the judge calls run
concurrently on the pipeline's loop) and the rewards back into a list of floats, with `None`
for an unscored rollout so that TRL leaves it out of the group's advantage.

    from trl import GRPOConfig, GRPOTrainer
    from judgerl.adapters.trl import reward_function

    trainer = GRPOTrainer(model=..., reward_funcs=[reward_function("reward.yaml")],
                          args=GRPOConfig(...), train_dataset=dataset)

What it reads from TRL (checked against trl 1.16, `GRPOTrainer._calculate_rewards`):
- prompts: strings (standard) or lists of chat messages (conversational);
- completions: strings, or lists of messages (the last assistant message is the answer);
  when the reward config reads trajectories (`RewardPipeline.reads_trajectories`: tool checks,
  a rubric with scope `trajectory` / `turns`), a completion list with tool calls, tool results
  or several assistant turns (TRL's tool-calling loop) is also kept as `Rollout.trajectory`,
  ids linked (`link_tool_results`: TRL's calls have none), and a `tools` column (OpenAI
  schemas) as `Rollout.tools`; a malformed one is that rollout's `None`, with the reason
  (`bad trajectory: message 2: ...`) in the status column;
- dataset columns as keyword arguments, one value per completion: the first of
  `reference_keys` present is the reference answer, `id` (if present) names the row, every
  other column goes to `Sample.metadata`;
- `log_metric(name, value)` and `log_extra(column, values)` hooks when TRL passes them:
  per-component means, the unscored and gated shares, and per-rollout status and rationale
  columns in the completions table.
TRL repeats each prompt `num_generations` times; rollouts of one prompt share a sample id
(derived from the prompt, the reference and the `id` column) so group judges see the group.

Under `accelerate launch` / torchrun (`WORLD_SIZE` > 1) each rank holds only its share of the
batch, and one prompt's completions may be split over ranks: the function then scores the global
batch on the main process only (`trl_ranks.score_across_ranks`), which alone builds the pipeline
(`fn.pipeline` is None on the other ranks) and talks to the judges.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from judgerl.adapters import content_text, load_pipeline, prompt_sample_id, reference_text
from judgerl.adapters.trl_ranks import TRL_HOOKS, launched_ranks, score_across_ranks
from judgerl.reward.pipeline import RewardPipeline
from judgerl.trajectory import TrajectoryError, link_tool_results, parse_tools, parse_trajectory, uses_tools
from judgerl.types import Reward, Rollout, Sample, rollout_id

DEFAULT_REFERENCE_KEYS = ("reference", "reference_answer", "answer", "solution")

RewardFunc = Callable[..., Awaitable[list[float | None]]]


def prompt_messages(prompt: Any) -> list[dict[str, str]]:
    """A TRL prompt (a string, or a list of chat messages) as chat messages with text content.

    >>> prompt_messages("2+2?")
    [{'role': 'user', 'content': '2+2?'}]
    >>> prompt_messages([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    [{'role': 'user', 'content': 'hi'}]
    """
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list):
        return [{"role": str(message.get("role", "user")), "content": content_text(message.get("content"))}
                for message in prompt if isinstance(message, dict)]
    raise TypeError(f"a TRL prompt is a string or a list of messages, not {type(prompt).__name__}")


def completion_text(completion: Any) -> str:
    """The answer in a TRL completion: the string, or the last assistant message's text.

    >>> completion_text([{"role": "assistant", "content": "4"}])
    '4'
    >>> completion_text("4")
    '4'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        for message in reversed(completion):
            if isinstance(message, dict) and message.get("role", "assistant") == "assistant":
                text = content_text(message.get("content"))
                if text or not message.get("tool_calls"):
                    return text
        return ""
    raise TypeError(f"a TRL completion is a string or a list of messages, not {type(completion).__name__}")


def attach_trajectory(rollout: Rollout, completion: Any, tools: Any) -> None:
    """Keep a tool-using completion list as the rollout's trajectory; TrajectoryError if malformed."""
    if not isinstance(completion, list) or not uses_tools(completion):
        return
    rollout.trajectory = parse_trajectory(link_tool_results(completion))
    rollout.tools = parse_tools(tools) if tools is not None else None


def build_items(prompts: Sequence[Any], completions: Sequence[Any], columns: dict[str, Any], *,
                reference_keys: Sequence[str] = DEFAULT_REFERENCE_KEYS, id_key: str = "id",
                trajectory_errors: dict[int, str] | None = None) -> list[tuple[Sample, Rollout]]:
    """(Sample, Rollout) pairs for one TRL reward call; rollouts of one prompt share a sample id.

    With `trajectory_errors` (a dict to fill), tool-using completions also become trajectories
    and a malformed one is recorded there by position (its rollout keeps no trajectory)."""
    if len(prompts) != len(completions):
        raise ValueError(f"TRL passed {len(prompts)} prompts for {len(completions)} completions")
    per_row = {key: value for key, value in columns.items()
               if key not in TRL_HOOKS and isinstance(value, list) and len(value) == len(prompts)}
    reference_key = next((key for key in reference_keys if key in per_row), None)
    seen: dict[str, int] = {}
    items = []
    for index, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
        messages = prompt_messages(prompt)
        reference = reference_text(per_row[reference_key][index]) if reference_key else None
        row_id = per_row[id_key][index] if id_key in per_row else None
        sample_id = prompt_sample_id(messages, reference, row_id)
        metadata = {key: values[index] for key, values in per_row.items() if key != reference_key}
        count = seen.get(sample_id, 0)
        seen[sample_id] = count + 1
        sample = Sample(id=sample_id, messages=messages, reference=reference, metadata=metadata)
        rollout = Rollout(sample_id=sample_id, completion=completion_text(completion),
                          id=rollout_id(sample_id, count))
        if trajectory_errors is not None:
            try:
                attach_trajectory(rollout, completion, metadata.get("tools"))
            except TrajectoryError as exc:
                trajectory_errors[index] = f"bad trajectory: {exc}"
        items.append((sample, rollout))
    return items


def log_rewards(rewards: Sequence[Reward], columns: dict[str, Any], *, prefix: str,
                log_rationales: bool = True) -> None:
    """Send component means and shares to `log_metric`, statuses and rationales to `log_extra`."""
    log_metric = columns.get("log_metric")
    log_extra = columns.get("log_extra")
    if callable(log_metric) and rewards:
        names = list(dict.fromkeys(name for reward in rewards for name in reward.components))
        for name in names:
            values = [reward.components.get(name) for reward in rewards]
            scored = [value for value in values if value is not None]
            if scored:
                log_metric(f"{prefix}/{name}/mean", sum(scored) / len(scored))
        log_metric(f"{prefix}/unscored_frac",
                   sum(reward.status == "unscored" for reward in rewards) / len(rewards))
        log_metric(f"{prefix}/gated_frac", sum(reward.status == "gated" for reward in rewards) / len(rewards))
    if callable(log_extra) and rewards:
        log_extra(f"{prefix}_status", [reward.status if reward.status != "unscored"
                                       else f"unscored: {reward.reason}" for reward in rewards])
        if log_rationales:
            log_extra(f"{prefix}_rationale", [reward.rationale for reward in rewards])


def reward_function(config_or_pipeline: RewardPipeline | str | os.PathLike[str] | dict[str, Any] | Any, *,
                    name: str | None = None, overrides: list[str] | None = None,
                    reference_keys: Sequence[str] = DEFAULT_REFERENCE_KEYS, id_key: str = "id",
                    log_rationales: bool = True) -> RewardFunc:
    """An `async` TRL reward function scoring with the given reward config or pipeline.

    `name` (default: the config file's stem, else "judgerl") becomes the function's `__name__`,
    which TRL uses for its `rewards/<name>/mean` metric. The pipeline is reachable as
    `fn.pipeline` (close it when training ends, or call `fn.close()`). Unscored rollouts give
    `None`; a batch with more unscored rollouts than the config's `failure_budget` raises
    `FailureBudgetExceeded`. In a multi-process launch only the main process builds the pipeline
    (a given pipeline is used there only) and scores every rank's rows (see the module docstring).
    """
    ranks = launched_ranks()
    pipeline: RewardPipeline | None
    if isinstance(config_or_pipeline, RewardPipeline):
        pipeline = config_or_pipeline
    elif ranks is not None and not ranks.is_main:
        pipeline = None  # no judge backend, cache or journal on the other ranks
    elif overrides:
        pipeline = RewardPipeline.from_config(config_or_pipeline, overrides=overrides)
    else:
        pipeline = load_pipeline(config_or_pipeline)
    if name is None:
        name = _default_name(pipeline, config_or_pipeline)
    prefix = name

    async def score_local(prompts: list[Any], completions: list[Any],
                          completion_ids: list[list[int]] | None = None, **kwargs: Any) -> list[float | None]:
        if pipeline is None:
            raise RuntimeError("judgerl's TRL reward scores on the main process only")
        errors: dict[int, str] | None = {} if pipeline.reads_trajectories() else None
        items = build_items(prompts, completions, kwargs, reference_keys=reference_keys, id_key=id_key,
                            trajectory_errors=errors)
        errors = errors or {}
        good = [item for index, item in enumerate(items) if index not in errors]
        scored = iter(await pipeline.score_batch(good) if good else [])
        rewards = [_bad_trajectory(pipeline, item, errors[index]) if index in errors else next(scored)
                   for index, item in enumerate(items)]
        log_rewards(rewards, kwargs, prefix=prefix, log_rationales=log_rationales)
        return [reward.value for reward in rewards]

    async def judgerl_reward(prompts: list[Any], completions: list[Any],
                             completion_ids: list[list[int]] | None = None,
                             **kwargs: Any) -> list[float | None]:
        if ranks is None:
            return await score_local(prompts, completions, completion_ids, **kwargs)
        return await score_across_ranks(score_local, prompts, completions, completion_ids, kwargs, ranks)

    def close() -> None:
        if pipeline is not None:
            pipeline.close()

    judgerl_reward.__name__ = name
    judgerl_reward.__qualname__ = name
    judgerl_reward.pipeline = pipeline  # type: ignore[attr-defined]
    judgerl_reward.close = close  # type: ignore[attr-defined]
    return judgerl_reward


def _default_name(pipeline: RewardPipeline | None, config: Any) -> str:
    """The config file's stem (the same on every rank, built pipeline or not), else "judgerl"."""
    source = pipeline.config.source if pipeline is not None else getattr(config, "source", None)
    if source is None and isinstance(config, (str, os.PathLike)):
        source = os.fspath(config)
    return Path(source).stem if source else "judgerl"


def _bad_trajectory(pipeline: RewardPipeline, item: tuple[Sample, Rollout], reason: str) -> Reward:
    """The reward of a rollout whose trajectory cannot be read: unscored, under the failure policy."""
    sample, rollout = item
    return pipeline.unscored_reward(sample, rollout, None, reason)


__all__ = ["DEFAULT_REFERENCE_KEYS", "build_items", "completion_text", "log_rewards", "prompt_messages",
           "reward_function"]
