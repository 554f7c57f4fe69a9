"""verl's own reward loop scoring a hand-made DataProto with the judgerl reward (needs ray).

Why: `test_engine_verl.py` drives verl's config and reward loader without importing verl's
package (which imports ray). These tests go further with ray installed (scripts/setup installs
the CPU wheel, the `engines` pins): verl's real `RewardLoopWorker` in this process, built from
verl's composed config with the README's wiring, given a DataProto shaped as verl's rollout
produces it (prompts, responses, attention mask, `reward_model.ground_truth`, `extra_info`,
`uid`), checking the scores verl assembles into `rm_scores` and the extra info it stacks per key;
then verl's `RewardLoopManager` on a one-machine Ray cluster (loopback, no dashboard, no usage
report), which starts the workers as Ray actors in their own processes, splits and pads the
batch over them and gathers `rm_scores` and the extra keys. The cluster is shut down after the
test, and the test checks that the worker processes exit.

Skipped without ray and tensordict (the `engines` extra; scripts/setup installs them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray", reason="verl's reward loop imports ray; see the module docstring")
pytest.importorskip("tensordict")

import torch

from adapter_fakes import write_config
from judgerl.adapters import clear_pipelines
from test_engine_verl import README_OVERRIDES, VERL_CONFIG_DIR, compose_verl

ANSWERS = ["the answer is 4", "", "four"]  # "": 0 words, under the length check's minimum of 1


def verl_config(tmp_path, *overrides: str) -> Any:
    """verl's composed `ppo_trainer` config with the README's wiring and the packaged model."""
    from judgerl.models import resolve_model

    return compose_verl(VERL_CONFIG_DIR, "ppo_trainer", [
        *README_OVERRIDES,
        f"+reward.custom_reward_function.reward_kwargs.reward_config={write_config(tmp_path)}",
        f"actor_rollout_ref.model.path={resolve_model('smollm2-135m-instruct')}", *overrides])


def rollout_batch(model_path: str) -> Any:
    """A DataProto shaped as verl's rollout produces it, one response per answer in ANSWERS."""
    from transformers import AutoTokenizer
    from verl import DataProto

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    prompt_ids = tokenizer("2+2?", add_special_tokens=False)["input_ids"]
    width = 12
    prompts, responses, masks = [], [], []
    for answer in ANSWERS:
        ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        pad = tokenizer.pad_token_id
        prompts.append(prompt_ids)
        responses.append(ids + [pad] * (width - len(ids)))
        masks.append([1] * len(prompt_ids) + [1] * len(ids) + [0] * (width - len(ids)))
    n = len(ANSWERS)
    return DataProto.from_dict(
        tensors={"prompts": torch.tensor(prompts), "responses": torch.tensor(responses),
                 "attention_mask": torch.tensor(masks)},
        non_tensors={"data_source": np.array(["gsm8k"] * n, dtype=object),
                     "reward_model": np.array([{"ground_truth": "4"}] * n, dtype=object),
                     "extra_info": np.array([{"index": 0, "question": "2+2?"} for _ in ANSWERS],
                                            dtype=object),
                     "uid": np.array(["u0"] * n, dtype=object)})


@pytest.fixture
def local_ray(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A one-machine Ray cluster on loopback only (no dashboard, no usage report), shut down after.

    Ray reaches past loopback in three ways, each closed here (checked with `strace -f -e connect`):
    it replaces 127.0.0.1 by the address the machine has as seen from 8.8.8.8 (a UDP route lookup)
    unless multi-machine clusters are off, as on macOS and Windows (the environment variable for
    the processes it starts; this process read it when it imported ray, so its constant too); and
    its usage-stats module asks the cloud metadata services (169.254.169.254,
    metadata.google.internal) which cloud it runs on even with usage stats off, through `requests`:
    HTTP_PROXY sends that to a closed loopback port (gRPC, Ray's own transport, reads only the
    lower-case proxy variables, which are removed).
    """
    import ray
    from ray._private import ray_constants

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    monkeypatch.setenv("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # silences a FutureWarning; no GPU here
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
    for name in ("http_proxy", "https_proxy", "grpc_proxy", "no_proxy", "no_grpc_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert not ray.is_initialized(), "another test left a Ray cluster running"
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             object_store_memory=100 * 1024 * 1024, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_reward_loop_worker_scores_a_dataproto(tmp_path):
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.experimental.reward_loop.reward_manager import NaiveRewardManager

    config = verl_config(tmp_path)
    worker = RewardLoopWorker(config)
    assert isinstance(worker.reward_manager, NaiveRewardManager)
    data = rollout_batch(config.actor_rollout_ref.model.path)
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


def test_reward_loop_manager_scores_through_ray_actors(tmp_path, local_ray):
    """verl's own Ray path: `RewardLoopManager` starts the reward workers as Ray actors (each loads
    judgerl's reward function from the config in its own process) and splits the batch over them."""
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager

    config = verl_config(tmp_path, "reward.num_workers=2")
    manager = RewardLoopManager(config)
    assert len(manager.reward_loop_workers) == 2
    scored = manager.compute_rm_score(rollout_batch(config.actor_rollout_ref.model.path))
    assert scored.batch["rm_scores"].sum(dim=1).tolist() == [1.0, 0.0, 1.0]  # 3 rows over 2 workers: padded
    keys = scored.meta_info["reward_extra_keys"]
    assert {"length", "unscored"} <= set(keys)
    assert scored.non_tensor_batch["length"].tolist() == [1.0, 0.0, 1.0]
    assert scored.non_tensor_batch["unscored"].tolist() == [0.0, 0.0, 0.0]
    pids = {local_ray.get(worker.__ray_call__.remote(lambda self: os.getpid()))
            for worker in manager.reward_loop_workers}
    assert len(pids) == 2 and os.getpid() not in pids, "the workers are separate processes"
    local_ray.shutdown()
    assert not still_running(pids, within=30.0), "ray.shutdown() left verl's reward workers running"


def still_running(pids: set[int], *, within: float) -> set[int]:
    """The processes among `pids` that have not exited `within` seconds from now."""
    deadline = time.monotonic() + within
    while True:
        alive = set()
        for pid in pids:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            alive.add(pid)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)
