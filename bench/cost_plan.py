"""Benchmark: how close is `judgerl plan`'s forecast to what a real run of the same reward spends?

Why: a forecast a team lead approves a budget on must be exact in calls and close in tokens. For
each case the forecast is made first (no model is called), then the same rows are scored for
real through `RewardPipeline` with a journal, and the journal's calls and tokens (summed over its
judgments) are compared with the forecast:

1. `quickstart-rubric-openai`: examples/quickstart/reward_rubric.yaml, an OpenAI-compatible judge
   over loopback HTTP (tests/fake_openai.py answering JSON verdicts; its token count is the
   server's), on examples/quickstart/rollouts.jsonl (the plan of scoring that file: checks and
   gates run); tokens forecast by the 4-characters estimate;
2. `quickstart-scripted`: examples/quickstart/reward_scripted.yaml with its scripted backend;
3. `multi-judge-scripted`: five judges on two scripted backends (a JSON rubric, a per-criterion
   logprob rubric, a head-to-head pairwise judge, a group judge, and an itemized logprob judge
   whose calls depend on how many items each answer holds), planned from the run's shape
   (prompts, steps, answers per prompt, answer length) with stand-in answers, and scored on
   answers of that shape written for the purpose;
4. `demo-local` (skipped with --tiny): the demo's reward (src/judgerl/demo/reward.yaml) with its
   local SmolLM2-135M judge on a few demo prompts with two answers each; tokens counted by the
   model's tokenizer, the actual ones by the local engine.

Prints one row per case (forecast and actual calls and tokens, and the errors) and the largest
errors: the goal is calls exact and tokens within 10 %.

    python bench/cost_plan.py            # all cases (the local one takes a minute on a laptop CPU)
    python bench/cost_plan.py --tiny     # the scripted and loopback cases only (seconds)
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from judgerl.backends.base import Completion, CompletionRequest, Usage
from judgerl.backends.scripted import ScriptedBackend
from judgerl.config import load_reward_config
from judgerl.data import load_rollouts_strict
from judgerl.reward.pipeline import RewardPipeline
from judgerl.reward.plan import PlanOptions, forecast
from judgerl.run.plan import config_parts

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
DEMO = ROOT / "src" / "judgerl" / "demo"
sys.path.insert(0, str(ROOT / "tests"))


def journal_totals(path: Path) -> dict[str, int]:
    entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {"calls": sum(entry.get("calls", 0) for entry in entries),
            "tokens": sum(entry.get("tokens", 0) for entry in entries)}


def score(config: Any, rollouts: Path, backends: dict[str, Any] | None = None) -> dict[str, int]:
    """Score the file for real; the journal's calls and tokens."""
    items = load_rollouts_strict(rollouts)
    with RewardPipeline.from_config(config, backends=backends) as pipeline:
        if backends is not None:
            for backend in backends.values():
                if isinstance(backend, ScriptedBackend) and backend.responder is None:
                    backend.responder = dry_run_like(pipeline)
        pipeline.score_batch_sync(items, enforce_budget=False)
    return journal_totals(config.path(config.runtime.journal_path))


