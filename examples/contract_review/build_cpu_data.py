"""Build the CPU-sized contract review case study's data (`judgerl demo --task contract-review`).

Why a second data set: the full-size case study (`build_data.py`: contracts of 241-344 words, 2-5
issues, five fields per comment) teaches a 135M policy nothing on a CPU: it never writes the schema,
every answer is gated, RFT = SFT. This one keeps the seed's structure (a guideline, a contract,
JSON review comments, quotes that must be real, a judge that checks each planted issue) at a size
the embedded policy can learn on two cores: contracts of 3 numbered clauses (80-150 words) with
1 or 2 planted issues, only the guideline rules that matter shown, and a compact answer
`{"comments": [{"quote", "rule", "fix"}]}`. The clause library is the full-size one's
(`build_data.py`), so both case studies plant the same 54 issue variants.

Each contract's planted issues become that row's rubric items (`rubric`: "flags the Term clause,
quoting '...', names rule P2, and asks to: ..."), which a distilled student judges item by item.
The student's labelled comments are written here too, from the same library: the expert comment
and the ways a comment goes wrong (a wrong rule, an invented quote, a vague fix, another issue's
fix, a compliant clause flagged, an issue left out), each labelled per rubric item.

Splits (no contract is in two of them):
- `train.jsonl`: 160 contracts of four types (services, NDA, lease, software licence) for SFT and RFT;
- `eval.jsonl`: 16 held-out contracts, 8 of those four types and 8 of a type the policy never sees
  (statements of employment terms), with `split` saying which;
- `judge_train.jsonl`: labelled comments for the reward's student, on 48 of the training contracts
  (services, NDA, lease) and 16 statements of employment terms written for it (the more rule
  prefixes a student has read, the better it reads a new one); `judge_held_out.jsonl`: on 16 of the
  training software licences (a contract type that student never sees), its gate;
- `scorer_train.jsonl`: labelled comments on 50 contracts of all five types written only for the
  evaluation's scorer, a second student that shares no labelled row and no contract with the reward's.

Run (from the repository root; it rewrites src/judgerl/demo/contract_review/*.jsonl):

    python examples/contract_review/build_cpu_data.py
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import build_data as library  # noqa: E402  (the full-size case study's clause library)

OUT = HERE.parents[1] / "src" / "judgerl" / "demo" / "contract_review"
SEED = 20261206
TRAIN_TYPES = ("service_agreement", "nda", "lease", "software_licence")
UNSEEN_TYPE = "employment"
TRAIN_PER_TYPE = 40
EVAL_PER_TRAIN_TYPE = 2
EVAL_UNSEEN = 8
JUDGE_TYPES = ("service_agreement", "nda", "lease")  # the reward student's labelled training contracts
#: ... and contracts of the type the policy never trains on, written for the student only: the more
#: contract types (and rule prefixes) a student has seen, the better it reads a new one
JUDGE_EXTRA_TYPE = "employment"
JUDGE_CONTRACTS_PER_TYPE = 16
JUDGE_HELD_OUT_TYPE = "software_licence"
SCORER_PER_TYPE = 10
CLAUSES = 3
MIN_WORDS, MAX_WORDS = 70, 150

SYSTEM_PROMPT = "You review contracts for Calloway Group against its rules. Reply with JSON only."
INSTRUCTIONS = (
    "Flag each clause that breaks a rule. Reply with JSON: "
    '{"comments": [{"quote": "<copied from the contract>", "rule": "<rule id>", "fix": "<the change>"}]}')

#: the fixes where cutting the expert's action at its first clause loses the point
SHORT_FIXES = {
    "scope_vague": "Define the Services and service levels in a schedule.",
    "missing_dpa": "Add data processing terms, with breach notice within 48 hours.",
    "perpetual": "Limit the obligations to between 2 and 5 years.",
    "return_24h": "Allow at least 10 business days to return or destroy information.",
    "sc_improvements": "Add an annual cap and exclude improvements.",
    "rent_uplift": "Cap annual increases at the lower of CPI and 4%.",
    "missing_indemnity": "Add an IP infringement indemnity from the vendor.",
    "terminate_discretion": "Remove the vendor's termination for convenience.",
    "deductions": "List the specific deductions the Employee agrees to in writing.",
    "missing_conf": "Add a confidentiality clause that applies during and after employment.",
    "ip_all": "Limit ownership to works created in the course of employment.",
    "long_non_solicit": "Reduce non-solicitation to 12 months.",
    "one_way": "Make every obligation mutual.",
    "opt_out": "State 37.5 normal hours and pay or give time off for overtime.",
    "feedback_assignment": "Delete the assignment of feedback and ideas.",
}
VAGUE_FIXES = ("Review this clause.", "Negotiate better terms.", "Consider changing this.",
               "Check this with legal.", "Make it fairer.")
INVENTED_QUOTES = ("either party may assign this Agreement without consent",
                   "the other party shall indemnify Calloway for all losses",
                   "all notices may be given by email only",
                   "the prices may change without notice",
                   "this Agreement may be terminated at any time by either party")
RULE_ID = re.compile(r"\b[PNLSE]\d+\b")
WORD = re.compile(r"\S+")


def short_fix(issue: library.Issue, params: dict[str, str]) -> str:
    """The expert's recommended action, cut to its first clause (or the hand-written one)."""
    if issue.key in SHORT_FIXES:
        return SHORT_FIXES[issue.key]
    action = issue.action.format(**params).strip().rstrip(".")
    parts = re.split(r"; |, | so that | and (?!Wales)", action)
    fix = parts[0]
    for part in parts[1:]:
        if len(fix.split()) >= 5:
            break
        fix = f"{fix}, {part}"
    return fix + "."


