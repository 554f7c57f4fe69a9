"""Judge validation: measure a judge before anyone trains on it, and refuse one that fails.

`judgerl validate --config reward.yaml --suite validation.yaml` runs the sections of a suite
(consistency, agreement between judges, agreement with human labels, a regression suite, and
bias probes for position, verbosity and attacks) on the judge of a reward config, writes a JSON
and a Markdown report, and exits non-zero when a threshold fails. Training calls
`gate_or_raise(run_validation(...))` before its first step when the recipe names a suite.
"""

from judgerl.validate.datasets import (
    AnswerItem,
    PairItem,
    find_data_dir,
    load_dataset,
    load_evalbiasbench,
    load_labelled_file,
    load_llmbar_natural,
)
from judgerl.validate.gate import check_section, gate_or_raise
from judgerl.validate.report import Failure, SectionResult, ValidationReport, render_markdown, write_report
from judgerl.validate.runner import run_validation, validate_and_gate
from judgerl.validate.suite import Suite, load_suite

__all__ = ["AnswerItem", "Failure", "PairItem", "SectionResult", "Suite", "ValidationReport",
           "check_section", "find_data_dir", "gate_or_raise", "load_dataset", "load_evalbiasbench",
           "load_labelled_file", "load_llmbar_natural", "load_suite", "render_markdown", "run_validation",
           "validate_and_gate", "write_report"]
