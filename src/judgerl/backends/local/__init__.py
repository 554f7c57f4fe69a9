"""An in-process model on CPU (or GPU): judgerl's backend when there is no endpoint, key or network.

Why it is built this way:
- One copy of the weights per process. Every `LocalBackend` for the same model folder and dtype
  shares one `LocalEngine` (loaded lazily, on the first call), so three judges on the embedded
  model cost one model's memory.
- Batching. Requests that arrive together (the runtime lets `max_concurrency` calls in flight) are
  queued and run by one worker thread as one left-padded batch, so the event loop is never
  blocked by torch and concurrency turns into batch size.
- Probability-weighted judging without generation. With `request.candidate_tokens` set, the
  backend runs ONE forward pass over the prompt (chat template and generation prompt applied,
  plus `request.extra["assistant_prefix"]` if given) and returns
  `Completion(text=<most likely candidate>, candidate_logprobs={candidate: logprob})`. A
  candidate's log-probability is that of its FIRST token at the answer position; when both
  "X" and " X" are single tokens their probabilities are added (logsumexp). Candidates whose
  first tokens coincide are refused (the comparison would be meaningless).
- Generation is a small loop of our own over the KV cache, so that each row of a batch keeps its
  own temperature / top_p / top_k (`extra["top_k"]`) / seed / max_tokens / stop strings, finished
  rows leave the batch, and token counts and log-probabilities are exact.
- Prefix KV reuse. Judge requests repeat long prefixes (the same instructions and worked examples
  for every answer; the same guideline, contract and answer for every comment x dimension of an
  itemized rubric). Before a batch's prompt pass (scoring or generation), its rows are grouped by
  shared token prefixes (backends/local/prefix_cache.py: `plan_groups`); a group's prefix key/values
  come from a small LRU (`prefix_cache_tokens`, 0 disables) or are computed once, extending the
  longest cached match, and only the rows' suffixes run, on a copy-free expansion of the prefix
  cache to the group's size (suffixes left-padded between prefix and suffix, mask 0 on the pads,
  positions continuing from the prefix length). The scores equal the uncached pass's (float
  rounding aside; tested). Scoring rows that share more than the group's prefix (the criteria of
  one answer) are packed as a trie into one sequence with a tree attention mask (sdpa attention
  only), so each shared token runs once. Used for models whose layers all use full attention
  (llama, qwen, ...); models with sliding-window layers (gemma 3) run uncached.

Other `request.extra` keys: `chat_template: false` sends the message contents as plain text
(base models have no template); a last message with role "assistant" is continued, not closed.

Speed on CPU depends on glibc malloc: `MALLOC_*` variables are read when the process starts, so
they cannot be set from here; see `RECOMMENDED_MALLOC_ENV` (the CLI sets them before starting).
"""

from judgerl.backends.local.backend import (
    LocalBackend,
    LocalOptions,
    get_engine,
    loaded_engines,
    model_beside,
)
from judgerl.backends.local.engine import (
    DEFAULT_PREFIX_CACHE_TOKENS,
    DTYPES,
    RECOMMENDED_MALLOC_ENV,
    EngineStats,
    LocalEngine,
    kv_cache_name,
    logsumexp,
)

__all__ = ["DEFAULT_PREFIX_CACHE_TOKENS", "DTYPES", "RECOMMENDED_MALLOC_ENV", "EngineStats", "LocalBackend",
           "LocalEngine", "LocalOptions", "get_engine", "kv_cache_name", "loaded_engines", "logsumexp",
           "model_beside"]
