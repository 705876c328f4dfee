"""Student and teacher editions of the lessons, built from notebooks/ by otter-grader's `otter assign`.

    python -m clead_edu editions --out editions              # editions/student/, editions/teacher/
    python -m clead_edu editions --out editions --only 02,04

Each lesson notebook is the one source of both editions, in otter's notebook format: a raw
`# ASSIGNMENT CONFIG` cell at the end, and around each code exercise the raw cells
`# BEGIN QUESTION` (with `name:`), `# BEGIN SOLUTION`, `# END SOLUTION`, `# END QUESTION`; inside
the solution cell the lines between the comments `# BEGIN SOLUTION` and `# END SOLUTION` are the
solution, and the cell after it calls the grader, `ce.exercises.grade(name, my_function)`.
The student edition has each solution replaced by `...` (so the grader stops there with
"not written yet"); the teacher edition keeps the solutions. Both keep every other cell.
The config adds no otter cells, so neither edition needs otter at run time (the graders are
the package's own, `graders.py`): otter-grader is only needed to build them.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
OTTER_FOLDERS = {"student": "student", "teacher": "autograder"}   # edition -> otter's output folder


def add_parser(sub) -> None:
    """The `editions` subcommand of `python -m clead_edu`."""
    p = sub.add_parser("editions", help="build the student (solutions removed) and teacher editions (otter assign)")
    p.add_argument("--out", required=True, help="output folder: DIR/student/ and DIR/teacher/")
    p.add_argument("--only", help="comma-separated notebook numbers, e.g. 02,04 (default: all)")
    p.add_argument("--notebooks", default=str(NOTEBOOKS), help="folder of the lesson notebooks (the sources)")
    p.set_defaults(func=run_command)


def run_command(args) -> int:
    start = time.time()
    built = build_editions(args.out, args.only, args.notebooks)
    n = sum(count_graders(p) for p in built["student"])
    print(f"[clead_edu] {len(built['student'])} lessons, {n} code exercises, in {time.time() - start:.0f} s: "
          f"{Path(args.out) / 'student'} (solutions removed), {Path(args.out) / 'teacher'} (with solutions)")
    return 0


def lessons(folder, only: str | None = None) -> list[Path]:
    """The lesson notebooks 'NN_name.ipynb' in `folder`, restricted to the numbers in `only`."""
    found = sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
    wanted = [w.strip().zfill(2) for w in (only or "").split(",") if w.strip()]
    unknown = sorted(set(wanted) - {p.name[:2] for p in found})
    if unknown:
        raise ValueError(f"--only {only}: no notebook numbered {', '.join(unknown)} in {folder}")
    return [p for p in found if not wanted or p.name[:2] in wanted]


def build_editions(out, only: str | None = None, notebooks=NOTEBOOKS) -> dict[str, list[Path]]:
    """Run `otter assign` on each lesson; returns {'student': [paths], 'teacher': [paths]} under out."""
    try:
        from otter.assign import main as otter_assign   # heavy (seconds); only this command needs it
    except ImportError:
        raise ValueError("building the editions needs otter-grader: pip install otter-grader "
                         "(or pip install -e '.[editions]')") from None
    out, built = Path(out), {edition: [] for edition in OTTER_FOLDERS}
    for src in lessons(notebooks, only):
        with tempfile.TemporaryDirectory() as tmp:
            otter_assign(str(src), tmp, no_pdfs=True, no_run_tests=True)
            for edition, folder in OTTER_FOLDERS.items():
                dest = out / edition / src.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(tmp) / folder / src.name, dest)
                built[edition].append(dest)
    return built


def count_graders(path) -> int:
    """How many code cells of a notebook call `ce.exercises.grade(`."""
    cells = json.loads(Path(path).read_text())["cells"]
    return sum("ce.exercises.grade(" in "".join(c["source"]) for c in cells if c["cell_type"] == "code")
