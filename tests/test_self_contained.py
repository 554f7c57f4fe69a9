"""The project needs nothing beside its own checkout, and a failing command fails cleanly.

Why: users clone into an empty folder or install a wheel; nothing of theirs sits beside the
repository. CI happens to run with a folder beside the checkout, so a file that reached out to it
would pass CI and fail every user. These tests fail when any file of the project names a place
outside it, and when a command that stops on a clear error prints more than that error.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from judgerl.validate.datasets import PACKAGED_DATA_DIR, load_evalbiasbench, load_llmbar_natural

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("src", "tests", "examples", "scripts", "bench", ".ci", "README.md", "pyproject.toml", "docs")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".json", ".jsonl", ".sh", ".cfg", ".ini", ""}
#: a path that leaves the repository: the old shared folder, or `..` climbing above the checkout
OLD_FOLDER = "shared"  # the folder that sat beside the checkout in CI (users have none)
OUTSIDE = re.compile(rf"\.\./{OLD_FOLDER}|{OLD_FOLDER}/data|{OLD_FOLDER}/ARCHITECTURE"
                     rf"|JUDGERL_{OLD_FOLDER.upper()}_DATA")


def project_files() -> list[Path]:
    files: list[Path] = []
    for name in SCANNED:
        path = ROOT / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [file for file in path.rglob("*") if file.is_file() and file.suffix in TEXT_SUFFIXES
                      and "egg-info" not in str(file) and "__pycache__" not in file.parts]
    return files


def test_no_project_file_refers_to_a_folder_outside_the_repository() -> None:
    offenders = []
    for file in project_files():
        if file == Path(__file__):
            continue
        for number, line in enumerate(file.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{file.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_relative_paths_in_example_configs_stay_inside_the_repository() -> None:
    """Every `../` path in an example YAML, resolved against its file's folder, is inside the checkout."""
    pattern = re.compile(r"""(?:^|[\s:'"])((?:\.\./)+[\w./-]*)""")
    for file in (ROOT / "examples").rglob("*.yaml"):
        for match in pattern.finditer(file.read_text(encoding="utf-8")):
            target = (file.parent / match.group(1)).resolve()
            assert target.is_relative_to(ROOT), f"{file.relative_to(ROOT)}: {match.group(1)} leaves ROOT"


def test_the_validation_sets_ship_in_the_package_with_their_licences() -> None:
    assert PACKAGED_DATA_DIR.is_relative_to(ROOT / "src" / "judgerl")
    for name in ("llmbar-natural", "evalbiasbench"):
        licence = (PACKAGED_DATA_DIR / name / "LICENSE").read_text(encoding="utf-8")
        assert "Permission" in licence or "Redistribution" in licence
    assert "| source |" in (PACKAGED_DATA_DIR / "README.md").read_text(encoding="utf-8")
    assert len(load_llmbar_natural()) == 100
    assert len(load_evalbiasbench()) == 80


def test_the_wheel_carries_the_validation_sets_and_their_licences(tmp_path: Path) -> None:
    """What a user installing from a wheel gets: built from a copy of the sources, listed by zipfile."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(tmp_path / "wheel")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "wheel").glob("judgerl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name, data in (("llmbar-natural", "dataset.json"), ("evalbiasbench", "biasbench.json")):
        assert f"judgerl/data/judge-validation/{name}/{data}" in names
        assert f"judgerl/data/judge-validation/{name}/LICENSE" in names
    assert "judgerl/data/judge-validation/README.md" in names
    from judgerl.run.starter import FILES  # `judgerl init` copies these from the installed package

    assert {f"judgerl/starter/{name}" for name in FILES} <= names


def test_a_model_that_fails_to_load_gives_one_clean_error(tmp_path: Path) -> None:
    """No traceback, no "Event loop is closed" from judgments left behind: the message and exit 2."""
    bad_model = tmp_path / "broken.gguf"
    bad_model.write_text("not a gguf file")
    config = (ROOT / "examples" / "validation" / "reward.yaml").read_text(encoding="utf-8")
    config = re.sub(r"(?m)^(\s*model:).*$", rf"\1 {bad_model}", config, count=1)
    (tmp_path / "reward.yaml").write_text(config, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "judgerl.cli", "validate", "--config",
                           str(tmp_path / "reward.yaml"), "--suite",
                           str(ROOT / "examples" / "validation" / "suite.yaml"),
                           "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "not a readable GGUF model file" in output
    for noise in ("Traceback", "Event loop is closed", "Exception ignored", "Warning"):
        assert noise not in output, output


@pytest.mark.parametrize("name", ["llmbar-natural", "evalbiasbench"])
def test_vendored_sets_load_from_any_working_folder(tmp_path: Path, name: str) -> None:
    code = (f"from judgerl.validate.datasets import load_dataset; "
            f"print(len(load_dataset('{name}')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")})
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) in (100, 80)
