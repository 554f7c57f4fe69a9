"""Distillation shows its progress as SFT and GRPO do: step, loss and time left, on stderr.

A tiny real student (the tiny Llama of tests/test_distill.py) is trained for a few steps with a
console that is not a terminal (a log): one line per step here (few steps), each with the step's
own loss. A long run in a log gets about twenty lines, not one per step; on a terminal the same
lines print above a bar.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from judgerl.distill.student import TrainSettings, student_judge, student_judge_config, train_student
from judgerl.train.monitors import StepProgress
from test_distill import CRITERION, _rows_for_corpus, build_student_base

LINE = re.compile(r"^distill step (\d+)/(\d+)  loss (\d+\.\d{4})  epoch (\d+)/(\d+)  (\d+\.\d\d)s/step  "
                  r"elapsed (\d+):(\d\d):(\d\d)  left (\d+):(\d\d):(\d\d)$")


def test_a_tiny_distillation_prints_step_loss_and_time_left(tmp_path: Path) -> None:
    base = build_student_base(tmp_path / "base")
    judge_config = student_judge_config("support", [CRITERION], model="unused")
    rows = _rows_for_corpus(student_judge(judge_config))  # 8 rows
    log = io.StringIO()
    result = train_student(base, rows, judge_config, tmp_path / "student",
                           TrainSettings(method="full", epochs=3, batch_size=2),
                           console=Console(file=log, width=200))
    lines = log.getvalue().splitlines()
    assert result.steps == 12 and len(lines) == 12, log.getvalue()
    matches = [LINE.match(line) for line in lines]
    assert all(matches), log.getvalue()
    steps = [int(match.group(1)) for match in matches if match]
    assert steps == list(range(1, 13)) and {int(match.group(2)) for match in matches if match} == {12}
    assert [float(match.group(3)) for match in matches if match] == [round(loss, 4) for loss in result.losses]
    assert [int(match.group(4)) for match in matches if match] == [1] * 4 + [2] * 4 + [3] * 4
    last = matches[-1]
    assert last is not None and last.group(10, 11, 12) == ("0", "00", "00")  # nothing left at the end


def test_training_without_a_console_prints_nothing(tmp_path: Path, capsys) -> None:
    base = build_student_base(tmp_path / "base")
    judge_config = student_judge_config("support", [CRITERION], model="unused")
    rows = _rows_for_corpus(student_judge(judge_config))
    train_student(base, rows, judge_config, tmp_path / "student", TrainSettings(epochs=1, batch_size=4))
    captured = capsys.readouterr()
    assert "distill step" not in captured.out + captured.err


def test_a_long_run_in_a_log_prints_about_twenty_lines_with_the_time_left() -> None:
    log = io.StringIO()
    with StepProgress(Console(file=log, width=200), "distill", total=1000, epochs=4) as progress:
        for step in range(1000):
            progress.step(loss=0.5, epoch=step // 250)
    lines = log.getvalue().splitlines()
    assert len(lines) == 20
    assert lines[0].startswith("distill step 50/1000  loss 0.5000  epoch 1/4")
    assert lines[-1].startswith("distill step 1000/1000  loss 0.5000  epoch 4/4")


def test_on_a_terminal_the_lines_print_above_a_bar() -> None:
    screen = io.StringIO()
    console = Console(file=screen, width=200, force_terminal=True)
    with StepProgress(console, "distill", total=4, epochs=1, lines=2) as progress:
        for _ in range(4):
            progress.step(loss=0.25, epoch=0)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())  # drop the terminal's control codes
    assert "distill step 2/4  loss 0.2500" in text and "distill step 4/4  loss 0.2500" in text
    bar = [line for line in text.splitlines() if "━" in line]  # the bar's rendering
    assert bar and "4/4" in bar[-1] and "loss 0.2500" in bar[-1]
