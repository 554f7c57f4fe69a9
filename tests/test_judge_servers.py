"""Judges on servers, over loopback: structured verdicts, verdict tokens, the completions endpoint.

The fake server (tests/fake_openai.py) records what each request sent; these tests check that a
judge asking for JSON sends its answer's JSON Schema the way the backend's `structured_output`
says, that a schema-shaped answer goes through the same strict parser, that a logprob judge whose
verdict token is several tokens for the model is refused before any judgment with a working pair,
and that `endpoint: completions` sends the prompt the local backend would see.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import jsonschema
import pytest

from fake_openai import FakeOpenAIServer, RecordedRequest, Reply
from judgerl.backends.base import CompletionRequest, render_prompt
from judgerl.backends.openai_compat import OpenAICompatBackend
from judgerl.errors import ConfigError
from judgerl.judges.parsing import (
    CriterionSpec,
    group_schema,
    pairwise_schema,
    parse_group,
    parse_pairwise,
    parse_rubric,
    rubric_schema,
)
from judgerl.reward.pipeline import RewardPipeline
from judgerl.types import Rollout, Sample

CRITERIA = [{"name": "correct", "kind": "check", "description": "States the right fact."},
            {"name": "concise", "kind": "likert", "description": "How concise it is.",
             "levels": {1: "rambling", 2: "padded", 3: "fine", 4: "direct", 5: "one phrase"}}]
SAMPLE = Sample("s1", [{"role": "user", "content": "What is the capital of France?"}], reference="Paris")
ROLLOUTS = [Rollout("s1", "Paris.", id="s1#0"), Rollout("s1", "Lyon, I think.", id="s1#1")]


def config(url: str, judge: dict[str, Any], **backend: Any) -> dict[str, Any]:
    return {"backends": {"judge": {"type": "openai", "base_url": url, "model": "judge-model",
                                   "timeout_s": 5, **backend}},
            "judges": [{"name": "quality", "backend": "judge", **judge}]}


def sent_schema(record: RecordedRequest) -> dict[str, Any]:
    response_format = record.body["response_format"]
    assert response_format["type"] == "json_schema" and response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["name"] == "judgment"
    return response_format["json_schema"]["schema"]


def schema_answer(schema: dict[str, Any]) -> dict[str, Any]:
    """The first instance of `schema` (as a constrained server would write one)."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema["type"]
    if kind == "object":
        return {key: schema_answer(item) for key, item in schema["properties"].items()}
    if kind == "array":
        ids = schema["items"]["properties"].get("id", {}).get("enum")
        entries = [schema_answer(schema["items"]) for _ in range(schema["minItems"])]
        for entry, item in zip(entries, ids or [], strict=False):
            entry["id"] = item
        return entries
    return {"boolean": True, "string": "because", "integer": schema.get("minimum", 1)}[kind]


def answer_from_schema(record: RecordedRequest) -> Reply:
    schema = sent_schema(record)
    answer = schema_answer(schema)
    jsonschema.validate(answer, schema)  # the server's answer has the schema's shape
    return Reply(text=json.dumps(answer))


# --------------------------------------------------------------------------- structured verdicts


def test_every_json_judge_sends_its_schema_and_the_constrained_answer_parses(fake_openai: FakeOpenAIServer,
                                                                              ) -> None:
    """Rubric, pairwise, group and itemized judges each send a strict schema; the answer the server
    writes in that shape is scored by the same strict parser (no row unscored)."""
    fake_openai.responder = answer_from_schema
    judges = [
        {"type": "rubric", "criteria": CRITERIA},
        {"type": "pairwise", "mode": "round_robin"},
        {"type": "group", "instructions": "Correct answers score higher."},
        {"type": "itemized_rubric", "criteria": CRITERIA[:1], "items_path": "items"},
    ]
    rollouts = {"itemized_rubric": [Rollout("s1", '{"items": ["Paris", "Lyon"]}', id="s1#0")]}
    for judge in judges:
        fake_openai.reset_counters()
        with RewardPipeline.from_config(config(fake_openai.url, judge)) as pipeline:
            rewards = pipeline.score_batch_sync([(SAMPLE, rollout)
                                                 for rollout in rollouts.get(judge["type"], ROLLOUTS)])
        assert all(reward.status == "ok" and reward.value is not None for reward in rewards), (judge, rewards)
        assert fake_openai.chat_requests, judge
        for record in fake_openai.chat_requests:
            assert sent_schema(record)["additionalProperties"] is False


