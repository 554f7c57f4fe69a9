"""The verl adapter against the real verl package from PyPI (0.9.1, the `engines` extra).

Why: the adapter was once written from verl's docs and verl then silently ignored it (a legacy
config key). These tests take verl's own files as the truth:

- verl's own Hydra config (`verl/trainer/config/ppo_trainer.yaml`) is composed with the
  README's overrides and with `examples/verl/ppo_judgerl.yaml`;
- verl's own `get_custom_reward_fn` (`verl/trainer/ppo/reward.py`) reads that config and loads
  the reward function;
- the function is called with the keyword arguments verl's `NaiveRewardManager.run_single`
  (`verl/experimental/reward_loop/reward_manager/naive.py`) uses, read from its source, and
  awaited or not as `run_single` decides (`inspect.iscoroutinefunction`).

What is not driven: `import verl` imports ray at module level (`verl/protocol.py`); to keep these
tests independent of ray, `get_custom_reward_fn` is compiled from the real `reward.py` source (its
module-level imports need `verl.DataProto`, which it does not use), with
`verl.utils.import_utils` (stdlib only) imported as the real module file. The `RewardLoopWorker`
/ `RewardLoopManager` / `NaiveRewardManager` classes themselves, and the `pkg://verl.trainer.config`
search path of the example (it imports verl), are driven in `test_engine_verl_ray.py`, with the
ray that scripts/setup installs.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import importlib
import importlib.util
import inspect
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from adapter_fakes import make_pipeline, write_config
from judgerl.adapters import clear_pipelines
from judgerl.errors import FailureBudgetExceeded

hydra = pytest.importorskip("hydra", reason="needs the `engines` extra (scripts/setup installs it)")
omegaconf = pytest.importorskip("omegaconf")
VERL_SPEC = importlib.util.find_spec("verl")  # finds the package without running its __init__ (ray)
if VERL_SPEC is None or not VERL_SPEC.submodule_search_locations:
    pytest.skip("needs verl (the `engines` extra; scripts/setup installs it)", allow_module_level=True)

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402

VERL_ROOT = Path(next(iter(VERL_SPEC.submodule_search_locations)))
VERL_CONFIG_DIR = VERL_ROOT / "trainer" / "config"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "verl"
TESTED_VERSION = "0.9.1"

# The README's wiring, as typed on verl's command line.
README_OVERRIDES = [
    "reward.custom_reward_function.path=pkg://judgerl.adapters.verl",
    "reward.custom_reward_function.name=compute_score_async",
]


def verl_version() -> str:
    return (VERL_ROOT / "version" / "version").read_text().strip()


def compose_verl(config_dir: Path, name: str, overrides: list[str]) -> Any:
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base=None):
            return compose(config_name=name, overrides=overrides)
    finally:
        GlobalHydra.instance().clear()


@pytest.fixture
def verl_get_custom_reward_fn(monkeypatch: pytest.MonkeyPatch) -> Any:
    """verl's `get_custom_reward_fn`, compiled from the installed `verl/trainer/ppo/reward.py`."""
    for name, folder in (("verl", VERL_ROOT), ("verl.utils", VERL_ROOT / "utils")):
        package = types.ModuleType(name)
        package.__path__ = [str(folder)]  # the real package folder, without its ray-importing __init__
        monkeypatch.setitem(sys.modules, name, package)
    monkeypatch.delitem(sys.modules, "verl.utils.import_utils", raising=False)
    importlib.import_module("verl.utils.import_utils")  # the real file (stdlib imports only)
    tree = ast.parse((VERL_ROOT / "trainer" / "ppo" / "reward.py").read_text())
    wanted = {"_call_with_kwargs", "_call_with_kwargs_async", "get_custom_reward_fn"}
    kept = [node for node in tree.body
            if (isinstance(node, ast.ImportFrom) and node.module == "__future__")
            or (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in wanted)]
    assert {getattr(node, "name", None) for node in kept} >= wanted, "verl renamed its reward loader"
    namespace: dict[str, Any] = {"inspect": inspect, "partial": functools.partial, "__name__": "verl_reward"}
    exec(compile(ast.Module(body=kept, type_ignores=[]), str(VERL_ROOT / "trainer/ppo/reward.py"), "exec"),
         namespace)
    return namespace["get_custom_reward_fn"]


