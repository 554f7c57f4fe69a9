"""Training: a recipe becomes TRL's GRPOTrainer (`judgerl train`) or SFTTrainer (`judgerl sft`).

Modules: recipe (the YAML recipe, validated), grpo (recipe -> GRPOConfig / GRPOTrainer), sft (the
supervised baseline), reward (the TRL reward function with monitoring on the side), monitors
(metrics.jsonl, rich progress, reward-hacking signals), policy (model, tokenizer, LoRA),
prompts (data files -> datasets), checkpoints (resume rules). Heavy imports (torch, TRL) happen
inside functions, so `import judgerl.train` stays cheap.
"""
