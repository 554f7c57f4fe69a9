"""Moved to `judgerl.run.workflow` (judgerl run); this path re-exports it for one release."""

from judgerl.run.workflow import (  # noqa: F401
    DEMO_RECIPE,
    QUICK_OVERRIDES,
    STAGES,
    StageLog,
    Workflow,
    run_recipe_paths,
    trained_model,
)