def naive_call_keywords() -> set[str]:
    """The keyword arguments verl's NaiveRewardManager passes to the reward function."""
    source = (VERL_ROOT / "experimental" / "reward_loop" / "reward_manager" / "naive.py").read_text()
    keywords: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "compute_score"):
            keywords |= {keyword.arg for keyword in node.keywords if keyword.arg is not None}
    return keywords


def call_like_naive(fn: Any, **arguments: Any) -> dict[str, float]:
    """Call `fn` as `NaiveRewardManager.run_single` does: awaited when it is a coroutine function."""
    assert set(arguments) == naive_call_keywords(), "verl's reward call changed its keywords"
    if inspect.iscoroutinefunction(fn):
        return asyncio.run(fn(**arguments))
    return fn(**arguments)


def test_installed_verl_is_the_tested_release():
    assert verl_version() == TESTED_VERSION, "update TESTED_VERSION, the README and scripts/setup together"


def test_readme_wiring_is_what_verl_loads_and_calls(tmp_path, verl_get_custom_reward_fn):
    reward_yaml = write_config(tmp_path)
    config = compose_verl(VERL_CONFIG_DIR, "ppo_trainer", [
        *README_OVERRIDES, f"+reward.custom_reward_function.reward_kwargs.reward_config={reward_yaml}"])
    assert config.reward.reward_manager.name == "naive", "verl's default manager calls once per response"
    fn = verl_get_custom_reward_fn(config)
    assert fn is not None, "verl found no custom reward function under reward.custom_reward_function"
    assert inspect.iscoroutinefunction(fn), "verl awaits compute_score_async on its reward loop"
    try:
        result = call_like_naive(fn, data_source="gsm8k", solution_str="it is 4", ground_truth="4",
                                 extra_info={"index": 3, "question": "2+2?", "num_turns": None,
                                             "rollout_reward_scores": {}})
    finally:
        clear_pipelines()
    assert result == {"score": 1.0, "length": 1.0, "quality": 1.0, "unscored": 0.0, "gated": 0.0}


def test_the_sync_form_is_called_in_verls_thread_pool_shape(tmp_path, verl_get_custom_reward_fn):
    reward_yaml = write_config(tmp_path)
    config = compose_verl(VERL_CONFIG_DIR, "ppo_trainer", [
        "reward.custom_reward_function.path=pkg://judgerl.adapters.verl",
        "reward.custom_reward_function.name=compute_score",
        f"+reward.custom_reward_function.reward_kwargs.reward_config={reward_yaml}"])
    fn = verl_get_custom_reward_fn(config)
    assert not inspect.iscoroutinefunction(fn)
    try:
        result = call_like_naive(fn, data_source="d", solution_str="a short answer", ground_truth=None,
                                 extra_info={})
    finally:
        clear_pipelines()
    assert result["score"] == 1.0 and result["unscored"] == 0.0


def test_legacy_top_level_key_is_ignored_by_verl(tmp_path, verl_get_custom_reward_fn):
    """The old README wiring: verl 0.9 finds no reward function (and would train on its default)."""
    config = compose_verl(VERL_CONFIG_DIR, "ppo_trainer", [
        "custom_reward_function.path=/somewhere/judgerl/adapters/verl.py",
        "custom_reward_function.name=compute_score"])
    assert verl_get_custom_reward_fn(config) is None


