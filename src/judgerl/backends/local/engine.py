"""The local backend's engine: one loaded model, a worker thread that batches every request on it,
prompt passes with prefix KV reuse, probability-weighted scoring, and generation.

See `judgerl.backends.local` for why it is built this way; the backend that hands it requests
and the process-wide registry of engines are in `local/backend.py`, the model-free half of prefix
reuse (the batch plan, the LRU, the trie packing) in `local/prefix_cache.py`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judgerl.backends.base import (
    Completion,
    CompletionRequest,
    TokenLogprob,
    Usage,
    render_prompt,
)
from judgerl.backends.local.prefix_cache import (
    Group,
    PackedSuffixes,
    PrefixKV,
    PrefixStore,
    pack_suffixes,
    plan_groups,
)
from judgerl.errors import BackendError, ConfigError, JudgerlError

log = logging.getLogger(__name__)

#: glibc malloc settings that keep freed activation buffers mapped between forward passes
#: (measured: see docs/guides/backends.md). They only work when set before the process starts.
RECOMMENDED_MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "1000000000",
    "MALLOC_TRIM_THRESHOLD_": "1000000000",
    "MALLOC_TOP_PAD_": "268435456",
}

#: float32 is the default: on CPUs without native bfloat16 (no AVX512-BF16 / AMX, as on the
#: machines measured) a float32 forward pass over a prompt was 2-4x faster than bfloat16.
DTYPES = ("float32", "bfloat16", "float16")

#: default budget of the prefix KV cache, in tokens (all cached prefixes together); for
#: SmolLM2-135M in float32 a token's key/values take 45 KB, so 8192 tokens are about 370 MB
DEFAULT_PREFIX_CACHE_TOKENS = 8192
#: how long interpreter exit waits for the batch in progress (it stops at its next decode step)
STOP_TIMEOUT_S = 30.0


class EngineStopped(RuntimeError):
    """A batch cut short because the engine is stopping."""


@dataclass
class Job:
    """One request handed to the engine's worker, with the future its caller awaits on its own loop."""

    request: CompletionRequest
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Completion]
    batch_wait_s: float
    chat_template: bool = True  # the backend's default when the request does not say
    cancelled: bool = False


@dataclass
class EngineStats:
    """What the engine did; shared by every backend on the same engine."""

    requests: int = 0
    forward_passes: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)  # jobs per batch -> batches of that size
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prefill_tokens: int = 0  # prompt tokens run through the model (padding excluded)
    prefix_tokens_reused: int = 0  # prompt tokens whose key/values came from a shared prefix instead
    prefix_groups: int = 0  # groups of rows run on a shared prefix
    tree_passes: int = 0  # scoring groups packed as a trie of their suffixes

    def snapshot(self) -> dict[str, Any]:
        return {"requests": self.requests, "forward_passes": self.forward_passes,
                "batch_sizes": dict(self.batch_sizes), "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "prefill_tokens": self.prefill_tokens,
                "prefix_tokens_reused": self.prefix_tokens_reused, "prefix_groups": self.prefix_groups,
                "tree_passes": self.tree_passes}


@dataclass
class _Prefill:
    """A batch's prompt pass: rows in `order`, their next-token logits, and (for generation) the
    KV cache, attention mask and last positions to decode from, in the same order."""

    order: list[int]
    logits: Any
    cache: Any = None
    mask: Any = None
    positions: Any = None


#: prefix reuse: shortest shared prefix worth its own pass, and a forward pass's fixed cost in tokens.
#: Measured on SmolLM2-135M, 2 CPU cores: one pass of 1 x 40 tokens took 242 ms, of 8 x 90 tokens
#: 1.46 s (~2 ms a token at full batch), so a small extra pass costs ~100+ tokens of work. At 32 the
#: plan split a few-shot batch into four groups (each computing 40 more shared question tokens in
#: a pass of its own): 2.4 judgments/s against 3.3 as one group on the cached examples.
PREFIX_MIN_TOKENS = 16
PREFIX_PASS_COST = 128
#: scoring rows packed as a trie (backends/local/prefix_cache.py: `pack_suffixes`) when that saves this
#: share of their suffix tokens, up to this many packed tokens (the packed sequence attends to
#: itself through a [tokens x tokens] mask, so it must stay short)
TREE_MIN_SAVED = 0.2
TREE_MAX_TOKENS = 2048


