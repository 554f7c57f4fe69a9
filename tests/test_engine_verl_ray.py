"""verl's own `RewardLoopWorker` scoring a hand-made DataProto with the judgerl reward (needs ray).

Why: `test_engine_verl.py` drives verl's config and reward loader without ray (CI keeps ray out
of the install). This test goes one step further where ray is installed: it builds verl's real
`RewardLoopWorker` (in this process, not as a Ray actor) from verl's composed config with the
README's wiring, gives it a DataProto shaped as verl's rollout produces it (prompts, responses,
attention mask, `reward_model.ground_truth`, `extra_info`, `uid`), and checks the scores verl
assembles into `rm_scores` and the extra info it stacks per key.

It is skipped without ray. To run it on CPU next to the `engines` pins:
`pip install --no-deps ray==2.60.0 tensordict==0.10.0 pyvers cloudpickle orjson codetiming msgpack`.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ray", reason="verl's reward loop imports ray; see the module docstring")
pytest.importorskip("tensordict")

import torch

from adapter_fakes import write_config
from judgerl.adapters import clear_pipelines
from test_engine_verl import README_OVERRIDES, VERL_CONFIG_DIR, compose_verl

pytestmark = pytest.mark.slow


def test_reward_loop_worker_scores_a_dataproto(tmp_path):
    from transformers import AutoTokenizer
    from verl import DataProto
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.experimental.reward_loop.reward_manager import NaiveRewardManager

    from judgerl.models import resolve_model

    model = str(resolve_model("smollm2-135m-instruct"))
    config = compose_verl(VERL_CONFIG_DIR, "ppo_trainer", [
        *README_OVERRIDES,
        f"+reward.custom_reward_function.reward_kwargs.reward_config={write_config(tmp_path)}",
        f"actor_rollout_ref.model.path={model}"])
    worker = RewardLoopWorker(config)
    assert isinstance(worker.reward_manager, NaiveRewardManager)
    tokenizer = AutoTokenizer.from_pretrained(model)

    answers = ["the answer is 4", "", "four"]  # "": 0 words, under the length check's minimum of 1
    prompt_ids = tokenizer("2+2?", add_special_tokens=False)["input_ids"]
    width = 12
    prompts, responses, masks = [], [], []
    for answer in answers:
        ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        pad = tokenizer.pad_token_id
        prompts.append(prompt_ids)
        responses.append(ids + [pad] * (width - len(ids)))
        masks.append([1] * len(prompt_ids) + [1] * len(ids) + [0] * (width - len(ids)))
    data = DataProto.from_dict(
        tensors={"prompts": torch.tensor(prompts), "responses": torch.tensor(responses),
                 "attention_mask": torch.tensor(masks)},
        non_tensors={"data_source": np.array(["gsm8k"] * 3, dtype=object),
                     "reward_model": np.array([{"ground_truth": "4"}] * 3, dtype=object),
                     "extra_info": np.array([{"index": 0, "question": "2+2?"} for _ in answers],
                                            dtype=object),
                     "uid": np.array(["u0"] * 3, dtype=object)})
    try:
        outputs = worker.loop.run_until_complete(worker.compute_score_batch(data))
    finally:
        clear_pipelines()
    scores = [output["reward_score"] for output in outputs]
    assert scores == [1.0, 0.0, 1.0]
    infos = [output["reward_extra_info"] for output in outputs]
    assert len({tuple(sorted(info)) for info in infos}) == 1, "verl stacks each key: the keys must not vary"
    assert [info["length"] for info in infos] == [1.0, 0.0, 1.0], "the EOS/padding never reached the text"
    assert [info["unscored"] for info in infos] == [0.0, 0.0, 0.0]
    rm_scores = NaiveRewardManager.assemble_rm_scores(data, scores)
    assert rm_scores.sum(dim=1).tolist() == [1.0, 0.0, 1.0]


def test_example_finds_verls_config_through_its_package_search_path(tmp_path):
    """`hydra.searchpath: [pkg://verl.trainer.config]` imports verl (and ray): checked here."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from test_engine_verl import EXAMPLES

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(EXAMPLES), version_base=None):
            config = compose(config_name="ppo_judgerl", overrides=[
                f"reward.custom_reward_function.reward_kwargs.reward_config={write_config(tmp_path)}"])
    finally:
        GlobalHydra.instance().clear()
    assert config.reward.custom_reward_function.name == "compute_score_async"
    assert config.reward.reward_manager.name == "naive" and config.algorithm.adv_estimator == "grpo"
