"""Train the CPU contract review study's two students and ship them in the package.

Why: `judgerl demo --task contract-review` needs two students distilled from the packaged labelled
reviews (the reward's judge of each planted issue, and the scorer of the evaluation). Training them
is half the study's CPU time on two cores (about 13 of its minutes: three epochs over 344 and 284
items each), while the data and settings they are trained from change rarely. So they ship trained:
their LoRA adapters in float16 (about 4 MB each) with a manifest recording the digest of the plan
they were trained on (labelled files, base model, settings, template), the figures measured after
training, and this command. The study merges a shipped adapter into the packaged base and measures
it on its held-out rows again (the reward's student must pass its gate there too); when the data or
the settings change, the digest no longer matches and the study trains the student itself, as
`judgerl demo --task contract-review --distil-students` always does.

Run (from the repository root, after build_cpu_data.py; it rewrites
src/judgerl/demo/contract_review/students/):

    .venv/bin/python examples/contract_review/build_students.py                 # both, side by side
    .venv/bin/python examples/contract_review/build_students.py --work runs/students --workers 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from judgerl.distill.contract_study import STUDENTS_DIR, StudySettings, student_plans, study_folder
from judgerl.distill.demo_judge import PreparedStudent, StudentPlan, package_student, prepare_student
from judgerl.run.stage_graph import Stage, run_stages


def train(folder: Path, plan: StudentPlan) -> PreparedStudent:
    """One student trained (or reused) in `folder`; its gate is the study's to enforce, not this."""
    from rich.console import Console

    return prepare_student(folder, plan, Console(stderr=True), enforce_gate=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/contract-review-students"),
                        help="where the students are trained (kept: a second run reuses them)")
    parser.add_argument("--workers", type=int, default=2, help="students trained side by side")
    args = parser.parse_args()
    settings = StudySettings(distil_students=True)
    plans = student_plans(study_folder(), settings, args.work / "student-data")
    work = args.work.resolve()
    run = run_stages([Stage(f"student {name}", train, (work / f"student-{name}", plan))
                      for name, plan in plans.items()], workers=args.workers)
    command = "python examples/contract_review/build_students.py"
    for name, plan in plans.items():
        figures = run.results[f"student {name}"].value.figures
        target = package_student(work / f"student-{name}", plan, study_folder() / STUDENTS_DIR / name,
                                 command=command)
        print(f"{name}: accuracy {figures['accuracy']:.3f}, kappa {figures['kappa']:.3f} on "
              f"{figures['held_out_rows']} held-out items -> {target}")
    print(f"trained in {run.wall_seconds / 60:.1f} min on {args.workers} worker(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
