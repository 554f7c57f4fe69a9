"""The CPU-sized contract review case study (`judgerl demo --task contract-review`): its figures
(comment precision, a model's figures from its samples, the table over seeds), and the whole study
at tiny scale through every stage (two tiny real students, a tiny real policy: base, SFT, RFT with
the checks only and RFT with the checks + the student judge, per seed), resumed without redoing
anything.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from judgerl.distill.agreement import Thresholds
from judgerl.distill.contract_study import (
    ITEM_PROMPT,
    JUDGE,
    MODELS,
    QUICK_EVERY,
    RESULTS_JSON,
    RESULTS_MD,
    STUDENTS_DIR,
    ContractStudy,
    StudySettings,
    comment_precision,
    judge_reward_config,
    model_figures,
    results_table,
    spread,
    student_plans,
    study_folder,
)
from judgerl.distill.demo_judge import package_student, packaged_adapter, prepare_student
from judgerl.distill.student import TrainSettings
from judgerl.errors import ConfigError
from judgerl.run.workflow import trained_model
from tiny_policy import build_corpus_model_dir

CLAUSES = [
    {"number": 1, "text": "Term. This Agreement lasts 36 months and renews automatically for further terms.",
     "rule": "P2", "issue": "long_term"},
    {"number": 2, "text": "Fees. Customer pays the fees in the Order Form within 30 days of invoice.",
     "rule": "P4", "issue": None},
    {"number": 3, "text": "Law. This Agreement is governed by the laws of New York, USA.",
     "rule": "P9", "issue": "foreign_law"},
]
RIGHT = {"quote": "This Agreement lasts 36 months", "rule": "P2", "fix": "Cap the term at 24 months."}
RIGHT_2 = {"quote": "governed by the laws of New York", "rule": "P9", "fix": "Use English law."}


def answer(*comments: dict[str, str]) -> str:
    return json.dumps({"comments": list(comments)})


# -- comment precision ------------------------------------------------------------------------------


def test_comment_precision() -> None:
    assert comment_precision(answer(RIGHT), CLAUSES) == 1.0
    assert comment_precision(answer(RIGHT, RIGHT_2), CLAUSES) == 1.0
    assert comment_precision(answer({**RIGHT, "rule": "P9"}), CLAUSES) == 0.0, "the wrong rule"
    invented = {**RIGHT, "quote": "either party may assign this Agreement without consent"}
    assert comment_precision(answer(invented), CLAUSES) == 0.0, "a quote the contract does not hold"
    compliant = {"quote": "Customer pays the fees in the Order Form", "rule": "P4", "fix": "x"}
    assert comment_precision(answer(compliant), CLAUSES) == 0.0, "a compliant clause flagged"
    assert comment_precision(answer({**RIGHT, "quote": "36 months"}), CLAUSES) == 0.0, "too short to count"
    assert comment_precision(answer(RIGHT, {**RIGHT_2, "rule": "P2"}), CLAUSES) == 0.5
    assert comment_precision(answer(RIGHT, invented, {**RIGHT_2, "rule": "P1"}, RIGHT_2), CLAUSES) == 0.5
    assert comment_precision(answer(RIGHT, "not a comment"), CLAUSES) == 0.5  # type: ignore[arg-type]
    # as the grounding check reads quotes: spacing does not matter, case does (verbatim)
    assert comment_precision(answer({**RIGHT, "quote": "This  Agreement\nlasts 36 months"}), CLAUSES) == 1.0
    assert comment_precision(answer({**RIGHT, "quote": "this agreement LASTS 36 months"}), CLAUSES) == 0.0
    fenced = "```json\n" + answer(RIGHT) + "\n```"
    assert comment_precision(fenced, CLAUSES) == 1.0, "a fenced answer passes the schema check too"
    assert comment_precision("not JSON", CLAUSES) is None
    assert comment_precision('{"comments": []}', CLAUSES) is None
    assert comment_precision('{"notes": "fine"}', CLAUSES) is None
    assert comment_precision("[1, 2]", CLAUSES) is None


# -- a model's figures and the table -------------------------------------------------------------


def write_samples(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_model_figures_from_a_samples_file(tmp_path: Path) -> None:
    eval_rows = {"e1": {"clauses": CLAUSES, "split": "seen_type"},
                 "e2": {"clauses": CLAUSES, "split": "unseen_type"}}
    samples = write_samples(tmp_path / "samples.jsonl", [
        {"prompt_id": "e1", "k": 0, "status": "ok", "reward": 0.8, "completion": answer(RIGHT),
         "components": {"schema": 1.0, "grounding": 1.0, JUDGE: 1.0}},
        {"prompt_id": "e1", "k": 1, "status": "gated", "reward": 0.0, "completion": "no JSON here",
         "components": {"schema": 0.0, "grounding": 0.0, JUDGE: None}},  # the judge never ran
        {"prompt_id": "e2", "k": 0, "status": "ok", "reward": 0.4,
         "completion": answer({**RIGHT, "rule": "P1"}),
         "components": {"schema": 1.0, "grounding": 0.5, JUDGE: 0.0}},
        {"prompt_id": "e2", "k": 1, "status": "unscored", "reward": None, "completion": answer(RIGHT),
         "components": {}},
    ])
    figures = model_figures(samples, eval_rows)
    assert figures == {
        "reward": pytest.approx(0.4),            # (0.8 + 0 + 0.4) / 3: a gated answer scores 0
        "issues": pytest.approx(0.3333),         # (1 + 0 + 0) / 3
        "schema_valid": pytest.approx(0.6667),   # 2 of the 3 scored answers
        "grounded": pytest.approx(0.75),         # valid answers only
        "precision": pytest.approx(0.5),         # valid answers only: 1 and 0
        "unscored": pytest.approx(0.25),         # 1 of 4 answers
        "issues_seen_type": pytest.approx(0.5),
        "issues_unseen_type": pytest.approx(0.0),
    }


def test_spread_and_the_results_table() -> None:
    assert spread([0.2, None, 0.4]) == {"mean": 0.3, "min": 0.2, "max": 0.4, "std": 0.1, "n": 2}
    assert spread([0.5]) == {"mean": 0.5, "min": 0.5, "max": 0.5, "std": 0.0, "n": 1}
    assert spread([None])["n"] == 0 and spread([])["mean"] is None
    results = {"models": {
        "base": {"reward": spread([0.1]), "issues": spread([None])},
        "sft": {"reward": spread([0.2, 0.4]), "issues": spread([0.25, 0.5]),
                "schema_valid": spread([1.0, 1.0])},
    }}
    table = results_table(results).splitlines()
    assert table[0].startswith("| model | reward | issues found (judge) |")
    assert len(table) == 4, "a model without figures has no row"
    base, sft = table[2], table[3]
    assert base.startswith("| base | 0.100 | n/a |")
    assert sft.startswith("| sft | 0.300 [0.200-0.400] | 0.375 [0.250-0.500] | n/a | 1.000 [1.000-1.000] |")
    assert all(line.count("|") == table[0].count("|") for line in table)


def test_the_judge_reward_config_is_the_checks_plus_an_item_judge_on_a_student(tmp_path: Path) -> None:
    from judgerl.config import load_reward_config

    checks = study_folder() / "reward.yaml"
    config = judge_reward_config(checks, tmp_path / "student" / "model")
    assert Path(config["checks"][0]["schema_file"]).is_file(), "an absolute schema path"
    [judge] = config["judges"]
    assert judge["prompt"] == ITEM_PROMPT and judge["rubric_field"] == "rubric" and judge["name"] == JUDGE
    assert config["backends"]["student"]["model"] == str((tmp_path / "student" / "model").resolve())
    (tmp_path / "elsewhere").mkdir()
    path = tmp_path / "elsewhere" / "reward.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    loaded = load_reward_config(path)  # loads from another folder: nothing relative is left
    assert [check.name for check in loaded.checks][:2] == ["schema", "grounding"]


# -- the students' data ---------------------------------------------------------------------------


def labelled(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_students_plans_and_the_quick_slices(tmp_path: Path) -> None:
    folder = study_folder()
    full = student_plans(folder, StudySettings(), tmp_path / "full")
    assert (full["reward"].train, full["reward"].held_out) == (folder / "judge_train.jsonl",
                                                              folder / "judge_held_out.jsonl")
    assert (full["scorer"].train, full["scorer"].held_out) == (folder / "scorer_train.jsonl",
                                                              folder / "judge_train.jsonl")
    assert all(plan.prompt == ITEM_PROMPT for plan in full.values())
    assert not (tmp_path / "full").exists()

    quick = student_plans(folder, StudySettings(quick=True), tmp_path / "quick")
    for plan in quick.values():
        assert plan.settings.epochs == 1 and plan.train.parent == tmp_path / "quick"
        for path in (plan.train, plan.held_out):
            rows, packaged = labelled(path), labelled(folder / path.name)
            # whole contracts: every labelled comment of the kept ones, in the packaged order
            prompts = list(dict.fromkeys(row["prompt"] for row in packaged))
            assert rows == [row for row in packaged if row["prompt"] in set(prompts[::QUICK_EVERY])]
            verdicts = {item["met"] for row in rows for item in row["rubric"]}
            assert verdicts == {True, False}, f"{path.name}: a quick student needs both verdicts"
    assert quick["reward"].digest() != full["reward"].digest()


# -- the whole study at tiny scale ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny Llama whose tokenizer knows the study's words: the students' base and the policy."""
    from judgerl.judges.templates import load_prompt

    folder = study_folder()
    corpus = [load_prompt(ITEM_PROMPT).text, "PASS", "FAIL"]
    for name in ("train", "judge_train"):
        corpus += (folder / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()[::4]
    return build_corpus_model_dir(tmp_path_factory.mktemp("tiny") / "base", corpus)


def tiny_settings(base: Path, seeds: tuple[int, ...]) -> StudySettings:
    return StudySettings(
        seeds=seeds, quick=True, student_base=str(base),
        reward_student=TrainSettings(method="lora", lora_rank=4, lora_layers=1, epochs=1, learning_rate=3e-3),
        scorer_student=TrainSettings(method="full", epochs=1, learning_rate=3e-3),
        thresholds=Thresholds(min_accuracy=0.0, min_kappa=-1.0),
        workers=2,  # the stages side by side in two worker processes, as on the 2-core machine
        overrides=[f"model.name_or_path={base}", "model.lora.rank=4", "model.lora.alpha=8",
                   "model.lora.layers=1", "rollout.number_generation=2", "rollout.max_new_tokens=8",
                   "trainer.global_batch_size=4", "evaluation.max_new_tokens=8", "evaluation.k=2",
                   "evaluation.limit=16", "sft.batch_size=2"])


def model_files(run_dir: Path) -> dict[str, int]:
    """Every weight file the study wrote, with its modification time."""
    return {str(path.relative_to(run_dir)): path.stat().st_mtime_ns
            for path in run_dir.rglob("*.safetensors")}


SEEDS = (0, 1)


@pytest.fixture(scope="module")
def study(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The study over two seeds at tiny scale, run once for the tests below."""
    run_dir = tmp_path_factory.mktemp("study") / "run"
    results = ContractStudy(run_dir, tiny_settings(tiny_base, SEEDS), Console(record=True, width=160)).run()
    return run_dir, results


def test_the_study_runs_every_stage_for_every_seed(tiny_base: Path,
                                                   study: tuple[Path, dict[str, Any]]) -> None:
    run_dir, results = study
    assert results["seeds"] == list(SEEDS) and results["quick"] is True
    written = json.loads((run_dir / RESULTS_JSON).read_text(encoding="utf-8"))
    assert written["models"] == json.loads(json.dumps(results["models"]))
    assert set(written["models"]) == set(MODELS)
    # the base and the one SFT model are evaluated once, each RFT arm once per seed
    assert [len(written["per_seed"][model]) for model in MODELS] == [1, 1, len(SEEDS), len(SEEDS)]
    for model in MODELS:
        for figures in written["per_seed"][model]:
            assert figures["schema_valid"] is not None and 0.0 <= figures["schema_valid"] <= 1.0, model
            assert figures["unscored"] == 0.0, (model, "no answer left unscored")
            for split in ("seen_type", "unseen_type"):  # the evaluation reached both kinds of contract
                assert figures[f"issues_{split}"] is not None, (model, split)
        assert written["models"][model]["reward"]["n"] == len(written["per_seed"][model]), model
    for name in ("reward", "scorer"):
        student = written["students"][name]
        assert student["reused"] is False and student["held_out_rows"] > 0 and student["train_rows"] > 0
        # the student is trained with the template its judge asks with (the reward config's)
        snippet = yaml.safe_load((run_dir / f"student-{name}" / "reward-snippet.yaml").read_text())
        assert snippet["judges"][0]["prompt"] == ITEM_PROMPT
        assert snippet["judges"][0]["rubric_field"] == "rubric"
    assert (run_dir / "base" / "eval" / "base" / "summary.json").is_file()
    assert (run_dir / "sft-eval" / "eval" / "sft" / "summary.json").is_file()
    assert (trained_model(run_dir / "sft") / "config.json").is_file()
    # one SFT model adapts the base; each RFT arm of each seed starts from it; LoRA on the top
    # layer only (model.lora.layers=1 of the tiny model's 2)
    sft = json.loads((run_dir / "sft" / "final" / "adapter_config.json").read_text())
    assert sft["base_model_name_or_path"] == str(tiny_base) and sft["layers_to_transform"] == [1]
    for seed in SEEDS:
        for label in ("rft-checks", "rft-judge"):
            assert (run_dir / f"seed-{seed}" / "eval" / label / "summary.json").is_file(), (seed, label)
            assert (trained_model(run_dir / f"seed-{seed}" / label) / "config.json").is_file(), (seed, label)
        for arm in ("checks", "judge"):
            adapter = json.loads((run_dir / f"seed-{seed}" / f"rft-{arm}" / "final" / "adapter_config.json")
                                 .read_text())
            assert adapter["base_model_name_or_path"] == str(trained_model(run_dir / "sft"))
            assert adapter["layers_to_transform"] == [1], (seed, arm)
        # the two arms of a seed ran side by side, each in a worker process with its own log
        for arm in ("checks", "judge"):
            assert (run_dir / "logs" / f"rft-{arm}-seed-{seed}.log").stat().st_size > 0, (seed, arm)
    markdown = (run_dir / RESULTS_MD).read_text(encoding="utf-8")
    assert "--quick: a smoke run, not a result" in markdown
    for model in ("base", "sft", "rft-checks", "rft-judge"):
        assert f"| {model} | " in markdown
    judge_row = markdown.split("| rft-judge | ", 1)[1].splitlines()[0]
    assert "[" in judge_row, "two seeds: the table gives the range"
    # the table says how to reproduce it, when and where it was made
    assert written["command"].startswith("judgerl demo --task contract-review --quick --seeds 2 --set ")
    assert written["command"].endswith(f"--run-dir {run_dir.resolve()}")
    assert f"Command: `{written['command']}`" in markdown and written["finished_at"] in markdown
    assert "cores" in written["machine"] and written["machine"] in markdown
    assert {"student reward", "student scorer", "sft", "rft checks", "rft judge",
            "evaluate base", "evaluate sft", "evaluate rft-checks",
            "evaluate rft-judge"} == set(results["timings_s"])
    # stages overlap: the wall clock is less than their sum, and is what the table reports
    assert 0 < written["wall_s"] < sum(results["timings_s"].values())
    assert f"{written['wall_s'] / 60:.0f} min" in markdown


def test_the_written_reward_and_scorer_judge_the_planted_issues_with_the_students(
        study: tuple[Path, dict[str, Any]]) -> None:
    from judgerl.data import load_samples
    from judgerl.reward.pipeline import RewardPipeline
    from judgerl.types import Rollout

    run_dir, _ = study
    reward = yaml.safe_load((run_dir / "reward-judge.yaml").read_text())
    assert reward["backends"]["student"]["model"] == str((run_dir / "student-reward" / "model").resolve())
    scorer = yaml.safe_load((run_dir / "scorer.yaml").read_text())
    assert scorer["backends"]["student"]["model"] == str((run_dir / "student-scorer" / "model").resolve())
    checks = yaml.safe_load((run_dir / "reward-checks.yaml").read_text())
    assert "judges" not in checks and checks["checks"] == reward["checks"]

    samples = load_samples(study_folder() / "eval.jsonl").samples[::5]
    for config in ("reward-judge.yaml", "scorer.yaml"):
        with RewardPipeline.from_config(run_dir / config) as pipeline:
            rewards = pipeline.score_batch_sync(
                [(sample, Rollout(sample.id, sample.reference or "", id="ref")) for sample in samples])
        for sample, scored in zip(samples, rewards, strict=True):
            assert scored.status == "ok", (config, sample.id, scored.reason)
            assert scored.components["schema"] == 1.0 and scored.components["grounding"] == 1.0
            value = scored.components[JUDGE]
            assert value is not None and 0.0 <= value <= 1.0, (config, sample.id)


def test_a_second_run_in_the_same_folder_reuses_every_stage(tiny_base: Path,
                                                             study: tuple[Path, dict[str, Any]]) -> None:
    run_dir, results = study
    weights = model_files(run_dir)
    assert len(weights) >= 2 + 3 * len(SEEDS), "the study wrote its models"
    started = time.monotonic()
    again = ContractStudy(run_dir, tiny_settings(tiny_base, SEEDS), Console(record=True, width=160)).run()
    seconds = time.monotonic() - started
    assert all(student["reused"] for student in again["students"].values())
    # the stages' times are those of the run that did them, kept in RUN_DIR/timings.json
    assert again["timings_s"] == results["timings_s"], again["timings_s"]
    assert model_files(run_dir) == weights, "nothing was trained again"
    assert again["per_seed"] == results["per_seed"] and again["models"] == results["models"]
    assert seconds < 30, f"a finished study took {seconds:.0f} s to resume"


def test_an_unknown_demo_task_is_refused_before_any_work(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from judgerl.cli import app

    result = CliRunner().invoke(app, ["demo", "--task", "nonsense", "--run-dir", str(tmp_path / "study")])
    assert result.exit_code != 0
    assert "support or contract-review" in result.output
    assert not (tmp_path / "study").exists()


def test_a_study_without_seeds_is_refused_before_any_work(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from judgerl.cli import app

    result = CliRunner().invoke(app, ["demo", "--task", "contract-review", "--seeds", "0",
                                      "--run-dir", str(tmp_path / "study")])
    assert result.exit_code != 0
    assert "at least one seed" in result.output
    assert not (tmp_path / "study").exists()


# -- the students the package ships -----------------------------------------------------------------


def test_a_student_ships_as_its_adapter_and_comes_back_measured_without_training(
        tiny_base: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    plan = student_plans(study_folder(), tiny_settings(tiny_base, (0,)), tmp_path / "data")["reward"]
    trained = prepare_student(tmp_path / "trained", plan, Console(record=True), enforce_gate=False)
    assert (tmp_path / "trained" / "adapter" / "adapter_model.safetensors").is_file(), "a LoRA adapter"
    target = package_student(tmp_path / "trained", plan, tmp_path / "shipped", command="a test")
    shipped = load_file(str(target / "adapter" / "adapter_model.safetensors"))
    assert shipped and {str(tensor.dtype) for tensor in shipped.values()} == {"torch.float16"}
    config = json.loads((target / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == plan.base_model
    manifest = json.loads((target / "student.json").read_text())
    assert manifest["digest"] == plan.digest() and manifest["command"] == "a test"
    assert manifest["figures"] == trained.figures

    from_package = replace(plan, packaged=target)
    assert packaged_adapter(from_package) == target / "adapter"
    console = Console(record=True, width=200)
    again = prepare_student(tmp_path / "from-package", from_package, console, enforce_gate=False)
    assert again.packaged and not again.reused
    printed = " ".join(console.export_text().split())
    assert "merged into the base and measured on the held-out rows here" in printed
    assert not (tmp_path / "from-package" / "adapter").exists(), "nothing was trained"
    assert again.figures["held_out_rows"] == trained.figures["held_out_rows"]
    # the same student, up to the adapter's float16
    merged = load_file(str(again.model_dir / "model.safetensors"))
    original = load_file(str(trained.model_dir / "model.safetensors"))
    assert merged.keys() == original.keys()
    assert {str(tensor.dtype) for tensor in merged.values()} == {"torch.float32"}
    assert max(float((merged[key].float() - original[key].float()).abs().max()) for key in merged) < 1e-3
    # a plan trained otherwise (other settings, other data) does not take it
    assert packaged_adapter(replace(from_package, settings=replace(plan.settings, epochs=2))) is None
    with pytest.raises(ConfigError, match="no trained LoRA student of this plan"):
        package_student(tmp_path / "trained", replace(plan, settings=replace(plan.settings, epochs=2)),
                        tmp_path / "other", command="a test")


def test_the_package_ships_the_students_of_the_current_data_and_settings() -> None:
    """Fails when the labelled data or the students' settings change without
    `python examples/contract_review/build_students.py` run again."""
    plans = student_plans(study_folder(), StudySettings(), Path("unused"))
    for name, plan in plans.items():
        assert plan.packaged == study_folder() / STUDENTS_DIR / name
        assert packaged_adapter(plan) is not None, f"the {name} student is stale: rebuild it"
        manifest = json.loads((plan.packaged / "student.json").read_text())
        assert manifest["base_model"] == "smollm2-135m-instruct" and manifest["figures"]["held_out_rows"] > 0
        size = (plan.packaged / "adapter" / "adapter_model.safetensors").stat().st_size
        assert size < 5_000_000, f"{name}: {size} bytes"
    assert manifest_gate_passes(plans["reward"])
    distilled = student_plans(study_folder(), StudySettings(distil_students=True), Path("unused"))
    assert all(plan.packaged is None for plan in distilled.values())


def manifest_gate_passes(plan: Any) -> bool:
    figures = json.loads((plan.packaged / "student.json").read_text())["figures"]
    thresholds = plan.thresholds
    return figures["accuracy"] >= thresholds.min_accuracy and figures["kappa"] >= thresholds.min_kappa
