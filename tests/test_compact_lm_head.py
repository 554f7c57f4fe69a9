"""TRL's fused LM head on a CPU with only the labelled positions projected: the same numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from judgerl.train.compact_lm_head import use_compact_lm_head_on_cpu  # noqa: E402
from tiny_policy import build_tiny_model_dir  # noqa: E402


def fused_pass(model_dir: Path, compact: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Log-probs, loss and LM-body gradients of one batch through TRL's fused head; the rows it projected."""
    from transformers import AutoModelForCausalLM
    from trl.kernels import chunked_logprob
    from trl.trainer import utils
    from trl.trainer.utils import add_fused_lm_head

    with monkeypatch.context() as patch:
        if not compact:  # TRL as shipped: every position on a CPU
            patch.setattr(utils, "_use_triton", chunked_logprob._use_triton)
        else:
            assert use_compact_lm_head_on_cpu()
        rows: list[int] = []
        apply = utils._ChunkedLogProbFunction.apply

        def counted(hidden, *args):  # type: ignore[no-untyped-def]
            rows.append(hidden.shape[0])
            return apply(hidden, *args)

        patch.setattr(utils._ChunkedLogProbFunction, "apply", counted)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        add_fused_lm_head(model, outputs=("log_probs", "entropy"))
        input_ids = torch.randint(3, model.config.vocab_size, (3, 24))
        labels = input_ids.clone()
        labels[:, :18] = -100  # a long prompt, a short answer
        labels[1, 22:] = -100  # padding
        out = model(input_ids=input_ids, labels=labels, fused_lm_head=True)
        loss = -out.log_probs.sum() / out.label_mask.sum()
        loss.backward()
        grads = {name: param.grad.clone() for name, param in model.named_parameters()
                 if param.grad is not None}
    return {"log_probs": out.log_probs.detach(), "entropy": out.entropy.detach(), "loss": loss.item(),
            "grads": grads, "rows": rows, "labelled": int((labels[:, 1:] != -100).sum())}


def test_only_the_labelled_positions_are_projected_and_nothing_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model_dir = build_tiny_model_dir(tmp_path / "tiny")
    full = fused_pass(model_dir, compact=False, monkeypatch=monkeypatch)
    compact = fused_pass(model_dir, compact=True, monkeypatch=monkeypatch)
    assert full["rows"] == [3 * 23], "TRL as shipped projects every position on a CPU"
    assert compact["rows"] == [compact["labelled"]] == [6 + 4 + 6], "only positions with a next-token label"
    assert torch.allclose(full["log_probs"], compact["log_probs"], atol=1e-6)
    assert torch.allclose(full["entropy"], compact["entropy"], atol=1e-6)
    assert compact["loss"] == pytest.approx(full["loss"], abs=1e-6)
    assert full["grads"].keys() == compact["grads"].keys() and full["grads"]
    for name, grad in full["grads"].items():
        assert torch.allclose(grad, compact["grads"][name], atol=1e-6), name


def test_the_patch_is_applied_once_and_leaves_other_devices_to_trl() -> None:
    from trl.trainer import utils

    assert use_compact_lm_head_on_cpu() and use_compact_lm_head_on_cpu()
    patched = utils._use_triton
    assert patched(torch.device("cpu")) is True
    assert use_compact_lm_head_on_cpu() and utils._use_triton is patched, "not wrapped twice"
    assert patched(torch.device("meta")) is False, "elsewhere TRL decides as shipped"
