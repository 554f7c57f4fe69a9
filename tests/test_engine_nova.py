"""The SageMaker Python SDK v3's and the Amazon Nova Forge SDK's own `verify_reward_function` on
judgerl's Nova Lambda handler.

Why: Nova RFT customers check a reward Lambda with the SDK's verifier before a training job, and
SageMaker v3's `RLVRTrainer.train()` runs it itself on the first three rows of the training data
before it submits a job. Two verifiers are published: the Forge SDK's (amzn-nova-forge, now
deprecated in favour of v3) validates the samples with its RFT dataset model, calls the handler
with the whole batch and validates each answer (`id`, `aggregate_reward_score`, `metrics_list`);
v3's (`sagemaker.train.common_utils.rlvr_reward_verifier`, sagemaker-train) validates the answers
only, and for open-weight models (`is_nova=False`) expects them in an HTTP-style envelope. This
runs the real packages (pinned in scripts/setup and the `engines` extra) on their local path: given
a Python file instead of a Lambda ARN, each reads the file, executes it and calls its
`lambda_handler` with the batch, so no AWS call is made (telemetry is switched off with
`TELEMETRY_OPT_OUT`, and conftest fails any test that tries to reach the network). The file is
the shipped examples/aws_lambda/handler.py; the reward config is a real YAML with tool checks and
a trajectory rubric judge on an OpenAI-compatible server over loopback.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import logging
import re
import textwrap
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fake_openai import FakeOpenAIServer, RecordedRequest, Reply
from judgerl.adapters import clear_pipelines

VERIFIERS = {
    # the package that must be importable, the module that holds `verify_reward_function`
    "nova-forge": ("amzn_nova_forge", "amzn_nova_forge.util.reward_verifier"),
    "sagemaker-v3": ("sagemaker.train", "sagemaker.train.common_utils.rlvr_reward_verifier"),
}


def _import_verifier(name: str) -> Callable[..., dict[str, Any]]:
    """An SDK's verifier, imported here and not at collection: the Forge SDK's import calls
    `logging.basicConfig(level=INFO)`, which would change the root logger of the whole test run;
    its level and handlers are put back."""
    package, module = VERIFIERS[name]
    try:
        found = importlib.util.find_spec(package) is not None
    except ModuleNotFoundError:  # a parent package ("sagemaker") is missing
        found = False
    if not found:
        pytest.skip(f"needs {package} (the `engines` extra; scripts/setup installs it)")
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "amzn-nova-forge is deprecated"
            verifier = importlib.import_module(module).verify_reward_function
    finally:
        root.setLevel(level)
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
    return verifier


@pytest.fixture(scope="module", params=sorted(VERIFIERS))
def verify_reward_function(request: pytest.FixtureRequest) -> Callable[..., dict[str, Any]]:
    """Each published verifier in turn."""
    return _import_verifier(request.param)


@pytest.fixture(scope="module")
def forge_verifier() -> Callable[..., dict[str, Any]]:
    return _import_verifier("nova-forge")


@pytest.fixture(scope="module")
def v3_verifier() -> Callable[..., dict[str, Any]]:
    return _import_verifier("sagemaker-v3")

HANDLER = Path(__file__).resolve().parents[1] / "examples" / "aws_lambda" / "handler.py"

TOOLS = [
    {"type": "function", "function": {
        "name": "lookup_order", "description": "Looks an order up by its number.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                       "required": ["order_id"]}}},
    {"type": "function", "function": {
        "name": "refund_policy", "description": "The refund policy for a product category.",
        "parameters": {"type": "object", "properties": {"category": {"type": "string"}},
                       "required": ["category"]}}},
]
SYSTEM = {"role": "system", "content": "You are a shop's support agent. Look orders up before answering."}
QUESTION = {"role": "user", "content": "Can I get a refund for order A17? The kettle broke."}


def call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


GOOD = {"id": "good", "tools": TOOLS, "reference_answer": "Refund of 59.90 granted for order A17.",
        "messages": [
            SYSTEM, QUESTION,
            {"role": "assistant", "tool_calls": [call("c1", "lookup_order", {"order_id": "A17"})]},
            {"role": "tool", "tool_call_id": "c1",
             "content": '{"order_id": "A17", "category": "kitchen", "total": "59.90", "days": 12}'},
            {"role": "assistant", "content": "Let me check the policy for kitchen items.",
             "tool_calls": [call("c2", "refund_policy", {"category": "kitchen"})]},
            {"role": "tool", "tool_call_id": "c2", "content": "Kitchen items: full refund within 30 days."},
            {"role": "assistant", "content": "Order A17 was delivered 12 days ago, within the 30-day "
                                             "window: I have started a refund of 59.90. You will see it "
                                             "in 3 to 5 days."}]}

# The same run cut after a turn that only calls a tool: before issue 19 the handler read only
# `content` and this scored 0.0.
CALLS_ONLY = {"id": "calls-only", "tools": TOOLS, "reference_answer": GOOD["reference_answer"],
              "messages": [*GOOD["messages"][:4], {"role": "assistant", "tool_calls": [
                  call("c2", "refund_policy", {"category": "kitchen"})]}]}

# Answers without looking anything up: the `looked_up` gate scores it 0 (the verifier accepts a 0;
# this test asserts that the tool-using samples are the ones that get real, non-zero scores).
LAZY = {"id": "lazy", "tools": TOOLS, "reference_answer": "Refund of 59.90 granted for order A17.",
        "messages": [SYSTEM, QUESTION,
                     {"role": "assistant", "content": "Sure, a refund of 80.00 is on its way."}]}

SAMPLES = [GOOD, CALLS_ONLY, LAZY]


def verdict(request: RecordedRequest) -> Reply:
    """A rubric verdict: criterion `looked_up_first` holds when the transcript shows a tool result."""
    used_tools = re.search(r"^#\d+ tool result", request.prompt, re.M) is not None
    return Reply(text=json.dumps({"criteria": {
        "looked_up_first": {"rationale": "reads the order before answering" if used_tools else "no lookup",
                            "score": used_tools},
        "polite": {"rationale": "courteous", "score": True}}}))


@pytest.fixture
def judge_server() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer()
    server.responder = verdict
    with server:
        yield server


@pytest.fixture
def reward_config(tmp_path: Path, judge_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "reward.yaml"
    path.write_text(textwrap.dedent(f"""\
        backends:
          judge: {{type: openai, base_url: '{judge_server.url}', model: fake-judge, timeout_s: 10}}
        runtime: {{max_attempts: 1}}
        checks:
          - {{name: looked_up, type: tool_calls, required: [lookup_order], max_calls: 4,
             gate: true, gate_score: 0.0}}
          - {{name: arguments, type: tool_arguments}}
          - {{name: authentic, type: tool_results_authentic}}
        judges:
          - name: resolution
            type: rubric
            backend: judge
            scope: trajectory
            weight: 2
            criteria:
              - {{name: looked_up_first, description: "Looks the order up before answering."}}
              - {{name: polite, description: "Polite to the customer."}}
        failure_policy: unscored
        failure_budget: null
        """), encoding="utf-8")
    monkeypatch.setenv("JUDGERL_REWARD_CONFIG", str(path))
    monkeypatch.setenv("TELEMETRY_OPT_OUT", "true")  # the SDK would otherwise GET an S3 URL per call
    yield path
    clear_pipelines()


def metrics(output: dict[str, Any]) -> dict[str, float]:
    return {metric["name"]: metric["value"] for metric in output["metrics_list"]}


def test_the_sdk_verifier_accepts_tool_calling_samples_with_non_zero_rewards(
        verify_reward_function: Any, reward_config: Path, judge_server: FakeOpenAIServer) -> None:
    sent = copy.deepcopy(SAMPLES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        report = verify_reward_function(str(HANDLER), sent)
    assert report["success"] is True
    assert report["total_samples"] == report["successful_samples"] == 3
    assert report["warnings"] == []  # every sample has a reference answer
    outputs = {result["output"]["id"]: result["output"] for result in report["results"]}
    assert [result["status"] for result in report["results"]] == ["success"] * 3
    good, calls_only, lazy = outputs["good"], outputs["calls-only"], outputs["lazy"]
    assert good["aggregate_reward_score"] == pytest.approx(1.0)
    assert metrics(good)["resolution"] == 1.0 and metrics(good)["looked_up"] == 1.0
    assert metrics(good)["unscored"] == 0.0 and metrics(good)["invalid_sample"] == 0.0
    # a turn that only calls tools is a real, scored trajectory, not a 0.0 and not unscored
    assert calls_only["aggregate_reward_score"] > 0.0
    assert metrics(calls_only)["unscored"] == 0.0 and metrics(calls_only)["arguments"] == 1.0
    assert lazy["aggregate_reward_score"] == 0.0 and metrics(lazy)["gated"] == 1.0
    # the judge read the whole run: calls, results and the final answer, in one transcript each
    prompts = [request.prompt for request in judge_server.chat_requests]
    assert len(prompts) == 2  # the gated sample is never judged
    assert any("Kitchen items: full refund within 30 days." in prompt and "3 to 5 days" in prompt
               for prompt in prompts)
    # ... and the calls-only run was judged up to its last turn, a call with no text
    assert any('"category": "kitchen"' in prompt and "3 to 5 days" not in prompt for prompt in prompts)


def test_the_forge_verifier_still_rejects_a_sample_its_dataset_model_refuses(forge_verifier: Any,
                                                                            reward_config: Path) -> None:
    bad = copy.deepcopy(GOOD)
    bad["messages"][3]["name"] = "lookup_order"  # the SDK's RFT message model forbids extra fields
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ValueError, match="Input validation failed"):
            forge_verifier(str(HANDLER), [bad])


def training_rows() -> list[dict[str, Any]]:
    """The first rows of a Nova RFT training file, as `RLVRTrainer.train()` reads them for its
    pre-job check: the prompt and the reference, no `id` and no answer (the training container
    adds both before it calls the Lambda)."""
    return [{"messages": sample["messages"][:2], "reference_answer": sample["reference_answer"],
             "tools": TOOLS} for sample in SAMPLES]


def test_the_v3_pre_job_check_on_training_rows_passes_and_scores_them_invalid_not_judged(
        v3_verifier: Any, reward_config: Path, judge_server: FakeOpenAIServer) -> None:
    report = v3_verifier(str(HANDLER), training_rows(), is_nova=True)
    assert report["success"] is True and report["successful_samples"] == 3
    for result in report["results"]:
        output = result["output"]
        assert output["id"] is None and output["aggregate_reward_score"] == 0.0
        assert metrics(output) == {"invalid_sample": 1.0}  # no answer to judge: said so, not a fake 0
    assert judge_server.chat_requests == []


def test_the_v3_verifier_for_an_open_weight_model_needs_the_http_envelope(
        v3_verifier: Any, reward_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="must return a dict with 'statusCode' and 'body'"):
        v3_verifier(str(HANDLER), copy.deepcopy(SAMPLES), is_nova=False)
    monkeypatch.setenv("JUDGERL_LAMBDA_RESPONSE", "http")
    report = v3_verifier(str(HANDLER), copy.deepcopy(SAMPLES), is_nova=False)
    assert report["success"] is True and report["successful_samples"] == 3
    outputs = {result["output"]["id"]: result["output"] for result in report["results"]}
    assert outputs["good"]["aggregate_reward_score"] == pytest.approx(1.0)
    assert outputs["lazy"]["aggregate_reward_score"] == 0.0 and metrics(outputs["lazy"])["gated"] == 1.0
    # the Nova verifier refuses the envelope: the switch is per deployment, not a guess
    with pytest.raises(ValueError, match="verification failed"):
        v3_verifier(str(HANDLER), copy.deepcopy(SAMPLES), is_nova=True)