def test_batch_reward_manager_is_gone_from_verl():
    """Why compute_score_batch was removed: verl's registry no longer has a `batch` manager."""
    managers = VERL_ROOT / "experimental" / "reward_loop" / "reward_manager"
    registered = set()
    for path in managers.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "register"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                registered.add(node.args[0].value)
    assert "naive" in registered and "batch" not in registered


def test_example_config_composes_with_verls_config(tmp_path, verl_get_custom_reward_fn):
    reward_yaml = write_config(tmp_path)
    # The example finds verl's config through pkg://verl.trainer.config, which imports verl (and
    # ray); the same folder is given here as a file:// search path.
    config = compose_verl(EXAMPLES, "ppo_judgerl", [
        f"hydra.searchpath=[file://{VERL_CONFIG_DIR}]",
        f"reward.custom_reward_function.reward_kwargs.reward_config={reward_yaml}"])
    example_text = (EXAMPLES / "ppo_judgerl.yaml").read_text()
    assert "pkg://verl.trainer.config" in example_text
    assert config.algorithm.adv_estimator == "grpo"
    assert config.actor_rollout_ref.rollout.n == 8
    assert config.trainer.total_epochs == 1
    assert config.custom_reward_function.path is None, "nothing in the legacy key"
    assert config.reward.custom_reward_function.path == "pkg://judgerl.adapters.verl"
    fn = verl_get_custom_reward_fn(config)
    try:
        result = call_like_naive(fn, data_source="d", solution_str="an answer", ground_truth="x",
                                 extra_info={"question": "q?"})
    finally:
        clear_pipelines()
    assert result["score"] == 1.0


def test_one_unscored_response_is_neutral_not_a_failed_run():
    """Per response: 0.5 and `unscored: 1`; the budget acts over the worker's window only."""
    import judgerl.adapters.verl as adapter

    pipeline, _judge, _backend = make_pipeline(failure_policy="neutral", failure_budget=0.3)
    with pipeline:
        first = adapter.compute_score("d", "JUDGE-FAIL", "4", {"question": "2+2?"}, reward_config=pipeline)
        assert first["score"] == 0.5 and first["unscored"] == 1.0
        for _ in range(40):
            assert adapter.compute_score("d", "it is 4", "4", {}, reward_config=pipeline)["score"] == 1.0
        # A judge outage: once more than 30% of the window is unscored, training stops.
        with pytest.raises(FailureBudgetExceeded) as raised:
            for _ in range(40):
                asyncio.run(adapter.compute_score_async("d", "JUDGE-FAIL", "4", {}, reward_config=pipeline))
        assert raised.value.total <= 256 and raised.value.failed / raised.value.total > 0.3


def test_compute_score_remote_keeps_groups_whole_through_the_service(verl_get_custom_reward_fn):
    """verl's workers each send one response; the service judges the prompt's rollouts together."""
    from adapter_fakes import make_group_pipeline
    from judgerl.adapters.openrlhf import create_app
    from test_adapter_openrlhf import running

    pipeline, judge, _backend = make_group_pipeline()
    with pipeline, running(create_app(pipeline, token=None)) as url:
        config = compose_verl(VERL_CONFIG_DIR, "ppo_trainer", [
            "reward.custom_reward_function.path=pkg://judgerl.adapters.verl",
            "reward.custom_reward_function.name=compute_score_remote",
            f"+reward.custom_reward_function.reward_kwargs.reward_url={url}",
            "+reward.custom_reward_function.reward_kwargs.group_size=3"])
        fn = verl_get_custom_reward_fn(config)
        assert inspect.iscoroutinefunction(fn)
        assert set(inspect.signature(fn.args[0]).parameters) >= naive_call_keywords()

        async def reward_loop() -> list[dict[str, float]]:
            # verl's RewardLoopWorker.compute_score_batch: one task per response, gathered
            return list(await asyncio.gather(*(
                fn(data_source="d", solution_str=answer, ground_truth="blue",
                   extra_info={"index": 5, "question": "Name a colour.", "num_turns": None,
                               "rollout_reward_scores": {}})
                for answer in ("red", "dark blue", "green"))))

        results = asyncio.run(reward_loop())
    assert [result["score"] for result in results] == [0.0, 1.0, 0.0]
    assert all(set(result) == {"score", "best", "unscored", "gated"} for result in results)
    assert [sorted(group) for group in judge.groups] == [["dark blue", "green", "red"]]


