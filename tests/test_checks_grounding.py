"""The generic JSON-item checks: quote_grounding, item_count and item_duplicates, on crafted answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from judgerl.checks import build_check
from judgerl.config import CheckConfig
from judgerl.errors import ConfigError, DataError
from judgerl.types import Rollout, Sample

CONTRACT = """SERVICES AGREEMENT

4. Liability. Customer shall be liable without limit for all losses, costs and expenses
suffered by Supplier arising out of or in connection with this Agreement.
5. Termination. Supplier may terminate this Agreement at any time on 7 days' written notice."""
GUIDELINE = "P1 Liability. Calloway's liability must always be capped, at no more than the annual fees."
SAMPLE = Sample("s1", [{"role": "user", "content": "Review the contract."}],
                metadata={"contract": CONTRACT, "reference_doc": GUIDELINE})


def check(type_: str, **options: Any):  # type: ignore[no-untyped-def]
    return build_check(CheckConfig(name=type_, type=type_, **options), Path("."))


def answer(*excerpts: Any, field: str = "text_excerpt") -> str:
    return json.dumps({"comments": [{field: excerpt, "comment": f"comment {index}"}
                                    for index, excerpt in enumerate(excerpts)]})


# -- quote_grounding ---------------------------------------------------------------------------


def test_grounded_quote_across_a_line_break_scores_1() -> None:
    grounding = check("quote_grounding", forbidden_field="reference_doc")
    score = grounding(SAMPLE, Rollout("s1", answer(
        "Customer shall be liable without limit for all losses, costs and expenses suffered by Supplier",
        "Supplier may terminate this Agreement at any time on 7 days' written notice")))
    assert score.value == 1.0
    assert score.details["per_item"] == ["grounded", "grounded"]


def test_invented_and_reference_doc_quotes_are_not_grounded() -> None:
    grounding = check("quote_grounding", forbidden_field="reference_doc")
    score = grounding(SAMPLE, Rollout("s1", answer(
        "Customer shall be liable without limit",                    # real
        "Calloway's liability must always be capped",                # from the guideline
        "Supplier shall indemnify Customer for all losses")))        # invented
    assert score.value == pytest.approx(1 / 3)
    assert score.details["per_item"] == ["grounded", "forbidden", "not_found"]
    assert score.details["from_forbidden"] == 1
    assert "item 1: copied from reference_doc, not contract" in score.rationale
    assert "item 2: not found in contract" in score.rationale


def test_a_paraphrase_is_not_a_quote_and_case_counts_unless_ignored() -> None:
    strict = check("quote_grounding")
    loose = check("quote_grounding", ignore_case=True)
    shouting = answer("CUSTOMER SHALL BE LIABLE WITHOUT LIMIT")
    assert strict(SAMPLE, Rollout("s1", shouting)).value == 0.0
    assert loose(SAMPLE, Rollout("s1", shouting)).value == 1.0
    assert strict(SAMPLE, Rollout("s1", answer("Customer is liable without any limit"))).value == 0.0


def test_typographic_apostrophe_matches_the_ascii_one() -> None:
    grounding = check("quote_grounding")
    assert grounding(SAMPLE, Rollout("s1", answer("on 7 days\u2019 written notice"))).value == 1.0
    no_normalising = check("quote_grounding", normalize_quotes=False)
    assert no_normalising(SAMPLE, Rollout("s1", answer("on 7 days\u2019 written notice"))).value == 0.0


def test_short_missing_and_non_string_quotes_do_not_count() -> None:
    grounding = check("quote_grounding", min_chars=12)
    payload = json.dumps({"comments": [{"text_excerpt": "Supplier"}, {"comment": "no quote"},
                                       {"text_excerpt": 42}, {"text_excerpt": "Customer shall be liable"}]})
    score = grounding(SAMPLE, Rollout("s1", payload))
    assert score.details["per_item"] == ["too_short", "missing", "not_text", "grounded"]
    assert score.value == 0.25


def test_not_json_wrong_shape_and_no_quotes_score_0_with_a_reason() -> None:
    grounding = check("quote_grounding")
    not_json = grounding(SAMPLE, Rollout("s1", "The liability clause is bad."))
    assert not_json.value == 0.0 and "not valid JSON" in not_json.rationale
    wrong_shape = grounding(SAMPLE, Rollout("s1", '{"comments": "none"}'))
    assert wrong_shape.value == 0.0 and "not a list" in wrong_shape.rationale
    empty = grounding(SAMPLE, Rollout("s1", '{"comments": []}'))
    assert empty.value == 0.0 and "no quotes" in empty.rationale


def test_fenced_json_answer_is_read() -> None:
    grounding = check("quote_grounding")
    fenced = "```json\n" + answer("Customer shall be liable without limit") + "\n```"
    assert grounding(SAMPLE, Rollout("s1", fenced)).value == 1.0


def test_sample_without_the_source_field_is_a_data_error_not_zero() -> None:
    grounding = check("quote_grounding", source_field="contract")
    bare = Sample("s2", [{"role": "user", "content": "x"}])
    with pytest.raises(DataError) as caught:
        grounding(bare, Rollout("s2", answer("anything at all")))
    assert caught.value.field == "contract"


