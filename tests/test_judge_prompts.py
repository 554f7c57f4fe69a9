"""The few-shot prompt shipped for small local judges, and choosing a shipped prompt by name.

`prompt: rubric_logprob_fewshot` (with `pass_token: "Yes"`, `fail_token: "No"` and a backend with
`chat_template: false`) is the setup the demo's reward uses; these tests check that the name
resolves, that the rendered request ends where the verdict token goes, that the worked examples
come first (so every request shares them as a prefix, which the local backend computes once),
and that bad choices fail at config time.
"""

from __future__ import annotations

from importlib import resources

import pytest

from judgerl.backends.scripted import ScriptedBackend
from judgerl.config import JudgeConfig, load_reward_config
from judgerl.errors import ConfigError
from judgerl.judges.rubric import RubricJudge
from judgerl.runtime.model_runtime import ModelRuntime
from judgerl.types import Rollout, Sample

CRITERIA = [{"name": "friendly", "description": "The reply is polite."},
            {"name": "on_topic", "description": "The reply responds to the message."}]


def fewshot_judge(**options: object) -> RubricJudge:
    config = JudgeConfig(name="tone", type="rubric", scoring="logprob", criteria=CRITERIA,
                         pass_token="Yes", fail_token="No", **{"prompt": "rubric_logprob_fewshot", **options})
    return RubricJudge(config, ModelRuntime({"judge": ScriptedBackend(lambda request: "Yes")}))


def test_the_fewshot_prompt_is_chosen_by_name_and_ends_at_the_verdict() -> None:
    judge = fewshot_judge()
    assert judge.prompt.version == "rubric-logprob-fewshot-v2"
    sample = Sample("s1", [{"role": "user", "content": "My order arrived late."}])
    requests = [judge.logprob_request(sample, Rollout("s1", "Sorry! A voucher is on its way."), criterion)
                for criterion in judge.options.criteria]
    texts = ["\n\n".join(m["content"] for m in request.messages) for request in requests]
    for text, criterion in zip(texts, CRITERIA, strict=True):
        assert text.endswith(f"Criterion: {criterion['name']} (pass/fail): {criterion['description']}\n"
                             "Meets the criterion:")
        assert text.count("Meets the criterion: Yes") == 3 and text.count("Meets the criterion: No") == 3
    assert requests[0].candidate_tokens == ["Yes", "No"]
    examples_end = texts[0].index("My order arrived late.")
    assert texts[0][:examples_end] == texts[1][:examples_end]  # the worked examples are a shared prefix


def test_prompt_and_prompt_file_are_exclusive_and_unknown_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="not both"):
        fewshot_judge(prompt_file="mine.txt")
    with pytest.raises(ConfigError, match=r"no shipped prompt 'nope'.*rubric_logprob_fewshot"):
        fewshot_judge(prompt="nope")


def test_the_demo_reward_uses_the_fewshot_setup() -> None:
    config = load_reward_config(str(resources.files("judgerl") / "demo" / "reward.yaml"))
    tone = next(judge for judge in config.judges if judge.name == "tone")
    assert tone.options["prompt"] == "rubric_logprob_fewshot"
    assert (tone.options["pass_token"], tone.options["fail_token"]) == ("Yes", "No")
    assert config.backends["judge"].options["chat_template"] is False
