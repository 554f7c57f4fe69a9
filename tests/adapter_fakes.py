"""A small, predictable reward pipeline for the adapter contract tests.

Why: adapter tests check translation (shapes, ids, order, unscored handling), so the reward
behind them must be predictable yet go through the real pipeline and runtime. The judge here
calls a ScriptedBackend (not a model; it says so) through the runtime, so latency, concurrency
and failures behave as with a real endpoint:

- gate `format`: a completion starting with "BAD" is gated (reward 0);
- judge `quality`: the scripted judge answers 1 when the completion contains the reference
  (or "good" when there is no reference), else 0; a completion containing "JUDGE-FAIL" makes
  the backend fail (retryable), so the reward is unscored;
- every judged (sample id, completion, reference) is recorded in `judge.seen`.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from judgerl.backends.base import CompletionRequest
from judgerl.backends.scripted import ScriptedBackend
from judgerl.config import CheckConfig, JudgeConfig, RewardConfig
from judgerl.errors import BackendError
from judgerl.judges.base import Judge, PointwiseJudge
from judgerl.reward.pipeline import RewardPipeline
from judgerl.runtime.model_runtime import ModelRuntime
from judgerl.types import Rollout, Sample, Score


class ReferenceJudge(PointwiseJudge):
    """Asks the scripted backend whether the answer contains the reference."""

    def __init__(self, config: JudgeConfig, runtime: ModelRuntime) -> None:
        super().__init__(config, runtime)
        self.seen: list[tuple[str, str, str | None, str]] = []

    async def score(self, sample: Sample, rollout: Rollout) -> Score:
        self.seen.append((sample.id, rollout.completion, sample.reference, sample.prompt))
        payload = json.dumps({"answer": rollout.completion, "reference": sample.reference})
        result = await self.runtime.complete(self.backend_name, CompletionRequest(
            messages=[{"role": "user", "content": payload}], max_tokens=4))
        if not result.ok:
            return Score.unscored(self.name, f"judge_error: {result.error}")
        return Score(self.name, float(result.completion.text), rationale=f"verdict {result.completion.text}")


def responder(request: CompletionRequest) -> str:
    data = json.loads(request.messages[-1]["content"])
    if "JUDGE-FAIL" in data["answer"]:
        raise BackendError("scripted outage", retryable=True, status=503)
    target = data["reference"] or "good"
    return "1" if target in data["answer"] else "0"


def starts_well(sample: Sample, rollout: Rollout) -> Score:
    return Score("format", 0.0 if rollout.completion.startswith("BAD") else 1.0)


def make_pipeline(*, latency_s: float = 0.0, failure_policy: str = "unscored",
                  failure_budget: float | None = None,
                  ) -> tuple[RewardPipeline, ReferenceJudge, ScriptedBackend]:
    backend = ScriptedBackend(responder, latency_s=latency_s, max_concurrency=64)
    config = RewardConfig(
        checks=[CheckConfig(name="format", type="custom", gate=True, gate_score=0.0, weight=1.0)],
        judges=[JudgeConfig(name="quality", type="custom", weight=1.0)],
        failure_policy=failure_policy, failure_budget=failure_budget,
        runtime={"max_attempts": 1},
    )
    runtime = ModelRuntime({"judge": backend}, config.runtime)
    judge = ReferenceJudge(config.judges[0], runtime)
    return RewardPipeline(config, runtime, [(config.checks[0], starts_well)], [judge]), judge, backend


RUBRIC_VERDICT = {"criteria": {"answers": {"score": True, "rationale": "it answers"}}}


def write_config(folder: Path, *, answer: dict | str = RUBRIC_VERDICT, failure_policy: str = "unscored",
                 name: str = "reward.yaml") -> Path:
    """A real reward YAML (length check + rubric judge on the scripted backend)."""
    path = folder / name
    path.write_text(textwrap.dedent(f"""\
        backends:
          judge: {{type: scripted, answer: {json.dumps(answer)}}}
        runtime: {{max_attempts: 1}}
        checks:
          - {{name: length, type: length, unit: words, min: 1, max: 50}}
        judges:
          - name: quality
            type: rubric
            backend: judge
            criteria:
              - {{name: answers, description: "answers the question"}}
        failure_policy: {failure_policy}
        failure_budget: null
        """), encoding="utf-8")
    return path


class LongestAnswerGroupJudge(Judge):
    """A whole-group judge (kind `group`): one scripted call per group, 1 for its longest answer(s).

    Records the completions of every group it judged in `groups`, so tests see what was judged
    together.
    """

    kind = "group"

    def __init__(self, config: JudgeConfig, runtime: ModelRuntime) -> None:
        super().__init__(config, runtime)
        self.groups: list[list[str]] = []

    async def score_group(self, sample: Sample, rollouts: list[Rollout]) -> list[Score]:
        self.groups.append([rollout.completion for rollout in rollouts])
        answers = json.dumps([rollout.completion for rollout in rollouts])
        result = await self.runtime.complete(self.backend_name, CompletionRequest(
            messages=[{"role": "user", "content": answers}], max_tokens=4))
        if not result.ok:
            return [Score.unscored(self.name, f"judge_error: {result.error}") for _ in rollouts]
        longest = max(len(rollout.completion) for rollout in rollouts)
        return [Score(self.name, 1.0 if len(rollout.completion) == longest else 0.0) for rollout in rollouts]


def make_group_pipeline(*, latency_s: float = 0.0, failure_policy: str = "unscored",
                        ) -> tuple[RewardPipeline, LongestAnswerGroupJudge, ScriptedBackend]:
    backend = ScriptedBackend(lambda request: "ok", latency_s=latency_s, max_concurrency=64)
    config = RewardConfig(judges=[JudgeConfig(name="best", type="custom", weight=1.0)],
                          failure_policy=failure_policy, failure_budget=None, runtime={"max_attempts": 1})
    runtime = ModelRuntime({"judge": backend}, config.runtime)
    judge = LongestAnswerGroupJudge(config.judges[0], runtime)
    return RewardPipeline(config, runtime, [], [judge]), judge, backend
