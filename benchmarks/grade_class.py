"""A sample class: 13 lesson-02 submissions made from the source notebook (right, each named
mistake, blank, the package's own function, an endless loop, a deleted cell, broken JSON),
graded with `python -m clead_edu grade`; prints the CSV and the wall time.

    python benchmarks/grade_class.py [--out runs/grade_class]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "notebooks" / "02_attacks.ipynb"
MARK = "    # BEGIN SOLUTION\n"


def body(fn: str, old: str = "", new: str = "") -> str:
    """The worked body of exercise `fn` (from its BEGIN SOLUTION line), with `old` replaced by `new`."""
    cell = next(c for c in nbformat.read(SOURCE, 4).cells if c.get("id") == f"ex-{fn}-solution")
    text = cell.source[cell.source.index(MARK):]
    assert old in text, (fn, old)
    return text.replace(old, new)


# student: ({exercise: body}, cell ids to delete); None = the file is broken JSON
CLASS = {
    "ada": ({}, ()),
    "ben": ({}, ()),
    "cy": ({"fgsm": body("fgsm", "model.eval()", "pass")}, ()),
    "dee": ({"fgsm": body("fgsm", "x + eps", "x - eps")}, ()),
    "eli": ({"fgsm": body("fgsm", ".clamp(0, 1)")}, ()),
    "fay": ({"fgsm": body("fgsm", ".detach()")}, ()),
    "gus": ({"pgd_step": body("pgd_step", ".clamp(-eps, eps)")}, ()),
    "hal": ({"pgd_step": body("pgd_step", "grad.sign()", "grad")}, ()),
    "ivy": ({"fgsm": "    ...\n", "pgd_step": "    ...\n"}, ()),
    "jon": ({"fgsm": "    return ce.fgsm(model, x, y, eps=eps)\n"}, ()),
    "kim": ({"pgd_step": "    while True:\n        pass\n"}, ()),
    "lou": ({}, ("ex-pgd_step-solution",)),
    "max": None,
}


def write_class(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for student, spec in CLASS.items():
        if spec is None:
            (folder / f"{student}.ipynb").write_text('{"cells": [{"cell_type": "code", "source": ')
            continue
        bodies, drop = spec
        nb = nbformat.read(SOURCE, 4)
        for cell in nb.cells:
            for fn, text in bodies.items():
                if cell.get("id") == f"ex-{fn}-solution":
                    cell.source = cell.source[:cell.source.index(MARK)] + text
        nb.cells = [c for c in nb.cells if c.get("id") not in drop]
        nbformat.write(nb, folder / f"{student}.ipynb")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/grade_class")
    out = Path(ap.parse_args().out)
    write_class(out / "submissions")
    cmd = [sys.executable, "-m", "clead_edu", "grade", str(out / "submissions"), "--out", str(out / "grades"),
           "--timeout", "120", "--exercise-timeout", "10", "--lesson", "02"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - start
    print("$ " + " ".join(["python", *cmd[1:]]))
    print((out / "grades" / "grades.csv").read_text())
    print(f"{len(CLASS)} submissions graded in {wall:.0f} s wall time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