def test_schemas_describe_what_the_parsers_accept() -> None:
    """An instance of each schema parses; the parser still rejects what a schema cannot exclude."""
    specs = [CriterionSpec("correct", "check"), CriterionSpec("concise", "likert")]
    rubric = schema_answer(rubric_schema(specs))
    assert set(parse_rubric(json.dumps(rubric), specs)) == {"correct", "concise"}
    assert parse_pairwise(json.dumps(schema_answer(pairwise_schema()))).winner == "A"
    group = schema_answer(group_schema(["r1", "r2"]))
    assert set(parse_group(json.dumps(group), ["r1", "r2"])) == {"r1", "r2"}
    twice = {"scores": [{"id": "r1", "rationale": "", "score": 3}, {"id": "r1", "rationale": "", "score": 4}]}
    jsonschema.validate(twice, group_schema(["r1", "r2"]))  # the schema allows a repeated id ...
    with pytest.raises(Exception, match="duplicated"):
        parse_group(json.dumps(twice), ["r1", "r2"])  # ... the parser does not


@pytest.mark.parametrize(("backend", "expected"), [
    ({"structured_output": "json_object"}, {"type": "json_object"}),
    ({"supports_json_mode": True, "supports_json_schema": False}, {"type": "json_object"}),
    ({"structured_output": "none"}, None),
    ({"supports_json_mode": False}, None),
])
def test_structured_output_is_one_switch(fake_openai: FakeOpenAIServer, backend: dict[str, Any],
                                         expected: dict[str, Any] | None) -> None:
    fake_openai.default = Reply(text='{"criteria": {"correct": {"rationale": "ok", "score": true}}}')
    judge = {"type": "rubric", "criteria": CRITERIA[:1]}
    with RewardPipeline.from_config(config(fake_openai.url, judge, **backend)) as pipeline:
        rewards = pipeline.score_batch_sync([(SAMPLE, ROLLOUTS[0])])
    assert rewards[0].value == 1.0
    assert fake_openai.chat_requests[0].body.get("response_format") == expected


