"""The run folder has one reader: the workflow's stage log, the report and the export see the same
stages (the export used to keep stages.json whole while the report unwrapped its "stages")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judgerl.errors import DataError
from judgerl.run.export import read_run
from judgerl.run.folder import read_run_folder, read_stages
from judgerl.run.report import load_run
from judgerl.run.workflow import StageLog


def test_every_reader_sees_the_stages_the_workflow_wrote(tmp_path: Path) -> None:
    log = StageLog.open(tmp_path)
    log.mark("validate", "done", 1.25, report=tmp_path / "validation" / "report.json")
    log.mark("sft", "skipped", 0.0)
    written = StageLog.open(tmp_path).stages
    assert set(written) == {"validate", "sft"} and written["validate"]["status"] == "done"
    assert read_stages(tmp_path) == written
    assert read_run_folder(tmp_path).stages == written
    assert read_run(tmp_path).stages == written
    assert load_run(tmp_path).stages == written


def test_a_stages_file_of_another_shape_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "stages.json").write_text(json.dumps({"validate": {"status": "done"}}), encoding="utf-8")
    with pytest.raises(DataError, match="stages"):
        read_run_folder(tmp_path)
