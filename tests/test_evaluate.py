"""Evaluation runs: figures in summary.json must match the rows in samples.jsonl.

The reward is a real pipeline (json_valid + length checks, a rubric judge) whose judge backend is
scripted (deterministic answers from the prompt text; some answers garbage -> unscored). The
policy is either a tiny real Llama built from a config (local generation path) or a scripted
generator with known completions (so that schema validity is not trivially 0 or 1).
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from pathlib import Path
from typing import ClassVar

import pytest

from judgerl.backends.scripted import ScriptedBackend
from judgerl.errors import ConfigError
from judgerl.models.policy import Generation, SamplingConfig
from judgerl.reward.pipeline import RewardPipeline
from judgerl.run.evaluate import (
    EvalSummary,
    Generator,
    ModelSpec,
    evaluate_models,
    parse_endpoint_option,
    parse_model_option,
)
from judgerl.run.folder import load_eval_summaries, read_rows
from judgerl.types import Sample

REWARD = {
    "backends": {"judge": {"type": "scripted"}},
    "checks": [
        {"name": "schema", "type": "json_valid", "weight": 1.0},
        {"name": "length", "type": "length", "unit": "words", "min": 1, "max": 6, "weight": 0.5},
    ],
    "judges": [
        {
            "name": "quality",
            "type": "rubric",
            "backend": "judge",
            "criteria": [
                {"name": "correct", "kind": "check", "description": "answers the question"},
                {
                    "name": "clear",
                    "kind": "likert",
                    "description": "clear",
                    "levels": {1: "unclear", 2: "muddled", 3: "so-so", 4: "clear", 5: "very clear"},
                },
            ],
        }
    ],
    "failure_budget": None,
}


def answer_of(request) -> str:
    text = "\n".join(message["content"] for message in request.messages if message["role"] == "user")
    fenced = re.findall(r"<<<ANSWER_\w+>>>(.*?)<<<END_ANSWER_\w+>>>", text, re.S)
    assert fenced, "the rubric prompt fences the answer"
    return fenced[-1].strip()


def scripted_judge(criteria: tuple[str, ...] = ("correct", "clear")):
    """Deterministic verdicts from a hash of the answer; 'UNSCORABLE' answers get garbage."""

    def respond(request) -> str:
        answer = answer_of(request)
        if "UNSCORABLE" in answer:
            return "no json here"
        digest = hashlib.sha256(answer.encode()).digest()
        verdicts = {
            "correct": {"score": digest[0] % 2 == 0, "rationale": "<b>hash</b>"},
            "clear": {"score": 1 + digest[1] % 5, "rationale": "scripted"},
        }
        return json.dumps({"criteria": {name: verdicts[name] for name in criteria}})

    return respond


def pipeline() -> RewardPipeline:
    return RewardPipeline.from_config(REWARD, backends={"judge": ScriptedBackend(scripted_judge())})


def heldout_pipeline() -> RewardPipeline:
    config = json.loads(json.dumps(REWARD))
    config["judges"][0]["criteria"] = config["judges"][0]["criteria"][:1]
    return RewardPipeline.from_config(
        config, backends={"judge": ScriptedBackend(scripted_judge(("correct",)))}
    )


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_policy import build_tiny_model_dir

    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


SAMPLES = [Sample(f"p{i}", [{"role": "user", "content": f"Question {i}: reply in JSON"}]) for i in range(5)]


class ScriptedGenerator(Generator):
    """Known completions per prompt (a test stand-in for a policy): valid JSON, prose, unscorable."""

    ANSWERS: ClassVar[list[str]] = [
        '{"answer": "yes"}',
        "plain words only here",
        '{"answer": 1, "UNSCORABLE": true}',
        "UNSCORABLE prose",
        '{"a": [1, 2]}',
    ]

    def __init__(self, spec: ModelSpec, sampling: SamplingConfig, fail_after: int | None = None) -> None:
        self.sampling = sampling
        self.calls = 0
        self.fail_after = fail_after
        self.closed = False

    def generate(self, samples):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("policy crashed")
        out = []
        for sample in samples:
            index = int(sample.id[1:])
            out.append(
                [
                    Generation(
                        self.ANSWERS[(index + j) % len(self.ANSWERS)] + f" v{j}" * (j % 2),
                        completion_tokens=3 + j,
                        finish_reason="stop",
                    )
                    for j in range(self.sampling.k)
                ]
            )
        return out

    def close(self) -> None:
        self.closed = True


def recompute(rows: list[dict]) -> dict:
    scored = [r for r in rows if r["status"] in ("ok", "gated")]
    by_prompt: dict[str, list[float]] = {}
    for row in scored:
        by_prompt.setdefault(row["prompt_id"], []).append(row["reward"])
    return {
        "validity": sum(1 for r in rows if r["components"]["schema"] == 1.0) / len(rows),
        "reward_mean": statistics.fmean(r["reward"] for r in scored),
        "best": statistics.fmean(max(v) for v in by_prompt.values()),
        "mean": statistics.fmean(statistics.fmean(v) for v in by_prompt.values()),
        "unscored": sum(1 for r in rows if r["status"] == "unscored") / len(rows),
    }


def test_summary_figures_match_the_rows(tmp_path: Path):
    with pipeline() as pipe, heldout_pipeline() as heldout:
        result = evaluate_models(
            {"base": ModelSpec(source="scripted")},
            SAMPLES,
            pipe,
            k=2,
            heldout_reward_config=heldout,
            out_dir=tmp_path,
            sampling=SamplingConfig(batch_size=2),
            generator_factory=lambda spec, sampling: ScriptedGenerator(spec, sampling),
        )
    assert isinstance(result, EvalSummary)
    rows = read_rows(tmp_path / "eval" / "base" / "samples.jsonl")
    assert len(rows) == len(SAMPLES) * 2
    assert {(r["prompt_id"], r["k"]) for r in rows} == {(s.id, j) for s in SAMPLES for j in range(2)}
    summary = json.loads((tmp_path / "eval" / "base" / "summary.json").read_text())
    assert summary == json.loads(json.dumps(result.models["base"]))
    expected = recompute(rows)
    assert 0 < expected["validity"] < 1, "the scripted answers mix valid JSON and prose"
    assert 0 < expected["unscored"] < 1, "some answers are unscorable"
    assert summary["schema_check"] == "schema"
    assert summary["schema_validity"] == pytest.approx(expected["validity"])
    assert summary["reward_mean"] == pytest.approx(expected["reward_mean"], abs=1e-6)
    assert summary["best_of_k"] == pytest.approx(expected["best"], abs=1e-6)
    assert summary["mean_of_k"] == pytest.approx(expected["mean"], abs=1e-6)
    assert summary["best_of_k"] >= summary["mean_of_k"]
    assert summary["unscored_share"] == pytest.approx(expected["unscored"])
    # unscored rows keep their reason and no made-up reward
    unscored = [r for r in rows if r["status"] == "unscored"]
    assert all(r["reward"] is None and r["reason"] for r in unscored)
    # per-criterion scores and components are kept per row and averaged in the summary
    assert set(summary["components"]) == {"schema", "length", "quality"}
    assert set(summary["criteria"]) == {"quality.correct", "quality.clear"}
    correct = [r["criteria"]["quality.correct"] for r in rows if "quality.correct" in r["criteria"]]
    assert summary["criteria"]["quality.correct"] == pytest.approx(statistics.fmean(correct), abs=1e-6)
    # held-out judge: its own figures, from its own scores
    held = [r["heldout"]["reward"] for r in rows if r["heldout"]["status"] == "ok"]
    assert summary["heldout"]["reward_mean"] == pytest.approx(statistics.fmean(held), abs=1e-6)
    assert summary["heldout"]["best_of_k"] >= summary["heldout"]["mean_of_k"]
    assert "correct" in rows[0]["rationale"] or rows[0]["status"] != "ok"
    # judge accounting from the runtime
    assert summary["judge"]["calls"] > 0


def test_rows_written_before_a_crash_are_kept_and_resume_finishes(tmp_path: Path):
    made: list[ScriptedGenerator] = []

    def crashing(spec, sampling):
        made.append(ScriptedGenerator(spec, sampling, fail_after=2))
        return made[-1]

    with pipeline() as pipe, pytest.raises(RuntimeError, match="policy crashed"):
        evaluate_models(
            {"rft": ModelSpec(source="x")},
            SAMPLES,
            pipe,
            k=2,
            out_dir=tmp_path,
            sampling=SamplingConfig(batch_size=2),
            generator_factory=crashing,
        )
    rows_path = tmp_path / "eval" / "rft" / "samples.jsonl"
    kept = read_rows(rows_path)
    assert {r["prompt_id"] for r in kept} == {"p0", "p1", "p2", "p3"}, "both scored batches survive"
    assert made[0].closed
    with rows_path.open("a") as handle:  # a torn last line, as after SIGKILL
        handle.write('{"prompt_id": "p4", "k": 0, "compl')
    with pipeline() as pipe:
        evaluate_models(
            {"rft": ModelSpec(source="x")},
            SAMPLES,
            pipe,
            k=2,
            out_dir=tmp_path,
            sampling=SamplingConfig(batch_size=2),
            generator_factory=lambda spec, sampling: ScriptedGenerator(spec, sampling),
        )
    rows = read_rows(rows_path)
    assert sorted((r["prompt_id"], r["k"]) for r in rows) == sorted(
        (s.id, j) for s in SAMPLES for j in range(2)
    )
    summary = load_eval_summaries(tmp_path)["rft"]
    assert summary["resumed_prompts"] == 4 and summary["samples"] == 10


def test_tiny_local_model_end_to_end(tmp_path: Path, tiny_model_dir: Path):
    with pipeline() as pipe:
        result = evaluate_models(
            {"base": ModelSpec(source=str(tiny_model_dir))},
            SAMPLES[:3],
            pipe,
            k=2,
            out_dir=tmp_path / "run",
            sampling=SamplingConfig(max_new_tokens=6, batch_size=2, seed=1),
        )
    rows = read_rows(tmp_path / "run" / "eval" / "base" / "samples.jsonl")
    assert len(rows) == 6
    assert all(1 <= r["completion_tokens"] <= 6 for r in rows)
    summary = result.models["base"]
    assert summary["model"] == str(tiny_model_dir)
    assert summary["schema_validity"] == pytest.approx(recompute(rows)["validity"])
    assert summary["best_of_k"] >= summary["mean_of_k"]
    assert summary["generation_seconds"] > 0


def test_model_and_endpoint_options():
    assert parse_model_option("rft=runs/x/rft/checkpoint-4")[1].source == "runs/x/rft/checkpoint-4"
    label, spec = parse_endpoint_option("api=http://127.0.0.1:9/v1,model=m,api_key_env=KEY")
    assert label == "api" and spec.endpoint is not None and spec.endpoint.options["api_key_env"] == "KEY"
    with pytest.raises(ConfigError, match="model=NAME"):
        parse_endpoint_option("api=http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="label"):
        parse_model_option("../evil=path")
    with pytest.raises(ConfigError, match="no check named"):
        evaluate_models(
            {"base": ModelSpec(source="x")},
            SAMPLES,
            REWARD | {"backends": {}, "judges": []},
            k=1,
            out_dir="/nonexistent",
            schema_check_name="missing",
            generator_factory=lambda spec, sampling: ScriptedGenerator(spec, sampling),
        )


def test_cli_evaluates_an_endpoint_over_http(tmp_path: Path, fake_openai):
    """An OpenAI-compatible policy on loopback: seeds vary per answer; a 500ing prompt is kept as failed."""
    from typer.testing import CliRunner

    from fake_openai import Reply
    from judgerl.cli import app

    def respond(request):
        body = request.body
        if "FAIL" in body["messages"][-1]["content"]:
            return Reply(status=500, error="boom")
        return Reply(
            text='{"answer": 1}' if body.get("seed", 0) % 2 == 0 else "not json at all",
            usage={"prompt_tokens": 5, "completion_tokens": 4},
        )

    fake_openai.responder = respond
    reward = json.loads(json.dumps(REWARD))
    reward["backends"]["judge"]["answer"] = {
        "criteria": {"correct": {"score": True, "rationale": "ok"}, "clear": {"score": 5, "rationale": "ok"}}
    }
    reward["runtime"] = {"max_attempts": 2, "backoff_base_s": 0.0, "backoff_max_s": 0.0}
    (tmp_path / "reward.yaml").write_text(json.dumps(reward))
    rows = [
        {"id": "a", "prompt": "JSON please"},
        {"id": "b", "prompt": "FAIL this one"},
        {"id": "c", "prompt": "more JSON"},
        {"id": "d", "prompt": "left out by --limit"},
    ]
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--reward",
            str(tmp_path / "reward.yaml"),
            "--data",
            str(tmp_path / "eval.jsonl"),
            "--endpoint",
            f"api={fake_openai.url},model=tiny-chat",
            "--k",
            "2",
            "--limit",
            "3",
            "--max-new-tokens",
            "16",
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 0, result.output
    rows_out = read_rows(tmp_path / "run" / "eval" / "api" / "samples.jsonl")
    assert sorted((r["prompt_id"], r["k"]) for r in rows_out) == [(p, j) for p in "abc" for j in range(2)]
    failed = [r for r in rows_out if r["prompt_id"] == "b"]
    assert all(r["status"] == "generation_failed" and r["reward"] is None and r["reason"] for r in failed)
    bodies = [request.body for request in fake_openai.chat_requests]
    assert all(body["model"] == "tiny-chat" and body["max_tokens"] == 16 for body in bodies)
    assert len({body["seed"] for body in bodies if "FAIL" not in body["messages"][-1]["content"]}) == 4
    summary = load_eval_summaries(tmp_path / "run")["api"]
    generated = [r for r in rows_out if r["status"] != "generation_failed"]
    valid = sum(1 for r in generated if r["components"]["schema"] == 1.0) / len(generated)
    assert summary["generation_failed"] == 2 and summary["schema_validity"] == pytest.approx(valid)
    assert summary["model"] == f"{fake_openai.url} (tiny-chat)"
