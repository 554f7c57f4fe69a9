"""The same judge in-process and on a llama.cpp server: the validation suite's verdicts compared.

Runs `examples/validation` (the embedded SmolLM2-135M judge, plain text) twice on the same rows:
in-process (`type: local`, as the example is configured) and against an OpenAI-compatible server
of the same model through `endpoint: completions` (the prompt rendered as the local backend
renders it), then matches the two journals judgment by judgment (by the prompt's hash) and prints
how many prompts both judged, the share of judgments on the same side of P(pass) = 0.5, the
largest |P(pass) difference| and each section's figures on both paths, as JSON.

    python -m llama_cpp.server --model <packaged GGUF> --host 127.0.0.1 --port 18080 --n_ctx 4096
    python bench/judge_server_agreement.py --base-url http://127.0.0.1:18080/v1 [--local-journal J]

`--local-journal` reuses the journal of an earlier in-process run of the same suite (the
in-process half takes about 10 minutes on 2 busy cores). `--tiny` (the CI smoke run) replaces both
models by scripted backends that answer every candidate alike: it checks the script, not a figure.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from judgerl.backends.base import Backend, Completion, CompletionRequest
from judgerl.backends.openai_compat import OpenAICompatBackend
from judgerl.backends.scripted import ScriptedBackend
from judgerl.validate.runner import run_validation

ROOT = Path(__file__).resolve().parents[1]
VALIDATION = ROOT / "examples" / "validation"


def journal_scores(path: Path) -> dict[str, float]:
    """P(pass) of each judgment in a journal, by the hash of the prompt it judged."""
    found = {}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        scores = entry.get("scores")
        if entry.get("outcome") == "ok" and entry.get("prompt_hash") and isinstance(scores, dict):
            found[entry["prompt_hash"]] = float(scores["value"])
    return found


def compare(local: dict[str, float], server: dict[str, float]) -> dict[str, Any]:
    shared = sorted(set(local) & set(server))
    if not shared:
        return {"judgments_local": len(local), "judgments_server": len(server), "shared": 0}
    same = sum((local[key] > 0.5) == (server[key] > 0.5) for key in shared) / len(shared)
    gaps = sorted(abs(local[key] - server[key]) for key in shared)
    return {"judgments_local": len(local), "judgments_server": len(server), "shared": len(shared),
            "same_side_of_0.5": round(same, 3), "max_abs_p_gap": round(gaps[-1], 4),
            "median_abs_p_gap": round(gaps[len(gaps) // 2], 4)}


def scripted(request: CompletionRequest) -> Completion:
    tokens = request.candidate_tokens or ["Yes"]
    return Completion(text=tokens[0], model="scripted", candidate_logprobs=dict.fromkeys(tokens, -0.69))


def validate(journal: Path, base_url: str | None, *, tiny: bool = False) -> dict[str, Any]:
    backends: dict[str, Backend] | None = None
    if tiny:
        backends = {"local": ScriptedBackend(scripted)}
    elif base_url is not None:
        backends = {"local": OpenAICompatBackend(base_url, "smollm2-135m", endpoint="completions",
                                                 server="llamacpp", timeout_s=600, max_concurrency=2)}
    report = run_validation(VALIDATION / "reward.yaml", VALIDATION / "suite.yaml",
                            overrides=[f"runtime.journal_path={journal}"], backends=backends,
                            other_backends=backends)
    return {section.name: section.figures for section in report.sections}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="the server's /v1 URL")
    parser.add_argument("--local-journal", type=Path, help="reuse this in-process run's journal")
    parser.add_argument("--tiny", action="store_true", help="smoke run: scripted backends, no model")
    args = parser.parse_args()
    if not args.tiny and not args.base_url:
        parser.error("--base-url is required (or --tiny)")
    with tempfile.TemporaryDirectory() as folder:
        sections: dict[str, Any] = {}
        local_journal = args.local_journal
        if local_journal is None:
            local_journal = Path(folder) / "local.jsonl"
            sections["local"] = validate(local_journal, None, tiny=args.tiny)
        server_journal = Path(folder) / "server.jsonl"
        sections["server"] = validate(server_journal, args.base_url, tiny=args.tiny)
        result = compare(journal_scores(local_journal), journal_scores(server_journal))
    print(json.dumps({**result, "sections": sections}, default=str, indent=1))


if __name__ == "__main__":
    main()
