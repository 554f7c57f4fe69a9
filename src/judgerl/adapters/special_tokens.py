"""Text that a trainer decoded with its special tokens left in: find the answer, drop the markup.

Why: OpenRLHF (≥ 0.9) decodes prompt + response with `skip_special_tokens=False` before it
posts them to a remote reward, so the response ends with the model's end-of-turn token
(`<|im_end|>`, `</s>`, `<|eot_id|>`, ...) and the prompt is the chat template's markup. Left in,
the EOS breaks every format check (an exact match on "Paris" sees "Paris<|im_end|>", a JSON
gate sees invalid JSON) and the judge reads template markup as the question.

- `DEFAULT_SPECIAL_TOKENS`: the end-of-turn, padding and role markers of the common chat
  templates (ChatML: Qwen, SmolLM2, ...; Llama 2 and 3; Mistral; Gemma; Phi-3; DeepSeek);
- `special_tokens_from_tokenizer`: a tokenizer's own special tokens (a Hugging Face folder);
- `strip_special_tokens`: the text without any of them;
- `chat_messages`: a ChatML or Llama-3 prompt back to chat messages (other prompts: one user
  message, markup removed);
- `response_of`: the response part of prompt + response.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

DEFAULT_SPECIAL_TOKENS: tuple[str, ...] = (
    # ChatML (Qwen, SmolLM2, Hermes, ...)
    "<|im_start|>", "<|im_end|>", "<|endoftext|>",
    # Llama 3
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
    "<|eom_id|>", "<|finetune_right_pad_id|>",
    # Llama 2, Mistral, and SentencePiece models
    "<s>", "</s>", "<unk>", "<pad>", "[INST]", "[/INST]",
    # Gemma
    "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>",
    # Phi-3
    "<|end|>", "<|user|>", "<|assistant|>", "<|system|>",
    # DeepSeek
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>",
    # BERT-style padding some reward tokenizers use
    "[PAD]", "<|pad|>",
)

_CHATML_TURN = re.compile(r"<\|im_start\|>(\w+)\n(.*?)(?:<\|im_end\|>|$)", re.DOTALL)
_LLAMA3_TURN = re.compile(r"<\|start_header_id\|>(\w+)<\|end_header_id\|>\n\n(.*?)(?:<\|eot_id\|>|$)",
                          re.DOTALL)
ASSISTANT_MARKERS = ("<|im_start|>assistant\n", "<|start_header_id|>assistant<|end_header_id|>\n\n")


def special_tokens_from_tokenizer(path: str) -> list[str]:
    """The special tokens of the Hugging Face tokenizer in `path` (a local folder)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokens = list(tokenizer.all_special_tokens)
    tokens += [added.content for added in tokenizer.added_tokens_decoder.values() if added.special]
    return list(dict.fromkeys(token for token in tokens if token))


def _unambiguous(token: str) -> bool:
    """Tokens that never occur in ordinary text (`<|im_end|>`, `<｜end▁of▁sentence｜>`)."""
    return ("|" in token or "｜" in token) and token.startswith("<") and token.endswith(">")


@lru_cache(maxsize=16)
def _patterns(tokens: tuple[str, ...]) -> tuple[re.Pattern[str] | None, re.Pattern[str]] | None:
    """(the unambiguous tokens anywhere, the runs of any tokens and whitespace at either end)."""
    ordered = sorted({token for token in tokens if token}, key=len, reverse=True)
    if not ordered:
        return None
    inner = [token for token in ordered if _unambiguous(token)]
    anywhere = re.compile("|".join(map(re.escape, inner))) if inner else None
    alternatives = "|".join(map(re.escape, ordered))
    return anywhere, re.compile(rf"\A\s*(?:(?:{alternatives})\s*)+|(?:\s*(?:{alternatives}))+\s*\Z")


def strip_special_tokens(text: str, tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS) -> str:
    """`text` without special tokens: the runs of them (and whitespace) that start or end it, and
    anywhere the `<|...|>` kind, which never occur in ordinary text. Inside the text, `<s>`, `</s>`,
    `<pad>` and the like are left alone (HTML has `<s>`).

    >>> strip_special_tokens("Paris<|im_end|>\\n<|endoftext|><|endoftext|>")
    'Paris'
    >>> strip_special_tokens(' {"answer": "Paris"}</s>')
    ' {"answer": "Paris"}'
    >>> strip_special_tokens("a <s>old</s> price<|eot_id|> new</s>")
    'a <s>old</s> price new'
    >>> strip_special_tokens("<s>[INST] 2+2? [/INST]")
    '2+2?'
    >>> strip_special_tokens("no tokens here \\n")
    'no tokens here \\n'
    """
    patterns = _patterns(tuple(tokens))
    if patterns is None:
        return text
    anywhere, ends = patterns
    text = ends.sub("", text)
    return anywhere.sub("", text) if anywhere is not None else text


def chat_messages(prompt: str, tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS) -> list[dict[str, Any]]:
    """Chat messages from a templated prompt (ChatML, Llama 3); else one user message.

    The trailing empty assistant turn (the generation prompt) is dropped.

    >>> chat_messages("<|im_start|>system\\nBe brief.<|im_end|>\\n<|im_start|>user\\n2+2?<|im_end|>\\n"
    ...               "<|im_start|>assistant\\n")
    [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': '2+2?'}]
    >>> chat_messages("Q: 2+2?</s>")
    [{'role': 'user', 'content': 'Q: 2+2?'}]
    """
    for turn in (_CHATML_TURN, _LLAMA3_TURN):
        turns = turn.findall(prompt)
        if turns:
            messages = [{"role": role, "content": strip_special_tokens(content, tokens).strip()}
                        for role, content in turns]
            if messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
                messages.pop()
            return messages
    text = strip_special_tokens(prompt, tokens).strip()
    return [{"role": "user", "content": text}] if text else []


def response_of(query: str, prompt: str | None) -> str:
    """The response in `query` (prompt + response as decoded by the trainer).

    The prompt prefix is cut off; when the query does not start with the prompt (a tokenizer
    that does not decode the prompt back to the same text), the text after the last assistant
    header of a known template is the response; failing both, the whole query.

    >>> response_of("Q: 2+2? A: 4", "Q: 2+2? A:")
    ' 4'
    >>> response_of("<|im_start|>user\\n2 + 2?<|im_end|>\\n<|im_start|>assistant\\n4<|im_end|>",
    ...             "<|im_start|>user\\n2+2?<|im_end|>\\n<|im_start|>assistant\\n")
    '4<|im_end|>'
    >>> response_of("no prefix here", "Q:")
    'no prefix here'
    """
    if prompt and query.startswith(prompt):
        return query[len(prompt):]
    for marker in ASSISTANT_MARKERS:
        position = query.rfind(marker)
        if position >= 0:
            return query[position + len(marker):]
    return query


def token_list(extra: Iterable[str] = (), *, tokenizer: str | None = None,
               defaults: bool = True) -> tuple[str, ...]:
    """The tokens to strip: the defaults, a tokenizer's special tokens and `extra`, without repeats."""
    tokens = list(DEFAULT_SPECIAL_TOKENS) if defaults else []
    if tokenizer:
        tokens += special_tokens_from_tokenizer(tokenizer)
    tokens += list(extra)
    return tuple(dict.fromkeys(token for token in tokens if token))


__all__ = ["ASSISTANT_MARKERS", "DEFAULT_SPECIAL_TOKENS", "chat_messages", "response_of",
           "special_tokens_from_tokenizer", "strip_special_tokens", "token_list"]