def test_compute_score_remote_raises_with_the_services_message():
    import judgerl.adapters.verl as adapter
    from judgerl.adapters.openrlhf import create_app
    from test_adapter_openrlhf import running

    pipeline, _judge, _backend = make_pipeline()
    with pipeline, running(create_app(pipeline, token="secret")) as url, \
            pytest.raises(adapter.RemoteRewardError, match="401: missing or wrong bearer token"):
        asyncio.run(adapter.compute_score_remote("d", "x", "4", {}, reward_url=url))



def test_compute_score_remote_waits_out_a_503_with_retry_after(monkeypatch):
    """The service refused for memory (503 + Retry-After): judgerl's verl client tries again later."""
    import threading
    import time

    import httpx

    import judgerl.adapters.verl as adapter
    from judgerl.adapters.openrlhf import create_app
    from test_adapter_openrlhf import running

    monkeypatch.setattr(adapter, "RETRY_AFTER_MAX_S", 0.7)  # the service says 5 s; the test waits less
    pipeline, _judge, _backend = make_pipeline(latency_s=0.6)
    big = {"query": ["Q: hi A: good " + "x" * 400]}
    with pipeline, running(create_app(pipeline, token=None, max_pending_bytes=450)) as url:
        holder = threading.Thread(target=httpx.post, args=(f"{url}/get_reward",),
                                  kwargs={"json": big, "timeout": 10})
        holder.start()  # holds ~420 bytes while judged (0.6 s): the next requests are refused at first
        time.sleep(0.2)
        refused = httpx.post(f"{url}/get_reward", json={"query": ["Q: 2+2 A: 4"]}, timeout=10)
        result = asyncio.run(adapter.compute_score_remote("d", "good", "good", {}, reward_url=url))
        holder.join()
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5", refused.text
    assert result["unscored"] == 0.0 and "score" in result


def test_compute_score_remote_names_the_url_for_an_answer_that_is_not_the_services():
    """A proxy's HTML error page, a 200 from something else and a service that does not answer in
    time are `RemoteRewardError`s naming the URL and what came back, not a JSONDecodeError,
    KeyError or bare TimeoutError from deep inside aiohttp."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route

    import judgerl.adapters.verl as adapter
    from test_adapter_openrlhf import running

    async def proxy(_request):
        return HTMLResponse("<html><h1>502 Bad Gateway</h1></html>", status_code=502)

    async def other(_request):
        return JSONResponse({"hello": "world"})

    async def slow(_request):
        await asyncio.sleep(3)
        return JSONResponse({"rewards": [1.0]})

    app = Starlette(routes=[Route("/proxy/get_reward", proxy, methods=["POST"]),
                            Route("/other/get_reward", other, methods=["POST"]),
                            Route("/slow/get_reward", slow, methods=["POST"])])
    with running(app) as url:
        with pytest.raises(adapter.RemoteRewardError, match=r"/proxy/get_reward answered 502: <html><h1>502"):
            asyncio.run(adapter.compute_score_remote("d", "x", "4", {}, reward_url=f"{url}/proxy"))
        with pytest.raises(adapter.RemoteRewardError,
                           match=r"/other/get_reward answered 200 without a reward .*hello"):
            asyncio.run(adapter.compute_score_remote("d", "x", "4", {}, reward_url=f"{url}/other"))
        with pytest.raises(adapter.RemoteRewardError, match=r"/slow/get_reward did not answer within 0.5s"):
            asyncio.run(adapter.compute_score_remote("d", "x", "4", {}, reward_url=f"{url}/slow",
                                                     timeout_s=0.5))
