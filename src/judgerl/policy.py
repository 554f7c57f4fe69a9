"""Moved to `judgerl.models.policy` (loading a policy and sampling from it); this path re-exports it
for one release."""

from judgerl.models.policy import (  # noqa: F401
    Generation,
    Policy,
    SamplingConfig,
    adapter_base,
    is_adapter_dir,
    latest_checkpoint,
    load_policy,
    materialize,
    resolve_spec,
)
