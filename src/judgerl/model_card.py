"""The model card of an export: what the model is, how it was judged, and how it scored.

Why: a model that leaves judgerl must carry its evidence. The card is the README.md of the
export, in Hugging Face model-card format: YAML metadata (written by huggingface_hub's
`ModelCardData`, so `base_model`, `model-index` and friends have the shape the Hub expects) and
a Markdown body with the base model, the data, the whole recipe, the reward config and judge
(backend model, prompt versions, rubric), the judge-validation figures, the evaluation table of
base / SFT / RFT, and how to serve the folder. Every figure is read from the run's files
(`eval/*/summary.json`, `validation/report.json`, `recipe.yaml`), none is computed here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from judgerl.errors import JudgerlError
from judgerl.safe_yaml import load_yaml

TAGS = ["judgerl", "grpo", "rlhf", "rlaif", "llm-as-judge", "reinforcement-learning", "trl"]
#: (summary key path, row title) of the evaluation table, in order
EVAL_FIGURES = [
    (("prompts",), "prompts"),
    (("k",), "answers per prompt (k)"),
    (("reward_mean",), "judge reward, mean of all answers"),
    (("best_of_k",), "best-of-k judge reward"),
    (("schema_validity",), "schema validity"),
    (("heldout", "reward_mean"), "held-out judge reward"),
    (("heldout", "best_of_k"), "held-out judge best-of-k"),
    (("unscored_share",), "unscored share (judge failures)"),
    (("gated_share",), "gated share (hard check failed)"),
    (("completion_tokens_mean",), "answer length, tokens"),
    (("truncated_share",), "truncated share"),
]


@dataclass
class CardInputs:
    """Everything the card shows, gathered from the run."""

    name: str
    base_model: str
    base_model_id: str | None
    license: str | None
    merged: bool
    checkpoint: str
    rule: str
    reference_label: str | None
    datasets: list[str] = field(default_factory=list)
    recipe: dict[str, Any] | None = None
    reward: dict[str, Any] | None = None
    heldout_reward: dict[str, Any] | None = None
    prompt_versions: dict[str, str | None] = field(default_factory=dict)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    validation: dict[str, Any] | None = None
    run_dir: str = ""


def card_inputs(
    files: Any,
    selection: Any,
    *,
    merged: bool,
    base_model: str,
    served_model_name: str,
    recipe_base: str | None,
) -> CardInputs:
    """Gather the card's contents from a `judgerl.export.RunFiles` and a `Selection`."""
    from judgerl.export import reward_configs

    recipe = files.recipe.model_dump(mode="json") if files.recipe is not None else files.recipe_raw
    datasets = []
    data = (recipe or {}).get("data") or {}
    for key in ("train", "eval"):
        if data.get(key):
            datasets.append(Path(str(data[key])).name)
    reward = heldout = None
    versions: dict[str, str | None] = {}
    try:
        reward_config, heldout_config = reward_configs(files)
    except JudgerlError as exc:  # the card says so instead of failing the export
        reward_config = heldout_config = None
        versions = {"(reward config)": f"cannot be loaded: {exc}"}
    if reward_config is not None:
        reward = reward_config.model_dump(mode="json")
        versions.update(prompt_versions(reward_config))
    if heldout_config is not None:
        heldout = heldout_config.model_dump(mode="json")
        versions.update(
            {f"held-out: {name}": value for name, value in prompt_versions(heldout_config).items()}
        )
    return CardInputs(
        name=served_model_name,
        base_model=base_model,
        base_model_id=hub_id(recipe_base, base_model),
        license=base_license(recipe_base, base_model),
        merged=merged,
        checkpoint=str(selection.path),
        rule=selection.rule,
        reference_label=selection.reference_label,
        datasets=datasets,
        recipe=recipe,
        reward=reward,
        heldout_reward=heldout,
        prompt_versions=versions,
        summaries=files.summaries,
        validation=files.validation,
        run_dir=str(files.run_dir),
    )


def prompt_versions(config: Any) -> dict[str, str | None]:
    """{judge name: prompt version} by building the judges with scripted stand-in backends (no call)."""
    from judgerl.backends.scripted import ScriptedBackend
    from judgerl.reward.pipeline import RewardPipeline

    stand_ins = {name: ScriptedBackend(lambda request: "", model="card-stand-in") for name in config.backends}
    try:
        pipeline = RewardPipeline.from_config(config, backends=stand_ins)
    except JudgerlError as exc:
        return {judge.name: f"unknown ({exc})" for judge in config.judges}
    try:
        return {
            judge.name: getattr(getattr(judge, "prompt", None), "version", None) for judge in pipeline.judges
        }
    finally:
        pipeline.close()


