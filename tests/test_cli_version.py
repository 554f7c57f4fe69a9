"""`judgerl --version` (and `judgerl version`): judgerl's version and the key packages', without
importing torch (read from the installed distributions' metadata)."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

from judgerl.version import KEY_PACKAGES, __version__

PROBE = """
import sys
from typer.testing import CliRunner
from judgerl.cli import app
result = CliRunner().invoke(app, [sys.argv[1]])
print(result.output, end="")
print("exit", result.exit_code, "torch imported", "torch" in sys.modules, "transformers imported",
      "transformers" in sys.modules)
"""


def _run(argument: str) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE, argument], capture_output=True, text=True,
                          timeout=120, check=True)
    return done.stdout


def test_version_prints_judgerls_and_the_key_packages_without_importing_torch() -> None:
    output = _run("--version")
    lines = output.splitlines()
    assert lines[0] == f"judgerl {__version__}"
    assert lines[-1] == "exit 0 torch imported False transformers imported False"
    installed = {}
    for name in KEY_PACKAGES:
        try:
            installed[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed[name] = None
    assert installed["torch"] is not None  # the test environment has the training extras
    for name, version in installed.items():
        if version is not None:
            assert any(line.split() == [name, version] for line in lines), (name, output)
        else:
            assert name in next(line for line in lines if line.strip().startswith("not installed:"))


def test_the_version_command_prints_the_same() -> None:
    assert _run("version").splitlines()[:-1] == _run("--version").splitlines()[:-1]
