"""`judgerl init [DIR]`: a starter project a newcomer can run at once and then edit.

Why: the first thing a user of judgerl needs is a reward config, some rollouts to score, a judge
validation suite and a training recipe that fit together, written the way judgerl expects them.
The files ship as package data (`judgerl/starter/`, next to the demo's files) and are copied as
they are, so what `judgerl init` writes is exactly what the tests run: `judgerl score --dry-run`
and `judgerl validate` work from inside DIR as written, and the recipe loads. Existing files are
never overwritten unless asked (`force`); the refusal names the file.

    reward.yaml       checks + one rubric judge on the embedded local model (an OpenAI-compatible
                      backend block commented out beside it)
    rollouts.jsonl    a few answers to score, good and bad
    validation.yaml   the judge's known cases and attacks (`judgerl validate`)
    recipe.yaml       the whole workflow (`judgerl run`), with train.jsonl and eval.jsonl
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from judgerl.errors import ConfigError

STARTER_DIR = Path(__file__).resolve().parents[1] / "starter"
#: what `judgerl init` writes, in the order it lists them, with what each is for
FILES: dict[str, str] = {
    "reward.yaml": "the reward: checks and a judge on the embedded local model",
    "rollouts.jsonl": "a few answers to score",
    "validation.yaml": "the judge's check before training",
    "recipe.yaml": "the training workflow (judgerl run)",
    "train.jsonl": "the recipe's training prompts",
    "eval.jsonl": "the recipe's held-out prompts",
}
#: the commands printed after `judgerl init`, run from inside the new folder
NEXT_COMMANDS = (
    "judgerl score -c reward.yaml -i rollouts.jsonl -o dry-run.jsonl --dry-run",
    "judgerl score -c reward.yaml -i rollouts.jsonl -o rewards.jsonl",
    "judgerl validate -c reward.yaml -s validation.yaml",
    "judgerl run recipe.yaml",
)


@dataclass
class Starter:
    """What `write_starter` wrote: the folder and each file's path."""

    folder: Path
    files: list[Path]


def write_starter(folder: str | Path, *, force: bool = False) -> Starter:
    """Copy the starter project into `folder` (created if missing). Raise `ConfigError` naming the
    first file that already exists, unless `force` (then those files are replaced)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError("not a folder: judgerl init writes a project into a folder", path=str(folder))
    targets = [folder / name for name in FILES]
    existing = [target for target in targets if target.exists()]
    if existing and not force:
        others = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise ConfigError(f"already exists{others}; judgerl init does not overwrite files: use --force "
                          "to replace them, or another folder", path=str(existing[0]))
    folder.mkdir(parents=True, exist_ok=True)
    for target in targets:
        if target.is_dir():
            raise ConfigError("is a folder, not a file: move it away", path=str(target))
        shutil.copyfile(STARTER_DIR / target.name, target)
    return Starter(folder, targets)
