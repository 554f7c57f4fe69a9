"""Where a run resumes from, and the rule that a new run never mixes with an old one.

Why: TRL / transformers save `checkpoint-<step>` folders (weights, optimizer, scheduler, RNG and
trainer state) every `save_steps`. `--resume` continues from the newest one; without it, an
output folder that already holds checkpoints is refused (or cleared, with `logging.overwrite`),
because a later `--resume` would otherwise pick up a checkpoint of a different run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from judgerl.errors import ConfigError


def checkpoints(output_dir: Path) -> list[Path]:
    """`checkpoint-<step>` folders in `output_dir`, oldest first."""
    if not output_dir.is_dir():
        return []
    found = [path for path in output_dir.glob("checkpoint-*")
             if path.is_dir() and path.name.split("-", 1)[1].isdigit()]
    return sorted(found, key=lambda path: int(path.name.split("-", 1)[1]))


def resume_point(output_dir: Path, *, resume: bool, overwrite: bool = False,
                 clear: bool = True) -> Path | None:
    """The checkpoint to resume from (None: start fresh), after checking the folder is safe to use.

    `clear=False` (the other ranks of a multi-process run) leaves deleting old checkpoints to the
    main process."""
    found = checkpoints(output_dir)
    if resume:
        if not found:
            raise ConfigError(f"--resume: no checkpoint-* folder in {output_dir} to resume from",
                              field="logging.output_dir")
        return found[-1]
    if found:
        if not overwrite:
            raise ConfigError(f"{output_dir} already holds checkpoints of an earlier run ({found[-1].name}); "
                              "pass --resume to continue it, choose another logging.output_dir, or set "
                              "logging.overwrite=true to delete them", field="logging.output_dir")
        for path in found if clear else []:
            shutil.rmtree(path)
    return None


def trim_after_step(path: Path, step: int) -> None:
    """Drop JSONL rows whose `step` is after `step` (a resumed run writes those steps again)."""
    import json

    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            row_step = int(json.loads(line).get("step", 0))
        except (ValueError, AttributeError, TypeError):
            continue  # a torn last line from a killed run
        if row_step <= step:
            kept.append(line)
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
