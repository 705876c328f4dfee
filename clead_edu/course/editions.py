"""Student and teacher editions of the lessons, built from notebooks/ by otter-grader's `otter assign`.

    python -m clead_edu editions --out runs/editions         # runs/editions/student/, .../teacher/
    python -m clead_edu editions --out runs/editions --only 02,04
    python -m clead_edu editions --out runs/editions --student-tree runs/student

`--student-tree DIR` also writes the repository as students get it, to be published as a repository
of its own (the sources, with the worked code and solutions/, stay private), on the branch that
`[tool.clead_edu] student-branch` in pyproject.toml names (the branch the notebooks' Colab
badges open and their set-up cell clones): the files git tracks, without solutions/, tests/ and
.ci/, with notebooks/ holding the student edition (Colab cells written for that branch).

Each lesson notebook is the one source of both editions, in otter's notebook format: a raw
`# ASSIGNMENT CONFIG` cell at the end, and around each code exercise the raw cells
`# BEGIN QUESTION` (with `name:`), `# BEGIN SOLUTION`, `# END SOLUTION`, `# END QUESTION`; inside
the solution cell the lines between the comments `# BEGIN SOLUTION` and `# END SOLUTION` are the
solution, and the cell after it calls the grader, `ce.exercises.grade(name, my_function)`.
The student edition has each solution replaced by `...` (so the grader stops there with
"not written yet"); the teacher edition keeps the solutions. Both keep every other cell.
The config adds no otter cells, so neither edition needs otter at run time (the graders are
the package's own, `graders.py`): otter-grader is only needed to build them.

Run All in the student edition stops at the first exercise not yet written, on purpose: the
cells after an exercise use the student's function (`my_pgd` repeats `pgd_step`), so running
on would show errors or numbers that are not the student's. What a reader without a kernel
sees is the sealed edition (`seal`, used by the course site): the student edition with the
outputs of the executed teacher edition and a note where each solution was, so every cell shows
what it produces and no cell shows the worked code.
"""
from __future__ import annotations

import json
import re
import runpy
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
LEFT_OUT = ("solutions/", "tests/", ".ci/", "notebooks/")   # of the student tree (notebooks/: the edition)
OTTER_FOLDERS = {"student": "student", "teacher": "autograder"}   # edition -> otter's output folder


def add_parser(sub) -> None:
    """The `editions` subcommand of `python -m clead_edu`."""
    p = sub.add_parser("editions", help="build the student (solutions removed) and teacher editions (otter assign)")
    p.add_argument("--out", required=True, help="output folder: DIR/student/ and DIR/teacher/")
    p.add_argument("--only", help="comma-separated notebook numbers, e.g. 02,04 (default: all)")
    p.add_argument("--notebooks", default=str(NOTEBOOKS), help="folder of the lesson notebooks (the sources)")
    p.add_argument("--student-tree", help="also write this new folder: the repository for students (notebooks/ "
                   "the student edition; no solutions/, tests/), to publish as [tool.clead_edu] student-branch")
    p.set_defaults(func=run_command)


def run_command(args) -> int:
    start = time.time()
    built = build_editions(args.out, args.only, args.notebooks)
    n = sum(count_graders(p) for p in built["student"])
    print(f"[clead_edu] {len(built['student'])} lessons, {n} code exercises, in {time.time() - start:.0f} s: "
          f"{Path(args.out) / 'student'} (solutions removed), {Path(args.out) / 'teacher'} (with solutions)")
    if args.student_tree:
        branch = student_tree(args.student_tree, built["student"])
        print(f"[clead_edu] {args.student_tree}: the student tree; publish it as branch {branch!r}, e.g.\n"
              f"  cd {args.student_tree} && git init -q -b {branch} && git add -A && "
              f"git commit -qm 'student edition' && git push --force <repository address> {branch}")
        if branch == "main":
            print("[clead_edu] note: [tool.clead_edu] student-branch in pyproject.toml is 'main': push this tree to "
                  "a repository of its own, not the one of the sources (they hold the worked code and solutions/), "
                  "and set [project.urls] Repository to its address, then run `python tools/notebook_header.py` "
                  "(the instructor guide, step 5)")
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


