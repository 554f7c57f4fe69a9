"""On a CPU, project through the LM head only the positions that carry a label (TRL's compact path).

Why: TRL's fused LM head (the SFT loss, GRPO's log-probabilities) projects only the labelled
positions on Triton devices and every position elsewhere, because on XLA or Neuron a number of
positions that changes every batch would recompile the tiles. Eager PyTorch on a CPU compiles
nothing, so there the full projection is only waste: in the contract review case study the prompt
is ~80% of an SFT row's ~360 positions, each projected onto 49,152 vocabulary entries (forward and
backward) and then masked out. `use_compact_lm_head_on_cpu()` makes TRL's choice take its compact
path on CPU devices too: the same tiles over fewer rows, the same per-token numbers (the tests
check the loss and the gradients against TRL's own path). Nothing changes on other devices, or
with a TRL whose internals moved (then it returns False and TRL runs as shipped).
"""

from __future__ import annotations

from typing import Any

_MARK = "_judgerl_compact_on_cpu"


def use_compact_lm_head_on_cpu() -> bool:
    """Patch the installed TRL (once per process); whether its fused head now goes compact on CPUs."""
    try:
        from trl.trainer import utils
    except ImportError:
        return False
    shipped = getattr(utils, "_use_triton", None)
    if shipped is None:
        return False
    if getattr(shipped, _MARK, False):
        return True

    def compact(device: Any) -> bool:
        return getattr(device, "type", None) == "cpu" or bool(shipped(device))

    setattr(compact, _MARK, True)
    utils._use_triton = compact
    return True