def dry_run_like(pipeline: RewardPipeline) -> Any:
    """A scripted judge that answers each request in its judge's own format, with varied verdicts."""
    judges = {judge.name: judge for judge in pipeline.judges}
    rng = random.Random(0)

    def answer(request: CompletionRequest) -> Completion:
        prompt = " ".join(message.get("content", "") for message in request.messages)
        if request.candidate_tokens:
            weights = [rng.random() + 0.01 for _ in request.candidate_tokens]
            total = sum(weights)
            logprobs = {token: math.log(weight / total)
                        for token, weight in zip(request.candidate_tokens, weights, strict=True)}
            return Completion(text=request.candidate_tokens[0], model="scripted",
                              usage=Usage(max(1, len(prompt) // 4), 1), candidate_logprobs=logprobs)
        text = judges[request.tag].dry_run_answer(request)
        return Completion(text=text, model="scripted",
                          usage=Usage(max(1, len(prompt) // 4), max(1, len(text) // 4)))

    return answer


def row(case: str, plan_result: dict[str, Any], actual: dict[str, int]) -> dict[str, Any]:
    total = plan_result["total"]
    return {"case": case, "forecast_calls": total["calls"], "actual_calls": actual["calls"],
            "forecast_tokens": total["total_tokens"], "actual_tokens": actual["tokens"],
            "counted_by": sorted({judge["tokens_counted_by"] for judge in plan_result["judges"]})}


# ---------------------------------------------------------------------------------------------
# the cases


def quickstart_openai(work: Path) -> dict[str, Any]:
    from fake_openai import FakeOpenAIServer, RecordedRequest, Reply

    def verdict(request: RecordedRequest) -> Reply:
        answer = re.search(r"<<<ANSWER_\w+>>>\n(.*?)\n<<<END_ANSWER_\w+>>>", request.prompt, re.S)
        correct = answer is not None and ("Paris" in answer.group(1) or "100 degrees" in answer.group(1))
        return Reply(text=json.dumps({"criteria": {
            "correct": {"rationale": "compared with the reference", "score": correct},
            "calibrated": {"rationale": "fine", "score": True},
            "concise": {"rationale": "short", "score": 5 if correct else 2}}}))

    with FakeOpenAIServer() as server:
        server.responder = verdict
        overrides = [f"backends.judge.base_url={server.url}", "runtime.cache_path=null",
                     f"runtime.journal_path={work / 'openai.jsonl'}"]
        config = load_reward_config(QUICKSTART / "reward_rubric.yaml", overrides)
        plan_result = forecast(config_parts(config, rollouts=QUICKSTART / "rollouts.jsonl"))
        actual = score(config, QUICKSTART / "rollouts.jsonl")
    return row("quickstart-rubric-openai", plan_result, actual)


def quickstart_scripted(work: Path) -> dict[str, Any]:
    config = load_reward_config(QUICKSTART / "reward_scripted.yaml", [
        "runtime.cache_path=null", f"runtime.journal_path={work / 'scripted.jsonl'}"])
    plan_result = forecast(config_parts(config, rollouts=QUICKSTART / "rollouts.jsonl"))
    return row("quickstart-scripted", plan_result, score(config, QUICKSTART / "rollouts.jsonl"))


MULTI_JUDGE = {
    "backends": {"judge": {"type": "scripted"}, "second": {"type": "scripted", "model": "second-model"}},
    "judges": [
        {"name": "quality", "type": "rubric", "backend": "judge", "use_reference": True,
         "criteria": [{"name": "correct", "description": "The answer is correct."},
                      {"name": "clear", "description": "The answer is clear."}]},
        {"name": "tone", "type": "rubric", "backend": "second", "scoring": "logprob",
         "criteria": [{"name": "polite", "description": "The answer is polite."},
                      {"name": "warm", "description": "The answer is warm."},
                      {"name": "brief", "description": "The answer is brief."}]},
        {"name": "preference", "type": "pairwise", "backend": "judge", "mode": "round_robin",
         "comparison": "head_to_head", "instructions": "Prefer the more useful answer."},
        {"name": "ranking", "type": "group", "backend": "second", "instructions": "Rank by usefulness."},
        {"name": "items", "type": "itemized_rubric", "backend": "judge", "items_path": "points",
         "scoring": "logprob", "no_items_score": 0.0,
         "criteria": [{"name": "accurate", "description": "The point is accurate."},
                      {"name": "relevant", "description": "The point is relevant."}]},
    ],
}


def multi_judge(work: Path, *, prompts: int, steps: int, per_prompt: int) -> dict[str, Any]:
    """Planned from the shape with stand-ins; scored on answers of that shape (steps x prompts each)."""
    data = work / "multi_prompts.jsonl"
    reference = json.dumps({"points": ["first point", "second point", "third point"]})
    rows = [{"id": f"p{i}", "prompt": f"Give three short points about topic {i}, as JSON.",
             "reference": reference} for i in range(prompts)]
    data.write_text("".join(json.dumps(item) + "\n" for item in rows), encoding="utf-8")
    config = load_reward_config(dict(MULTI_JUDGE, runtime={
        "cache_path": None, "journal_path": str(work / "multi.jsonl")}))
    plan_result = forecast(config_parts(config, data=data, steps=steps, prompts_per_step=prompts,
                                        rollouts_per_prompt=per_prompt, answer_tokens=40, sample=prompts),
                           PlanOptions())
    # the real answers: JSON with three points each (the stand-in is the JSON reference), per step
    rollouts = work / "multi_rollouts.jsonl"
    with rollouts.open("w", encoding="utf-8") as handle:
        for step in range(steps):
            for item in rows:
                for n in range(per_prompt):
                    answer = {"points": [f"point {k} of answer {n} at step {step} about {item['id']}"
                                         for k in range(3)]}
                    sample_id = f"{item['id']}-s{step}"
                    handle.write(json.dumps({**item, "id": sample_id, "rollout_id": f"{sample_id}#{n}",
                                             "completion": json.dumps(answer)}) + "\n")
    backends = {name: ScriptedBackend(None, model=backend.get("model") or "scripted")  # type: ignore[arg-type]
                for name, backend in MULTI_JUDGE["backends"].items()}
    return row("multi-judge-scripted", plan_result, score(config, rollouts, backends))


def demo_local(work: Path, rows: int) -> dict[str, Any]:
    prompts = [json.loads(line) for line in (DEMO / "train.jsonl").read_text().splitlines()[:rows]]
    replies = ["Thank you for letting us know; I have passed this on to our team and we will get back "
               "to you today. Is there anything else I can help you with?",
               "Sorry about that! Your order is on its way. Anything else?"]
    rollouts = work / "demo_rollouts.jsonl"
    with rollouts.open("w", encoding="utf-8") as handle:
        for prompt in prompts:
            for n, reply in enumerate(replies):
                line = {**prompt, "rollout_id": f"{prompt['id']}#{n}", "completion": reply}
                handle.write(json.dumps(line) + "\n")
    config = load_reward_config(DEMO / "reward.yaml", ["runtime.cache_path=null",
                                                       f"runtime.journal_path={work / 'demo.jsonl'}"])
    plan_result = forecast(config_parts(config, rollouts=rollouts))
    return row("demo-local", plan_result, score(config, rollouts))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the scripted and loopback cases only")
    parser.add_argument("--demo-rows", type=int, default=4, help="demo prompts scored by the local judge")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        results = [quickstart_openai(work), quickstart_scripted(work),
                   multi_judge(work, prompts=3 if args.tiny else 6, steps=2, per_prompt=4)]
        if not args.tiny:
            results.append(demo_local(work, args.demo_rows))
    print(f"{'case':26} {'calls forecast':>14} {'actual':>7} {'error':>6}  {'tokens forecast':>15} "
          f"{'actual':>8} {'error':>7}  tokens counted by")
    worst_calls, worst_tokens = 0, 0.0
    for result in results:
        calls_error = round(result["forecast_calls"] - result["actual_calls"])
        tokens_error = ((result["forecast_tokens"] - result["actual_tokens"]) / result["actual_tokens"]
                        if result["actual_tokens"] else 0.0)
        worst_calls = max(worst_calls, abs(calls_error))
        worst_tokens = max(worst_tokens, abs(tokens_error))
        print(f"{result['case']:26} {result['forecast_calls']:>14g} {result['actual_calls']:>7} "
              f"{calls_error:>+6}  "
              f"{result['forecast_tokens']:>15} {result['actual_tokens']:>8} {tokens_error:>+7.1%}  "
              f"{'; '.join(result['counted_by'])}")
    print(f"largest error: calls {worst_calls}, tokens {worst_tokens:.1%} (goal: calls 0, tokens within 10%)")


if __name__ == "__main__":
    main()
