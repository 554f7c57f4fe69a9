"""`judgerl report`: a self-contained HTML page from whatever a run directory holds.

The run directory is synthetic (written by the test in the shared layout), so the test knows
every figure the page must show; the rationale of one answer is a `<script>` that must be
escaped.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from judgerl.cli import app
from judgerl.run.report import component_curves, render_report, series, validation_sections

EVIL = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def summary(label: str, validity: float, reward: float, heldout: float) -> dict:
    return {
        "label": label,
        "model": f"models/{label}",
        "k": 2,
        "prompts": 2,
        "samples": 4,
        "reward_mean": reward,
        "mean_of_k": reward,
        "best_of_k": reward + 0.1,
        "prompts_scored": 2,
        "schema_validity": validity,
        "schema_check": "schema",
        "unscored_share": 0.25,
        "components": {"schema": validity, "quality": reward - 0.05},
        "criteria": {"quality.correct": reward, "quality.clear": reward / 2},
        "heldout": {
            "reward_mean": heldout,
            "mean_of_k": heldout,
            "best_of_k": heldout + 0.05,
            "unscored_share": 0.0,
            "components": {},
        },
        "judge": {"calls": 8, "total_tokens": 1234, "cost_usd": 0.0021, "cache_hits": 1, "failed": 0},
    }


def rows(label: str) -> list[dict]:
    return [
        {
            "model": label,
            "prompt_id": "p0",
            "k": 0,
            "prompt": "Give JSON & <stuff>",
            "completion": '{"ok": 1}',
            "reward": 0.9,
            "status": "ok",
            "components": {"schema": 1.0, "quality": 0.8},
            "rationale": "[quality] correct: quotes the document",
            "heldout": {"reward": 0.7},
        },
        {
            "model": label,
            "prompt_id": "p0",
            "k": 1,
            "prompt": "Give JSON & <stuff>",
            "completion": "no json",
            "reward": 0.1,
            "status": "ok",
            "components": {"schema": 0.0, "quality": 0.2},
            "rationale": EVIL,
        },
        {
            "model": label,
            "prompt_id": "p1",
            "k": 0,
            "prompt": "q",
            "completion": "x",
            "reward": None,
            "status": "unscored",
            "reason": "parse_error: no JSON (quality)",
            "components": {},
        },
    ]


def write_run(run: Path) -> None:
    for label, validity, reward, heldout in (
        ("base", 0.25, 0.31, 0.28),
        ("sft", 0.5, 0.44, 0.4),
        ("rft", 0.875, 0.66, 0.57),
    ):
        folder = run / "eval" / label
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps(summary(label, validity, reward, heldout)))
        (folder / "samples.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows(label)))
    (run / "rft").mkdir()
    metrics = [
        {
            "step": step,
            "reward": 0.3 + 0.05 * step,
            "reward_std": 0.1,
            "reward/quality/mean": 0.2 + 0.04 * step,
            "reward/quality/std": 0.05,
            "components": {"schema": 0.5 + 0.05 * step},
            "reward/unscored_frac": 0.1 / step,
            "judge/cost_usd": 0.01 * step,
            "loss": 0.5 / step,
            "kl": 0.01 * step,
            "note": "text is ignored",
            "alarms": ["length drift 2.1x"] if step == 3 else [],
        }
        for step in (1, 2, 3)
    ]
    (run / "rft" / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in metrics))
    (run / "validation").mkdir()
    (run / "validation" / "report.json").write_text(
        json.dumps(
            {
                "judge": "quality",
                "passed": False,
                "failures": [
                    {
                        "section": "bias",
                        "figure": "attack_fpr",
                        "value": 0.4,
                        "kind": "max",
                        "bound": 0.1,
                        "message": "bias: attack_fpr = 0.400 (needs <= 0.1)",
                    }
                ],
                "sections": [
                    {
                        "name": "consistency",
                        "figures": {"flip_rate": 0.05, "mean_spread": 0.02},
                        "passed": True,
                        "thresholds": [
                            {"section": "consistency", "figure": "flip_rate", "kind": "max", "bound": 0.2}
                        ],
                        "intervals": {"flip_rate": [0.01, 0.09]},
                        "failures": [],
                        "counts": {"items": 20},
                    },
                    {
                        "name": "bias",
                        "figures": {"attack_fpr": 0.4, "position_consistency": 0.9},
                        "passed": False,
                        "thresholds": [
                            {"section": "bias", "figure": "attack_fpr", "kind": "max", "bound": 0.1}
                        ],
                        "failures": [{"figure": "attack_fpr"}],
                    },
                ],
            }
        )
    )
    (run / "export").mkdir()
    (run / "export" / "README.md").write_text("# model card")
    (run / "stages.json").write_text(
        json.dumps({"stages": {"baseline_eval": {"status": "done", "finished_at": "2026-11-22"}}})
    )


def test_report_is_self_contained_and_shows_the_figures(tmp_path: Path):
    run = tmp_path / "run"
    write_run(run)
    path = render_report(run)
    assert path == run / "report.html"
    page = path.read_text(encoding="utf-8")
    # figures embedded as PNG data URIs, and the same PNGs saved under plots/
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    saved = sorted(p.name for p in (run / "plots").glob("*.png"))
    assert len(images) == len(saved) >= 7, saved
    assert all(base64.b64decode(image).startswith(PNG_MAGIC) for image in images)
    assert {
        "schema_validity.png",
        "judge_scores.png",
        "components.png",
        "criteria.png",
        "reward_curve.png",
        "unscored_cost.png",
        "validation.png",
    } <= set(saved)
    # offline: no remote script, stylesheet, font or image
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page, re.I)
    assert "<script" not in page.lower() and "@import" not in page and "url(" not in page
    # the numbers: validity, best-of-k, held-out, validation verdict, cost, alarm
    for text in (
        "0.875",
        "0.250",
        "0.760",
        "0.570",
        "0.620",
        "attack_fpr = 0.400",
        "FAILED",
        "1234",
        "length drift 2.1x",
        "baseline_eval",
        "export/README.md",
    ):
        assert text in page, text
    # untrusted text is escaped, never markup (the templates escape quotes as &#34;)
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in page
    assert EVIL not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "Give JSON &amp; &lt;stuff&gt;" in page
    assert "parse_error: no JSON (quality)" in page


def test_partial_run_dir_renders_what_exists(tmp_path: Path):
    run = tmp_path / "partial"
    (run / "rft").mkdir(parents=True)
    (run / "rft" / "metrics.jsonl").write_text(
        '{"step": 1, "reward": 0.2}\n{"step": 2, "reward": 0.4}\n{"ste'
    )
    page = render_report(run).read_text()
    assert "No evaluation in this run" in page and "No judge validation" in page
    assert sorted(p.name for p in (run / "plots").glob("*.png")) == ["reward_curve.png"]


def test_metrics_parsing_is_flexible():
    curves = series(
        [
            {"step": 1, "reward_mean": 0.1, "components": {"schema": 1.0}, "alarms": []},
            {"step": 2, "reward_mean": 0.3, "components": {"schema": 0.5}},
            {"step": 2, "reward_mean": 0.4},
        ]
    )  # a resumed step: last value wins
    assert curves["reward_mean"] == [(1.0, 0.1), (2.0, 0.4)]
    assert component_curves(curves) == {"schema": "components/schema"}
    sections = validation_sections({"sections": {"regression": {"pass_rate": 0.9, "passed": True}}})
    assert sections[0]["figures"] == {"pass_rate": 0.9} and sections[0]["status"] == "passed"


def test_report_command_prints_the_path(tmp_path: Path):
    run = tmp_path / "run"
    (run / "rft").mkdir(parents=True)
    (run / "rft" / "metrics.jsonl").write_text('{"step": 1, "reward": 0.2}\n')
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert str(run / "report.html") in result.output.replace("\n", "")
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in " ".join(missing.output.split())


@pytest.mark.parametrize("bad", ["{not json", '["a list"]'])
def test_bad_summary_is_a_clear_error(tmp_path: Path, bad: str):
    from judgerl.errors import DataError

    folder = tmp_path / "eval" / "base"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(bad)
    with pytest.raises(DataError, match=r"summary\.json"):
        render_report(tmp_path)
