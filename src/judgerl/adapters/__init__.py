"""Adapters: the same reward config, scored by the same pipeline, inside other trainers.

Why a package: TRL, verl, OpenRLHF and Amazon Nova RFT each call a reward in their own shape
(an async function over columns, a per-sample function returning a dict, an HTTP endpoint, a
Lambda handler). Each module here only translates that shape to and from `RewardPipeline`;
none of them scores anything itself. What they share lives here:

- `load_pipeline`: one pipeline per process and config (verl and Lambda call per sample or per
  invocation; building the backends, cache and loop thread once keeps every limit process-wide);
- `content_text`: chat content as plain text (a string, or a list of parts such as
  `[{"type": "text", "text": ...}]` or Bedrock's `[{"text": ...}]`);
- `prompt_sample_id`: a stable sample id from the prompt (so that the k rollouts of one prompt
  form one group for group and pairwise judges);
- `numeric_value` / `component_values`: numbers for consumers that cannot take `None`;
- `reference_users`: what in a pipeline needs a reference answer (a sample without one is the
  sample's error, said before any judging).

Numbers-only consumers (verl, OpenRLHF, Lambda) get, for an unscored reward, the value of the
config's `failure_policy` (0.5 for `neutral`, 0.0 for `zero`) and, under the default `unscored`
policy, 0.0; an `unscored` flag of 1.0 always says so. Components that were not computed (a judge
skipped by a gate, or one that failed) are reported as 0.0 with the `gated` / `unscored` flags.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from judgerl.data import reference_text
from judgerl.errors import ConfigError

if TYPE_CHECKING:
    from judgerl.config import RewardConfig
    from judgerl.reward.pipeline import RewardPipeline
    from judgerl.types import Reward

CONFIG_ENV = "JUDGERL_REWARD_CONFIG"

_pipelines: dict[str, RewardPipeline] = {}
_lock = threading.Lock()


def load_pipeline(source: (RewardPipeline | RewardConfig | str | os.PathLike[str]
                          | dict[str, Any] | None) = None, *,
                  default_path: str | os.PathLike[str] | None = None) -> RewardPipeline:
    """The process-wide pipeline for `source` (built once, then reused).

    `source` may be a pipeline (returned as is), a `RewardConfig`, a dict or a YAML path. With
    no source, the path comes from the environment variable `JUDGERL_REWARD_CONFIG`, then
    `default_path`; neither set is a `ConfigError` that says what to set.
    """
    from judgerl.config import RewardConfig
    from judgerl.reward.pipeline import RewardPipeline

    if isinstance(source, RewardPipeline):
        return source
    if source is None:
        source = os.environ.get(CONFIG_ENV) or default_path
        if not source:
            raise ConfigError(f"no reward config: set the environment variable {CONFIG_ENV} to a reward "
                              "YAML file (or pass the config explicitly)")
    if isinstance(source, RewardConfig):
        key = f"config:{id(source)}"
    elif isinstance(source, dict):
        key = "dict:" + json.dumps(source, sort_keys=True, default=str)
    else:
        key = "path:" + str(Path(source).resolve())
        source = str(source)
    with _lock:
        pipeline = _pipelines.get(key)
        if pipeline is None:
            pipeline = RewardPipeline.from_config(source)
            _pipelines[key] = pipeline
        return pipeline


def clear_pipelines() -> None:
    """Close and forget every cached pipeline (tests; a long-lived worker switching configs)."""
    with _lock:
        pipelines = list(_pipelines.values())
        _pipelines.clear()
    for pipeline in pipelines:
        pipeline.close()


def content_text(content: Any) -> str:
    """Plain text of one chat message's content.

    >>> content_text("hi")
    'hi'
    >>> content_text([{"type": "text", "text": "a"}, {"type": "image"}, {"text": "b"}])
    'ab'
    >>> content_text(None)
    ''
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "")
    if isinstance(content, list):
        return "".join(content_text(part) for part in content if isinstance(part, (dict, str)))
    return str(content)


def prompt_sample_id(messages: Any, reference: str | None = None, row_id: Any = None) -> str:
    """A stable id for one prompt: the same prompt (and reference, and row id) gives the same id.

    >>> question = [{"role": "user", "content": "q"}]
    >>> prompt_sample_id(question) == prompt_sample_id(list(question))
    True
    >>> prompt_sample_id("q", "a") != prompt_sample_id("q", "b")
    True
    """
    blob = json.dumps({"messages": messages, "reference": reference,
                       "id": None if row_id is None else str(row_id)},
                      sort_keys=True, ensure_ascii=False, default=str)
    digest = hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{row_id}:{digest}" if row_id is not None else digest


def numeric_value(reward: Reward) -> float:
    """The reward as a number: its value, or 0.0 when unscored under the `unscored` policy."""
    return 0.0 if reward.value is None else float(reward.value)


def component_values(reward: Reward) -> dict[str, float]:
    """Every component as a number (not computed -> 0.0), plus `unscored` and `gated` flags.

    The keys are the same for every reward of one pipeline, which verl and OpenRLHF need
    (they stack each key over the batch).
    """
    values = {name: 0.0 if value is None else float(value) for name, value in reward.components.items()}
    values["unscored"] = 1.0 if reward.status == "unscored" else 0.0
    values["gated"] = 1.0 if reward.status == "gated" else 0.0
    return values


def reference_users(pipeline: RewardPipeline) -> list[str]:
    """The checks and judges of `pipeline` that need a reference answer (for a clear 422, or an
    invalid Lambda sample, instead of a judgment unscored for want of one)."""
    users = []
    for check_config, _check in pipeline.checks:
        options = check_config.options
        if check_config.type == "match" and not options.get("field") and not (
                options.get("mode") == "regex" and options.get("pattern")):
            users.append(f"check '{check_config.name}'")
    for judge in pipeline.judges:
        for part in (judge, *judge.parts()):  # a panel's members
            options = getattr(part, "options", None)
            if getattr(options, "use_reference", False) or getattr(options, "mode", None) == "reference":
                users.append(f"judge '{part.name}'")
    return users


__all__ = ["CONFIG_ENV", "clear_pipelines", "component_values", "content_text", "load_pipeline",
           "numeric_value", "prompt_sample_id", "reference_text", "reference_users"]
