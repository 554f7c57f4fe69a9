"""Moved to `judgerl.judges.templates` (judge prompt templates); this path re-exports it for one release."""

from judgerl.judges.templates import (  # noqa: F401
    PLACEHOLDER,
    PromptTemplate,
    fence,
    fence_tag,
    fill_template,
    load_prompt,
    load_prompt_file,
    parse_prompt,
    placeholders,
)
