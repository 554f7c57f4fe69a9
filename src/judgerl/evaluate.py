"""Moved to `judgerl.run.evaluate` (evaluation of policies); this path re-exports it for one release."""

from judgerl.run.evaluate import (  # noqa: F401
    LABEL_PATTERN,
    SCHEMA_CHECK_TYPES,
    SCORED,
    EndpointGenerator,
    EvalSummary,
    Generator,
    LocalGenerator,
    ModelSpec,
    PipelineSource,
    build_pipeline,
    check_label,
    criteria_of,
    evaluate_models,
    find_schema_check,
    k_figures,
    load_eval_samples,
    open_generator,
    parse_endpoint_option,
    parse_model_option,
    sample_seed,
    score_chunk,
    summarize_rows,
)
from judgerl.run.folder import (  # noqa: F401
    CANONICAL_ORDER,
    load_eval_summaries,
    ordered_labels,
    read_rows,
)
