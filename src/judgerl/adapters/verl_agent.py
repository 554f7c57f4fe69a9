r"""verl's tool agent loop, keeping the conversation it ran so that judgerl can judge it.

Why: verl 0.9.1's `ToolAgentLoop` (`verl/experimental/agent_loop/tool_agent_loop.py`) builds the
whole conversation (assistant turns with `tool_calls`, `tool` results) in `AgentData.messages`,
but hands the reward function only the decoded response tokens (`solution_str`, tool calls and
tool results flattened into text, role markers stripped) and `extra_info`, into which verl's
reward manager merges the loop's `extra_fields` (`raw_prompt`, `turn_scores`, `tool_rewards`).
The messages themselves never reach the reward, so neither a trajectory judge nor a tool check
could see a call. This loop is `ToolAgentLoop` unchanged, plus two extra fields on its output:

- `messages`: the conversation, prompt first, in the OpenAI form (`tool_calls` with JSON
  arguments, `tool` messages), the tokenizer's special tokens (`<|im_end|>`) removed from
  assistant text; a last turn cut off by `max_assistant_turns` or the response length (which
  `ToolAgentLoop` leaves out of its messages) is decoded and added;
- `tools`: the OpenAI schemas of the tools this sample could call.

`judgerl.adapters.verl.build_item` reads them (through `extra_info`) as `Rollout.trajectory` and
`Rollout.tools`. verl also copies every extra field into its training batch (`non_tensor_batch`),
so the conversation travels with the batch as one Python object per response.

Wiring (a verl agent-loop config file registers the class under a name):

    # agent_loops.yaml (examples/verl/agent_loops.yaml)
    - name: judgerl_tool_agent
      _target_: judgerl.adapters.verl_agent.JudgerlToolAgentLoop

    actor_rollout_ref.rollout.multi_turn.enable=true \
    actor_rollout_ref.rollout.agent.agent_loop_config_path=/abs/path/agent_loops.yaml \
    actor_rollout_ref.rollout.agent.default_agent_loop=judgerl_tool_agent

(or an `agent_name` column in the dataset). This module imports verl, and verl imports ray: it is
loaded by verl's agent-loop workers, never by judgerl itself.
"""

from __future__ import annotations

from typing import Any

from verl.experimental.agent_loop.agent_loop import AgentLoopOutput
from verl.experimental.agent_loop.tool_agent_loop import AgentData, AgentState, ToolAgentLoop


class JudgerlToolAgentLoop(ToolAgentLoop):
    """`ToolAgentLoop` whose output carries `extra_fields["messages"]` and `["tools"]`."""

    _judgerl_agent_data: AgentData | None = None

    async def _handle_pending_state(self, agent_data: AgentData,
                                    sampling_params: dict[str, Any]) -> AgentState:
        # verl instantiates one agent loop per sample (AgentLoopWorker._run_agent_loop), so the
        # sample's state can be kept on the instance
        self._judgerl_agent_data = agent_data
        return await super()._handle_pending_state(agent_data, sampling_params)

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        output = await super().run(sampling_params, **kwargs)
        agent_data = self._judgerl_agent_data
        if agent_data is None:
            return output
        prompt_size = len(kwargs["raw_prompt"])
        messages = [self._clean(message) for message in agent_data.messages]
        generated = sum(message.get("role") == "assistant" for message in messages[prompt_size:])
        if generated < agent_data.assistant_turns and agent_data.response_ids:
            messages.append(self._clean(await self._last_turn(agent_data)))
        output.extra_fields["messages"] = messages
        output.extra_fields["tools"] = list(getattr(agent_data, "_active_tool_schemas", self.tool_schemas))
        return output

    async def _last_turn(self, agent_data: AgentData) -> dict[str, Any]:
        """The assistant message of the generation that ended the loop before it was parsed."""
        tools = [tool.tool_schema for tool in getattr(agent_data, "_active_tools", self.tools).values()]
        parsed = await self.tool_parser.extract_tool_calls(agent_data.response_ids, tools)
        content, agent_data.tool_calls = parsed
        return self._build_assistant_message(content, agent_data)

    def _clean(self, message: dict[str, Any]) -> dict[str, Any]:
        """A copy of one message, special tokens removed from assistant text."""
        message = dict(message)
        if message.get("role") == "assistant" and isinstance(message.get("content"), str):
            text = message["content"]
            for token in getattr(self.tokenizer, "all_special_tokens", ()):
                if token:
                    text = text.replace(token, "")
            message["content"] = text.strip()
        return message


__all__ = ["JudgerlToolAgentLoop"]
