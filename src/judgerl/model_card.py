"""Moved to `judgerl.run.model_card` (the exported model's card); this path re-exports it for one release."""

from judgerl.run.model_card import (  # noqa: F401
    EVAL_FIGURES,
    TAGS,
    CardInputs,
    base_license,
    card_inputs,
    data_section,
    evaluation_section,
    fmt,
    front_matter,
    hub_id,
    metadata,
    prompt_versions,
    render_card,
    reward_section,
    usage_section,
    validation_section,
)