def hub_id(*candidates: str | None) -> str | None:
    """The first candidate that names a Hub repository (owner/name) rather than a local path."""
    for candidate in candidates:
        if not candidate or Path(candidate).expanduser().exists():
            continue
        parts = candidate.split("/")
        if len(parts) == 2 and all(parts) and not candidate.startswith((".", "~")):
            return candidate
    return None


def base_license(*candidates: str | None) -> str | None:
    """The base model's license: a packaged model's, else its README front matter's, else None."""
    from judgerl.models import PACKAGED_MODELS

    for candidate in candidates:
        if not candidate:
            continue
        if candidate in PACKAGED_MODELS:
            return PACKAGED_MODELS[candidate].license.lower()
        readme = Path(candidate).expanduser() / "README.md"
        if readme.is_file():
            meta = front_matter(readme.read_text(encoding="utf-8"))
            if isinstance(meta.get("license"), str):
                return meta["license"]
    return None


def front_matter(text: str) -> dict[str, Any]:
    """The YAML metadata block of a model card ({} when there is none).

    >>> front_matter("---\\nlicense: mit\\n---\\n# x")
    {'license': 'mit'}
    """
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---\n", 4)
    if end < 0:
        return {}
    try:
        data = load_yaml(text[4:end])
    except yaml.YAMLError:
        return {}  # a card whose metadata cannot be read has no metadata judgerl can use
    return data if isinstance(data, dict) else {}


# -- rendering ---------------------------------------------------------------------------------