def test_a_row_without_the_source_field_is_unscored_naming_file_line_and_field(tmp_path: Path) -> None:
    """It was unscored as "sample 'a' has no text field 'contract' ...": no file, no line, and
    each row its own reason in the summary (no `data_error:` prefix)."""
    from judgerl.data import load_rollouts
    from judgerl.reward.pipeline import RewardPipeline

    rows = tmp_path / "rollouts.jsonl"
    rows.write_text(json.dumps({"id": "a", "prompt": "x", "contract": "the sky is green today",
                                "completion": answer("the sky is green")}) + "\n"
                    + json.dumps({"id": "b", "prompt": "x", "completion": answer("the sky is green")}) + "\n")
    config = {"checks": [{"name": "quotes", "type": "quote_grounding", "source_field": "contract"}],
              "failure_budget": None}
    with RewardPipeline.from_config(config) as pipeline:
        rewards = pipeline.score_batch_sync(load_rollouts(rows).pairs)
    assert rewards[0].status == "ok"
    assert rewards[1].status == "unscored"
    expected = f"data_error: {rows}, line 2, field 'contract': quote_grounding check 'quotes' needs"
    assert rewards[1].reason.startswith(expected), rewards[1].reason


def test_source_can_be_the_prompt_and_a_top_level_list() -> None:
    sample = Sample("s3", [{"role": "user", "content": "Quote the line: the sky is green today."}])
    grounding = check("quote_grounding", source_field="prompt", path="[*].quote")
    payload = json.dumps([{"quote": "the sky is green today"}, {"quote": "the grass is blue"}])
    assert grounding(sample, Rollout("s3", payload)).value == 0.5


def test_bad_path_and_unknown_option_fail_at_config_time() -> None:
    with pytest.raises(ConfigError, match=r"checks\.quote_grounding\.path"):
        check("quote_grounding", path="comments..text_excerpt")
    with pytest.raises(ConfigError, match=r"checks\.quote_grounding\.sorce_field"):
        check("quote_grounding", sorce_field="contract")


# -- item_count --------------------------------------------------------------------------------


def comments(n: int) -> str:
    return json.dumps({"comments": [{"comment": f"distinct point number {index}"} for index in range(n)]})


def test_count_inside_range_is_1_and_decays_outside() -> None:
    count = check("item_count", min=2, max=5, tolerance=2)
    values = {n: count(SAMPLE, Rollout("s1", comments(n))).value for n in (0, 1, 2, 5, 6, 7, 8)}
    assert values == {0: 0.0, 1: 0.5, 2: 1.0, 5: 1.0, 6: 0.5, 7: 0.0, 8: 0.0}
    rationale = count(SAMPLE, Rollout("s1", comments(6))).rationale
    assert rationale == "6 items, above the maximum of 5 by 1 (tolerance 2)"


def test_count_on_non_json_and_on_a_top_level_list() -> None:
    count = check("item_count", min=1, max=3)
    assert count(SAMPLE, Rollout("s1", "three comments")).value == 0.0
    top_level = check("item_count", path="[*]", min=1, max=3)
    assert top_level(SAMPLE, Rollout("s1", "[1, 2]")).value == 1.0
    assert top_level(SAMPLE, Rollout("s1", '{"comments": [1, 2]}')).value == 0.0


def test_count_needs_a_bound_and_an_ordered_range() -> None:
    with pytest.raises(ConfigError, match=r"checks\.item_count\.max"):
        check("item_count")
    with pytest.raises(ConfigError, match=r"checks\.item_count\.min"):
        check("item_count", min=5, max=2)


# -- item_duplicates ---------------------------------------------------------------------------


def review(*texts: str) -> str:
    return json.dumps({"comments": [{"text_excerpt": "x", "comment": text} for text in texts]})


def test_exact_duplicates_after_normalisation_are_penalised() -> None:
    dupes = check("item_duplicates")
    score = dupes(SAMPLE, Rollout("s1", review("Liability is unlimited.", "LIABILITY   is unlimited!",
                                                "Renewal is automatic.")))
    assert score.value == pytest.approx(2 / 3)
    assert score.details["duplicates"] == [{"index": 1, "of": 0, "overlap": 1.0}]


def test_near_duplicates_by_token_overlap_and_the_threshold() -> None:
    a = "Customer liability is uncapped which breaches the vendor policy on liability caps"
    b = "Customer liability is uncapped which clearly breaches the vendor policy on liability caps"
    c = "The supplier can terminate on seven days notice while the customer cannot terminate"
    strict = check("item_duplicates", threshold=0.8)
    assert strict(SAMPLE, Rollout("s1", review(a, b, c))).value == pytest.approx(2 / 3)
    lenient = check("item_duplicates", threshold=1.0)
    assert lenient(SAMPLE, Rollout("s1", review(a, b, c))).value == 1.0
    assert strict(SAMPLE, Rollout("s1", review(a, c))).value == 1.0


def test_duplicates_on_several_fields_and_degenerate_inputs() -> None:
    both = check("item_duplicates", fields=["text_excerpt", "comment"])
    payload = json.dumps({"comments": [{"text_excerpt": "clause four", "comment": "same words here"},
                                       {"text_excerpt": "clause five", "comment": "same words here"}]})
    assert both(SAMPLE, Rollout("s1", payload)).value == 1.0   # different excerpts: 4/6 tokens shared
    assert check("item_duplicates")(SAMPLE, Rollout("s1", payload)).value == 0.5
    assert both(SAMPLE, Rollout("s1", "not json")).value == 0.0
    assert both(SAMPLE, Rollout("s1", '{"comments": []}')).value == 0.0