def test_llamacpp_type_sends_the_schema_in_llama_cpp_form(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.default = Reply(text='{"rationale": "A is right", "winner": "A"}')
    cfg = config(fake_openai.url, {"type": "pairwise", "allow_tie": False})
    cfg["backends"]["judge"]["type"] = "llamacpp"
    with RewardPipeline.from_config(cfg) as pipeline:
        verdict = pipeline.loop_thread().run(pipeline.judges[0].compare(SAMPLE, "Paris", "Lyon"))
    sent = fake_openai.chat_requests[0].body["response_format"]
    assert sent == {"type": "json_object", "schema": pairwise_schema(allow_tie=False)}
    assert verdict.winner == "tie"  # A won in both orders: the first answer once, the second once


def test_judge_json_mode_is_accepted_with_a_warning(fake_openai: FakeOpenAIServer, caplog) -> None:
    fake_openai.default = Reply(text='{"criteria": {"correct": {"rationale": "ok", "score": false}}}')
    with caplog.at_level(logging.WARNING), \
            RewardPipeline.from_config(config(fake_openai.url, {"type": "rubric", "criteria": CRITERIA[:1],
                                                                "json_mode": True})) as pipeline:
        assert pipeline.score_batch_sync([(SAMPLE, ROLLOUTS[0])])[0].value == 0.0
    assert "structured_output" in caplog.text
    assert fake_openai.chat_requests[0].body["response_format"]["type"] == "json_schema"


@pytest.mark.parametrize("reply", [
    Reply(status=400, error="unsupported response_format type json_schema"),
    # llama-cpp-python's server answers a request it cannot validate with a 500 (checked on 0.3.36)
    Reply(status=500, error="1 validation error: {'type': 'literal_error', 'loc': ('body', "
          "'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\"}"),
])
def test_a_server_that_refuses_schemas_names_the_switch(fake_openai: FakeOpenAIServer, reply: Reply) -> None:
    from judgerl.errors import FatalBackendError

    fake_openai.default = reply
    with RewardPipeline.from_config(config(fake_openai.url, {"type": "rubric", "criteria": CRITERIA[:1]})) \
            as pipeline, pytest.raises(FatalBackendError, match="structured_output: json_object or none"):
        pipeline.score_batch_sync([(SAMPLE, ROLLOUTS[0])])
    assert len(fake_openai.chat_requests) == 1  # not retried


# --------------------------------------------------------------------------- verdict tokens

SPLITS = {"PASS": ["P", "ASS"], " PASS": [" P", "ASS"], "FAIL": ["F", "AIL"], " FAIL": [" F", "AIL"]}


def fake_tokenizer(text: str) -> list[str]:
    """Splits PASS / FAIL in two, like SmolLM2's tokenizer; every other short word is one token."""
    return SPLITS.get(text, [text])


def logprob_reply(record: RecordedRequest) -> Reply:
    top = {"Yes": math.log(0.7), "No": math.log(0.2), "P": math.log(0.05)}
    return Reply(text="Yes", logprobs=[("Yes", top["Yes"], top)])


def logprob_judge(**options: Any) -> dict[str, Any]:
    return {"type": "rubric", "scoring": "logprob", "criteria": CRITERIA[:1], **options}


def test_a_verdict_token_of_several_tokens_is_refused_before_any_judgment(fake_openai: FakeOpenAIServer,
                                                                           ) -> None:
    fake_openai.tokenizer = fake_tokenizer
    fake_openai.responder = logprob_reply
    with RewardPipeline.from_config(config(fake_openai.url, logprob_judge())) as pipeline, \
            pytest.raises(ConfigError) as caught:
        pipeline.score_batch_sync([(SAMPLE, ROLLOUTS[0])])
    message = str(caught.value)
    assert "'PASS' splits into 'P' + 'ASS'" in message and "'FAIL' splits into 'F' + 'AIL'" in message
    assert 'use pass_token: "Yes" / fail_token: "No"' in message
    assert fake_openai.chat_requests == []  # refused before the first judgment
    # the pair it names works: every row scored
    working = logprob_judge(pass_token="Yes", fail_token="No")
    with RewardPipeline.from_config(config(fake_openai.url, working)) as pipeline:
        rewards = pipeline.score_batch_sync([(SAMPLE, rollout) for rollout in ROLLOUTS])
    assert [round(reward.value, 3) for reward in rewards] == [0.778, 0.778]


def test_fixed_tokens_that_split_are_refused_with_the_way_out(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.tokenizer = lambda text: ["<", text.strip(), ">"] if text.strip() in {"A", "B"} else [text]
    judge = {"type": "pairwise", "scoring": "logprob"}
    with RewardPipeline.from_config(config(fake_openai.url, judge)) as pipeline, \
            pytest.raises(ConfigError, match="tokens are fixed: score it with the local backend"):
        pipeline.score_batch_sync([(SAMPLE, rollout) for rollout in ROLLOUTS])


def test_a_backend_that_cannot_tell_warns_and_runs(fake_openai: FakeOpenAIServer, caplog) -> None:
    fake_openai.responder = logprob_reply  # no tokenize endpoint: 404
    with caplog.at_level(logging.WARNING), \
            RewardPipeline.from_config(config(fake_openai.url, logprob_judge(pass_token="Yes",
                                                                             fail_token="No"))) as pipeline:
        rewards = pipeline.score_batch_sync([(SAMPLE, ROLLOUTS[0])])
    assert rewards[0].status == "ok"
    assert "cannot check that its verdict tokens" in caplog.text and "`tokenizer`" in caplog.text


def test_the_verdict_tokens_are_checked_once_for_a_batch_of_many_prompts(fake_openai: FakeOpenAIServer,
                                                                         caplog) -> None:
    """The prompts of a batch are scored concurrently; they used to check the verdict tokens
    once each (a warning per prompt: 64 prompts, 64 identical warnings and tokenize requests)."""
    fake_openai.responder = logprob_reply  # no tokenize endpoint: 404, so the check warns
    judge = logprob_judge(pass_token="Yes", fail_token="No")
    items = [(Sample(f"s{index}", [{"role": "user", "content": f"question {index}"}]),
              Rollout(f"s{index}", "an answer", id=f"s{index}#0")) for index in range(6)]
    with caplog.at_level(logging.WARNING), \
            RewardPipeline.from_config(config(fake_openai.url, judge)) as pipeline:
        rewards = pipeline.score_batch_sync(items)
        pipeline.score_batch_sync(items[:2])
    assert [reward.status for reward in rewards] == ["ok"] * 6
    assert caplog.text.count("cannot check that its verdict tokens") == 1, caplog.text


def test_validate_refuses_before_its_first_section(fake_openai: FakeOpenAIServer, tmp_path) -> None:
    from judgerl.validate.runner import run_validation

    fake_openai.tokenizer = fake_tokenizer
    suite = {"judge": "quality", "consistency": {"data": {"dataset": "evalbiasbench", "limit": 2},
                                                 "repeats": 2}}
    with pytest.raises(ConfigError, match='use pass_token: "Yes" / fail_token: "No"'):
        run_validation(config(fake_openai.url, logprob_judge()), suite)
    assert fake_openai.chat_requests == []


# --------------------------------------------------------------------------- completions endpoint


def test_completions_endpoint_sends_the_local_backends_plain_prompt(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.responder = logprob_reply
    judge = logprob_judge(pass_token="Yes", fail_token="No")
    with RewardPipeline.from_config(config(fake_openai.url, judge, endpoint="completions")) as pipeline:
        reward = pipeline.score_batch_sync([(SAMPLE, ROLLOUTS[0])])[0]
        rubric = pipeline.judges[0]
        request = rubric.logprob_request(SAMPLE, ROLLOUTS[0], rubric.options.criteria[0])
    assert round(reward.value, 3) == 0.778
    assert fake_openai.chat_requests == [] and len(fake_openai.text_requests) == 1
    body = fake_openai.text_requests[0].body
    # exactly what the local backend with chat_template: false renders
    assert body["prompt"] == render_prompt(request) and "messages" not in body
    assert body["logprobs"] == 20 and body["max_tokens"] == 1


async def test_completions_endpoint_generates_with_the_schema(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.default = Reply(text='{"rationale": "x", "winner": "B"}')
    backend = OpenAICompatBackend(fake_openai.url, "m", endpoint="completions")
    request = CompletionRequest([{"role": "user", "content": "A or B?"}], json_mode=True,
                                response_schema=pairwise_schema())
    completion = await backend.complete(request)
    await backend.aclose()
    assert parse_pairwise(completion.text).winner == "B"
    assert fake_openai.text_requests[0].body["response_format"]["json_schema"]["schema"] == pairwise_schema()


def test_chat_template_needs_a_tokenizer_and_the_completions_endpoint() -> None:
    with pytest.raises(ConfigError, match="give `tokenizer`"):
        OpenAICompatBackend("http://127.0.0.1:9/v1", "m", endpoint="completions", chat_template=True)
    with pytest.raises(ConfigError, match="endpoint: completions"):
        OpenAICompatBackend("http://127.0.0.1:9/v1", "m", chat_template=True, tokenizer="x")


@pytest.mark.slow
async def test_the_packaged_models_tokenizer_checks_tokens_and_renders_its_template() -> None:
    """`tokenizer: smollm2-135m-instruct` (read from the packaged GGUF): PASS is 'P' + 'ASS' there,
    Yes / No are one token each; with chat_template the completions prompt is the model's ChatML."""
    from judgerl.judges.verdict_tokens import TokenSet, check_token_set

    backend = OpenAICompatBackend("http://127.0.0.1:9/v1", "m", tokenizer="smollm2-135m-instruct",
                                  endpoint="completions", chat_template=True)
    assert await backend.token_pieces("PASS") == ["P", "ASS"]
    assert await backend.token_pieces("Yes") == ["Yes"]
    problem = await check_token_set(backend, "judge",
                                    TokenSet("quality", ("PASS", "FAIL"), "pass_token / fail_token"))
    assert problem is not None and 'use pass_token: "Yes" / fail_token: "No"' in problem
    assert await check_token_set(backend, "judge", TokenSet("quality", ("Yes", "No"), "x")) is None
    prompt = backend.build_body(CompletionRequest([{"role": "user", "content": "Is 2+2=4?"}]))["prompt"]
    assert prompt.startswith("<|im_start|>system")
    assert prompt.endswith("Is 2+2=4?<|im_end|>\n<|im_start|>assistant\n")


def test_an_unquoted_yes_is_named_as_a_yaml_boolean(fake_openai: FakeOpenAIServer) -> None:
    with pytest.raises(ConfigError, match="YAML read this token as true: quote it"):
        RewardPipeline.from_config(config(fake_openai.url, logprob_judge(pass_token=True, fail_token="No")))
