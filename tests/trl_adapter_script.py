"""A user's own TRL script with judgerl's reward function, for `accelerate launch` in tests.

Run by tests/test_train_multiprocess.py in two processes: `GRPOTrainer` with
`judgerl.adapters.trl.reward_function` (a round-robin pairwise judge on the fake server). The
reward function is wrapped to record, per rank, the completions TRL handed this rank and the
rewards it got back; rank 0 also writes TRL's log history.

    accelerate launch ... tests/trl_adapter_script.py MODEL_DIR JUDGE_URL OUT_DIR
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def main(model_dir: str, judge_url: str, out_dir: str) -> None:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from judgerl.adapters.trl import reward_function
    from judgerl.train.grpo import checkpointing_arg

    out = Path(out_dir)
    rank = int(os.environ.get("RANK", "0"))
    config = {
        "backends": {"judge": {"type": "openai", "base_url": judge_url, "model": "fake",
                               "max_concurrency": 3, "timeout_s": 30}},
        "runtime": {"journal_path": str(out / "journal.jsonl"), "max_attempts": 2},
        "judges": [{"name": "duel", "type": "pairwise", "mode": "round_robin", "backend": "judge"}],
        "failure_budget": 1.0,
    }
    reward = reward_function(config, name="judge")

    async def recorded(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
        values = await reward(prompts, completions, **kwargs)
        with (out / f"rank{rank}.jsonl").open("a", encoding="utf-8") as handle:
            row = {"prompts": prompts, "completions": completions, "values": values}
            handle.write(json.dumps(row) + "\n")
        return values

    recorded.__name__ = "judge"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    dataset = Dataset.from_list([{"prompt": f"Say something short about {word}."}
                                 for word in ["cats", "dogs", "Paris", "rain", "tea", "snow"]])
    args = GRPOConfig(output_dir=str(out / "trl"), num_generations=4, per_device_train_batch_size=6,
                      gradient_accumulation_steps=1, max_steps=1, max_completion_length=8,
                      learning_rate=5e-3, shuffle_dataset=False, logging_steps=1, save_strategy="no",
                      report_to="none", disable_tqdm=True, log_completions=False, dataloader_num_workers=0,
                      bf16=False, **checkpointing_arg(GRPOConfig, False))
    trainer = GRPOTrainer(model=model, reward_funcs=[recorded], args=args, train_dataset=dataset,
                          processing_class=tokenizer)
    trainer.train()
    reward.close()
    if rank == 0:
        (out / "log_history.json").write_text(json.dumps(trainer.state.log_history), encoding="utf-8")
    print(f"rank {rank}: pipeline built: {reward.pipeline is not None}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