SEALED_NOTE = "# Your code here: the worked solution is in the teacher edition."


def seal(student, teacher):
    """The student edition `student` (a notebook) as a reader should see it: each code cell with the
    outputs of the same cell (same id) of the executed teacher edition `teacher`, and in each cell whose
    code differs between the two (an exercise: otter put `...` where the solution was) a SEALED_NOTE
    before each `...` line. The code is the student edition's, so no solution line is copied over.
    Changes `student` in place and returns it; a student cell missing from `teacher` is an error."""
    ran = {c.get("id"): c for c in teacher.cells if c.cell_type == "code"}
    for cell in student.cells:
        if cell.cell_type != "code":
            continue
        done = ran.get(cell.get("id"))
        if done is None:
            raise ValueError(f"cell {cell.get('id')!r} of the student edition is not in the executed teacher "
                             "edition: build both editions from the same source")
        cell.outputs, cell.execution_count = done.outputs, done.execution_count
        if cell.source != done.source:
            cell.source = _noted(cell.source)
    return student


def _noted(code: str) -> str:
    """`code` with SEALED_NOTE, at the same indent, above every line that is only `...` (else on top)."""
    lines = code.split("\n")
    if not any(line.strip() == "..." for line in lines):
        return SEALED_NOTE + "\n" + code
    return "\n".join(f"{line[:len(line) - len(line.lstrip())]}{SEALED_NOTE}\n{line}" if line.strip() == "..."
                     else line for line in lines)


def count_graders(path) -> int:
    """How many code cells of a notebook call `ce.exercises.grade(`."""
    cells = json.loads(Path(path).read_text())["cells"]
    return sum("ce.exercises.grade(" in "".join(c["source"]) for c in cells if c["cell_type"] == "code")


def tracked_files(root) -> list[str]:
    """The files git tracks in the repository at `root`, as relative POSIX paths."""
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        raise ValueError(f"--student-tree copies the files git tracks in {root}, which is not a git "
                         "checkout (or git is not installed)") from None
    return [f for f in out.decode().split("\0") if f]


# A Markdown link into a folder the student tree leaves out: [text](../solutions/README.md)
LINK_OUT = re.compile(r"\[([^\]]+)\]\((?:\./|\.\./)*(?:" + "|".join(re.escape(p) for p in LEFT_OUT if p != "notebooks/") + r")[^)]*\)")


def unlink_left_out(markdown: str) -> str:
    """`markdown` with every link into LEFT_OUT replaced by its text and a note, so the student
    branch has no broken links: "[`solutions/`](solutions/README.md)" -> "`solutions/` (instructors' copy only)"."""
    return LINK_OUT.sub(r"\1 (instructors' copy only)", markdown)


def student_tree(dest, student_notebooks, root=ROOT) -> str:
    """Write `dest` (absent or empty): the files git tracks in `root` but those under LEFT_OUT, and
    the student notebooks in notebooks/ with their Colab cells written for root's pyproject.toml
    by tools/notebook_header.py. Returns the branch to publish it as ([tool.clead_edu] student-branch)."""
    dest, root = Path(dest), Path(root)
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"--student-tree {dest} is not empty: remove it or name a new folder")
    header = runpy.run_path(str(root / "tools" / "notebook_header.py"))
    url, branch = header["repo_url"](root), header["student_branch"](root)
    for name in tracked_files(root):
        if not name.startswith(LEFT_OUT) and (root / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, dest / name)
            if name.endswith(".md"):
                (dest / name).write_text(unlink_left_out((root / name).read_text()))
    (dest / "notebooks").mkdir(parents=True, exist_ok=True)
    for path in map(Path, student_notebooks):
        nb = header["nbformat"].read(path, as_version=4)
        header["ensure_header"](nb, path.name, url, branch)
        header["nbformat"].write(nb, dest / "notebooks" / path.name)
    return branch
