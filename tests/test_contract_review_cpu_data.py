"""The CPU-sized contract review case study's packaged data (`judgerl demo --task contract-review`):
exactly what examples/contract_review/build_cpu_data.py generates, grounded references that pass the
packaged checks, one rubric item per planted issue, and splits that share no contract.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import types
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from judgerl.checks import build_check
from judgerl.config import load_reward_config
from judgerl.data import load_samples
from judgerl.distill.contract_study import study_folder
from judgerl.types import Rollout, Sample
from judgerl.validate.datasets import AnswerItem, load_labelled_file

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "contract_review"
FOLDER = study_folder()
FILES = ("train", "eval", "judge_train", "judge_held_out", "scorer_train")
LABELLED = ("judge_train", "judge_held_out", "scorer_train")
#: a labelled row's id is its contract's id, ":" and the kind of comment
CONTRACT_ID = re.compile(r"^(?P<split>train|eval|scorer|judge)-(?P<doc_type>[a-z_]+)-\d{3}$")


def rows(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FOLDER / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]


def contract_of(labelled_id: str) -> tuple[str, str]:
    """(contract id, doc type) of a labelled row."""
    contract, _kind = labelled_id.rsplit(":", 1)
    found = CONTRACT_ID.match(contract)
    assert found is not None, labelled_id
    return contract, found["doc_type"]


def rules_text(prompt: str) -> str:
    rules, _contract = prompt.split("\n\nCONTRACT:\n", 1)
    assert rules.startswith("RULES (")
    return rules


def test_committed_files_are_what_build_cpu_data_generates(monkeypatch: pytest.MonkeyPatch) -> None:
    # build_cpu_data imports the full-size clause library as `build_data` from its own folder
    monkeypatch.syspath_prepend(str(EXAMPLE))
    # imported afresh from that folder, and gone from sys.modules after the test
    monkeypatch.setitem(sys.modules, "build_data", types.ModuleType("build_data"))
    monkeypatch.delitem(sys.modules, "build_data")
    spec = importlib.util.spec_from_file_location("contract_review_build_cpu_data",
                                                  EXAMPLE / "build_cpu_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    assert Path(module.OUT).resolve() == FOLDER.resolve()
    built = module.build()
    assert set(built) == set(FILES)
    for name in FILES:
        assert rows(name) == built[name], f"{name}.jsonl is stale: run build_cpu_data.py"


def test_sizes_and_the_unseen_contract_type() -> None:
    train, evaluation = rows("train"), rows("eval")
    assert len(train) == 160 and len(evaluation) == 16
    ids = [row["id"] for row in train + evaluation]
    assert len(set(ids)) == len(ids)
    splits = Counter(row["split"] for row in evaluation)
    assert splits == {"seen_type": 8, "unseen_type": 8}
    train_types = {row["doc_type"] for row in train}
    unseen = {row["doc_type"] for row in evaluation if row["split"] == "unseen_type"}
    seen = {row["doc_type"] for row in evaluation if row["split"] == "seen_type"}
    assert len(unseen) == 1 and unseen.isdisjoint(train_types)
    assert seen <= train_types
    contracts = {row["contract"] for row in train}
    assert all(row["contract"] not in contracts for row in evaluation), "an eval contract is in train"


@pytest.mark.parametrize("name", ["train", "eval"])
def test_references_rubrics_and_contracts(name: str) -> None:
    for row in rows(name):
        contract, prompt = row["contract"], row["messages"][-1]["content"]
        words = len(contract.split())
        assert 70 <= words <= 150, (row["id"], words)
        assert contract in prompt
        rules = rules_text(prompt)
        comments = json.loads(row["reference"])["comments"]
        planted = [clause for clause in row["clauses"] if clause["issue"]]
        assert 1 <= len(planted) <= 2 and len(comments) == len(planted) == len(row["rubric"]), row["id"]
        for comment, clause, item in zip(comments, planted, row["rubric"], strict=True):
            assert comment["quote"] in contract, (row["id"], comment["quote"])
            assert comment["quote"] in clause["text"], (row["id"], comment["quote"])
            assert comment["quote"] not in rules, (row["id"], comment["quote"])
            assert comment["rule"] == clause["rule"]
            assert re.search(rf"^{comment['rule']} ", rules, re.MULTILINE), (row["id"], "rule not shown")
            assert f"rule {comment['rule']}" in item["criterion"], (row["id"], item)
            assert comment["quote"] in item["criterion"] and item["weight"] == 1


def packaged_checks() -> dict[str, Any]:
    config = load_reward_config(FOLDER / "reward.yaml")
    return {check.name: build_check(check, FOLDER) for check in config.checks}


@pytest.mark.parametrize("name", ["train", "eval"])
def test_every_reference_passes_the_packaged_checks(name: str) -> None:
    checks = packaged_checks()
    assert {"schema", "grounding"} <= set(checks)
    result = load_samples(FOLDER / f"{name}.jsonl")
    assert result.errors == [] and len(result.samples) == len(rows(name))
    for sample in result.samples:
        assert sample.reference is not None
        answer = Rollout(sample.id, sample.reference)
        for check_name, check in checks.items():
            score = check(sample, answer)
            assert score.value == 1.0, (sample.id, check_name, score.rationale)


def test_the_schema_check_refuses_a_bad_answer() -> None:
    """The packaged schema does reject things (so the reference passing it means something)."""
    schema = packaged_checks()["schema"]
    sample = Sample(id="s", messages=[{"role": "user", "content": "review"}])
    assert schema(sample, Rollout("s", '{"comments": [{"quote": "x", "rule": "P2"}]}')).value < 1.0
    bad_rule = '{"comments": [{"quote": "x", "rule": "Rule 2", "fix": "y"}]}'
    assert schema(sample, Rollout("s", bad_rule)).value < 1.0
    assert schema(sample, Rollout("s", "not JSON")).value == 0.0


@pytest.mark.parametrize("name", LABELLED)
def test_labelled_files_load_with_per_item_boolean_verdicts(name: str) -> None:
    items = load_labelled_file(FOLDER / f"{name}.jsonl")
    assert len(items) == len(rows(name))
    verdicts = []
    for item in items:
        assert isinstance(item, AnswerItem) and item.rubric, item.id
        assert item.score is not None and 0.0 <= item.score <= 1.0
        met = [entry["met"] for entry in item.rubric]
        assert all(isinstance(value, bool) for value in met), item.id
        assert item.score == pytest.approx(sum(met) / len(met)), item.id
        verdicts += met
        if item.category == "expert":
            assert all(met), item.id
    assert True in verdicts and False in verdicts, "both verdicts are there to learn"


def test_labelled_contracts_are_not_evaluated_and_the_gate_is_on_an_unseen_type() -> None:
    evaluation = {row["id"] for row in rows("eval")}
    eval_contracts = {row["contract"] for row in rows("eval")}
    train = {row["id"]: row for row in rows("train")}
    contracts = {name: {contract_of(row["id"]) for row in rows(name)} for name in LABELLED}
    for name in LABELLED:
        assert {contract for contract, _ in contracts[name]}.isdisjoint(evaluation), name
        for row in rows(name):
            assert all(contract not in row["prompt"] for contract in eval_contracts), (name, row["id"])
    ids = {name: {contract for contract, _ in found} for name, found in contracts.items()}
    assert ids["judge_train"].isdisjoint(ids["judge_held_out"])
    assert ids["scorer_train"].isdisjoint(ids["judge_train"] | ids["judge_held_out"])
    # the reward student's contracts are training contracts (their prompts the training prompts), or
    # contracts of the type the policy never trains on written for that student only
    written_for_the_student = 0
    for name in ("judge_train", "judge_held_out"):
        for row in rows(name):
            contract, doc_type = contract_of(row["id"])
            if contract.startswith("judge-"):
                assert name == "judge_train" and doc_type == "employment", row["id"]
                assert not any(row["prompt"] == other["messages"][-1]["content"] for other in train.values())
                written_for_the_student += 1
            else:
                assert row["prompt"] == train[contract]["messages"][-1]["content"]
    assert written_for_the_student > 0
    judge_types = {doc_type for _, doc_type in contracts["judge_train"]}
    held_types = {doc_type for _, doc_type in contracts["judge_held_out"]}
    assert held_types and held_types.isdisjoint(judge_types)
    # the scorer's contracts are its own: no contract text of the policy's training or evaluation
    scorer_contracts = {row["prompt"].split("\n\nCONTRACT:\n", 1)[1] for row in rows("scorer_train")}
    policy_contracts = {row["contract"] for name in ("train", "eval") for row in rows(name)}
    assert all(not text.startswith(contract + "\n\n") for text in scorer_contracts
               for contract in policy_contracts), "a scorer contract is a training or evaluation contract"
    assert len(scorer_contracts) == len(ids["scorer_train"])
