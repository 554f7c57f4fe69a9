"""Rubrics written for each prompt (a row's `rubric` column), scored by the rubric judge.

Through the real ModelRuntime (and its SQLite cache where it matters) with the example's scripted
overlap judge, which is not a model: it answers the judge's real requests by a fixed word rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from judgerl.backends.scripted import ScriptedBackend
from judgerl.config import JudgeConfig, RuntimeConfig
from judgerl.judges import build_judge
from judgerl.judges.rubric import RubricJudge
from judgerl.rubric_items import RubricError, parse_rubric_items, rubric_reward
from judgerl.runtime.model_runtime import ModelRuntime
from judgerl.types import Rollout, Sample
from rubric_fakes import GOOD, PITFALL, RUBRIC, scripted_judge

JUDGE = scripted_judge()
QUESTION = [{"role": "user", "content": "How should the dose of drug X change in an older patient?"}]


def sample(rubric: Any = RUBRIC, **metadata: Any) -> Sample:
    return Sample("s1", QUESTION, metadata={"rubric": rubric, **metadata})


def make(runtime_config: RuntimeConfig | None = None, **options: Any,
         ) -> tuple[RubricJudge, ScriptedBackend, ModelRuntime]:
    backend = ScriptedBackend(JUDGE.respond)
    runtime = ModelRuntime({"judge": backend}, runtime_config)
    judge = build_judge(JudgeConfig(name="rubric", type="rubric", backend="judge", **options), runtime)
    assert isinstance(judge, RubricJudge)
    return judge, backend, runtime


async def test_explicit_all_in_one_call_weighted_sum_with_every_item_in_details_and_journal() -> None:
    judge, backend, runtime = make()
    score = await judge.score(sample(), Rollout("s1", GOOD, id="a"))
    assert len(backend.calls) == 1, "all items in one JSON answer by default"
    assert score.value == pytest.approx(1.0), "every positive item met, no pitfall"
    r4 = score.details["criteria"]["r4"]
    assert r4["score"] is False and r4["weight"] == -2 and r4["category"] == "pitfall" and r4["pitfall"]
    assert score.details["criteria"]["r1"]["criterion"] == RUBRIC[0]["criterion"]
    assert score.details["rubric"]["items"] == 4
    [entry] = runtime.journal_entries
    assert set(entry["scores"]["criteria"]) == {"r1", "r2", "r3", "r4"}
    assert entry["scores"]["criteria"]["r2"]["rationale"] == "words found in the answer"
    assert entry["inputs"]["rubric"][3] == {"criterion": RUBRIC[3]["criterion"], "weight": -2.0,
                                             "category": "pitfall"}
    prompt = backend.calls[0].messages[-1]["content"]
    assert "r4 (pass/fail): [pitfall: true if the answer does this] Recommends doubling" in prompt


async def test_a_pitfall_present_takes_its_weight_off_the_positive_sum() -> None:
    judge, _, _ = make()
    score = await judge.score(sample(), Rollout("s1", PITFALL, id="p"))
    met = {name: item["score"] for name, item in score.details["criteria"].items()}
    assert met == {"r1": True, "r2": False, "r3": False, "r4": True}
    assert score.value == pytest.approx((5 - 2) / (5 + 3 + 1))


@pytest.mark.parametrize(("items_per_call", "calls"), [(1, 4), (3, 2), (None, 1)])
async def test_items_per_call_batches_the_verdicts(items_per_call: int | None, calls: int) -> None:
    judge, backend, _ = make(items_per_call=items_per_call)
    score = await judge.score(sample(), Rollout("s1", PITFALL))
    assert len(backend.calls) == calls
    assert score.value == pytest.approx(3 / 9), "batching does not change the verdicts"
    shown = [set(JUDGE._LINE.findall(call.messages[-1]["content"])) for call in backend.calls]
    assert sum(len(names) for names in shown) == 4


async def test_logprob_asks_one_item_per_call_with_the_item_last() -> None:
    judge, backend, _ = make(scoring="logprob")
    score = await judge.score(sample(), Rollout("s1", PITFALL))
    assert len(backend.calls) == 4
    texts = [call.messages[-1]["content"] for call in backend.calls]
    prefixes = {text.rsplit("Criterion: ", 1)[0] for text in texts}
    assert len(prefixes) == 1, "every question of one answer shares everything before the item"
    assert judge.prompt.name == "rubric_items_logprob", "row rubrics only: the instruction comes first"
    assert all("\n" not in text.rsplit("Criterion: ", 1)[1] for text in texts), "the item is the last line"
    assert score.value == pytest.approx((0.9 * 5 + 0.1 * 3 + 0.1 * 1 - 0.9 * 2) / 9)


async def test_implicit_is_one_holistic_call_given_every_weighted_item() -> None:
    judge, backend, runtime = make(mode="implicit")
    score = await judge.score(sample(), Rollout("s1", PITFALL))
    assert len(backend.calls) == 1
    prompt = backend.calls[0].messages[-1]["content"]
    assert "[PITFALL, must not happen, weight -2] Recommends doubling the dose" in prompt
    assert "[essential, weight 5]" in prompt
    level = score.details["implicit_score"]
    assert level == 1 + round(9 * 3 / 9) and score.value == pytest.approx((level - 1) / 9)
    assert runtime.journal_entries[0]["mode"] == "implicit"


async def test_row_items_join_the_configs_own_criteria() -> None:
    criteria = [{"name": "polite", "description": "Uses a courteous patient tone", "weight": 2}]
    judge, _, _ = make(criteria=criteria)
    score = await judge.score(sample(), Rollout("s1", GOOD))
    assert set(score.details["criteria"]) == {"polite", "r1", "r2", "r3", "r4"}
    assert score.value == pytest.approx(9 / 11), "polite (2) fails by word overlap, all row items met"
    no_rubric = Sample("s2", QUESTION)
    score = await judge.score(no_rubric, Rollout("s2", GOOD))
    assert set(score.details["criteria"]) == {"polite"}, "a row without a rubric: the config's criteria"


async def test_cache_keys_include_the_items(tmp_path: Path) -> None:
    judge, backend, runtime = make(RuntimeConfig(cache_path=str(tmp_path / "cache.sqlite")))
    try:
        first = await judge.score(sample(), Rollout("s1", GOOD, id="a"))
        again = await judge.score(sample(), Rollout("s1", GOOD, id="b"))
        other = await judge.score(sample(RUBRIC[:2]), Rollout("s1", GOOD, id="c"))
    finally:
        await runtime.aclose()
    assert len(backend.calls) == 2, "the same items hit the cache; other items are a new call"
    assert first.value == again.value
    assert set(other.details["criteria"]) == {"r1", "r2"}


async def test_trajectory_scope_reads_the_row_rubric() -> None:
    judge, backend, _ = make(scope="trajectory")
    trajectory = [{"role": "assistant", "content": None,
                   "tool_calls": [{"id": "c1", "type": "function",
                                   "function": {"name": "lookup", "arguments": "{}"}}]},
                  {"role": "tool", "tool_call_id": "c1", "content": "creatinine clearance 40"},
                  {"role": "assistant", "content": GOOD}]
    rollout = Rollout("s1", GOOD, trajectory=trajectory)
    score = await judge.score(sample(), rollout)
    assert score.details["scope"] == "trajectory"
    assert set(score.details["criteria"]) == {"r1", "r2", "r3", "r4"}
    assert "r4 (pass/fail)" in backend.calls[0].messages[-1]["content"]


def test_dry_run_answers_the_rows_items() -> None:
    judge, _, _ = make()
    request = judge.generate_request(sample(), Rollout("s1", GOOD))
    assert set(json.loads(judge.dry_run_answer(request))["criteria"]) == {"r1", "r2", "r3", "r4"}


BAD = [
    ([], "rubric", "empty list"),
    ([{"weight": 2}], "rubric[0].criterion", "criterion text (missing)"),
    ([{"criterion": "   ", "weight": 2}], "rubric[0].criterion", "criterion text (empty)"),
    ([{"criterion": "a", "weight": "five"}], "rubric[0].weight", "non-zero number, got a string"),
    ([{"criterion": "a", "weight": True}], "rubric[0].weight", "non-zero number, got a boolean"),
    ([{"criterion": "a", "weight": 0}], "rubric[0].weight", "must not be 0"),
    ([{"criterion": "Names the dose", "weight": 1}, {"criterion": "names  the DOSE", "weight": 2}],
     "rubric[1].criterion", "the same criterion as rubric[0]"),
    ([{"criterion": f"item {index}", "weight": 1} for index in range(5)], "rubric", "more than max_items=4"),
    ([{"criterion": "a", "weight": -1}], "rubric", "at least one needs a positive weight"),
    ("not json", "rubric", "not a list of items"),
    ([{"criterion": "a", "weight": 2, "category": "pitfall"}], "rubric[0].weight",
     "pitfall needs a negative"),
]


@pytest.mark.parametrize(("rubric", "field", "message"), BAD)
async def test_a_bad_rubric_is_that_rows_data_error_naming_file_line_and_field(rubric: Any, field: str,
                                                                               message: str) -> None:
    judge, backend, runtime = make(max_items=4)
    rollout = Rollout("s1", GOOD, id="s1/0", location="rollouts.jsonl, line 3")
    score = await judge.score(sample(rubric), rollout)
    assert score.value is None, "a bad rubric is never a score"
    assert (score.reason or "").startswith(f"data_error: rollouts.jsonl, line 3, field '{field}': ")
    assert message in (score.reason or "")
    assert backend.calls == [], "nothing is asked about a rubric that cannot be scored"
    assert runtime.journal_entries[0]["outcome"] == "unscored"


async def test_a_row_without_rubric_and_a_judge_without_criteria_is_a_data_error() -> None:
    judge, backend, _ = make()
    score = await judge.score(Sample("s", QUESTION), Rollout("s", GOOD))
    assert score.value is None and "has no rubric" in (score.reason or "") and not backend.calls


def test_parse_reads_rar_description_and_json_text() -> None:
    items = parse_rubric_items(json.dumps([{"title": "t", "description": "Essential: x", "weight": 5}]))
    assert items[0].criterion == "Essential: x" and items[0].weight == 5.0
    with pytest.raises(RubricError) as info:
        parse_rubric_items([{"criterion": "x", "weight": float("nan")}], field="items")
    assert info.value.field == "items[0].weight"


def test_reward_formula() -> None:
    assert rubric_reward([5, 3, 1, -2], [1, 1, 1, 0]) == 1.0
    assert rubric_reward([5, 3, 1, -2], [0, 0, 1, 1]) == 0.0, "clipped at 0"
    assert rubric_reward([4, -2], [1, 1]) == pytest.approx(0.5)


def test_a_rubric_read_from_parquet_as_numpy_is_read_as_a_list() -> None:
    numpy = pytest.importorskip("numpy")
    items = numpy.array([{"criterion": "Says yes", "weight": numpy.int64(2)}], dtype=object)
    [item] = parse_rubric_items(items)
    assert item.weight == 2.0 and isinstance(item.weight, float)