def issue_rule(issue: library.Issue, doc: library.DocType) -> str:
    """The guideline rule an issue breaks: the first rule id its expert comment names."""
    found = RULE_ID.search(issue.comment)
    if found is None:
        raise AssertionError(f"{doc.name}/{issue.key}: the expert comment names no rule")
    return found.group()


def rule_lines(doc: library.DocType) -> dict[str, str]:
    """Rule id -> its heading and first sentence in the guideline ("P2 Term and renewal. Initial
    terms may not exceed 24 months."): enough to tell the rules apart, and each prompt token costs
    every training step on a CPU."""
    text = library.REFERENCE_DOCS[doc.reference][1]
    lines = {}
    for line in text.splitlines():
        rule = line.split(" ", 1)[0]
        if RULE_ID.fullmatch(rule):
            sentences = re.split(r"(?<=[a-z0-9%)])\. ", line)
            lines[rule] = ". ".join(sentences[:2]).rstrip(".") + "."
    return lines


def slot_rule(slot: library.Slot, doc: library.DocType) -> str:
    return issue_rule(slot.issues[0], doc)


def heading(text: str) -> str:
    return text.split(".", 1)[0]


class Builder:
    """Contracts of a doc type, the least planted issue variants first (all of them used), no
    contract written twice (in one split or two)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: dict[str, int] = {}
        self.counter: dict[str, int] = {}
        self.split_of: dict[str, str] = {}  # contract text -> the split (prefix) it was written for

    def contract(self, doc: library.DocType, prefix: str) -> dict[str, Any]:
        for _attempt in range(200):
            row = self._try(doc, prefix)
            if row is not None:
                return row
        raise AssertionError(f"{doc.name}: no contract of {MIN_WORDS}-{MAX_WORDS} words in 200 tries")

    def _try(self, doc: library.DocType, prefix: str) -> dict[str, Any] | None:
        rng = self.rng
        index = self.counter.get(doc.name, 0)
        params = doc.params(rng, index)
        n_issues = rng.choice([1, 1, 2])
        candidates = [(slot, issue) for slot in doc.slots for issue in slot.issues]
        rng.shuffle(candidates)
        candidates.sort(key=lambda pair: self.used.get(pair[1].key, 0))
        chosen: dict[str, library.Issue] = {}
        for slot, issue in candidates:
            if slot.key not in chosen:
                chosen[slot.key] = issue
            if len(chosen) == n_issues:
                break
        # a compliant clause comes from a slot that can carry an issue: its rule is known
        compliant = [slot for slot in doc.slots
                     if slot.key not in chosen and slot.standard is not None and slot.issues]
        rng.shuffle(compliant)
        keys = set(chosen) | {slot.key for slot in compliant[:CLAUSES - n_issues]}
        slots = [slot for slot in doc.slots if slot.key in keys]  # the library's clause order
        lines = [doc.title]  # no preamble: every prompt token costs each training step on a CPU
        clauses = []
        for number, slot in enumerate(slots, start=1):
            issue = chosen.get(slot.key)
            text = (issue.text if issue else slot.standard or "").format(**params)
            clauses.append({"number": number, "slot": slot.key, "heading": heading(text), "text": text,
                            "rule": slot_rule(slot, doc), "issue": issue.key if issue else None})
            lines.append(f"{number}. {text}")
        contract = "\n".join(lines)
        words = len(WORD.findall(contract))
        if not MIN_WORDS <= words <= MAX_WORDS:
            return None
        if contract in self.split_of:
            return None  # a contract twice: in two splits, a scorer trained on an evaluated contract
        self.split_of[contract] = prefix
        for issue in chosen.values():
            self.used[issue.key] = self.used.get(issue.key, 0) + 1
        self.counter[doc.name] = index + 1
        rules = rule_lines(doc)
        shown = sorted({clause["rule"] for clause in clauses}, key=lambda rule: int(rule[1:]))
        others = [rule for rule in rules if rule not in shown]
        shown = sorted([*shown, rng.choice(others)], key=lambda rule: int(rule[1:]))
        comments, items = [], []
        for clause in clauses:
            if clause["issue"] is None:
                continue
            issue = chosen[clause["slot"]]
            quote = issue.quote.format(**params)
            if quote not in contract:
                raise AssertionError(f"{doc.name}/{issue.key}: quote not in the contract: {quote!r}")
            rule = issue_rule(issue, doc)
            fix = short_fix(issue, params)
            comments.append({"quote": quote, "rule": rule, "fix": fix})
            items.append({"criterion": f'Quotes "{quote}", names rule {rule}, and asks to: {fix}',
                          "weight": 1})
        title = library.REFERENCE_DOCS[doc.reference][0]
        prompt = (f"RULES ({title}):\n" + "\n".join(rules[rule] for rule in shown)
                  + f"\n\nCONTRACT:\n{contract}\n\n{INSTRUCTIONS}")
        return {"id": f"{prefix}-{doc.name}-{index + 1:03d}",
                "messages": [{"role": "system", "content": SYSTEM_PROMPT},
                             {"role": "user", "content": prompt}],
                "reference": json.dumps({"comments": comments}, ensure_ascii=False),
                "rubric": items,
                "contract": contract,
                "doc_type": doc.name,
                "issues": [comment["rule"] + ":" + key for comment, key in
                           zip(comments, [c["issue"] for c in clauses if c["issue"]], strict=True)],
                "clauses": clauses,
                "rules_shown": shown,
                "contract_words": words}


def answer(comments: list[dict[str, str]]) -> str:
    return json.dumps({"comments": comments}, ensure_ascii=False)


#: the hand-written short fixes in library order (another issue's fix, for the `wrong_fix` kind)
LIBRARY_FIXES = [SHORT_FIXES[issue.key] for doc in library.DOC_TYPES for slot in doc.slots
                 for issue in slot.issues if issue.key in SHORT_FIXES]
#: "doc type/issue key" -> the expert's full recommended action (the `long_fix` kind)
FULL_ACTIONS = {f"{doc.name}/{issue.key}": issue.action for doc in library.DOC_TYPES for slot in doc.slots
                for issue in slot.issues}


def labelled_comments(row: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    """Labelled answers to `row` in the format `judgerl validate` and `judgerl distill` read: the
    row's rubric with each item's `met` verdict, `score` the share met, `category` the kind.

    Kinds: expert (all met), extra (the expert's comments + one on a compliant clause: all met),
    long_fix (the expert's full recommended action as the fix: met), one_missing (the first issue
    only), wrong_rule, invented_quote, vague_fix, wrong_fix (another issue's fix), compliant (a
    compliant clause flagged instead). Four kinds per contract: the expert, a wrong rule (the
    mistake only a judge can see: the checks read quotes, not rules; and the hardest to learn)
    and two others."""
    expert = json.loads(row["reference"])["comments"]
    clauses = row["clauses"]
    issue_clauses = [clause for clause in clauses if clause["issue"]]
    compliant = [clause for clause in clauses if not clause["issue"]]
    wrong_rules = [rule for rule in row["rules_shown"] if rule not in {c["rule"] for c in expert}]
    foreign_fixes = [fix for fix in LIBRARY_FIXES if fix not in {c["fix"] for c in expert}]

    def compliant_comment() -> dict[str, str]:
        clause = rng.choice(compliant)
        words = clause["text"].split(". ", 1)[-1].split()
        start = rng.randrange(0, max(1, len(words) - 8))
        return {"quote": " ".join(words[start:start + 8]).rstrip(".,"), "rule": clause["rule"],
                "fix": rng.choice(["Delete this clause.", "Shorten the notice period.",
                                   "Add a cap to this clause."])}

    kinds: dict[str, tuple[list[dict[str, str]], list[int]]] = {}
    met = [1] * len(expert)
    unmet = [0] * len(expert)
    kinds["expert"] = (expert, met)
    if compliant:
        kinds["extra"] = ([*expert, compliant_comment()], met)
        kinds["compliant"] = ([compliant_comment()], unmet)
    actions = [FULL_ACTIONS[f"{row['doc_type']}/{clause['issue']}"] for clause in issue_clauses]
    if all("{" not in action for action in actions):
        kinds["long_fix"] = ([{**c, "fix": action} for c, action in zip(expert, actions, strict=True)], met)
    if len(expert) == 2:
        kinds["one_missing"] = ([expert[0]], [1, 0])
    if wrong_rules:
        kinds["wrong_rule"] = ([{**c, "rule": rng.choice(wrong_rules)} for c in expert], unmet)
    kinds["invented_quote"] = ([{**c, "quote": rng.choice(INVENTED_QUOTES)} for c in expert], unmet)
    kinds["vague_fix"] = ([{**c, "fix": rng.choice(VAGUE_FIXES)} for c in expert], unmet)
    kinds["wrong_fix"] = ([{**c, "fix": rng.choice(foreign_fixes)} for c in expert], unmet)
    forced = [name for name in ("expert", "wrong_rule") if name in kinds]
    others = [name for name in kinds if name not in forced]
    names = [*forced, *rng.sample(others, 4 - len(forced))]
    rows = []
    for name in names:
        comments, verdicts = kinds[name]
        rows.append({"id": f"{row['id']}:{name}", "prompt": row["messages"][1]["content"],
                     "answer": answer(comments), "score": sum(verdicts) / len(verdicts), "category": name,
                     "rubric": [{**item, "met": bool(verdict)}
                                for item, verdict in zip(row["rubric"], verdicts, strict=True)]})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def build() -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(SEED)
    builder = Builder(rng)
    docs = {doc.name: doc for doc in library.DOC_TYPES}
    train: list[dict[str, Any]] = []
    evaluation: list[dict[str, Any]] = []
    for name in TRAIN_TYPES:
        train += [builder.contract(docs[name], "train") for _ in range(TRAIN_PER_TYPE)]
        evaluation += [{**builder.contract(docs[name], "eval"), "split": "seen_type"}
                       for _ in range(EVAL_PER_TRAIN_TYPE)]
    evaluation += [{**builder.contract(docs[UNSEEN_TYPE], "eval"), "split": "unseen_type"}
                   for _ in range(EVAL_UNSEEN)]
    labels = random.Random(SEED + 1)
    judge_train = [labelled for name in JUDGE_TYPES
                   for row in [r for r in train if r["doc_type"] == name][:JUDGE_CONTRACTS_PER_TYPE]
                   for labelled in labelled_comments(row, labels)]
    judge_held_out = [labelled for row in [r for r in train if r["doc_type"] == JUDGE_HELD_OUT_TYPE]
                      [:JUDGE_CONTRACTS_PER_TYPE] for labelled in labelled_comments(row, labels)]
    scorer_contracts = [builder.contract(docs[name], "scorer") for name in (*TRAIN_TYPES, UNSEEN_TYPE)
                        for _ in range(SCORER_PER_TYPE)]
    scorer_train = [labelled for row in scorer_contracts for labelled in labelled_comments(row, labels)]
    judge_extra = [builder.contract(docs[JUDGE_EXTRA_TYPE], "judge") for _ in range(JUDGE_CONTRACTS_PER_TYPE)]
    judge_train += [labelled for row in judge_extra for labelled in labelled_comments(row, labels)]
    never = [issue.key for doc in library.DOC_TYPES for slot in doc.slots for issue in slot.issues
             if issue.key not in builder.used]
    if never:
        raise AssertionError(f"issue variants never planted: {never}")
    return {"train": train, "eval": evaluation, "judge_train": judge_train, "judge_held_out": judge_held_out,
            "scorer_train": scorer_train}


def main() -> None:
    files = build()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        write_jsonl(OUT / f"{name}.jsonl", rows)
    words = [row["contract_words"] for row in files["train"] + files["eval"]]
    print(f"wrote {', '.join(f'{name} {len(rows)}' for name, rows in files.items())} rows to {OUT}; "
          f"contract words {min(words)}-{max(words)}; labelled items (share met): "
          + ", ".join(f"{name} {len(met)} ({sum(met) / len(met):.2f})"
                      for name in ("judge_train", "judge_held_out", "scorer_train")
                      for met in [[item["met"] for r in files[name] for item in r["rubric"]]]))


if __name__ == "__main__":
    main()
