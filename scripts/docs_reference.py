"""Writes the documentation site's reference pages from the live code, at build time.

Why: a reference written by hand drifts from the code it describes. `mkdocs build` runs this
script (through the mkdocs-gen-files plugin, see mkdocs.yml), so every field of the reward
config, the recipe and the validation suite (from their pydantic models: type, default,
description), every check, judge and backend option (from each type's Options model) and every
command and option of the `judgerl` CLI (from the typer app) is read from the code of the
checkout being built. A renamed field or flag changes the page, and a page that links to an
anchor which no longer exists fails the strict build.

Run alone (`python scripts/docs_reference.py OUT_DIR`) it writes the same pages into OUT_DIR.
"""

from __future__ import annotations

import enum
import inspect
import json
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from judgerl.backends import BACKEND_TYPES, backend_class
from judgerl.checks import CHECK_TYPES
from judgerl.config import (
    AggregateConfig,
    BackendConfig,
    CheckConfig,
    JudgeConfig,
    Price,
    RewardConfig,
    RuntimeConfig,
)
from judgerl.judges import JUDGE_TYPES
from judgerl.train.recipe import Recipe
from judgerl.validate.suite import Suite

GENERATED_NOTE = ("!!! note \"Generated from the code\"\n    This page is written by "
                  "`scripts/docs_reference.py` when the site is built, from {source}: "
                  "it cannot drift from the code.\n")


# --- types, defaults and constraints as text -------------------------------------------------------

