"""A tiny, real causal LM built from a config, with an offline tokenizer, for policy tests.

Why: evaluation and checkpoint loading must be tested with a real `transformers` model loaded
from files, but tests may not download weights. A 2-layer Llama with a byte-level BPE tokenizer
trained in memory on a few sentences loads and generates in well under a second on a CPU.
Its outputs are gibberish, which is fine: tests check plumbing and figures, not quality.
"""

from __future__ import annotations

from pathlib import Path

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    'Answer in JSON: {"answer": "yes", "score": 1}',
    "The capital of France is Paris. The answer is short and clear.",
    "hello world, this is a tiny tokenizer for tests only",
]


def build_tiny_tokenizer(corpus: list[str] | None = None, *, vocab_size: int = 320):  # -> tokenizer
    """A byte-level BPE tokenizer trained in memory on `corpus` (default: a few test sentences)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator((corpus or CORPUS) * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="<|im_end|>")
    tokenizer.chat_template = CHATML
    return tokenizer


def build_corpus_model_dir(out_dir: str | Path, corpus: list[str]) -> Path:
    """A tiny Llama (64 wide, 2048-token context) whose tokenizer was trained on `corpus`, so a
    task's words are single tokens: small enough to fine-tune in seconds (distillation tests)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    tokenizer = build_tiny_tokenizer(corpus, vocab_size=700)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_model_dir(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny LlamaForCausalLM + tokenizer folder that `from_pretrained` loads."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tool_calling_model_dir(out_dir: str | Path, conversations: list[tuple[list[dict], list[dict]]],
                                 tools: list, *, steps: int = 150, seed: int = 0) -> Path:
    """A tiny Llama taught, in a few seconds, to write the assistant turns of `conversations`.

    Each conversation is (prompt messages, the assistant's turns and the tool results between
    them, in the OpenAI form); `tools` are the Python functions TRL will be given (rendered into
    the prompt exactly as TRL renders them: from the functions, not from hand-written schemas).
    The tokenizer uses TRL's copy of the Qwen 2.5 chat template, one TRL can parse tool calls from
    (`trl.chat_template_utils.add_response_schema`); the model is fitted on every assistant turn
    in its context, so when TRL samples from it, it calls the tools and then answers: a policy
    that exercises TRL's tool-calling loop without downloading a model.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl.chat_template_utils import qwen2_5_chat_template

    out = Path(out_dir)
    scratch = build_tiny_tokenizer(["x"], vocab_size=300)
    scratch.chat_template = qwen2_5_chat_template
    pairs = []  # (context text, target text) for every assistant turn
    for prompt, turns in conversations:
        for index, message in enumerate(turns):
            if message["role"] != "assistant":
                continue
            context = scratch.apply_chat_template(prompt + turns[:index], tools=tools, tokenize=False,
                                                  add_generation_prompt=True)
            whole = scratch.apply_chat_template(prompt + turns[:index + 1], tools=tools, tokenize=False)
            target = whole[len(context):].rstrip("\n")
            assert whole.startswith(context) and target.endswith("<|im_end|>"), "not prefix-preserving"
            pairs.append((context, target))
    tokenizer = build_tiny_tokenizer([context + target for context, target in pairs], vocab_size=1200)
    tokenizer.chat_template = qwen2_5_chat_template
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None, tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    rows = []
    for context, target in pairs:
        context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
        rows.append((torch.tensor([context_ids + target_ids]),
                     torch.tensor([[-100] * len(context_ids) + target_ids])))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        input_ids, labels = rows[step % len(rows)]
        loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
