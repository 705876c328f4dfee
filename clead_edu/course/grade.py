"""`python -m clead_edu grade SUBMISSIONS... --out DIR`: grade the students' notebooks.

    python -m clead_edu grade submissions/ --out grades/
    # grades/grades.csv: student, lesson, exercise, points, max_points, mistake
    # grades/feedback/<student>.md: per exercise the points and what the grader said

SUBMISSIONS are notebooks (`.ipynb`) or folders of them (every file in a folder is a submission;
a sub-folder is one student's, named after it). The student is the file's name without
`.ipynb` (or `<folder>_<name>` inside a student's folder). The lesson of a submission is the one
whose exercise functions it defines (else the `NN_` of its file name, else `--lesson`).

How a submission is run. Nothing of it runs in this process: the notebook is read as JSON, and
from every code cell only the top-level `import`s, `def`s and `class`es are kept (so no
training, no data download, no cell output); a fresh Python process
(`python -m clead_edu.course.grade`, one per submission) executes them after
`import torch, clead_edu as ce` in an empty temporary working directory, then grades each of
the lesson's exercises with the package's grader (`exercises.result`) under a per-exercise
alarm. The process runs with limits (`resource.setrlimit`: address space, size of the files it
writes) and a wall-clock limit, after which it is killed: what was graded before
counts, the rest gets 0 with the reason. A file that is too big, not JSON or not a notebook, a
deleted exercise cell, a cell that raises, an endless loop or a crash each cost the points
they concern and are named in the feedback; the command itself does not stop. The limits
guard against accidents, not against a student who sets out to attack the grading machine:
for untrusted code run the command inside a container or a throw-away virtual machine.

Why our own command and not otter-grader's `otter grade`: the package's graders already name
the student's mistake ("the gradient was taken in train mode") with a hint, and the points
table (`points.csv`) gives partial credit per named mistake; otter grades pass/fail per test
case and would need every grader rewritten as OK-format tests (the lessons' assignment config
has `generate: false`, so there is no autograder zip). `otter grade` 7.0.0 runs each
submission in Docker (its command has no option to run without it; `otter run` grades one
submission without a container and with no time limit), and it executes the whole notebook,
which trains models and reads data for minutes per student where the exercises need seconds.
"""
from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

COLUMNS = ["student", "lesson", "exercise", "points", "max_points", "mistake"]


@dataclass
class Limits:
    """timeout: wall seconds per submission; exercise_timeout: seconds per exercise (and per cell);
    memory: MiB of address space; max_size: MB of the submitted file."""
    timeout: float = 300.0
    exercise_timeout: float = 60.0
    memory: int = 6144
    max_size: float = 20.0


@dataclass
class Row:
    """One line of grades.csv, with the message for the feedback file."""
    student: str
    lesson: str
    exercise: str
    points: float
    max_points: float
    mistake: str
    message: str


# ----------------------------------------------------------------------------- the command

