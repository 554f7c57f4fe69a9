"""The support agent's two tools as plain Python functions, for training with TRL's tool loop.

Why this file exists: TRL's `GRPOTrainer(tools=[...])` calls Python functions and builds each
tool's JSON schema from its signature and Google-style docstring; the example's fake backends
(`make_trajectories.py`) take the order table as an argument. These wrap them over `orders.json`,
so a recipe can name them: `rollout.tools: [agent_tools.py:lookup_order, agent_tools.py:refund_policy]`.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _fakes():  # -> the make_trajectories module
    spec = importlib.util.spec_from_file_location("support_agent_fakes", HERE / "make_trajectories.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_FAKES = _fakes()
_ORDERS = json.loads((HERE / "orders.json").read_text(encoding="utf-8"))


def lookup_order(order_id: str) -> str:
    """Look up one order by its id: item, category, total paid, status, days since delivery, notes.

    Args:
        order_id: the order id, like A1001
    """
    if order_id not in _ORDERS:
        return json.dumps({"error": f"no order {order_id}"})
    return _FAKES.lookup_order(_ORDERS, order_id)


def refund_policy(category: str) -> str:
    """The refund policy of one product category.

    Args:
        category: one of electronics, clothing, furniture, groceries
    """
    if category not in _FAKES.POLICIES:
        return f"no policy for {category!r}"
    return _FAKES.refund_policy(category)
