"""Chat-templated multi-turn text back into a trajectory (judgerl.adapters.templated), and the
reward server's use of it."""

from __future__ import annotations

import json

import pytest

from judgerl.adapters.openrlhf import RewardRequest, build_items
from judgerl.adapters.templated import templated_trajectory, turns_to_messages

CHATML_PROMPT = ("<|im_start|>system\nTools:\n<tools>\n"
                 '{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", '
                 '"properties": {"city": {"type": "string"}}, "required": ["city"]}}}\n'
                 "</tools><|im_end|>\n<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n")
QWEN_RUN = ('<tool_call>\n{"name": "weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n'
            "<|im_start|>user\n<tool_response>\nsunny, 21 C\n</tool_response><|im_end|>\n"
            "<|im_start|>assistant\nSunny and 21 C in Paris.<|im_end|>")
LLAMA_PROMPT = ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWeather in Oslo?<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n")
LLAMA_RUN = ('<|python_tag|>{"name": "weather", "parameters": {"city": "Oslo"}}<|eom_id|>'
             "<|start_header_id|>ipython<|end_header_id|>\n\nsnow<|eot_id|>"
             "<|start_header_id|>assistant<|end_header_id|>\n\nSnow in Oslo.<|eot_id|>")


def test_qwen_calls_and_tool_responses_become_a_trajectory_with_the_prompts_tools() -> None:
    parsed = templated_trajectory(CHATML_PROMPT + QWEN_RUN, CHATML_PROMPT)
    assert parsed is not None
    trajectory, tools = parsed
    assert [message["role"] for message in trajectory] == ["assistant", "tool", "assistant"]
    call = trajectory[0]["tool_calls"][0]
    assert call["function"] == {"name": "weather", "arguments": '{"city": "Paris"}'}
    assert trajectory[1] == {"role": "tool", "content": "sunny, 21 C", "tool_call_id": call["id"]}
    assert trajectory[2]["content"] == "Sunny and 21 C in Paris."
    assert tools is not None and tools[0]["function"]["name"] == "weather"


def test_llama3_json_calls_and_ipython_results() -> None:
    parsed = templated_trajectory(LLAMA_PROMPT + LLAMA_RUN, LLAMA_PROMPT)
    assert parsed is not None
    trajectory, tools = parsed
    assert trajectory[0]["content"] == "" and trajectory[0]["tool_calls"][0]["function"]["name"] == "weather"
    assert trajectory[1]["role"] == "tool" and trajectory[1]["content"] == "snow"
    assert trajectory[2]["content"] == "Snow in Oslo." and tools is None


def test_a_malformed_call_is_text_and_its_result_is_the_environment_speaking() -> None:
    text = "Let me see. <tool_call>{weather: Paris}</tool_call>"
    messages = turns_to_messages([("assistant", text), ("tool", "error: bad call"), ("assistant", "Sorry.")])
    assert messages[0] == {"role": "assistant", "content": text}
    assert messages[1] == {"role": "user", "content": "error: bad call"}


def test_several_results_answer_the_calls_in_order() -> None:
    calls = "".join(f'<tool_call>{{"name": "weather", "arguments": {{"city": "{city}"}}}}</tool_call>'
                    for city in ("Oslo", "Rome"))
    messages = turns_to_messages([("assistant", calls),
                                  ("user", "<tool_response>snow</tool_response>\n"
                                           "<tool_response>sun</tool_response>"),
                                  ("assistant", "Snow in Oslo, sun in Rome.")])
    assert [(message["tool_call_id"], message["content"]) for message in messages[1:3]] == [
        ("call_0", "snow"), ("call_1", "sun")]


def test_a_turn_left_open_ends_where_the_next_one_starts() -> None:
    """vLLM's text has no EOS: an agent that appends feedback without closing the turn."""
    query = CHATML_PROMPT + ('<tool_call>{"name": "weather", "arguments": {"city": "Paris"}}</tool_call>'
                             "<|im_start|>tool\nrain<|im_end|>\n<|im_start|>assistant\nRain.")
    parsed = templated_trajectory(query, CHATML_PROMPT)
    assert parsed is not None
    assert [message["role"] for message in parsed[0]] == ["assistant", "tool", "assistant"]


@pytest.mark.parametrize("query", [CHATML_PROMPT + "Sunny.<|im_end|>", "Q: weather? A: sunny"])
def test_a_single_turn_or_untemplated_text_is_not_a_trajectory(query: str) -> None:
    assert templated_trajectory(query, CHATML_PROMPT) is None


def test_the_prompt_is_matched_by_turns_not_by_text() -> None:
    """A tokenizer that does not decode the prompt to the same text still splits correctly."""
    reencoded = CHATML_PROMPT.replace("Weather in Paris?", "Weather in  Paris ?")
    parsed = templated_trajectory(reencoded + QWEN_RUN, CHATML_PROMPT)
    assert parsed is not None and parsed[0][-1]["content"] == "Sunny and 21 C in Paris."


def test_build_items_reads_trajectories_only_when_asked() -> None:
    body = RewardRequest(query=[CHATML_PROMPT + QWEN_RUN], prompts=[CHATML_PROMPT], labels=[""])
    [(sample, plain)] = build_items(body)
    assert plain.trajectory is None and plain.completion.endswith("Sunny and 21 C in Paris.")
    [(same, rollout)] = build_items(body, trajectories=True)
    assert same.id == sample.id and rollout.id == plain.id  # same ids, so the same cache and groups
    assert rollout.completion == "Sunny and 21 C in Paris."
    assert rollout.trajectory is not None and rollout.tools is not None
    assert json.loads(rollout.trajectory[0]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert sample.messages[-1] == {"role": "user", "content": "Weather in Paris?"}
