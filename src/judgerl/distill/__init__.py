"""Judge distillation and replay: a strong judge's verdicts become a small local judge (`judgerl distill`),
and recorded rollouts are rescored through another reward config (`judgerl rejudge`)."""