def _get(summary: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = summary
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def fmt(value: Any) -> str:
    """A figure for a table cell.

    >>> fmt(0.12345), fmt(None), fmt(8), fmt(True)
    ('0.123', '–', '8', 'True')
    """
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def metadata(inputs: CardInputs) -> str:
    """The YAML front matter (without the --- fences), through huggingface_hub's ModelCardData."""
    from huggingface_hub import EvalResult, ModelCardData

    results = []
    label = inputs.reference_label if inputs.reference_label in inputs.summaries else None
    summary = inputs.summaries.get(label or "", {})
    dataset = inputs.datasets[-1] if inputs.datasets else "held-out prompts"
    for path, metric in (
        (("reward_mean",), "judge_reward"),
        (("best_of_k",), "judge_reward_best_of_k"),
        (("schema_validity",), "schema_validity"),
        (("heldout", "reward_mean"), "heldout_judge_reward"),
    ):
        value = _get(summary, path)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            results.append(
                EvalResult(
                    task_type="text-generation",
                    dataset_type=Path(dataset).stem,
                    dataset_name=dataset,
                    metric_type=metric,
                    metric_value=float(value),
                    metric_name=metric.replace("_", " "),
                )
            )
    tags = [*TAGS, "lora" if not inputs.merged else "merged-lora"]
    data = ModelCardData(
        base_model=inputs.base_model_id,
        library_name="transformers" if inputs.merged else "peft",
        license=inputs.license,
        tags=tags,
        datasets=inputs.datasets or None,
        pipeline_tag="text-generation",
        model_name=inputs.name,
        eval_results=results or None,
    )
    return data.to_yaml()


def render_card(inputs: CardInputs) -> str:
    """The whole README.md: front matter and body."""
    parts = ["---", metadata(inputs), "---", "", f"# {inputs.name}", ""]
    kind = (
        "with the LoRA adapter merged into the base weights"
        if inputs.merged
        else "as a LoRA adapter on top of the base model"
    )
    parts += [
        f"A policy model fine-tuned with reinforcement learning from an LLM judge (GRPO with judgerl "
        f"through TRL), exported {kind}.",
        "",
        f"- base model: `{inputs.base_model}`"
        + (f" (`{inputs.base_model_id}`)" if inputs.base_model_id else ""),
        f"- checkpoint: `{inputs.checkpoint}` ({inputs.rule})",
        f"- license: {inputs.license or 'unknown: see the base model'}",
        f"- training run: `{inputs.run_dir}`; provenance and weight hashes: `judgerl_export.json`",
        "",
    ]
    parts += evaluation_section(inputs)
    parts += reward_section(inputs)
    parts += validation_section(inputs.validation)
    parts += data_section(inputs)
    parts += usage_section(inputs)
    return "\n".join(parts).rstrip() + "\n"


def evaluation_section(inputs: CardInputs) -> list[str]:
    lines = ["## Evaluation", ""]
    summaries = inputs.summaries
    if not summaries:
        return [*lines, "No evaluation in this run (eval/ is empty).", ""]
    labels = list(summaries)
    first = next(iter(summaries.values()))
    lines += [
        "Held-out prompts, k answers per prompt from each model, scored by the training judge and, where "
        "configured, by a held-out judge (a second rubric or prompt the policy never trained on). "
        f"Sampling: temperature {first.get('temperature')}, top_p {first.get('top_p')}, "
        f"max_new_tokens {first.get('max_new_tokens')}, seed {first.get('seed')}. "
        f"This export is `{inputs.reference_label or 'rft'}`.",
        "",
        "| figure | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for path, title in EVAL_FIGURES:
        values = [_get(summaries[label], path) for label in labels]
        if any(value is not None for value in values):
            lines.append(f"| {title} | " + " | ".join(fmt(value) for value in values) + " |")
    for group, title in (("components", "component"), ("criteria", "criterion")):
        names = sorted({name for summary in summaries.values() for name in (summary.get(group) or {})})
        for name in names:
            values = [(summaries[label].get(group) or {}).get(name) for label in labels]
            lines.append(f"| {title} `{_cell(name)}` | " + " | ".join(fmt(value) for value in values) + " |")
    names = sorted(
        {
            name
            for summary in summaries.values()
            for name in ((summary.get("heldout") or {}).get("components") or {})
        }
    )
    for name in names:
        values = [
            ((summaries[label].get("heldout") or {}).get("components") or {}).get(name) for label in labels
        ]
        lines.append(
            f"| held-out component `{_cell(name)}` | " + " | ".join(fmt(value) for value in values) + " |"
        )
    models = [f"`{label}`: {_cell(summaries[label].get('model', '?'))}" for label in labels]
    lines += ["", "Models: " + "; ".join(models) + ".", ""]
    return lines


def reward_section(inputs: CardInputs) -> list[str]:
    lines = ["## Reward and judge", ""]
    reward = inputs.reward
    if reward is None:
        return [*lines, "The run's reward config could not be read.", ""]
    backends = reward.get("backends") or {}
    checks = reward.get("checks") or []
    if checks:
        lines += [
            "Deterministic checks (run before the judge; a gate skips the judge when it fails):",
            "",
            "| check | type | gate | weight |",
            "|---|---|---|---:|",
        ]
        lines += [
            f"| {_cell(check.get('name'))} | {_cell(check.get('type'))} | {bool(check.get('gate'))} | "
            f"{fmt(check.get('weight'))} |"
            for check in checks
        ]
        lines.append("")
    judges = reward.get("judges") or []
    if judges:
        lines += ["| judge | type | judge model | prompt version | weight |", "|---|---|---|---|---:|"]
        for judge in judges:
            backend = backends.get(judge.get("backend"), {})
            model = backend.get("model") or backend.get("type") or "?"
            lines.append(
                f"| {_cell(judge.get('name'))} | {_cell(judge.get('type'))} | {_cell(model)} "
                f"({_cell(backend.get('type', '?'))}) | "
                f"{_cell(inputs.prompt_versions.get(judge.get('name')))} "
                f"| {fmt(judge.get('weight'))} |"
            )
        lines.append("")
        for judge in judges:
            criteria = judge.get("criteria") or []
            if criteria:
                lines += [
                    f"Rubric of `{_cell(judge.get('name'))}`:",
                    "",
                    "| criterion | kind | weight | description |",
                    "|---|---|---:|---|",
                ]
                lines += [
                    f"| {_cell(item.get('name'))} | {_cell(item.get('kind', 'check'))} | "
                    f"{fmt(item.get('weight', 1))} | {_cell(item.get('description', ''))} |"
                    for item in criteria
                    if isinstance(item, dict)
                ]
                lines.append("")
    aggregate = reward.get("aggregate") or {}
    lines += [
        f"Aggregate: {aggregate.get('method', 'weighted')}"
        + (f" (`{aggregate['formula']}`)" if aggregate.get("formula") else "")
        + f"; a judge failure is `{reward.get('failure_policy', 'unscored')}`; failure budget "
        f"{reward.get('failure_budget')}.",
        "",
    ]
    other = {
        name: version
        for name, version in inputs.prompt_versions.items()
        if name not in {judge.get("name") for judge in judges}
    }
    if other:
        lines += [
            "Other prompt versions: " + "; ".join(f"{name}: {version}" for name, version in other.items()),
            "",
        ]
    lines += [
        "<details><summary>Reward config (as trained)</summary>",
        "",
        "```yaml",
        yaml.safe_dump(_public(reward), sort_keys=False).rstrip(),
        "```",
        "",
        "</details>",
        "",
    ]
    if inputs.heldout_reward is not None:
        lines += [
            "<details><summary>Held-out judge config</summary>",
            "",
            "```yaml",
            yaml.safe_dump(_public(inputs.heldout_reward), sort_keys=False).rstrip(),
            "```",
            "",
            "</details>",
            "",
        ]
    return lines


def _public(config: dict[str, Any]) -> dict[str, Any]:
    """The config without secrets: keys that look like credentials are masked (env var names stay)."""

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: ("***" if _secret(key) and isinstance(value, str) else clean(value))
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [clean(item) for item in node]
        return node

    return clean(json.loads(json.dumps(config)))


def _secret(key: str) -> bool:
    lowered = key.lower()
    return (
        ("key" in lowered or "token" in lowered or "secret" in lowered or "password" in lowered)
        and not lowered.endswith("_env")
        and "max_tokens" not in lowered
        and lowered != "tokens"
    )


def validation_section(report: dict[str, Any] | None) -> list[str]:
    lines = ["## Judge validation", ""]
    if not report:
        return [*lines, "The judge was not validated in this run (validation/report.json is absent).", ""]
    from judgerl.report import validation_sections

    verdict = report.get("passed")
    lines.append(
        f"Verdict: **{'passed' if verdict else 'FAILED' if verdict is False else 'no verdict'}**"
        + (f" (judge `{report['judge']}`)" if report.get("judge") else "")
        + "."
    )
    lines.append("")
    for section in validation_sections(report):
        lines += [f"**{_cell(section['name'])}**: {section['status']}", ""]
        if not section["figures"]:
            lines += [
                f"Skipped: {_cell(section['skipped'])}" if section.get("skipped") else "No figures.",
                "",
            ]
            continue
        lines += ["| figure | value | 95% CI | threshold |", "|---|---:|---|---|"]
        for name, value in section["figures"].items():
            interval = section["intervals"].get(name)
            threshold = section["thresholds"].get(name)
            bound = ""
            if threshold:
                bound = f"{'>=' if threshold.get('kind') == 'min' else '<='} {threshold.get('bound')}"
                bound += " (failed)" if name in section["failed"] else ""
            ci = f"[{fmt(interval[0])}, {fmt(interval[1])}]" if interval else ""
            lines.append(f"| {_cell(name)} | {fmt(value)} | {ci} | {bound} |")
        lines.append("")
    return lines


def data_section(inputs: CardInputs) -> list[str]:
    lines = ["## Training data and recipe", ""]
    if inputs.datasets:
        lines += ["Data files: " + ", ".join(f"`{name}`" for name in inputs.datasets) + ".", ""]
    if inputs.recipe is None:
        return [*lines, "The run has no recipe.yaml.", ""]
    return [
        *lines,
        "The whole recipe (every knob, defaults included):",
        "",
        "```yaml",
        yaml.safe_dump(_public(inputs.recipe), sort_keys=False).rstrip(),
        "```",
        "",
    ]


def usage_section(inputs: CardInputs) -> list[str]:
    name = inputs.name
    if inputs.merged:
        return [
            "## Use it",
            "",
            "This folder is a standard Hugging Face model (safetensors, config, generation config, "
            "tokenizer, "
            "chat template).",
            "",
            "With transformers:",
            "",
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            'tokenizer = AutoTokenizer.from_pretrained("./export")',
            'model = AutoModelForCausalLM.from_pretrained("./export", dtype="auto")',
            'messages = [{"role": "user", "content": "..."}]',
            'inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True,'
            ' return_tensors="pt",'
            " return_dict=True)",
            "print(tokenizer.decode(model.generate(**inputs, max_new_tokens=256)[0]))",
            "```",
            "",
            "With vLLM (OpenAI-compatible server):",
            "",
            "```bash",
            f"vllm serve ./export --served-model-name {name}",
            "curl http://localhost:8000/v1/chat/completions -H 'Content-Type: application/json' \\",
            f'  -d \'{{"model": "{name}", "messages": [{{"role": "user", "content": "..."}}]}}\'',
            "```",
            "",
            "With TGI: `docker run --gpus all -v $PWD/export:/model "
            "ghcr.io/huggingface/text-generation-inference "
            "--model-id /model`. With Ollama: convert to GGUF first "
            "(llama.cpp `convert_hf_to_gguf.py ./export`), "
            "then `ollama create` from a Modelfile whose `FROM` is the .gguf file.",
            "",
        ]
    base = inputs.base_model_id or inputs.base_model
    rank = (((inputs.recipe or {}).get("model") or {}).get("lora") or {}).get("rank") or 16
    return [
        "## Use it",
        "",
        f"This folder is a LoRA adapter (peft) for the base model `{base}`.",
        "",
        "With transformers + peft:",
        "",
        "```python",
        "from peft import AutoPeftModelForCausalLM",
        "from transformers import AutoTokenizer",
        '# loads the base model named in adapter_config.json, then the adapter',
        'model = AutoPeftModelForCausalLM.from_pretrained("./export")',
        'tokenizer = AutoTokenizer.from_pretrained("./export")',
        "```",
        "",
        "With vLLM (the base model served, the adapter applied per request by its name):",
        "",
        "```bash",
        f"vllm serve {base} --enable-lora --lora-modules {name}=./export --max-lora-rank {max(16, rank)}",
        "```",
        "",
        f'Requests then name `"model": "{name}"`. TGI loads adapters with `LORA_ADAPTERS={name}=/adapter`.',
        "",
    ]
