"""A row's rubric reaches the judge on every path the pipeline runs: data files and `judgerl score`,
the TRL column, verl `extra_info` (and a ground-truth object), an OpenRLHF label (JSON text with
the reference and the rubric) over real HTTP, and the Nova Lambda's `reference_answer` object.

The judge is the example's scripted overlap judge (not a model) behind a real reward YAML.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from judgerl.adapters import clear_pipelines
from judgerl.adapters.aws_lambda import handle
from judgerl.adapters.openrlhf import RewardRequest, build_items, create_app
from judgerl.adapters.trl import reward_function
from judgerl.adapters.verl import compute_score
from judgerl.cli import app
from judgerl.data import load_rollouts, load_samples
from judgerl.reward.pipeline import RewardPipeline
from rubric_fakes import GOOD, PITFALL, RUBRIC, write_reward
from test_adapter_openrlhf import running

QUESTION = "How should the dose of drug X change in an older patient?"
PITFALL_VALUE = 3 / 9  # r1 met (5), r4 pitfall present (-2), over 5 + 3 + 1


@pytest.fixture
def pipeline(tmp_path: Path):
    pipeline = RewardPipeline.from_config(write_reward(tmp_path))
    with pipeline:
        yield pipeline


def test_data_files_carry_the_rubric_column_and_a_reference_object(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    rows = [{"id": "a", "prompt": QUESTION, "rubric": RUBRIC},
            {"id": "b", "prompt": QUESTION, "reference": {"reference": "Lower it.", "rubric": RUBRIC}}]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    samples = load_samples(path).samples
    assert [s.metadata["rubric"] for s in samples] == [RUBRIC, RUBRIC]
    assert samples[1].reference == "Lower it."


def test_judgerl_score_scores_good_rows_and_names_file_line_field_of_a_bad_rubric(tmp_path: Path) -> None:
    rollouts = tmp_path / "rollouts.jsonl"
    rows = [{"id": "good", "prompt": QUESTION, "rubric": RUBRIC, "completion": GOOD},
            {"id": "pit", "prompt": QUESTION, "rubric": RUBRIC, "completion": PITFALL},
            {"id": "bad", "prompt": QUESTION, "completion": GOOD,
             "rubric": [{"criterion": "x", "weight": 1}, {"criterion": "y", "weight": "heavy"}]}]
    rollouts.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    output = tmp_path / "rewards.jsonl"
    result = CliRunner().invoke(app, ["score", "-c", str(write_reward(tmp_path)), "-i", str(rollouts),
                                      "-o", str(output)])
    assert result.exit_code == 0, result.output
    rewards = {row["sample_id"]: row for row in map(json.loads, output.read_text().splitlines())}
    assert rewards["good"]["value"] == pytest.approx(1.0)
    assert rewards["pit"]["value"] == pytest.approx(PITFALL_VALUE)
    assert rewards["pit"]["details"]["scores"]["rubric"]["details"]["criteria"]["r4"]["score"] is True
    bad = rewards["bad"]
    assert bad["status"] == "unscored" and bad["value"] is None
    assert bad["reason"].startswith(f"data_error: {rollouts}, line 3, field 'rubric[1].weight': ")


async def test_trl_column_arrives_as_a_kwarg(tmp_path: Path) -> None:
    try:
        reward = reward_function(write_reward(tmp_path))
        values = await reward(prompts=[QUESTION, QUESTION], completions=[GOOD, PITFALL],
                              rubric=[RUBRIC, RUBRIC])
    finally:
        clear_pipelines()
    assert values == [pytest.approx(1.0), pytest.approx(PITFALL_VALUE)]


def test_verl_extra_info_and_a_ground_truth_object(pipeline: RewardPipeline) -> None:
    by_extra = compute_score("med", PITFALL, "Lower it.", {"question": QUESTION, "rubric": RUBRIC},
                             reward_config=pipeline)
    by_truth = compute_score("med", GOOD, {"reference": "Lower it.", "rubric": RUBRIC},
                             {"question": QUESTION}, reward_config=pipeline)
    assert by_extra["score"] == pytest.approx(PITFALL_VALUE) and by_extra["unscored"] == 0.0
    assert by_truth["score"] == pytest.approx(1.0)


def test_openrlhf_json_label_carries_reference_and_rubric(pipeline: RewardPipeline) -> None:
    label = json.dumps({"reference": "Lower it.", "rubric": RUBRIC})
    [(sample, _)] = build_items(RewardRequest(query=[QUESTION + GOOD], prompts=[QUESTION], labels=[label]))
    assert sample.reference == "Lower it." and sample.metadata["rubric"] == RUBRIC
    with running(create_app(pipeline, token=None)) as url:
        response = httpx.post(f"{url}/get_reward", json={"query": [QUESTION + PITFALL], "prompts": [QUESTION],
                                                          "labels": [label]}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["rewards"] == [pytest.approx(PITFALL_VALUE)]


def test_nova_lambda_reference_answer_object(pipeline: RewardPipeline) -> None:
    event = [{"id": "n1", "messages": [{"role": "user", "content": QUESTION},
                                       {"role": "assistant", "content": PITFALL}],
              "reference_answer": {"reference": "Lower it.", "rubric": RUBRIC}},
             {"id": "n2", "messages": [{"role": "user", "content": QUESTION},
                                       {"role": "assistant", "content": GOOD}],
              "metadata": {"reference_answer": {"answer": "Lower it.", "rubric": RUBRIC}}}]
    results = handle(event, None, pipeline=pipeline)
    assert [result["aggregate_reward_score"] for result in results] == [pytest.approx(PITFALL_VALUE),
                                                                        pytest.approx(1.0)]


def test_rollout_files_keep_the_rubric_for_each_rollout(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"id": "a", "prompt": QUESTION, "rubric": RUBRIC, "completion": GOOD}) + "\n")
    [(sample, rollout)] = load_rollouts(path).pairs
    assert sample.metadata["rubric"] == RUBRIC and rollout.location and "line 1" in rollout.location


async def test_train_reward_finds_each_rows_rubric_by_its_id(pipeline: RewardPipeline) -> None:
    from judgerl.train.reward import TrainingReward
    from judgerl.types import Sample

    samples = [Sample("a", [{"role": "user", "content": QUESTION}], metadata={"rubric": RUBRIC}),
               Sample("b", [{"role": "user", "content": QUESTION}], metadata={"rubric": RUBRIC[:1]})]
    reward = TrainingReward(pipeline, samples)
    values = await reward(prompts=[QUESTION] * 2, completions=[PITFALL, PITFALL], id=["a", "b"])
    assert values == [pytest.approx(PITFALL_VALUE), pytest.approx(1.0)]
