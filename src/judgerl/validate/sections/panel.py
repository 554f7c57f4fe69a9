"""A panel's own figures (judges/panel.py): each member against the human labels, the members'
agreement with each other, and how often the panel abstained.

Why derived from the human-labels section and not a section that asks again: the panel's scores
already carry every member's judgment of the item (`details["members"]`), so the members are
measured on exactly the calls that scored the panel, at no extra cost, and the panel itself is
measured as one judge by every section of the suite like any other judge.

Figures (the panel as one judge is the human-labels section itself, whose unscored items include
its abstentions):
- `abstention_rate`: share of items unscored `panel_disagreement`; `quorum_failure_rate`: share
  unscored `panel_quorum`;
- `members_percent_agreement` and `members_kappa`: the mean over every two members of their
  percent agreement and Cohen's kappa, on the items both judged; a member's verdict is pass / fail
  (its value against the suite's `pass_threshold`) on scored items, its winner (a / b / tie) on pairs;
- `fleiss_kappa`: Fleiss' kappa of those verdicts over the items every member judged;
- per member (`breakdown`): its accuracy against the human label (pairs) or its Spearman rho with
  the human score (scored items), and its unscored share.
Thresholds come from the suite's `panel:` section (`max_abstention_rate`, `min_members_kappa`, ...).
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from typing import Any

from judgerl.validate.report import SectionResult
from judgerl.validate.stats import cohen_kappa, fleiss_kappa, mean, percent_agreement, share, spearman


def panel_figures(human: SectionResult, members: list[str], *, pass_threshold: float,
                  name: str = "panel") -> SectionResult:
    """The panel section from the human-labels section's items (each with the members' judgments)."""
    items = human.items
    pairs = bool(items) and "label" in items[0]
    verdicts: dict[str, list[Hashable | None]] = {member: [] for member in members}
    values: dict[str, list[float | None]] = {member: [] for member in members}
    for item in items:
        judged = item.get("members") or {}
        for member in members:
            own = judged.get(member) or {}
            if pairs:
                verdicts[member].append(own.get("winner"))
                values[member].append(None)
            else:
                value = own.get("value")
                values[member].append(value)
                verdicts[member].append(None if value is None else
                                        "pass" if value >= pass_threshold else "fail")
    reasons = [str(item.get("reason") or "") for item in items]
    result = SectionResult(name, human.judge)
    result.counts = {"items": len(items), "members": len(members),
                     "abstained": sum(reason.startswith("panel_disagreement") for reason in reasons),
                     "quorum_failures": sum(reason.startswith("panel_quorum") for reason in reasons)}
    agreements, kappas = [], []
    for first, second in itertools.combinations(members, 2):
        both = [(x, y) for x, y in zip(verdicts[first], verdicts[second], strict=True)
                if x is not None and y is not None]
        if not both:
            continue
        agreement = percent_agreement([x for x, _ in both], [y for _, y in both])
        kappa = cohen_kappa([x for x, _ in both], [y for _, y in both])
        if agreement is not None:
            agreements.append(agreement)
        if kappa is not None:
            kappas.append(kappa)
    complete = [[verdicts[member][index] for member in members] for index in range(len(items))
                if all(verdicts[member][index] is not None for member in members)]
    result.figures = {
        "abstention_rate": share(result.counts["abstained"], len(items)),
        "quorum_failure_rate": share(result.counts["quorum_failures"], len(items)),
        "members_percent_agreement": mean(agreements),
        "members_kappa": mean(kappas),
        "fleiss_kappa": fleiss_kappa(complete) if len(members) > 1 else None,
    }
    result.counts["judged_by_all"] = len(complete)
    result.not_applicable = ["unscored_share"]  # the panel's unscored share is human_labels' figure
    unscored = {member: share(sum(verdict is None for verdict in verdicts[member]), len(items))
                for member in members}
    if pairs:
        result.breakdown["member (accuracy)"] = {
            member: mean([1.0 if verdict == item["label"] else 0.0
                          for verdict, item in zip(verdicts[member], items, strict=True)])
            for member in members}
    else:
        result.breakdown["member (spearman)"] = {member: _rho(values[member], items) for member in members}
    result.breakdown["member (unscored_share)"] = unscored
    result.notes.append("measured on the human_labels items: each member's own judgments inside the "
                        "panel's scores, no extra calls")
    return result


def _rho(values: list[float | None], items: list[dict[str, Any]]) -> float | None:
    rows = [(float(item["human"]), value) for value, item in zip(values, items, strict=True)
            if value is not None and item.get("human") is not None]
    return spearman([row[0] for row in rows], [row[1] for row in rows]) if rows else None