def add_parser(sub) -> None:
    p = sub.add_parser("grade", help="grade submitted notebooks: CSV of points, one feedback file per student",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("submissions", nargs="+", help="notebooks, or folders of them")
    p.add_argument("--out", required=True, help="folder for grades.csv and feedback/")
    p.add_argument("--points", help="points table (CSV exercise,mistake,points; default: the package's)")
    p.add_argument("--lesson", help="the lesson (01..08) of submissions whose lesson cannot be told")
    p.add_argument("--timeout", type=float, default=Limits.timeout, help="wall seconds per submission")
    p.add_argument("--exercise-timeout", type=float, default=Limits.exercise_timeout, help="seconds per exercise")
    p.add_argument("--memory", type=int, default=Limits.memory, help="MiB of memory per submission")
    p.add_argument("--max-size", type=float, default=Limits.max_size, help="MB: larger files are not read")
    p.set_defaults(func=command)


def command(args) -> int:
    from . import points
    try:
        table = points.load(args.points)
        files = find_submissions(args.submissions)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    limits = Limits(args.timeout, args.exercise_timeout, args.memory, args.max_size)
    rows = grade(files, Path(args.out), table, limits, args.lesson)
    graded = {r.student for r in rows}
    print(f"[clead_edu] graded {len(files)} submission(s) of {len(graded)} student(s): "
          f"{Path(args.out) / 'grades.csv'}, {Path(args.out) / 'feedback'}/")
    return 0


def find_submissions(paths: list[str]) -> list[tuple[str, Path]]:
    """[(student, file)]: each file given, and every (non-hidden) file in each folder given;
    a sub-folder's files are its student's. Raises ValueError when nothing is found."""
    found = []
    for given in map(Path, paths):
        if given.is_file():
            found.append((given.name.removesuffix(".ipynb"), given))
        elif given.is_dir():
            for f in sorted(p for p in given.iterdir() if not p.name.startswith(".")):
                if f.is_dir():
                    found += [(f"{f.name}_{g.name.removesuffix('.ipynb')}", g) for g in sorted(f.glob("*.ipynb"))]
                else:
                    found.append((f.name.removesuffix(".ipynb"), f))
        else:
            raise ValueError(f"no such file or folder: {given}")
    if not found:
        raise ValueError(f"no submissions in {', '.join(paths)}")
    return found


def grade(files: list[tuple[str, Path]], out: Path, table: dict, limits: Limits = Limits(),
          lesson: str | None = None) -> list[Row]:
    """Grade every (student, file); write out/grades.csv and out/feedback/<student>.md; return the rows."""
    rows = []
    for student, path in files:
        rows += grade_one(student, path, table, limits, lesson)
    write_csv(rows, out / "grades.csv")
    write_feedback(rows, out / "feedback")
    return rows


# ----------------------------------------------------------------------------- one submission

def exercises_of(lesson: str) -> list:
    """The lesson's code exercises (exercises.Exercise), in the order of the lesson."""
    from .. import exercises, graders  # noqa: F401  (graders fills exercises.EXERCISES)
    return [e for e in exercises.EXERCISES.values() if e.lesson == lesson]


def grade_one(student: str, path: Path, table: dict, limits: Limits, lesson: str | None) -> list[Row]:
    """The rows of one submission: every exercise of its lesson, graded or with the reason it was not."""
    from . import points
    cells, problem = read_cells(path, limits.max_size)
    lesson = lesson_of(cells or [], path.name) or lesson
    if lesson is None or not exercises_of(lesson):
        return [Row(student, "", "", 0.0, 0.0, "unreadable",
                    f"{path.name}: {problem or 'no exercise of any lesson found in it'}; nothing could be graded")]
    todo = exercises_of(lesson)
    results = {} if problem else run_isolated(cells, todo, limits)
    notes = results.pop("notes", [])
    rows = []
    for e in todo:
        got = results.get(e.key)
        if got is None:
            mistake, message = ("unreadable", f"{path.name}: {problem}") if problem else \
                ("timeout" if results.get("timed_out") else "crashed", results.get("why", "not graded"))
            got = {"mistake": mistake, "message": message}
        rows.append(Row(student, lesson, e.key, points.score(table, e.key, got["mistake"]),
                        points.score(table, e.key, ""), got["mistake"], got["message"]))
    if notes:
        rows[0].message += "".join(f"\n\nNote: {n}" for n in notes)
    return rows


def read_cells(path: Path, max_size: float) -> tuple[list[str] | None, str | None]:
    """The sources of the notebook's code cells, or (None, why it cannot be read)."""
    size = path.stat().st_size
    if size > max_size * 1e6:
        return None, f"the file is {size / 1e6:.0f} MB, more than the {max_size:g} MB a notebook may have"
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = [c for c in nb["cells"] if c.get("cell_type") == "code"]
        return ["".join(c["source"]) if isinstance(c["source"], list) else str(c["source"]) for c in cells], None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"not a notebook (not JSON: {err})"
    except (KeyError, TypeError, AttributeError):
        return None, "not a notebook (no list of cells in it)"


def lesson_of(cells: list[str], name: str) -> str | None:
    """The lesson whose exercise functions the cells define most often; else the file's NN_ prefix."""
    from .. import exercises, graders  # noqa: F401  (graders fills exercises.EXERCISES)
    defined = set(re.findall(r"^def\s+(\w+)\s*\(", "\n".join(cells), re.M))
    counts = {}
    for e in exercises.EXERCISES.values():
        counts[e.lesson] = counts.get(e.lesson, 0) + (e.function in defined)
    best = max(counts, key=counts.get, default=None)
    if best is not None and counts[best] > 0:
        return best
    prefix = re.match(r"(\d\d)_", name)
    return prefix.group(1) if prefix else None


def definitions(source: str) -> str | None:
    """The top-level imports, defs and classes of a cell (magics dropped), as code; None if it
    is not Python."""
    lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return None
    keep = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return ast.unparse(ast.Module([n for n in tree.body if isinstance(n, keep)], type_ignores=[]))


def run_isolated(cells: list[str], todo: list, limits: Limits) -> dict:
    """Grade `todo` on the cells' definitions in a child process (see the module docstring).
    Returns {exercise: {'mistake', 'message'}, 'notes': [...]} plus 'timed_out'/'why' when
    the child was stopped before grading everything."""
    nonce = secrets.token_hex(16)
    job = {"nonce": nonce, "exercise_timeout": limits.exercise_timeout,
           "exercises": [[e.key, e.function] for e in todo], "cells": []}
    notes = []
    for i, source in enumerate(cells, start=1):
        code = definitions(source)
        if code is None:
            notes.append(f"code cell {i} is not valid Python (a syntax error): it was left out")
        elif code:
            job["cells"].append([i, code])
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryDirectory(prefix="clead-grade-") as work:
        env.update(HOME=work, MPLCONFIGDIR=work, TMPDIR=work)
        proc = subprocess.Popen([sys.executable, "-m", "clead_edu.course.grade"], cwd=work, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True, preexec_fn=lambda: set_limits(limits))
        timed_out = False
        try:
            out, err = proc.communicate(json.dumps(job), timeout=limits.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
    results = {"notes": notes}
    for line in out.splitlines():
        if line.startswith(nonce):
            got = json.loads(line[len(nonce):])
            if "note" in got:
                notes.append(got["note"])
            else:
                results[got["exercise"]] = got
    if timed_out:
        results.update(timed_out=True, why=f"the submission ran past the {limits.timeout:g} s it may take "
                                           "(an endless loop?); this exercise was not graded")
    elif proc.returncode != 0:
        tail = err.strip().splitlines()[-1:] or ["no message"]
        results["why"] = f"the grading process stopped (exit status {proc.returncode}: {tail[0]}); " \
                         "this exercise was not graded"
    return results


def set_limits(limits: Limits) -> None:
    """In the child, before it starts: its address space (MiB) and the size of any file it writes (50 MB)."""
    import resource
    for what, value in ((resource.RLIMIT_AS, limits.memory * 2 ** 20), (resource.RLIMIT_FSIZE, 50 * 2 ** 20)):
        try:
            resource.setrlimit(what, (value, value))
        except (ValueError, OSError):          # a limit this system does not allow lowering: keep it
            pass


# ----------------------------------------------------------------------------- the child process

class Timeout(BaseException):
    """The per-exercise alarm (a BaseException, so that no `except Exception` in the grader or
    the student's code swallows it)."""


def alarm(seconds: float):
    def ring(signum, frame):
        raise Timeout()
    signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def child() -> None:
    """Run in the grading process: read the job from stdin, execute the definitions, grade each
    exercise, write one line per result ('<nonce>{json}') to stdout."""
    import contextlib
    import io
    job = json.loads(sys.stdin.read())
    real_out, nonce, seconds = sys.stdout, job.pop("nonce"), job["exercise_timeout"]

    def send(**what):
        print(nonce + json.dumps(what), file=real_out, flush=True)

    import torch
    torch.set_num_threads(1)
    from .. import exercises
    from .points import load
    table = load()
    space = {"__name__": "__main__"}
    exec("import torch\nimport torch.nn.functional as F\nimport numpy as np\nimport clead_edu as ce", space)
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        for index, code in job["cells"]:
            try:
                alarm(seconds)
                exec(compile(code, f"<code cell {index}>", "exec"), space)
            except Timeout:
                send(note=f"defining code cell {index} took more than {seconds:g} s: it was stopped")
            except BaseException as err:
                send(note=f"code cell {index} raised {type(err).__name__}: {err}")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        for key, function in job["exercises"]:
            fn = space.get(function)
            if not callable(fn):
                send(exercise=key, mistake="missing",
                     message=f"exercise {key}: no cell defines {function} (was the exercise's cell deleted or renamed?)")
                continue
            try:
                alarm(seconds)
                got = exercises.result(key, fn, table)
                send(exercise=key, mistake=got.mistake, message=got.message)
            except Timeout:
                send(exercise=key, mistake="timeout",
                     message=f"exercise {key}: {function} ran for more than {seconds:g} s (an endless loop?)")
            except BaseException as err:            # sys.exit() or the like in the student's code
                send(exercise=key, mistake="error", message=f"exercise {key}: {function} raised {type(err).__name__}")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)


# ----------------------------------------------------------------------------- the outputs

def write_csv(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**asdict(r), "points": f"{r.points:g}", "max_points": f"{r.max_points:g}"})


def safe_name(student: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", student) or "student"


def write_feedback(rows: list[Row], folder: Path) -> None:
    """One markdown file per student: the total, a table of the exercises, what each grader said."""
    folder.mkdir(parents=True, exist_ok=True)
    for student in dict.fromkeys(r.student for r in rows):
        mine = [r for r in rows if r.student == student]
        got, best = sum(r.points for r in mine), sum(r.max_points for r in mine)
        lines = [f"# Feedback for {student}", "", f"**{got:g} of {best:g} points.**", "",
                 "| lesson | exercise | points | |", "|---|---|---|---|"]
        lines += [f"| {r.lesson} | {r.exercise} | {r.points:g} / {r.max_points:g} | {r.mistake or 'right'} |"
                  for r in mine]
        for r in mine:
            lines += ["", f"## {r.exercise or 'the submission'}", "", r.message]
        (folder / f"{safe_name(student)}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    child()
