"""Does judgerl's reward slow GRPO down? Step time of plain TRL vs `judgerl train`, same everything else.

Why: a judge reward is a network call per rollout. The naive way to use one with TRL is a plain
synchronous reward function that asks the judge about each completion in turn, so a step waits
for `global_batch_size` round trips. judgerl's reward sends them all at once (async, concurrent,
cached), so with a judge that has latency it should make a step no slower, and usually faster.

Both runs use the same tiny Llama (built and saved by tests/tiny_policy.py, no download), the
demo prompts (src/judgerl/demo/train.jsonl), the same GRPOConfig (built from one recipe), and the
same reward: a length check (weight 0.5) plus a one-criterion rubric judge served by a fake
OpenAI-compatible judge on 127.0.0.1 with a fixed latency per request (tests/fake_openai.py).

(a) plain TRL: `GRPOTrainer` with a sync reward function; one `httpx.post` per completion.
(b) judgerl: `judgerl.train.grpo.GrpoRun` (the `judgerl train` code path, monitors included).

    .venv/bin/python bench/train_overhead.py [--steps 4] [--latency 0.1] [--batch 8]
    .venv/bin/python bench/train_overhead.py --tiny     # smoke run (CI): it works, figures not meaningful

Prints both step times and the ratio (b)/(a); the target is <= 1.0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fake_openai import FakeOpenAIServer, RecordedRequest, Reply  # noqa: E402
from tiny_policy import build_tiny_model_dir  # noqa: E402

WORDS = re.compile(r"\w+")


def verdict(text: str) -> bool:
    """The fake judge's deterministic pass/fail for a judge prompt."""
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % 2 == 0


def judge_reply(request: RecordedRequest) -> Reply:
    passed = verdict(request.prompt)
    return Reply(text=json.dumps({"criteria": {"clear": {"score": passed, "rationale": "fake"}}}),
                 usage={"prompt_tokens": 200, "completion_tokens": 20, "total_tokens": 220})


def reward_config(url: str) -> dict[str, Any]:
    return {
        "backends": {"judge": {"type": "openai", "base_url": url, "model": "fake-judge", "api_key": "none",
                               "max_concurrency": 64}},
        "checks": [{"name": "length", "type": "length", "unit": "words", "min": 1, "max": 40, "weight": 0.5}],
        "judges": [{"name": "quality", "type": "rubric", "backend": "judge", "weight": 1.0,
                    "criteria": [{"name": "clear", "description": "The reply is clear."}]}],
        "failure_budget": 1.0,
    }


def recipe_for(workdir: Path, url: str, steps: int, batch: int, output: str) -> Any:
    from judgerl.run.workflow import DEMO_RECIPE
    from judgerl.train.recipe import load_recipe

    return load_recipe({
        "model": {"name_or_path": str(workdir / "model"), "lora": {"enabled": False}},
        "data": {"train": str(DEMO_RECIPE.parent / "train.jsonl")},
        "reward": reward_config(url),
        "rollout": {"number_generation": 4, "max_new_tokens": 16},
        "trainer": {"max_steps": steps, "global_batch_size": batch, "save_steps": 10_000, "save_top_k": 1,
                    "learning_rate": 1e-3},
        "monitors": {"progress": False},
        "logging": {"output_dir": str(workdir / output), "tensorboard": False, "overwrite": True},
    })


def naive_reward_function(url: str) -> Any:
    """What a TRL user writes first: a sync function, one judge request per completion."""
    import httpx

    client = httpx.Client(timeout=60)

    def naive_judge_reward(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        rewards = []
        for prompt, completion in zip(prompts, completions, strict=True):
            answer = completion[-1]["content"] if isinstance(completion, list) else completion
            question = prompt[-1]["content"] if isinstance(prompt, list) else prompt
            body = {"model": "fake-judge", "temperature": 0, "messages": [
                {"role": "system", "content": "You grade answers. Reply with JSON."},
                {"role": "user", "content": f"Question: {question}\nAnswer: {answer}\nIs the reply clear?"}]}
            response = client.post(f"{url}/chat/completions", json=body)
            response.raise_for_status()
            text = response.json()["choices"][0]["message"]["content"]
            judge = 1.0 if json.loads(text)["criteria"]["clear"]["score"] else 0.0
            words = len(WORDS.findall(answer))
            length = 1.0 if 1 <= words <= 40 else 0.0
            rewards.append((0.5 * length + judge) / 1.5)
        return rewards

    return naive_judge_reward


def timed_train(trainer: Any) -> float:
    started = time.perf_counter()
    trainer.train()
    return time.perf_counter() - started


def run_plain(workdir: Path, url: str, steps: int, batch: int) -> float:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer

    from judgerl.train.grpo import grpo_config
    from judgerl.train.splits import grpo_dataset, load_split

    recipe = recipe_for(workdir, url, steps, batch, "plain")
    tokenizer = AutoTokenizer.from_pretrained(str(workdir / "model"))
    model = AutoModelForCausalLM.from_pretrained(str(workdir / "model"))
    trainer = GRPOTrainer(model=model, reward_funcs=[naive_reward_function(url)], args=grpo_config(recipe),
                          train_dataset=grpo_dataset(load_split(recipe, "train"), chat=True),
                          processing_class=tokenizer)
    return timed_train(trainer) / steps


def run_judgerl(workdir: Path, url: str, steps: int, batch: int) -> float:
    from judgerl.train.grpo import GrpoRun

    grpo = GrpoRun(recipe_for(workdir, url, steps, batch, "judgerl"))
    try:
        return timed_train(grpo.trainer) / steps
    finally:
        grpo.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="GRPO steps per run")
    parser.add_argument("--latency", type=float, default=0.1, help="judge latency per request, seconds")
    parser.add_argument("--batch", type=int, default=8, help="completions per step (global batch)")
    parser.add_argument("--tiny", action="store_true", help="a smoke run: 1 GRPO step, 4 completions")
    args = parser.parse_args(argv)
    if args.tiny:
        args.steps, args.batch, args.latency = 1, 4, 0.01

    import transformers

    transformers.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAIServer(latency_s=args.latency,
                                                                 record_bodies=True,
                                                                 watch_disconnects=False) as server:
        server.responder = judge_reply
        workdir = Path(tmp)
        build_tiny_model_dir(workdir / "model")
        plain = run_plain(workdir, server.url, args.steps, args.batch)
        plain_requests = server.request_count
        judgerl = run_judgerl(workdir, server.url, args.steps, args.batch)
        judgerl_requests = server.request_count - plain_requests
    print(f"judge latency {args.latency * 1000:.0f} ms, {args.batch} completions/step, {args.steps} steps")
    print(f"(a) plain TRL, sync reward : {plain:.3f} s/step  ({plain_requests} judge requests)")
    print(f"(b) judgerl train          : {judgerl:.3f} s/step  ({judgerl_requests} judge requests)")
    print(f"ratio (b)/(a)              : {judgerl / plain:.2f}  (target <= 1.0)")


if __name__ == "__main__":
    main()
