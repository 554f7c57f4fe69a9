"""The adversarial regression set: completions that try to fool a judge instead of answering.

Why it is shipped as package data: the same set is used in three places. Tests check that each
item reaches the judge fenced and inert; `judgerl validate` measures a real judge's false-positive
rate on it; the training monitors look for these patterns in the policy's completions. Keeping
one file (`judgerl/data/adversarial.yaml`) means a new attack added there is checked everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from judgerl.errors import DataError
from judgerl.safe_yaml import load_yaml


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    category: str = Field(min_length=1)
    question: str = Field(min_length=1)
    reference: str = Field(min_length=1)
    completion: str
    expected: Literal["fail"] = "fail"
    note: str = ""


@dataclass(frozen=True)
class AdversarialItem:
    """One attack: a question, a correct reference, and a completion that must be judged a fail."""

    id: str
    category: str
    question: str
    reference: str
    completion: str
    expected: str = "fail"
    note: str = ""


def load_adversarial_set(path: str | Path | None = None) -> list[AdversarialItem]:
    """Load the shipped set (or a file of the same shape); errors name the file, item and field.

    >>> items = load_adversarial_set()
    >>> len(items) >= 10, len({item.id for item in items}) == len(items)
    (True, True)
    """
    if path is None:
        source = "judgerl:data/adversarial.yaml"
        text = resources.files("judgerl").joinpath("data", "adversarial.yaml").read_text(encoding="utf-8")
    else:
        source = str(path)
        text = Path(path).read_text(encoding="utf-8")
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise DataError(f"not valid YAML: {exc}", path=source) from exc
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise DataError("expected a mapping with an `items` list", path=source, field="items")
    items: list[AdversarialItem] = []
    seen: set[str] = set()
    for position, raw in enumerate(data["items"]):
        try:
            item = _Item.model_validate(raw)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = f"items.{position}." + ".".join(str(part) for part in error["loc"])
            raise DataError(error["msg"], path=source, field=field) from None
        if item.id in seen:
            raise DataError(f"duplicated id '{item.id}'", path=source, field=f"items.{position}.id")
        seen.add(item.id)
        items.append(AdversarialItem(**item.model_dump()))
    return items
