"""Judge panels (`type: panel`): members on their own backends, combined, abstaining on disagreement.

Members are real rubric / pairwise judges on scripted backends (which say so in their name) or on
the fake OpenAI server over loopback; everything above the backend (runtime, cache, journal,
pipeline, CLI) runs for real.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fake_openai import FakeOpenAIServer, RecordedRequest, Reply
from judgerl.backends.base import Completion, CompletionRequest, Usage
from judgerl.backends.scripted import ScriptedBackend
from judgerl.cli import app
from judgerl.errors import BackendError, ConfigError, FatalBackendError
from judgerl.judges.panel import PairwisePanel, PointwisePanel, combine_values, member_failure
from judgerl.reward.pipeline import RewardPipeline
from judgerl.types import Rollout, Sample

CRITERIA = [{"name": "helpful", "kind": "check", "description": "The answer helps."}]
ANSWER_RE = re.compile(r"<<<ANSWER_\w+>>>\n(.*?)\n<<<END_ANSWER_\w+>>>", re.DOTALL)


def p_pass(p: float | dict[str, float]):
    """A scripted judge giving P(PASS) = p (or p[answer text]) on one-token logprob requests."""
    def respond(request: CompletionRequest) -> Completion:
        value = p
        if isinstance(p, dict):
            match = ANSWER_RE.search(request.messages[-1]["content"])
            assert match is not None
            value = p[match.group(1)]
        value = min(max(float(value), 1e-9), 1 - 1e-9)
        return Completion(text="PASS", model="scripted-judge", usage=Usage(20, 1),
                          candidate_logprobs={"PASS": math.log(value), "FAIL": math.log(1 - value)})
    return respond


def failing(request: CompletionRequest) -> Completion:
    raise BackendError("server error 400: bad request for this judge", retryable=False, status=400)


def member(name: str, backend: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "type": "rubric", "backend": backend, "scoring": "logprob", "criteria": CRITERIA,
            **options}


def panel_config(members: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    backends = {m["backend"]: {"type": "scripted"} for m in members}
    return {"backends": backends, "failure_budget": None, "runtime": options.pop("runtime", {}),
            "judges": [{"name": "panel", "type": "panel", "members": members, **options}]}


def sample(sample_id: str = "s1") -> Sample:
    return Sample(id=sample_id, messages=[{"role": "user", "content": "How do I reset my password?"}],
                  reference="Use the reset link.")


def score(config: dict[str, Any], backends: dict[str, Any], answers: list[str]) -> list[Any]:
    with RewardPipeline.from_config(config, backends=backends) as pipeline:
        items = [(sample(), Rollout("s1", answer, id=f"s1#{index}")) for index, answer in enumerate(answers)]
        return pipeline.score_batch_sync(items)


# -- abstention, quorum, combine ----------------------------------------------------------------

def test_members_that_disagree_make_the_rollout_unscored_with_every_members_score() -> None:
    config = panel_config([member("strict", "a"), member("lenient", "b")], abstain_if={"spread_above": 0.5})
    (reward,) = score(config, {"a": ScriptedBackend(p_pass(0.1)), "b": ScriptedBackend(p_pass(0.9))},
                      ["Click the link."])
    assert reward.status == "unscored" and reward.value is None
    assert reward.reason.startswith("panel_disagreement: spread 0.800 > 0.5")
    panel = reward.details["scores"]["panel"]
    members = panel["details"]["members"]
    assert members["strict"]["value"] == pytest.approx(0.1)
    assert members["lenient"]["value"] == pytest.approx(0.9)
    assert panel["details"]["spread"] == pytest.approx(0.8)


def test_members_that_agree_within_the_spread_are_combined() -> None:
    config = panel_config([member("strict", "a"), member("lenient", "b")], abstain_if={"spread_above": 0.5})
    (reward,) = score(config, {"a": ScriptedBackend(p_pass(0.6)), "b": ScriptedBackend(p_pass(0.8))},
                      ["Click the link."])
    assert reward.status == "ok" and reward.value == pytest.approx(0.7)


def test_a_standard_deviation_above_the_limit_abstains_too() -> None:
    members = [member("a", "a"), member("b", "b"), member("c", "c")]
    config = panel_config(members, abstain_if={"stdev_above": 0.3})
    backends = {"a": ScriptedBackend(p_pass(0.9)), "b": ScriptedBackend(p_pass(0.9)),
                "c": ScriptedBackend(p_pass(0.05))}
    (reward,) = score(config, backends, ["x"])
    assert reward.reason.startswith("panel_disagreement: stdev 0.4")  # pstdev(0.9, 0.9, 0.05) = 0.40
    backends["c"] = ScriptedBackend(p_pass(0.5))
    (reward,) = score(config, backends, ["x"])  # pstdev = 0.19
    assert reward.status == "ok" and reward.value == pytest.approx((0.9 + 0.9 + 0.5) / 3)


@pytest.mark.parametrize(("combine", "expected"), [("mean", (0.9 + 0.6 + 0.2) / 3), ("median", 0.6),
                                                   ("min", 0.2), ("majority", 2 / 3)])
def test_each_combine_rule(combine: str, expected: float) -> None:
    members = [member("a", "a"), member("b", "b"), member("c", "c")]
    backends = {"a": ScriptedBackend(p_pass(0.9)), "b": ScriptedBackend(p_pass(0.6)),
                "c": ScriptedBackend(p_pass(0.2))}
    (reward,) = score(panel_config(members, combine=combine), backends, ["x"])
    assert reward.status == "ok" and reward.value == pytest.approx(expected)
    details = reward.details["scores"]["panel"]["details"]
    assert details["combine"] == combine and details["answered"] == 3
    if combine == "majority":
        assert details["votes_pass"] == 2 and details["majority"] == "pass"


def test_combine_rules_on_even_panels_and_the_pass_threshold() -> None:
    assert combine_values([0.9, 0.2], "median") == pytest.approx(0.55)
    assert combine_values([0.7, 0.4], "majority") == 0.5  # one vote each side: a tie
    assert combine_values([0.7, 0.4], "majority", pass_threshold=0.3) == 1.0


def test_quorum_counts_the_members_that_answered() -> None:
    members = [member("a", "a"), member("b", "b"), member("broken", "c")]
    backends = {"a": ScriptedBackend(p_pass(0.8)), "b": ScriptedBackend(p_pass(0.6)),
                "c": ScriptedBackend(failing)}
    (reward,) = score(panel_config(members), backends, ["x"])  # default quorum: 2 of 3
    assert reward.status == "ok" and reward.value == pytest.approx(0.7)
    details = reward.details["scores"]["panel"]["details"]
    assert details["answered"] == 2 and details["quorum"] == 2
    assert details["members"]["broken"]["status"] == "unscored"
    assert "400" in details["members"]["broken"]["reason"]
    (reward,) = score(panel_config(members, quorum=3), backends, ["x"])
    assert reward.status == "unscored"
    assert reward.reason.startswith("panel_quorum: 2 of 3 members answered (quorum 3): broken: ")
    assert "400" in reward.reason


def test_a_member_that_raises_is_that_members_unscored() -> None:
    config = panel_config([member("a", "a"), member("b", "b")], quorum=1)
    with RewardPipeline.from_config(config, backends={"a": ScriptedBackend(p_pass(0.8)),
                                                      "b": ScriptedBackend(p_pass(0.3))}) as pipeline:
        (panel,) = pipeline.judges

        async def boom(sample: Sample, rollouts: list[Rollout]) -> list[Any]:
            raise RuntimeError("template bug")

        panel.members[1].score_group = boom  # type: ignore[method-assign]
        (reward,) = pipeline.score_batch_sync([(sample(), Rollout("s1", "x", id="s1#0"))])
    assert reward.value == pytest.approx(0.8)
    assert "template bug" in reward.details["scores"]["panel"]["details"]["members"]["b"]["reason"]


def test_a_group_keeps_its_order_and_each_rollout_is_combined_alone() -> None:
    answers = ["good", "bad", "split"]
    backends = {"a": ScriptedBackend(p_pass({"good": 0.9, "bad": 0.1, "split": 0.95})),
                "b": ScriptedBackend(p_pass({"good": 0.7, "bad": 0.2, "split": 0.05}))}
    config = panel_config([member("a", "a"), member("b", "b")], abstain_if={"spread_above": 0.5})
    rewards = score(config, backends, answers)
    assert [reward.rollout_id for reward in rewards] == ["s1#0", "s1#1", "s1#2"]
    assert rewards[0].value == pytest.approx(0.8) and rewards[1].value == pytest.approx(0.15)
    assert rewards[2].reason.startswith("panel_disagreement")


# -- concurrency, journal, cache, dry run ------------------------------------------------------------

def test_members_run_concurrently_each_under_its_own_backends_limits() -> None:
    in_flight = {"a": 0, "b": 0}
    peak = {"a": 0, "b": 0, "both": 0}

    def slow(name: str, p: float):
        async def respond(request: CompletionRequest) -> Completion:
            in_flight[name] += 1
            peak[name] = max(peak[name], in_flight[name])
            peak["both"] = max(peak["both"], in_flight["a"] + in_flight["b"])
            await asyncio.sleep(0.05)
            in_flight[name] -= 1
            return p_pass(p)(request)
        return respond

    backends = {"a": ScriptedBackend(slow("a", 0.7), max_concurrency=1),
                "b": ScriptedBackend(slow("b", 0.6), max_concurrency=4)}
    config = panel_config([member("a", "a"), member("b", "b")])
    rewards = score(config, backends, [f"answer {i}" for i in range(4)])
    assert all(reward.status == "ok" for reward in rewards)
    assert peak["a"] == 1, "backend a allows one call at a time"
    assert peak["b"] >= 2 and peak["both"] >= 3, "the members (and the answers) were judged concurrently"


def test_every_member_is_journaled_under_its_name_and_cached_apart(tmp_path: Path) -> None:
    runtime = {"journal_path": str(tmp_path / "journal.jsonl"), "cache_path": str(tmp_path / "cache.sqlite")}
    config = panel_config([member("a", "a"), member("b", "b", pass_token="Yes", fail_token="No")],
                          runtime=runtime)

    def yes_no(request: CompletionRequest) -> Completion:
        return Completion(text="Yes", model="scripted-judge", usage=Usage(20, 1),
                          candidate_logprobs={"Yes": math.log(0.6), "No": math.log(0.4)})

    backends = {"a": ScriptedBackend(p_pass(0.8)), "b": ScriptedBackend(yes_no)}
    score(config, backends, ["one", "two"])
    entries = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    by_judge: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_judge.setdefault(entry["judge"], []).append(entry)
    assert sorted(by_judge) == ["panel", "panel/a", "panel/b"]
    assert all(len(rows) == 2 for rows in by_judge.values())
    combined = by_judge["panel"][0]
    assert combined["judge_kind"] == "panel" and combined["scores"]["value"] == pytest.approx(0.7)
    assert combined["scores"]["members"] == {"a": pytest.approx(0.8), "b": pytest.approx(0.6)}
    assert combined["inputs"]["answers"] in (["one"], ["two"])
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        (tables,) = db.execute("select name from sqlite_master where type='table'").fetchone()
        (rows,) = db.execute(f"select count(*) from {tables}").fetchone()
    assert rows == 4, "one cache entry per member and answer"
    rewards = score(config, {"a": ScriptedBackend(failing), "b": ScriptedBackend(failing)}, ["one", "two"])
    assert [reward.value for reward in rewards] == [pytest.approx(0.7)] * 2, "the rerun is the cache's"


def test_a_panel_runs_dry() -> None:
    members = [member("a", "a"), {"name": "g", "type": "rubric", "backend": "b", "criteria": CRITERIA}]
    with RewardPipeline.from_config(panel_config(members, abstain_if={"spread_above": 0.5}),
                                    dry_run=True) as pipeline:
        (reward,) = pipeline.score_batch_sync([(sample(), Rollout("s1", "x", id="s1#0"))])
        (panel,) = pipeline.judges
        request = panel.members[1].generate_request(sample(), Rollout("s1", "x"))  # type: ignore[attr-defined]
        assert json.loads(panel.dry_run_answer(request))["criteria"]["helpful"]["score"] is True
    assert reward.status == "ok"
    members_detail = reward.details["scores"]["panel"]["details"]["members"]
    assert members_detail["a"]["value"] == pytest.approx(0.5) and members_detail["g"]["value"] == 1.0


# -- pairwise panels -------------------------------------------------------------------------------

def prefers(rank: dict[str, int]):
    """A scripted pairwise logprob judge: P(first shown better) = 0.9 / 0.1 / 0.5 as the first answer
    ranks above / below / level with the second (unlisted answers rank 0), whatever the order."""
    def respond(request: CompletionRequest) -> Completion:
        text = request.messages[-1]["content"]
        first = re.search(r"<<<ANSWER_A_\w+>>>\n(.*?)\n<<<END_ANSWER_A", text, re.DOTALL).group(1)
        second = re.search(r"<<<ANSWER_B_\w+>>>\n(.*?)\n<<<END_ANSWER_B", text, re.DOTALL).group(1)
        difference = rank.get(first, 0) - rank.get(second, 0)
        p_a = 0.9 if difference > 0 else 0.1 if difference < 0 else 0.5
        return Completion(text="A", model="scripted-pairwise", usage=Usage(30, 1),
                          candidate_logprobs={"A": math.log(p_a), "B": math.log(1 - p_a)})
    return respond


def pairwise_member(name: str, backend: str) -> dict[str, Any]:
    return {"name": name, "type": "pairwise", "backend": backend, "scoring": "logprob", "mode": "reference"}


def test_a_pairwise_panel_combines_verdicts_and_abstains_when_they_split() -> None:
    config = panel_config([pairwise_member("x", "a"), pairwise_member("y", "b")],
                          abstain_if={"spread_above": 0.5})
    backends = {"a": ScriptedBackend(prefers({"long answer": 2, "other": 1, "Use the reset link.": 1})),
                "b": ScriptedBackend(prefers({"long answer": 2, "short answer": 2}))}
    with RewardPipeline.from_config(config, backends=backends) as pipeline:
        (panel,) = pipeline.judges
        assert isinstance(panel, PairwisePanel)
        run = pipeline.loop_thread().run
        agree = run(panel.compare(sample(), "long answer", "other"))
        split = run(panel.compare(sample(), "short answer", "other"))
        rewards = pipeline.score_batch_sync([(sample(), Rollout("s1", "long answer", id="s1#0")),
                                             (sample(), Rollout("s1", "short answer", id="s1#1"))])
    assert agree.winner == "a" and agree.prob_a == pytest.approx(0.9)
    assert agree.details["members"]["x"]["winner"] == "a"
    assert split.winner is None and split.reason.startswith("panel_disagreement: spread 0.800")
    assert split.details["members"]["x"]["value"] == pytest.approx(0.1)
    assert split.details["members"]["y"]["value"] == pytest.approx(0.9)
    assert rewards[0].value == pytest.approx(0.9)  # both prefer it to the reference
    assert rewards[1].reason.startswith("panel_disagreement")


def test_a_pairwise_panel_by_majority_counts_each_members_verdict() -> None:
    members = [pairwise_member("x", "a"), pairwise_member("y", "b"), pairwise_member("z", "c")]
    backends = {"a": ScriptedBackend(prefers({"mine": 1})), "b": ScriptedBackend(prefers({"mine": 1})),
                "c": ScriptedBackend(prefers({"theirs": 1}))}
    with RewardPipeline.from_config(panel_config(members, combine="majority"), backends=backends) as pipeline:
        verdict = pipeline.loop_thread().run(pipeline.judges[0].compare(sample(), "mine", "theirs"))
    assert verdict.winner == "a" and verdict.prob_a == pytest.approx(2 / 3)
    assert verdict.details["votes_a"] == 2 and verdict.details["majority"] == "a"


# -- config errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "field", "message"), [
    (lambda j: j["members"][1].update(type="rubrik"), "judges.panel.members.1.type", "unknown judge type"),
    (lambda j: j.update(members=[]), "judges.panel.members", "non-empty"),
    # a misspelt `members` is named as such, not reported as "a panel needs members"
    (lambda j: j.update(membres=j.pop("members")), "judges.panel.membres", "unknown option for a panel"),
    (lambda j: j.update(quorum=3), "judges.panel.quorum", "more than the 2 members"),
    (lambda j: j["members"][1].update(name="a"), "judges.panel.members.1.name", "also the name of member 0"),
    (lambda j: j["members"][1].update(criteria=[], rubric_field=None), "judges.panel.members.1.rubric_field",
     ""),
    (lambda j: j["members"][1].update(backend="nowhere"), "judges.panel.members.1.backend", "not defined"),
    (lambda j: j["members"][1].update(weight=2), "judges.panel.members.1.weight", "no weight of its own"),
    (lambda j: j.update(backend="a"), "judges.panel.backend", "no backend of its own"),
    (lambda j: j.update(combine="vote"), "judges.panel.combine", ""),
    (lambda j: j.update(abstain_if={"spread": 0.5}), "judges.panel.abstain_if.spread", ""),
    (lambda j: j["members"][1].update(backend="a", name="b"), "judges.panel.members.1",
     "same judge as member 0"),
    (lambda j: j["members"][1].update(type="panel"), "judges.panel.members.1.type",
     "cannot itself be a panel"),
    (lambda j: j["members"][1].update(pairwise_member("b", "b")), "judges.panel.members.1.type",
     "all pairwise judges or none"),
])
def test_a_bad_panel_is_a_config_error_naming_the_field(change, field: str, message: str,
                                                       tmp_path: Path) -> None:
    config = panel_config([member("a", "a"), member("b", "b")])
    change(config["judges"][0])
    path = tmp_path / "reward.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        RewardPipeline.from_config(str(path), backends={"a": ScriptedBackend(p_pass(0.5)),
                                                        "b": ScriptedBackend(p_pass(0.5))})
    assert caught.value.field == field, str(caught.value)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_pairwise_panels_refuse_min_and_mixed_modes() -> None:
    backends = {"a": ScriptedBackend(prefers({})), "b": ScriptedBackend(prefers({}))}
    with pytest.raises(ConfigError, match="not symmetric") as caught:
        RewardPipeline.from_config(panel_config([pairwise_member("x", "a"), pairwise_member("y", "b")],
                                                combine="min"), backends=backends)
    assert caught.value.field == "judges.panel.combine"
    round_robin = {**pairwise_member("y", "b"), "mode": "round_robin"}
    with pytest.raises(ConfigError, match="same `mode`") as caught:
        RewardPipeline.from_config(panel_config([pairwise_member("x", "a"), round_robin]), backends=backends)
    assert caught.value.field == "judges.panel.members.1.mode"


def test_a_pointwise_panel_is_pointwise() -> None:
    with RewardPipeline.from_config(panel_config([member("a", "a"), member("b", "b")]),
                                    backends={"a": ScriptedBackend(p_pass(0.2)),
                                              "b": ScriptedBackend(p_pass(0.4))}) as pipeline:
        (panel,) = pipeline.judges
        assert isinstance(panel, PointwisePanel)
        result = pipeline.loop_thread().run(panel.score(sample(), Rollout("s1", "x")))
    assert result.value == pytest.approx(0.3)


# -- judgerl score, end to end over loopback -------------------------------------------------------

def json_judge(passes: bool):
    def respond(request: RecordedRequest) -> Reply:
        answer = ANSWER_RE.search(request.prompt).group(1)
        verdict = passes if "Paris" in answer else not passes
        return Reply(text=json.dumps({"criteria": {"helpful": {"rationale": "seen", "score": verdict}}}))
    return respond


def test_judgerl_score_with_a_panel_of_two_http_judges(fake_openai: FakeOpenAIServer, tmp_path: Path) -> None:
    second = FakeOpenAIServer().start()
    try:
        fake_openai.responder = json_judge(True)  # Paris passes, anything else fails
        second.responder = lambda request: Reply(text=json.dumps(
            {"criteria": {"helpful": {"rationale": "seen", "score": "Paris" in request.prompt
                                      and "Lyon" not in ANSWER_RE.search(request.prompt).group(1)}}}))
        config = {"backends": {"one": {"type": "openai", "base_url": fake_openai.url, "model": "judge-one"},
                               "two": {"type": "openai", "base_url": second.url, "model": "judge-two"}},
                  "runtime": {"journal_path": "journal.jsonl", "max_attempts": 1},
                  "failure_budget": None,
                  "judges": [{"name": "panel", "type": "panel", "abstain_if": {"spread_above": 0.5},
                              "members": [{"name": "one", "type": "rubric", "backend": "one",
                                           "criteria": CRITERIA},
                                          {"name": "two", "type": "rubric", "backend": "two",
                                           "criteria": CRITERIA}]}]}
        (tmp_path / "reward.yaml").write_text(json.dumps(config), encoding="utf-8")
        rows = [{"id": "q", "prompt": "What is the capital of France?", "rollout_id": f"q/{i}",
                 "completion": text}
                for i, text in enumerate(["Paris.", "Lyon.", "Paris, not Lyon."])]
        (tmp_path / "rollouts.jsonl").write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
        result = CliRunner().invoke(app, ["score", "-c", str(tmp_path / "reward.yaml"),
                                          "-i", str(tmp_path / "rollouts.jsonl"),
                                          "-o", str(tmp_path / "out.jsonl")])
        assert result.exit_code == 0, result.output
        lines = (tmp_path / "out.jsonl").read_text().splitlines()
        out = {row["rollout_id"]: row for row in map(json.loads, lines)}
        assert out["q/0"]["value"] == 1.0 and out["q/1"]["value"] == 0.0
        assert out["q/2"]["status"] == "unscored" and out["q/2"]["reason"].startswith("panel_disagreement")
        members = out["q/2"]["details"]["scores"]["panel"]["details"]["members"]
        assert members == {"one": {"value": 1.0, "status": "ok", "rationale": "helpful: seen"},
                           "two": {"value": 0.0, "status": "ok", "rationale": "helpful: seen"}}
        assert len(fake_openai.chat_requests) == 3 and len(second.chat_requests) == 3
        journal = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
        assert sorted({entry["judge"] for entry in journal}) == ["panel", "panel/one", "panel/two"]
    finally:
        second.stop()


def test_the_openrlhf_server_knows_a_panel_member_needs_a_reference() -> None:
    from judgerl.adapters.openrlhf import reference_users

    config = panel_config([member("a", "a", use_reference=True), member("b", "b")])
    with RewardPipeline.from_config(config, backends={"a": ScriptedBackend(p_pass(0.5)),
                                                      "b": ScriptedBackend(p_pass(0.5))}) as pipeline:
        assert reference_users(pipeline) == ["judge 'panel/a'"]


def test_the_panels_example_runs_dry(tmp_path: Path) -> None:
    """examples/panels/ stays a valid config (its real run loads the embedded model: see its README)."""
    example = Path(__file__).resolve().parents[1] / "examples" / "panels"
    output = tmp_path / "rewards.jsonl"
    result = CliRunner().invoke(app, ["score", "-c", str(example / "reward.yaml"), "-i",
                                      str(example / "rollouts.jsonl"), "-o", str(output), "--dry-run",
                                      "--set", f"runtime.journal_path={tmp_path / 'journal.jsonl'}"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 12
    # dry run: the logprob members split their probability evenly (0.5), the generating one passes
    # (1.0): a spread of 0.5 > 0.45, so the panel abstains on every row, as it would for real
    assert {row["reason"].split(":")[0] for row in rows} == {"panel_disagreement"}
    members = rows[0]["details"]["scores"]["support"]["details"]["members"]
    assert {name: member["value"] for name, member in members.items()} == {
        "fewshot": pytest.approx(0.5), "plain": pytest.approx(0.5), "stand_in": 1.0}


def test_a_panel_with_a_group_member_scores_whole_groups_in_order() -> None:
    from judgerl.judges.panel import GroupPanel

    def group_judge(request: CompletionRequest) -> str:
        text = request.messages[-1]["content"]
        answers = re.findall(r"<<<ANSWER_(R\d+)_\w+>>>\n(.*?)\n<<<END_ANSWER_R", text, re.DOTALL)
        return json.dumps({"scores": [{"id": label.lower(), "score": 10 if answer == "good" else 1,
                                       "rationale": "scripted"} for label, answer in answers]})

    members = [{"name": "ranker", "type": "group", "backend": "g"}, member("rater", "r")]
    backends = {"g": ScriptedBackend(group_judge), "r": ScriptedBackend(p_pass({"good": 0.8, "bad": 0.4}))}
    with RewardPipeline.from_config(panel_config(members), backends=backends) as pipeline:
        assert isinstance(pipeline.judges[0], GroupPanel)
        rewards = pipeline.score_batch_sync([(sample(), Rollout("s1", text, id=f"s1#{i}"))
                                             for i, text in enumerate(["bad", "good", "bad"])])
    # ranker: (10 - 1) / 9 = 1 for good, 0 for bad; rater: 0.8 / 0.4; the mean of the two
    assert [reward.value for reward in rewards] == [pytest.approx(value) for value in (0.2, 0.9, 0.2)]


def test_the_same_judge_sampled_twice_is_two_members_with_their_own_answers() -> None:
    answers = iter([True, False] * 4)

    def coin(request: CompletionRequest) -> str:
        return json.dumps({"criteria": {"helpful": {"rationale": "sampled", "score": next(answers)}}})

    sampled = {"type": "rubric", "backend": "a", "criteria": CRITERIA, "temperature": 0.8}
    config = panel_config([{**sampled, "name": "first"}, {**sampled, "name": "second"}])
    config["runtime"] = {"cache_path": None}
    (reward,) = score(config, {"a": ScriptedBackend(coin)}, ["x"])
    members = reward.details["scores"]["panel"]["details"]["members"]
    assert sorted(member["value"] for member in members.values()) == [0.0, 1.0], "two calls, two samples"
    assert reward.value == 0.5


def test_a_member_that_raises_is_its_own_unscored_but_a_fatal_error_stops_the_run() -> None:
    member = type("Member", (), {"name": "small_a"})()
    assert member_failure(member, ValueError("bad template")) == \
        "judge_error: member 'small_a' raised ValueError: bad template"
    with pytest.raises(FatalBackendError):
        member_failure(member, FatalBackendError("401: bad key"))
    with pytest.raises(asyncio.CancelledError):
        member_failure(member, asyncio.CancelledError())