def type_text(annotation: Any) -> str:
    """A readable type: `str | None`, `list[str]`, `'grpo' | 'dapo'`.

    >>> type_text(typing.Optional[int])
    'int | None'
    >>> type_text(dict[str, list[float]])
    'dict[str, list[float]]'
    >>> type_text(typing.Literal["a", "b"])
    "'a' | 'b'"
    """
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return "None"
    if origin is typing.Literal:
        return " | ".join(repr(arg) for arg in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_text(arg) for arg in args)
    if origin is typing.Annotated:
        return type_text(args[0])
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_text(arg) for arg in args)}]" if args else name
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def constraints_text(field: FieldInfo) -> str:
    """Numeric bounds of a field as `≥ 1`, `> 0, ≤ 1`."""
    symbols = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "min_length": "length ≥", "max_length": "length ≤"}
    parts = []
    for item in field.metadata:
        for attribute, symbol in symbols.items():
            value = getattr(item, attribute, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
    return ", ".join(parts)


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(section below)"
    if isinstance(value, enum.Enum):
        value = value.value
    try:
        return f"`{json.dumps(value, ensure_ascii=False)}`"
    except TypeError:
        return f"`{value!r}`"


def cell(text: str) -> str:
    """Text that is safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def code_cell(text: str) -> str:
    """Code inside a table cell: an HTML code element, so a `|` in a type does not split the cell."""
    return "<code>" + text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        "|", "&#124;") + "</code>"


def nested_models(annotation: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models a field's type refers to (`LoraSection`, `list[Criterion]`, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from nested_models(arg)


def field_table(model: type[BaseModel], *, skip: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    rows = ["| field | type | default | description |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        kind = type_text(field.annotation)
        bounds = constraints_text(field)
        kind_cell = code_cell(kind) + (f" ({cell(bounds)})" if bounds else "")
        rows.append(f"| `{field.alias or name}` | {kind_cell} | {default_text(field)} | "
                    f"{cell(field.description or '')} |")
    return rows


def doc_of(model: type) -> str:
    return inspect.cleandoc(model.__doc__ or "").strip()


def model_sections(model: type[BaseModel], path: str, level: int = 2, *,
                   seen: set[type] | None = None) -> list[str]:
    """A heading, the docstring and the field table of `model`, then each nested model's, depth first."""
    seen = set() if seen is None else seen
    lines = ["#" * level + f" `{path}`", ""]
    if doc_of(model):
        lines += [doc_of(model), ""]
    lines += [*field_table(model), ""]
    for name, field in model.model_fields.items():
        for nested in nested_models(field.annotation):
            if nested in seen:
                continue
            seen.add(nested)
            suffix = "[]" if typing.get_origin(field.annotation) is list else ""
            child = f"{path}.{field.alias or name}{suffix}".lstrip(".")
            lines += model_sections(nested, child, level, seen=seen)
    return lines


# --- the pages ------------------------------------------------------------------------------------

def reward_config_page() -> str:
    lines = ["# Reward config reference", "",
             GENERATED_NOTE.format(source="the pydantic models in `judgerl/config.py`"),
             "One YAML file describes the whole reward: checks → gate → judges → aggregate "
             "([the reward pipeline](../concepts/reward-pipeline.md)). Relative paths in it resolve "
             "against the file's folder; any field can be overridden with `--set dotted.path=value`.", "",
             "## Top level", "", doc_of(RewardConfig), ""]
    lines += [*field_table(RewardConfig), ""]
    for key, model, note in [
        ("backends.NAME", BackendConfig, "Each type's own options: [backend reference](backends.md)."),
        ("runtime", RuntimeConfig, "How it works: [the reward runtime](../concepts/runtime.md)."),
        ("runtime.prices.MODEL", Price, ""),
        ("checks[]", CheckConfig, "Each type's own options: [check reference](checks.md)."),
        ("judges[]", JudgeConfig, "Each type's own options: [judge reference](judges.md)."),
        ("aggregate", AggregateConfig, ""),
    ]:
        anchor = key.split(".")[0].rstrip("[]") if key in ("runtime", "aggregate") else None
        heading = f"## `{key}`" + (f" {{#{anchor}}}" if anchor else "")
        lines += [heading, ""]
        if doc_of(model):
            lines += [doc_of(model), ""]
        if note:
            lines += [note, ""]
        lines += [*field_table(model), ""]
    return "\n".join(lines)


def options_page(title: str, intro: str, source: str, common: type[BaseModel] | None,
                 entries: list[tuple[str, str, type[BaseModel]]]) -> str:
    lines = [f"# {title}", "", GENERATED_NOTE.format(source=source), intro, ""]
    if common is not None:
        lines += ["## Fields every entry takes", "", *field_table(common), ""]
    for name, summary, options in entries:
        lines += [f"## `{name}`", ""]
        if summary:
            lines += [summary, ""]
        lines += [f"Options (`{options.__name__}`):", ""]
        if options.model_fields:
            lines += [*field_table(options), ""]
        else:
            lines += ["No options of its own.", ""]
        seen: set[type] = {options}
        for field_name, field in options.model_fields.items():
            for nested in nested_models(field.annotation):
                if nested not in seen:
                    seen.add(nested)
                    lines += [f"### `{name}`: `{field_name}` entries (`{nested.__name__}`)", ""]
                    if doc_of(nested):
                        lines += [doc_of(nested), ""]
                    lines += [*field_table(nested), ""]
    return "\n".join(lines)


def checks_page() -> str:
    entries = [(name, check.summary, check.Options) for name, check in CHECK_TYPES.items()]
    return options_page("Check reference", "Every `type` a `checks:` entry can name, with its options "
                        "(the entry's other keys). How checks work: [Checks](../guides/checks.md).",
                        "`judgerl.checks.CHECK_TYPES` and each check's `Options` model", CheckConfig, entries)


def judge_options(judge: type) -> type[BaseModel]:
    """The Options model a judge class validates its config with (`parse_options(XOptions, ...)`)."""
    source = inspect.getsource(judge.__init__)  # type: ignore[misc]
    match = re.search(r"parse_options\((\w+)", source)
    if match is None:
        raise RuntimeError(f"{judge.__name__}.__init__ calls no parse_options(...): "
                           "update scripts/docs_reference.py")
    model = vars(sys.modules[judge.__module__])[match.group(1)]
    assert issubclass(model, BaseModel)
    return model


def judges_page() -> str:
    entries = [(name, doc_of(judge).split("\n\n")[0], judge_options(judge))
               for name, judge in JUDGE_TYPES.items()]
    return options_page("Judge reference", "Every `type` a `judges:` entry can name, with its options "
                        "(the entry's other keys). How judges work: [LLM judges](../guides/judges/index.md).",
                        "`judgerl.judges.JUDGE_TYPES` and each judge's options model", JudgeConfig, entries)


def backends_page() -> str:
    entries = []
    for name in BACKEND_TYPES:
        backend = backend_class(name)
        entries.append((name, doc_of(backend).split("\n\n")[0], backend.Options))
    return options_page("Backend reference", "Every `type` a `backends:` entry can name, with its options. "
                        "`vllm`, `ollama` and `llamacpp` are the `openai` backend with another default "
                        "`base_url`. How backends work: [Backends](../guides/backends.md).",
                        "`judgerl.backends.BACKEND_TYPES` and each backend's `Options` model", BackendConfig,
                        entries)


def recipe_page() -> str:
    lines = ["# Recipe reference", "",
             GENERATED_NOTE.format(source="the pydantic models in `judgerl/train/recipe.py`"),
             "The training recipe of `judgerl train`, `judgerl sft` and `judgerl run` (YAML; paths "
             "relative to the recipe; any field overridable with `--set a.b=value`). How it maps onto TRL: "
             "[Training](../guides/training.md).", "", "## Top level", "", doc_of(Recipe), ""]
    lines += [*field_table(Recipe), ""]
    seen: set[type] = {Recipe}
    for name, field in Recipe.model_fields.items():
        for nested in nested_models(field.annotation):
            if nested not in seen and nested is not RewardConfig:
                seen.add(nested)
                lines += model_sections(nested, name, seen=seen)
    lines += ["The `reward` section is a [reward config](reward-config.md), inline or as a path.", ""]
    return "\n".join(lines)


def suite_page() -> str:
    lines = ["# Validation suite reference", "",
             GENERATED_NOTE.format(source="the pydantic models in `judgerl/validate/suite.py`"),
             "The suite file of `judgerl validate` (and of a recipe's `validation.suite`). What each "
             "section measures: [Validation](../guides/validation.md).", "", "## Top level", "",
             doc_of(Suite), ""]
    lines += [*field_table(Suite), ""]
    seen: set[type] = {Suite}
    for name, field in Suite.model_fields.items():
        for nested in nested_models(field.annotation):
            if nested not in seen:
                seen.add(nested)
                lines += model_sections(nested, name, seen=seen)
    return "\n".join(lines)


def cli_page() -> str:
    from judgerl.cli import app

    group: Any = typer.main.get_command(app)  # typer's own (vendored) click: read by duck typing
    lines = ["# CLI reference", "", GENERATED_NOTE.format(source="the typer app in `judgerl/cli.py`"),
             f"`judgerl`: {group.help or ''}", "",
             "Every command that reads a config takes `--set dotted.path=value` (repeatable). A bad config, "
             "input or option stops with exit code 2 and one message naming the file and field.", ""]
    context = group.context_class(group, info_name="judgerl")
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        lines += [f"## `judgerl {name}`", ""]
        arguments = [param for param in command.params if param.param_type_name == "argument"]
        usage = " ".join([f"judgerl {name} [OPTIONS]", *((param.name or "").upper() if param.required
                                                         else f"[{(param.name or '').upper()}]"
                                                         for param in arguments)])
        lines += ["```text", usage, "```", ""]
        if command.help:
            lines += [escape_prose(inspect.cleandoc(command.help)), ""]
        options = [param for param in command.params if param.param_type_name == "option"]
        if arguments:
            lines += ["| argument | type | required |", "|---|---|---|"]
            for param in arguments:
                lines.append(f"| `{(param.name or '').upper()}` | {code_cell(param_type(param))} | "
                             f"{'yes' if param.required else 'no'} |")
            lines.append("")
        if options:
            lines += ["| option | type | default | description |", "|---|---|---|---|"]
            for param in options:
                flags = ", ".join(f"`{flag}`" for flag in [*param.opts, *param.secondary_opts])
                kind = "flag" if param.is_flag else code_cell(param_type(param))
                if param.multiple:
                    kind += ", repeatable"
                default = "required" if param.required else _default(param)
                lines.append(f"| {flags} | {kind} | {default} | {cell(param.help or '')} |")
            lines.append("")
    return "\n".join(lines)


def param_type(param: Any) -> str:
    """The Python type a CLI parameter takes, from typer's record of the function's annotation."""
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    if annotation is None:
        return getattr(getattr(param, "type", None), "name", "text")
    return type_text(annotation)


def _default(param: Any) -> str:
    value = param.default
    if value is None or value == () or value == []:
        return ""
    if callable(value):
        return ""
    if isinstance(value, enum.Enum):
        value = value.value
    return f"`{value}`"


def escape_prose(text: str) -> str:
    """A docstring as Markdown: angle brackets shown as text, not taken for HTML."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


PAGES: dict[str, Callable[[], str]] = {
    "reference/reward-config.md": reward_config_page,
    "reference/checks.md": checks_page,
    "reference/judges.md": judges_page,
    "reference/backends.md": backends_page,
    "reference/recipe.md": recipe_page,
    "reference/suite.md": suite_page,
    "reference/cli.md": cli_page,
}


def write_pages(open_file: Callable[[str], Any]) -> None:
    for path, build in PAGES.items():
        with open_file(path) as handle:
            handle.write(build().rstrip() + "\n")


def main() -> None:
    if __name__ == "__main__":  # run alone: python scripts/docs_reference.py OUT_DIR
        out = Path(sys.argv[1])
        for path in PAGES:
            (out / path).parent.mkdir(parents=True, exist_ok=True)
        write_pages(lambda path: (out / path).open("w", encoding="utf-8"))
        return
    import mkdocs_gen_files  # run by `mkdocs build` through the gen-files plugin (runpy, not __main__)

    write_pages(lambda path: mkdocs_gen_files.open(path, "w"))


main()
