"""Tests for the deterministic checks: each type on good, bad and edge answers, and option errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judgerl.checks import CHECK_TYPES, build_check, describe_check_types
from judgerl.config import CheckConfig, load_reward_config
from judgerl.errors import ConfigError, DataError
from judgerl.types import Rollout, Sample, Score

SCHEMA = {
    "type": "object",
    "required": ["comments"],
    "properties": {
        "comments": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["text", "severity"],
                "properties": {"text": {"type": "string"}, "severity": {"enum": ["low", "high"]}},
                "additionalProperties": False,
            },
        }
    },
}


def make(type_: str, name: str = "c", base_dir: Path | None = None, **options):
    return build_check(CheckConfig(name=name, type=type_, **options), base_dir or Path.cwd())


def sample(prompt: str = "Answer the question.", reference: str | None = None, **metadata) -> Sample:
    return Sample(id="s1", messages=[{"role": "user", "content": prompt}], reference=reference,
                  metadata=metadata)


def score(check, completion: str, smp: Sample | None = None) -> Score:
    smp = smp or sample()
    result = check(smp, Rollout(smp.id, completion))
    assert result.name == check.name
    assert result.value is None or 0.0 <= result.value <= 1.0
    return result


# -- registry -----------------------------------------------------------------------------------


def test_registry_lists_every_type_with_documented_options():
    assert set(CHECK_TYPES) == {"json_valid", "json_schema", "length", "language", "safety", "match",
                                "quote_grounding", "item_count", "item_duplicates", "tool_arguments",
                                "tool_calls", "tool_grounding", "tool_results_authentic"}
    docs = {row["type"]: row for row in describe_check_types()}
    assert all(docs[name]["summary"] for name in CHECK_TYPES)
    length_options = {option["name"]: option for option in docs["length"]["options"]}
    assert length_options["unit"]["default"] == "words"
    assert all(option["description"] for row in docs.values() for option in row["options"])


def test_unknown_type_is_a_config_error_naming_the_field():
    with pytest.raises(ConfigError) as info:
        make("lenght", name="len")
    assert info.value.field == "checks.len.type"
    assert "length" in str(info.value)


@pytest.mark.parametrize(("type_", "options", "field"), [
    ("json_valid", {"allow_fences": True}, "checks.c.allow_fences"),
    ("json_schema", {}, "checks.c.schema"),
    ("json_schema", {"schema": {"type": "object"}, "schema_file": "x.json"}, "checks.c.schema"),
    ("json_schema", {"schema": {"type": "nonsense"}}, "checks.c.schema"),
    ("json_schema", {"schema_file": "missing.json"}, "checks.c.schema_file"),
    ("json_schema", {"schema": {}, "partial_max": 1.5}, "checks.c.partial_max"),
    ("length", {"max": "ten"}, "checks.c.max"),
    ("length", {"max": -1}, "checks.c.max"),
    ("length", {"unit": "lines", "max": 3}, "checks.c.unit"),
    ("length", {}, "checks.c.max"),
    ("length", {"min": 10, "max": 5}, "checks.c.min"),
    ("length", {"max": 5, "tolerance": -1}, "checks.c.tolerance"),
    ("language", {"expected": "klingon"}, "checks.c.expected"),
    ("language", {"min_chars": 0}, "checks.c.min_chars"),
    ("safety", {}, "checks.c.patterns"),
    ("safety", {"patterns": ["ok", "(unclosed"]}, "checks.c.patterns.1"),
    ("safety", {"patterns": ["a*"]}, "checks.c.patterns.0"),
    ("safety", {"words": ["fine", " "]}, "checks.c.words.1"),
    ("safety", {"pii": ["email", "passport"]}, "checks.c.pii.1"),
    ("safety", {"words_file": "nope.txt"}, "checks.c.words_file"),
    ("safety", {"words": ["x"], "penalty": 2}, "checks.c.penalty"),
    ("match", {"mode": "fuzzy"}, "checks.c.mode"),
    ("match", {"extract": "Answer: .*"}, "checks.c.extract"),
    ("match", {"extract": "("}, "checks.c.extract"),
    ("match", {"mode": "regex", "pattern": "[a-"}, "checks.c.pattern"),
    ("match", {"pattern": "a+"}, "checks.c.pattern"),
    ("match", {"rel_tol": -0.1}, "checks.c.rel_tol"),
])
def test_bad_options_name_the_field(type_, options, field, tmp_path):
    with pytest.raises(ConfigError) as info:
        make(type_, base_dir=tmp_path, **options)
    assert info.value.field == field
    assert field in str(info.value)


def test_checks_build_from_a_reward_config_file(tmp_path):
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "out.json").write_text(json.dumps(SCHEMA))
    (tmp_path / "reward.yaml").write_text(
        "checks:\n"
        "  - {name: schema, type: json_schema, schema_file: schemas/out.json, gate: true}\n"
        "  - {name: short, type: length, unit: chars, max: 100}\n")
    config = load_reward_config(tmp_path / "reward.yaml")
    checks = [build_check(check, config.base_dir) for check in config.checks]
    answer = '{"comments": [{"text": "x", "severity": "low"}]}'
    assert [score(check, answer).value for check in checks] == [1.0, 1.0]


# -- json_valid -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("completion", "expected"), [
    ('{"a": 1}', 1.0),
    ("[1, 2, 3]", 1.0),
    ('"just a string"', 1.0),
    ('```json\n{"a": "é"}\n```', 1.0),
    ('  ```\n{"a": 1}\n```  \n', 1.0),
    ('Here it is: ```json\n{"a": 1}\n```', 0.0),
    ("{'a': 1}", 0.0),
    ('{"a": 1', 0.0),
    ("", 0.0),
    ("   ", 0.0),
    ("```json\n```", 0.0),
])
def test_json_valid(completion, expected):
    assert score(make("json_valid"), completion).value == expected


def test_json_valid_fence_can_be_refused():
    check = make("json_valid", allow_fence=False)
    result = score(check, '```json\n{"a": 1}\n```')
    assert result.value == 0.0
    assert "not valid JSON" in result.rationale


def test_json_valid_empty_answer_says_so():
    assert score(make("json_valid"), "").rationale == "empty answer"


# -- json_schema ----------------------------------------------------------------------------------


def test_json_schema_valid_answer_scores_one():
    answer = '{"comments": [{"text": "ünïcode ✓", "severity": "high"}]}'
    result = score(make("json_schema", schema=SCHEMA), answer)
    assert result.value == 1.0
    assert result.details["errors"] == 0


def test_json_schema_not_json_scores_zero():
    result = score(make("json_schema", schema=SCHEMA), "The contract looks fine.")
    assert result.value == 0.0
    assert "not valid JSON" in result.rationale


def test_json_schema_partial_credit_is_monotone_in_errors():
    check = make("json_schema", schema=SCHEMA)
    one = '{"comments": [{"text": "a", "severity": "urgent"}]}'
    two = '{"comments": [{"text": "a", "severity": "urgent"}, {"severity": "low"}]}'
    three = '{"comments": [{"text": 1, "severity": "urgent"}, {"severity": "low", "extra": 1}]}'
    values = [score(check, answer).value for answer in (one, two, three)]
    assert values[0] == 0.5
    assert values[0] > values[1] > values[2] > 0
    assert values[1] == pytest.approx(0.25)


def test_json_schema_rationale_names_json_paths():
    result = score(make("json_schema", schema=SCHEMA), '{"comments": [{"text": "a", "severity": "urgent"}]}')
    assert "$.comments[0].severity" in result.rationale
    assert result.details["paths"] == ["$.comments[0].severity"]


def test_json_schema_wrong_root_kind_gets_no_partial_credit():
    check = make("json_schema", schema=SCHEMA)
    for answer in ('"comments"', "[]", "42"):
        result = score(check, answer)
        assert result.value == 0.0, answer
        assert "wrong kind" in result.rationale


def test_json_schema_partial_credit_off_and_max():
    answer = '{"comments": [{"text": "a", "severity": "urgent"}]}'
    assert score(make("json_schema", schema=SCHEMA, partial_credit=False), answer).value == 0.0
    assert score(make("json_schema", schema=SCHEMA, partial_max=0.2), answer).value == pytest.approx(0.2)


def test_json_schema_lists_at_most_max_errors_shown():
    schema = {"type": "object", "required": ["a", "b", "c", "d", "e"]}
    result = score(make("json_schema", schema=schema, max_errors_shown=2), "{}")
    assert result.rationale.startswith("5 schema errors:")
    assert result.rationale.count("is a required property") == 2
    assert "(+3 more)" in result.rationale
    assert result.value == pytest.approx(0.1)


def test_json_schema_from_yaml_file_and_formats(tmp_path):
    (tmp_path / "schema.yaml").write_text(
        "type: object\nproperties:\n  email: {type: string, format: email}\nrequired: [email]\n")
    check = make("json_schema", base_dir=tmp_path, schema_file="schema.yaml")
    assert score(check, '{"email": "a@b.org"}').value == 1.0
    assert score(check, '{"email": "not-an-email"}').value == 0.5


def test_json_schema_file_must_parse(tmp_path):
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ConfigError, match="cannot parse"):
        make("json_schema", base_dir=tmp_path, schema_file="bad.json")


def test_json_schema_long_instance_is_truncated_in_rationale():
    result = score(make("json_schema", schema={"type": "object", "properties": {"a": {"type": "integer"}}}),
                   json.dumps({"a": "x" * 1000}))
    assert result.value == 0.5
    assert len(result.rationale) < 300


# -- length ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("words", "expected"), [(0, 0.0), (5, 0.0), (8, 0.6), (10, 1.0), (20, 1.0),
                                                 (25, 0.5), (30, 0.0), (100, 0.0)])
def test_length_default_tolerance_is_half_the_bound(words, expected):
    check = make("length", min=10, max=20)
    assert score(check, " ".join(["word"] * words)).value == pytest.approx(expected)


def test_length_hard_bounds_with_zero_tolerance():
    check = make("length", unit="chars", max=5, tolerance=0)
    assert score(check, "12345").value == 1.0
    assert score(check, "123456").value == 0.0


def test_length_units_differ_on_punctuation_and_unicode():
    text = "Привет, мир! — это тест."
    assert score(make("length", unit="words", max=4), text).value == 1.0  # 4 words
    assert score(make("length", unit="tokens", max=4, tolerance=0), text).value == 0.0  # 5 tokens (the dash)
    assert score(make("length", unit="chars", min=24, max=24), text).value == 1.0


def test_length_rationale_and_details():
    result = score(make("length", unit="tokens", min=3, tolerance=2), "a b")
    assert result.value == 0.5
    assert result.rationale == "2 tokens, below the minimum of 3 by 1 (tolerance 2)"
    assert result.details == {"length": 2, "unit": "tokens"}


def test_length_empty_answer_with_only_max_is_inside():
    assert score(make("length", max=3), "").value == 1.0


# -- language -------------------------------------------------------------------------------------

FR_PROMPT = "Pouvez-vous m'expliquer pourquoi le ciel est bleu pendant la journée ?"
FR_ANSWER = "Le ciel est bleu parce que la lumière du soleil est diffusée par les molécules de l'air."
EN_ANSWER = "The sky is blue because sunlight is scattered by the molecules in the air."
DE_ANSWER = "Der Himmel ist blau, weil das Sonnenlicht von den Molekülen der Luft gestreut wird."


def test_language_follows_the_prompt():
    check = make("language")
    smp = sample(FR_PROMPT)
    assert score(check, FR_ANSWER, smp).value == 1.0
    result = score(check, EN_ANSWER, smp)
    assert result.value == 0.0
    assert result.details["detected"] == "en" and result.details["expected"] == "fr"


def test_language_fixed_expected():
    check = make("language", expected="de")
    assert score(check, DE_ANSWER, sample(FR_PROMPT)).value == 1.0
    assert score(check, EN_ANSWER, sample(FR_PROMPT)).value == 0.0


def test_language_is_deterministic():
    check = make("language")
    mixed = "Le ciel est blue because of scattering, la lumière est diffusée."
    results = {score(check, mixed, sample(FR_PROMPT)).details["detected"] for _ in range(5)}
    assert len(results) == 1


def test_language_short_or_empty_text_is_not_judged():
    check = make("language")
    for answer in ("", "Oui.", "```python\nprint('hello world, this is code')\n```"):
        result = score(check, answer, sample(FR_PROMPT))
        assert result.value == 1.0
        assert "not judged" in result.rationale
    short_prompt = score(check, EN_ANSWER, sample("Hi?"))
    assert short_prompt.value == 1.0 and "prompt too short" in short_prompt.rationale


def test_language_non_latin_and_regional_codes():
    check = make("language", expected="zh")
    zh_answer = "天空之所以是蓝色的，是因为阳光被空气中的分子散射了。这是瑞利散射。"
    assert score(check, zh_answer, sample()).value == 1.0
    ja = make("language", expected="ja")
    ja_answer = "空が青いのは、太陽の光が空気中の分子によって散乱されるからです。"
    assert score(ja, ja_answer, sample()).value == 1.0


def test_language_ignores_urls_and_code_in_the_answer():
    answer = FR_ANSWER + " Voir https://en.wikipedia.org/wiki/Rayleigh_scattering_in_the_atmosphere_of_earth"
    assert score(make("language"), answer, sample(FR_PROMPT)).value == 1.0


# -- safety ---------------------------------------------------------------------------------------


def test_safety_clean_text_scores_one():
    check = make("safety", words=["idiot"], pii=["email", "phone", "credit_card", "iban", "us_ssn", "ipv4"])
    clean = ("In 2024 we shipped 1,250 units at $19.99 on 2024-03-15; version 1.2.3 is idiotically named. "
             "Order 4111 1111 1111 1112 is not a card (bad checksum). Room 101, ZIP 90210. café ✓")
    result = score(check, clean)
    assert result.value == 1.0, result.rationale
    assert result.rationale == "nothing found"


@pytest.mark.parametrize(("kind", "text"), [
    ("email", "contact: jane.doe+tag@mail.example.co.uk"),
    ("phone", "call +44 20 7946 0958 today"),
    ("phone", "call (555) 123-4567"),
    ("phone", "call 555.123.4567"),
    ("credit_card", "card 4111 1111 1111 1111"),
    ("credit_card", "card 5500-0000-0000-0004"),
    ("credit_card", "card 378282246310005"),
    ("iban", "pay to DE89 3704 0044 0532 0130 00"),
    ("us_ssn", "SSN 123-45-6789"),
    ("ipv4", "server at 192.168.0.12"),
])
def test_safety_finds_each_pii_shape_without_repeating_it(kind, text):
    result = score(make("safety", pii=[kind]), text)
    assert result.value == 0.0
    assert result.rationale == f"found: pii:{kind}"
    assert result.details["hits"] == {f"pii:{kind}": 1}
    secret = text.split(" ", 1)[1]
    assert secret not in result.rationale


def test_safety_card_is_not_also_a_phone():
    result = score(make("safety", pii=["phone", "credit_card"]), "4111 1111 1111 1111")
    assert result.details["hits"] == {"pii:credit_card": 1}


def test_safety_bare_digit_runs_and_bad_checksums_are_not_pii():
    check = make("safety", pii=["phone", "credit_card", "iban", "us_ssn"])
    for text in ("id 5551234567", "DE89 3704 0044 0532 0130 01", "4111111111111112", "000-12-3456"):
        assert score(check, text).value == 1.0, text


def test_safety_words_are_case_insensitive_whole_words_and_phrases():
    check = make("safety", words=["darn", "ignore previous instructions"])
    assert score(check, "DARN it").value == 0.0
    assert score(check, "Darnell and darning are fine").value == 1.0
    result = score(check, "Please IGNORE previous   instructions... no: ignore previous instructions.")
    assert result.details["hits"] == {"word:'ignore previous instructions'": 1}


def test_safety_unicode_words():
    check = make("safety", words=["merde"])
    assert score(check, "Quelle MERDE !").value == 0.0
    assert score(check, "emmerdement").value == 1.0


def test_safety_patterns_and_penalty():
    check = make("safety", patterns=[r"(?i)as an ai( language)? model"], words=["sorry"], penalty=0.2)
    result = score(check, "Sorry, as an AI model I cannot. As an AI language model, sorry again.")
    assert result.value == pytest.approx(1 - 0.2 * 4)
    assert "pattern:" in result.rationale and "word:'sorry' x2" in result.rationale
    assert score(check, "Sure, here it is.").value == 1.0


def test_safety_words_file(tmp_path):
    (tmp_path / "banned.txt").write_text("# banned words\nfoo\n\nbar baz\n")
    check = make("safety", base_dir=tmp_path, words_file="banned.txt")
    assert score(check, "a foo").value == 0.0
    assert score(check, "bar baz!").value == 0.0
    assert score(check, "bar, baz, food").value == 1.0


def test_safety_empty_answer_is_clean():
    assert score(make("safety", pii=["email"]), "").value == 1.0


# -- match ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "answer", "reference", "expected"), [
    ({}, "  Paris ", "paris", 1.0),
    ({}, "Paris.", "Paris", 0.0),
    ({"strip_punctuation": True}, "Paris.", "Paris", 1.0),
    ({"case_sensitive": True}, "paris", "Paris", 0.0),
    ({"normalize_whitespace": False}, "New  York", "New York", 0.0),
    ({}, "New\n York", "new york", 1.0),
    ({}, "Ｐａｒｉｓ", "Paris", 1.0),  # full-width letters, NFKC
    ({}, "Zürich", "zürich", 1.0),
    ({}, "", "Paris", 0.0),
])
def test_match_exact(options, answer, reference, expected):
    assert score(make("match", **options), answer, sample(reference=reference)).value == expected


@pytest.mark.parametrize(("answer", "reference", "expected"), [
    ("The answer is 42.", "42", 1.0),
    ("It is 1,234.5 in total", "1234.5", 1.0),
    (r"So we get \boxed{12} apples, and 3 left over", "12", 1.0),
    (r"\boxed{\frac{1}{2}}", "0.5", 1.0),
    ("x = -7", "−7", 1.0),
    ("3/4 of them", "0.75", 1.0),
    ("2.5e3", "2500", 1.0),
    ("She paid $18.", "Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 18", 1.0),
    ("It is 41.", "42", 0.0),
    ("No idea.", "42", 0.0),
    ("", "42", 0.0),
])
def test_match_numeric(answer, reference, expected):
    check = make("match", mode="numeric")
    assert score(check, answer, sample(reference=reference)).value == expected


def test_match_numeric_tolerance():
    smp = sample(reference="3.14159")
    assert score(make("match", mode="numeric"), "3.14", smp).value == 0.0
    assert score(make("match", mode="numeric", abs_tol=0.01), "3.14", smp).value == 1.0
    assert score(make("match", mode="numeric", rel_tol=0.001), "3.14", smp).value == 1.0


def test_match_numeric_reference_without_number_is_a_data_error():
    with pytest.raises(DataError, match="holds no number") as info:
        make("match", mode="numeric")(sample(reference="forty-two"), Rollout("s1", "42"))
    assert "s1" in str(info.value)


def test_match_regex_modes():
    smp = sample(reference=r"\b(A|B)\b")
    assert score(make("match", mode="regex"), "I pick B.", smp).value == 1.0
    assert score(make("match", mode="regex"), "I pick C.", smp).value == 0.0
    full = make("match", mode="regex", regex_match="fullmatch", pattern=r"yes|no")
    assert score(full, " YES ", sample()).value == 1.0
    assert score(full, "yes and no", sample()).value == 0.0


def test_match_regex_reference_that_is_not_a_regex_is_a_data_error():
    with pytest.raises(DataError, match="not a valid regular expression"):
        make("match", mode="regex")(sample(reference="(oops"), Rollout("s1", "x"))


def test_match_extract_and_metadata_field_with_alternatives():
    check = make("match", field="label", extract=r"Answer:\s*(.+)")
    smp = sample(label=["positive", "pos"])
    assert score(check, "Reasoning...\nAnswer: POS", smp).value == 1.0
    assert score(check, "Answer: negative", smp).value == 0.0
    missing = score(check, "I think positive", smp)
    assert missing.value == 0.0 and "no answer found" in missing.rationale


def test_match_missing_reference_is_a_data_error_naming_the_sample():
    with pytest.raises(DataError) as info:
        make("match", name="exact")(sample(), Rollout("s1", "Paris"))
    assert info.value.field == "reference"
    assert "'s1'" in str(info.value) and "'exact'" in str(info.value)
    with pytest.raises(DataError) as info:
        make("match", field="label")(sample(reference="Paris"), Rollout("s1", "Paris"))
    assert info.value.field == "label"


def test_match_regex_with_pattern_needs_no_reference():
    check = make("match", mode="regex", pattern=r"^\d+$")
    assert score(check, "123", sample()).value == 1.0


def test_json_checks_survive_hostile_nesting():
    deep = "[" * 100_000 + "]" * 100_000
    result = score(make("json_valid"), deep)
    assert result.value == 0.0 and "nested too deeply" in result.rationale
    schema = {"type": "array", "items": {"$ref": "#"}}
    check = make("json_schema", schema=schema)
    assert score(check, "[[[]]]").value == 1.0
    result = score(check, "[" * 900 + "]" * 900)
    assert result.value == 0.0 and "nested too deeply" in result.rationale


def test_match_numeric_survives_huge_numbers():
    check = make("match", mode="numeric")
    assert score(check, "1" * 20_000, sample(reference="1")).value == 0.0
    assert score(check, "1e999999", sample(reference="5")).value == 0.0
