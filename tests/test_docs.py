"""The documentation is kept true by the tests: the site builds strictly, and what it shows runs.

Why: a README or a docs page that shows a command which no longer runs (a renamed flag, a moved
example) misleads every new user, and nothing else would notice. So:

- the MkDocs site (mkdocs.yml, docs/, the reference pages generated from the code by
  scripts/docs_reference.py) is built with `--strict`: a link to a missing page or anchor fails;
- every code block marked `<!-- runnable -->` (the line before a ```bash or ```python fence) in
  README.md and docs/ is run, offline, in a temporary folder holding a copy of `examples/` (and
  `src/` linked), with the environment's `judgerl` first on PATH; a non-zero exit fails the test;
- the README stays short and its relative links (to docs/*.md and their headings) resolve, as on GitHub.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARKER = re.compile(r"^<!--\s*runnable\s*-->\s*$")
FENCE = re.compile(r"^```(\w+)\s*$")
RUNNABLE_LANGUAGES = {"bash", "python"}
BLOCK_TIMEOUT_S = 120
README_MAX_LINES = 250


def documentation_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


@dataclass(frozen=True)
class Block:
    file: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"


def runnable_blocks(path: Path) -> list[Block]:
    """The blocks of `path` marked runnable; a marker not followed by a bash/python fence is an error."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    for index, line in enumerate(lines):
        if not MARKER.match(line):
            continue
        fence = FENCE.match(lines[index + 1]) if index + 1 < len(lines) else None
        if fence is None or fence.group(1) not in RUNNABLE_LANGUAGES:
            raise AssertionError(f"{path.relative_to(ROOT)}, line {index + 1}: a runnable marker must be "
                                 f"followed by a ```bash or ```python fence")
        end = next(position for position in range(index + 2, len(lines)) if lines[position].startswith("```"))
        blocks.append(Block(path, index + 2, fence.group(1), "\n".join(lines[index + 2:end]) + "\n"))
    return blocks


ALL_BLOCKS = [block for path in documentation_files() for block in runnable_blocks(path)]


def run_block(block: Block, folder: Path) -> subprocess.CompletedProcess[str]:
    """Run one block in `folder`, which gets a copy of examples/ and a link to src/ (outputs stay there)."""
    shutil.copytree(ROOT / "examples", folder / "examples",
                    ignore=shutil.ignore_patterns(".cache", "runs", "__pycache__"))
    (folder / "src").symlink_to(ROOT / "src", target_is_directory=True)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    if block.language == "bash":
        command = ["bash", "-e", "-o", "pipefail", "-c", block.code]
    else:
        command = [sys.executable, "-c", block.code]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True,
                          timeout=BLOCK_TIMEOUT_S, stdin=subprocess.DEVNULL)


def test_the_docs_mark_runnable_blocks() -> None:
    """The quickstart's dry-run scoring and the other offline commands are marked, in README and docs."""
    files = {block.file.relative_to(ROOT).as_posix() for block in ALL_BLOCKS}
    assert "README.md" in files and "docs/getting-started.md" in files
    assert len(ALL_BLOCKS) >= 6
    assert any("--dry-run" in block.code for block in ALL_BLOCKS)


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[block.id for block in ALL_BLOCKS])
def test_runnable_block_runs(block: Block, tmp_path: Path) -> None:
    result = run_block(block, tmp_path)
    assert result.returncode == 0, (f"{block.id} exited {result.returncode}:\n{block.code}\n"
                                    f"--- output ---\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def test_a_renamed_flag_fails_its_block(tmp_path: Path) -> None:
    """What the runnable test guards against: the quickstart with a flag the CLI does not know fails."""
    (block,) = [block for block in ALL_BLOCKS if block.file.name == "README.md" and "--dry-run" in block.code]
    renamed = Block(block.file, block.line, block.language, block.code.replace("--dry-run", "--dryrun"))
    result = run_block(renamed, tmp_path)
    assert result.returncode != 0
    assert "--dryrun" in result.stderr + result.stdout


def build_site(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", DISABLE_MKDOCS_2_WARNING="true")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], cwd=config.parent, env=env, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_the_site_builds_strictly_with_the_reference_from_the_code(tmp_path: Path) -> None:
    result = build_site(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    site = tmp_path / "site"
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "judgerl score" in cli and "--dry-run" in cli and "--keep-unscored" in cli
    config = (site / "reference" / "reward-config" / "index.html").read_text(encoding="utf-8")
    assert "failure_budget" in config and "retry_after_cap_s" in config
    recipe = (site / "reference" / "recipe" / "index.html").read_text(encoding="utf-8")
    assert "number_generation" in recipe and "max_new_tokens" in recipe
    api = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    assert "score_batch_sync" in api
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "fonts.googleapis.com" not in index  # builds and renders offline


def test_a_broken_link_or_anchor_fails_the_build(tmp_path: Path) -> None:
    """The strict build is what catches a moved page or a renamed heading."""
    copy = tmp_path / "repo"
    shutil.copytree(DOCS, copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    (copy / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "docs_reference.py", copy / "scripts" / "docs_reference.py")
    (copy / "src").symlink_to(ROOT / "src", target_is_directory=True)
    page = copy / "docs" / "getting-started.md"
    page.write_text(page.read_text(encoding="utf-8") + "\n[gone](guides/no-such-page.md) and "
                    "[renamed](guides/checks.md#no-such-heading)\n", encoding="utf-8")
    result = build_site(copy / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-page.md" in result.stderr and "no-such-heading" in result.stderr


def test_the_readme_is_short_and_its_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    assert len(links) >= 20
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue
        target, _, anchor = link.partition("#")
        path = ROOT / target
        assert path.is_file(), f"README links to {link}: no such file"
        if anchor:
            headings = [slugify(re.sub(r"[`*]", "", line.lstrip("#").strip()), "-")
                        for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
            assert anchor in headings, f"README links to {link}: no such heading in {target}"