def kv_cache_name() -> str:
    """What this transformers release calls the KV cache in a forward call and its output:
    `cache` from 5.2x on, `past_key_values` before (the old name still works there but warns on
    every forward pass)."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if "cache" in getattr(CausalLMOutputWithPast, "__dataclass_fields__", {}) else \
        "past_key_values"


class LocalEngine:
    """One loaded model + tokenizer and the worker thread that runs every batch on it."""

    def __init__(self, path: Path, *, dtype: str, device: str, max_batch_size: int,
                 prefix_cache_tokens: int = DEFAULT_PREFIX_CACHE_TOKENS) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.path = path
        self.dtype = dtype
        self.device = device
        self.max_batch_size = max_batch_size
        started = time.perf_counter()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path))
            self.model = AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dtype))
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"cannot load the model folder: {exc}", path=str(path)) from exc
        self.model.to(device).eval()
        self.load_s = time.perf_counter() - started
        self.pad_id = self._pad_id()
        self.eos_ids = self._eos_ids()
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 0) or 1 << 30)
        self.cache_name = kv_cache_name()
        self.stats = EngineStats()
        self._candidate_cache: dict[str, tuple[int, ...]] = {}
        self.prefix_store = PrefixStore(prefix_cache_tokens)
        self.prefix_reuse = self._full_attention_only()
        # trie-packed scoring passes a [tokens x tokens] boolean mask, which the sdpa attention takes as is
        self.tree_scoring = self.prefix_reuse and self.model.config._attn_implementation == "sdpa"
        if not self.prefix_reuse:
            log.info("%s has sliding-window or other non-full-attention layers: no prefix KV reuse", path)
        self._rng = torch.Generator().manual_seed(int.from_bytes(__import__("os").urandom(4), "little"))
        self._queue: queue.Queue[Job | None] = queue.Queue()  # None: stop
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._run, name=f"judgerl-local-{path.name}", daemon=True)
        self._worker.start()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Stop the worker: the batch it is running ends at its next decode step (its callers hear
        "stopped"), queued requests are dropped. Called at interpreter exit: a daemon thread left
        inside a torch op while the interpreter tears down makes the process abort ("terminate
        called without an active exception", exit 134). True when the worker has ended."""
        self._stopping.set()
        self._queue.put(None)
        self._worker.join(timeout_s)
        return not self._worker.is_alive()

    # ------------------------------------------------------------------ setup helpers

    def _pad_id(self) -> int:
        for candidate in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0):
            if candidate is not None:
                return int(candidate)
        return 0

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        for source in (self.tokenizer.eos_token_id, configured):
            if isinstance(source, int):
                ids.add(source)
            elif isinstance(source, (list, tuple)):
                ids.update(int(item) for item in source)
        vocab = self.tokenizer.get_vocab()
        for name in ("<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
            if name in vocab:
                ids.add(int(vocab[name]))
        return ids

    def _full_attention_only(self) -> bool:
        """Whether every layer keeps a plain growing KV cache (prefix reuse relies on it)."""
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        try:
            layers = DynamicCache(config=self.model.config).layers
        except Exception as exc:  # an architecture whose cache cannot be built from its config
            log.info("cannot build a KV cache from %s's config (%s): no prefix KV reuse", self.path, exc)
            return False
        return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)

    @property
    def prefix_cache_bytes(self) -> int:
        """Memory held by the cached prefix key/values."""
        return self.prefix_store.nbytes

    # ------------------------------------------------------------------ queue side

    def submit(self, job: Job) -> None:
        self._queue.put(job)

    def _run(self) -> None:
        while not self._stopping.is_set():
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + first.batch_wait_s
            while len(batch) < self.max_batch_size:
                remaining = deadline - time.monotonic()
                try:
                    job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    return
                batch.append(job)
            live = [job for job in batch if not job.cancelled and not job.future.cancelled()]
            if live:
                self.stats.batch_sizes[len(live)] = self.stats.batch_sizes.get(len(live), 0) + 1
                self._process(live)

    def _process(self, jobs: list[Job]) -> None:
        scoring = [job for job in jobs if job.request.candidate_tokens]
        generating = [job for job in jobs if not job.request.candidate_tokens]
        for group, runner in ((scoring, self._score_batch), (generating, self._generate_batch)):
            ready: list[tuple[Job, list[int]]] = []
            for job in group:
                try:
                    ready.append((job, self._prompt_ids(job.request, job.chat_template)))
                except JudgerlError as exc:
                    _deliver(job, exc)
                except Exception as exc:  # a template or tokenizer failure for this request only
                    _deliver(job, BackendError(f"local model could not render the prompt: {exc}",
                                               retryable=False))
            if not ready:
                continue
            try:
                results = runner(ready)
            except EngineStopped as exc:
                for job, _ in ready:
                    _deliver(job, BackendError(str(exc), retryable=False))
                return
            except Exception as exc:  # the whole batch failed; every caller hears why
                log.exception("local batch failed")
                for job, _ in ready:
                    _deliver(job, BackendError(f"local model failed: {type(exc).__name__}: {exc}",
                                               retryable=False))
                continue
            for (job, _), result in zip(ready, results, strict=True):
                _deliver(job, result)

    # ------------------------------------------------------------------ prompts

    def _prompt_ids(self, request: CompletionRequest, chat_template: bool = True) -> list[int]:
        text = self.render(request, chat_template)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        budget = 1 if request.candidate_tokens else request.max_tokens
        if len(ids) + budget > self.context_length:
            raise BackendError(f"prompt of {len(ids)} tokens + {budget} new tokens exceeds the model's "
                               f"context of {self.context_length}", retryable=False, status=400)
        return ids

    def render(self, request: CompletionRequest, chat_template: bool = True) -> str:
        """The exact prompt text the model sees."""
        use_template = request.extra.get("chat_template", chat_template) and self.tokenizer.chat_template
        return render_prompt(request, self.tokenizer if use_template else None)

    def candidate_ids(self, candidate: str) -> tuple[int, ...]:
        """Token ids whose probabilities make up `candidate`'s (see the module docstring)."""
        if candidate not in self._candidate_cache:
            bare = candidate.lstrip(" ")
            singles: list[int] = []
            for variant in dict.fromkeys((bare, " " + bare, candidate)):
                ids = self.tokenizer.encode(variant, add_special_tokens=False)
                if len(ids) == 1 and ids[0] not in singles:
                    singles.append(ids[0])
            if not singles:
                ids = self.tokenizer.encode(candidate, add_special_tokens=False)
                if not ids:
                    raise BackendError(f"candidate {candidate!r} encodes to no token", retryable=False)
                singles = [ids[0]]
            self._candidate_cache[candidate] = tuple(singles)
        return self._candidate_cache[candidate]

    # ------------------------------------------------------------------ forward passes

    def _batch_tensors(self, rows: list[list[int]]) -> tuple[Any, Any, Any]:
        import torch

        width = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for index, row in enumerate(rows):
            input_ids[index, width - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[index, width - len(row):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return input_ids.to(self.device), mask.to(self.device), positions.to(self.device)

    def _forward(self, **kwargs: Any) -> Any:
        self.stats.forward_passes += 1
        if "past_key_values" in kwargs and self.cache_name != "past_key_values":
            kwargs[self.cache_name] = kwargs.pop("past_key_values")
        return self.model(**kwargs)

    def _cache_of(self, out: Any) -> Any:
        """The KV cache a forward pass returned (read by its current name: no deprecation path)."""
        return getattr(out, self.cache_name)

    def _prefill(self, rows: list[list[int]], *, keep_cache: bool) -> _Prefill:
        """One batch's prompt pass: the next-token logits of every row (and, for generation, the
        KV cache, attention mask and last positions to continue from), on shared prefixes where
        the plan finds them. Rows come back in `order` (a permutation of the batch)."""
        groups = self._plan(rows)
        parts = [self._group_pass([rows[i] for i in group.rows], group.prefix, keep_cache)
                 for group in groups]
        order = [row for group in groups for row in group.rows]
        if len(parts) == 1:
            return _Prefill(order, *parts[0])
        import torch

        logits = torch.cat([part[0] for part in parts])
        if not keep_cache:
            return _Prefill(order, logits)
        cache, mask, positions = self._merge_caches(parts)
        return _Prefill(order, logits, cache, mask, positions)

    def _plan(self, rows: list[list[int]]) -> list[Group]:
        if not self.prefix_reuse or self.prefix_store.max_tokens <= 0 or not rows:
            return [Group(list(range(len(rows))), 0)]
        return plan_groups(rows, self.prefix_store.match, min_prefix=PREFIX_MIN_TOKENS,
                           pass_cost=PREFIX_PASS_COST)

    def _group_pass(self, rows: list[list[int]], prefix: int, keep_cache: bool) -> tuple[Any, Any, Any, Any]:
        """One group's pass: packed as a trie when scoring rows share enough beyond the prefix,
        else padded rows on the prefix's key/values, else whole padded rows."""
        if not keep_cache and self.tree_scoring and self.prefix_store.max_tokens > 0:
            packed = pack_suffixes([row[prefix:] for row in rows])
            if packed.saved >= TREE_MIN_SAVED * packed.whole and len(packed.tokens) <= TREE_MAX_TOKENS:
                return self._tree_pass(rows[0][:prefix], packed)
        if prefix:
            return self._suffix_pass(rows, prefix, keep_cache)
        return self._plain_pass(rows, keep_cache)

    def _tree_pass(self, prefix_tokens: list[int], packed: PackedSuffixes) -> tuple[Any, None, None, None]:
        """Scoring rows whose suffixes share tokens: the trie's tokens in one sequence on the
        prefix's key/values; each attends to the prefix, its ancestors and itself."""
        import torch

        prefix = len(prefix_tokens)
        count = len(packed.tokens)
        ancestors = torch.zeros((count, count), dtype=torch.bool)
        for node, parent in enumerate(packed.parents):
            if parent >= 0:
                ancestors[node] = ancestors[parent]
            ancestors[node, node] = True
        mask = torch.cat([torch.ones((count, prefix), dtype=torch.bool), ancestors], dim=1)[None, None]
        input_ids = torch.tensor([packed.tokens], dtype=torch.long, device=self.device)
        positions = torch.tensor([packed.depths], dtype=torch.long, device=self.device) + prefix
        cache = self._expanded_cache(self._prefix_kv(prefix_tokens), 1) if prefix else None
        self.stats.prefill_tokens += count
        self.stats.prefix_tokens_reused += prefix * len(packed.ends) + packed.saved
        self.stats.tree_passes += 1
        if prefix:
            self.stats.prefix_groups += 1
        out = self._forward(input_ids=input_ids, attention_mask=mask.to(self.device), position_ids=positions,
                            past_key_values=cache, use_cache=prefix > 0,
                            logits_to_keep=torch.tensor(packed.ends, device=self.device))
        return out.logits[0], None, None, None

    def _plain_pass(self, rows: list[list[int]], keep_cache: bool) -> tuple[Any, Any, Any, Any]:
        """Whole rows, left-padded: (last logits, cache or None, mask, last positions)."""
        input_ids, mask, positions = self._batch_tensors(rows)
        self.stats.prefill_tokens += sum(len(row) for row in rows)
        out = self._forward(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                            use_cache=keep_cache, logits_to_keep=1)
        return (out.logits[:, -1, :], self._cache_of(out) if keep_cache else None, mask,
                positions[:, -1:])

    def _suffix_pass(self, rows: list[list[int]], prefix: int, keep_cache: bool) -> tuple[Any, Any, Any, Any]:
        """Rows that share their first `prefix` tokens: only the suffixes run, on the prefix's
        key/values. Layout per row: [prefix][pads][suffix], mask 0 on the pads, positions of the
        suffix continuing from `prefix`."""
        import torch

        kv = self._prefix_kv(rows[0][:prefix])
        suffixes = [row[prefix:] for row in rows]
        input_ids, suffix_mask, suffix_positions = self._batch_tensors(suffixes)
        mask = torch.cat([suffix_mask.new_ones((len(rows), prefix)), suffix_mask], dim=1)
        positions = suffix_positions + prefix
        self.stats.prefix_groups += 1
        self.stats.prefill_tokens += sum(len(suffix) for suffix in suffixes)
        self.stats.prefix_tokens_reused += prefix * len(rows)
        out = self._forward(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                            past_key_values=self._expanded_cache(kv, len(rows)), use_cache=True,
                            logits_to_keep=1)
        return (out.logits[:, -1, :], self._cache_of(out) if keep_cache else None, mask,
                positions[:, -1:])

    def _prefix_kv(self, tokens: list[int]) -> PrefixKV:
        """The key/values of `tokens`: from the store, or computed on top of its longest match
        (and stored)."""
        import torch

        cached, have = self.prefix_store.lookup(tokens)
        if cached is not None:
            cached = [(keys[:, :, :have, :], values[:, :, :have, :]) for keys, values in cached]
            if have == len(tokens):
                return cached
        rest = tokens[have:]
        input_ids = torch.tensor([rest], dtype=torch.long, device=self.device)
        positions = torch.arange(have, len(tokens), device=self.device)[None, :]
        mask = torch.ones((1, len(tokens)), dtype=torch.long, device=self.device)
        self.stats.prefill_tokens += len(rest)
        self.stats.prefix_tokens_reused -= len(rest)  # counted as reused by every row of the group
        out = self._forward(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                            past_key_values=self._expanded_cache(cached, 1) if cached else None,
                            use_cache=True, logits_to_keep=1)
        kv = [(layer.keys, layer.values) for layer in self._cache_of(out).layers]
        self.prefix_store.put(tokens, kv)
        return kv

    def _expanded_cache(self, kv: PrefixKV, batch: int) -> Any:
        """A fresh DynamicCache whose layers view `kv` expanded to `batch` rows (no copy; a forward
        pass concatenates onto new tensors, so the stored ones are never modified)."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        for layer, (keys, values) in zip(cache.layers, kv, strict=True):
            layer.lazy_initialization(keys, values)
            layer.keys = keys.expand(batch, -1, -1, -1)
            layer.values = values.expand(batch, -1, -1, -1)
        return cache

    def _merge_caches(self, parts: list[tuple[Any, Any, Any, Any]]) -> tuple[Any, Any, Any]:
        """One batch cache from groups of different lengths, each left-padded (mask 0) to the longest."""
        import torch
        from transformers import DynamicCache

        width = max(part[2].shape[1] for part in parts)
        masks = [torch.cat([part[2].new_zeros((part[2].shape[0], width - part[2].shape[1])), part[2]], dim=1)
                 for part in parts]
        merged = DynamicCache(config=self.model.config)
        for index, layer in enumerate(merged.layers):
            keys, values = [], []
            for part in parts:
                source = part[1].layers[index]
                pad = width - source.keys.shape[-2]
                keys.append(torch.nn.functional.pad(source.keys, (0, 0, pad, 0)))
                values.append(torch.nn.functional.pad(source.values, (0, 0, pad, 0)))
            layer.lazy_initialization(keys[0], values[0])
            layer.keys, layer.values = torch.cat(keys), torch.cat(values)
        return merged, torch.cat(masks), torch.cat([part[3] for part in parts])

    def _score_batch(self, ready: list[tuple[Job, list[int]]]) -> list[Completion | Exception]:
        import torch

        with torch.inference_mode():
            prefill = self._prefill([ids for _, ids in ready], keep_cache=False)
        logprobs = torch.log_softmax(prefill.logits.float(), dim=-1).cpu()
        slot_of = {row: slot for slot, row in enumerate(prefill.order)}
        results: list[Completion | Exception] = []
        for row, (job, ids) in enumerate(ready):
            try:
                results.append(self._candidates(job.request, logprobs[slot_of[row]], len(ids)))
            except JudgerlError as exc:
                results.append(exc)
        return results

    def _candidates(self, request: CompletionRequest, logprobs: Any, prompt_tokens: int) -> Completion:
        candidates = list(dict.fromkeys(request.candidate_tokens or []))
        owners: dict[int, str] = {}
        scores: dict[str, float] = {}
        for candidate in candidates:
            ids = self.candidate_ids(candidate)
            for token_id in ids:
                if token_id in owners:
                    raise BackendError(f"candidates {owners[token_id]!r} and {candidate!r} share their first "
                                       "token; pick candidates that differ in their first token",
                                       retryable=False, status=400)
                owners[token_id] = candidate
            scores[candidate] = float(logprobs[list(ids)].logsumexp(0))
        self.stats.requests += 1
        self.stats.prompt_tokens += prompt_tokens
        best = max(candidates, key=lambda c: scores[c])
        return Completion(text=best, model=self.path.name, usage=Usage(prompt_tokens, 0),
                          finish_reason="stop", candidate_logprobs=scores)

    def _generate_batch(self, ready: list[tuple[Job, list[int]]]) -> list[Completion | Exception]:
        import torch

        requests = [job.request for job, _ in ready]
        generators = [torch.Generator().manual_seed(r.seed) if r.seed is not None else self._rng
                      for r in requests]
        outputs: list[list[int]] = [[] for _ in ready]
        records: list[list[TokenLogprob]] = [[] for _ in ready]
        finish: list[str | None] = [None] * len(ready)
        with torch.inference_mode():
            prefill = self._prefill([ids for _, ids in ready], keep_cache=True)
            cache, mask, positions = prefill.cache, prefill.mask, prefill.positions
            active = list(prefill.order)  # rows still in the batch, in cache order
            logits = prefill.logits.float()
            while True:
                if self._stopping.is_set():
                    raise EngineStopped("the local engine was stopped (the process is exiting)")
                next_tokens: list[int] = []
                for slot, row in enumerate(active):
                    token = self._pick(logits[slot], requests[row], generators[row], records[row])
                    outputs[row].append(token)
                    next_tokens.append(token)
                    finish[row] = self._finished(requests[row], outputs[row])
                keep = [slot for slot, row in enumerate(active) if finish[row] is None]
                if not keep:
                    break
                if len(keep) < len(active):
                    index = torch.tensor(keep, device=self.device)
                    cache.batch_select_indices(index)
                    mask, positions = mask[index], positions[index]
                    next_tokens = [next_tokens[slot] for slot in keep]
                    active = [active[slot] for slot in keep]
                mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
                positions = positions + 1
                step = torch.tensor(next_tokens, dtype=torch.long, device=self.device)[:, None]
                out = self._forward(input_ids=step, attention_mask=mask, position_ids=positions,
                                    past_key_values=cache, use_cache=True)
                cache = self._cache_of(out)
                logits = out.logits[:, -1, :].float()
        return [self._completion(requests[row], ids, outputs[row], records[row], finish[row] or "length")
                for row, (_, ids) in enumerate(ready)]

    def _pick(self, logits: Any, request: CompletionRequest, generator: Any,
              records: list[TokenLogprob]) -> int:
        import torch

        logprobs = torch.log_softmax(logits, dim=-1)
        if request.temperature <= 0:
            token = int(torch.argmax(logits))
        else:
            scores = logits / request.temperature
            top_k = request.extra.get("top_k")
            if top_k:
                kth = torch.topk(scores, min(int(top_k), scores.numel())).values[-1]
                scores = scores.masked_fill(scores < kth, float("-inf"))
            if request.top_p is not None and request.top_p < 1.0:
                ordered, order = torch.sort(scores, descending=True)
                cumulative = torch.softmax(ordered, dim=-1).cumsum(-1)
                drop = cumulative - torch.softmax(ordered, dim=-1) >= request.top_p  # keep the first over p
                scores = scores.scatter(0, order[drop], float("-inf"))
            probabilities = torch.softmax(scores, dim=-1).cpu()
            token = int(torch.multinomial(probabilities, 1, generator=generator))
        if request.logprobs:
            top: dict[str, float] = {}
            if request.top_logprobs:
                values, indices = torch.topk(logprobs, int(request.top_logprobs))
                for value, index in zip(values.tolist(), indices.tolist(), strict=True):
                    key = self.tokenizer.decode([index])
                    top[key] = logsumexp([top[key], value]) if key in top else value
            records.append(TokenLogprob(self.tokenizer.decode([token]), float(logprobs[token]), top))
        return token

    def _finished(self, request: CompletionRequest, tokens: list[int]) -> str | None:
        if tokens[-1] in self.eos_ids:
            return "stop"
        if request.stop:
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            if any(stop and stop in text for stop in request.stop):
                return "stop"
        if len(tokens) >= request.max_tokens:
            return "length"
        return None

    def _completion(self, request: CompletionRequest, prompt: list[int], tokens: list[int],
                    records: list[TokenLogprob], finish: str) -> Completion:
        content = tokens[:-1] if tokens and tokens[-1] in self.eos_ids else tokens
        text = self.tokenizer.decode(content, skip_special_tokens=True)
        kept = len(content)
        cut = min((text.find(stop) for stop in request.stop or [] if stop and stop in text), default=-1)
        if cut >= 0:
            text = text[:cut]
            kept = next((k - 1 for k in range(1, len(content) + 1)
                         if len(self.tokenizer.decode(content[:k], skip_special_tokens=True)) > cut),
                        len(content))
        self.stats.requests += 1
        self.stats.prompt_tokens += len(prompt)
        self.stats.completion_tokens += len(tokens)
        return Completion(text=text, model=self.path.name, usage=Usage(len(prompt), len(tokens)),
                          finish_reason=finish,
                          logprobs=records[:kept] if request.logprobs else None)


def _deliver(job: Job, result: Completion | BaseException) -> None:
    """Hand a result to the waiting coroutine on its own event loop (from the worker thread)."""

    def settle() -> None:
        if job.future.done():
            return
        if isinstance(result, BaseException):
            job.future.set_exception(result)
        else:
            job.future.set_result(result)

    try:
        job.loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the caller's event loop has closed: nobody is waiting any more
        log.debug("dropped a local result: its event loop is closed")


def logsumexp(values: list[float]) -> float:
    """log(sum(exp(v))) without overflow (used to merge token variants).

    >>> round(logsumexp([math.log(0.2), math.log(0.3)]), 6) == round(math.log(0.5), 6)
    True
    """
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))
