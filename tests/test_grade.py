"""`python -m clead_edu grade`: a folder of lesson-02 submissions made here from the source
notebook (right, two named mistakes in a notebook whose cells are reordered, blank, deleted cell, endless loop, a loop that ignores the
per-exercise alarm, an 8 GiB tensor, a 60 MB file written, malformed JSON, a huge file) gives the expected CSV rows and feedback, in one
run that does not stop; a submission writes nothing outside its temporary folder."""
import csv
import json

import nbformat
import pytest
from conftest import REPO

from clead_edu.__main__ import main
from clead_edu.course import grade as G
from clead_edu.course import points

SOURCE = REPO / "notebooks" / "02_attacks.ipynb"
BODY = "    # BEGIN SOLUTION\n"


def submission(path, fgsm=None, pgd_step=None, extra_cells=(), drop=(), reverse=False):
    """The source notebook with the fgsm / pgd_step solution bodies replaced (None: kept, the
    right answer), the cells with ids in `drop` deleted, `extra_cells` (code) appended, and with
    reverse=True its cells in reverse order."""
    nb = nbformat.read(SOURCE, 4)
    for cell in nb.cells:
        body = {"ex-fgsm-solution": fgsm, "ex-pgd_step-solution": pgd_step}.get(cell.get("id"))
        if body is not None:
            head = cell.source[:cell.source.index(BODY)]
            cell.source = head + body
    nb.cells = [c for c in nb.cells if c.get("id") not in drop]
    nb.cells += [nbformat.v4.new_code_cell(code) for code in extra_cells]
    nb.cells = nb.cells[::-1] if reverse else nb.cells
    nbformat.write(nb, path)


def right_body(fn: str) -> str:
    cell = next(c for c in nbformat.read(SOURCE, 4).cells if c.get("id") == f"ex-{fn}-solution")
    return cell.source[cell.source.index(BODY):]


LOOP = "    while True:\n        pass\n"
DEAF = ("    import signal\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)   # ignores the exercise's alarm\n"
        "    while True:\n        pass\n")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder, out = tmp_path_factory.mktemp("submissions"), tmp_path_factory.mktemp("grades")
    submission(folder / "ada.ipynb")
    submission(folder / "ben.ipynb", fgsm=right_body("fgsm").replace("model.eval()", "pass"),
               pgd_step=right_body("pgd_step").replace(".clamp(-eps, eps)", ""), reverse=True)
    submission(folder / "cy.ipynb", fgsm="    ...\n", pgd_step="    return torch.empty(2 ** 31)   # 8 GiB\n")
    submission(folder / "dee.ipynb", fgsm=LOOP, drop={"ex-pgd_step-solution"},
               extra_cells=["import not_a_module_anywhere",
                            "def spill(f=open('spilled.txt', 'w')):\n    pass",
                            "def fill(f=open('big.bin', 'wb').write(b'0' * 60_000_000)):\n    pass"])
    submission(folder / "eve.ipynb", fgsm=DEAF)
    (folder / "fay.ipynb").write_text('{"cells": [')
    (folder / "gus.ipynb").write_text(json.dumps({"cells": [], "pad": "x" * 1_200_000}))
    limits = G.Limits(timeout=40, exercise_timeout=4, max_size=1.0)
    rows = G.grade(G.find_submissions([str(folder)]), out, points.load(), limits, lesson="02")
    return rows, out


def test_the_csv_has_the_expected_grade_for_every_submission(graded, tmp_path):
    _, out = graded
    table = points.load()
    full, got = table[("fgsm", "right")], {}
    with (out / "grades.csv").open() as f:
        for row in csv.DictReader(f):
            assert row["max_points"] == f"{table[(row['exercise'], 'right')]:g}"
            got[row["student"], row["exercise"]] = (row["mistake"], float(row["points"]))
    assert got == {
        ("ada", "fgsm"): ("", full), ("ada", "pgd_step"): ("", table[("pgd_step", "right")]),
        ("ben", "fgsm"): ("train-mode", table[("fgsm", "train-mode")]),
        ("ben", "pgd_step"): ("no-projection", table[("pgd_step", "no-projection")]),
        ("cy", "fgsm"): ("not-written", 0), ("cy", "pgd_step"): ("error", 0),
        ("dee", "fgsm"): ("timeout", 0), ("dee", "pgd_step"): ("missing", 0),
        ("eve", "fgsm"): ("timeout", 0), ("eve", "pgd_step"): ("timeout", 0),
        ("fay", "fgsm"): ("unreadable", 0), ("fay", "pgd_step"): ("unreadable", 0),
        ("gus", "fgsm"): ("unreadable", 0), ("gus", "pgd_step"): ("unreadable", 0)}


def test_feedback_names_the_mistake_and_the_reason(graded):
    _, out = graded
    fb = {p.stem: p.read_text() for p in (out / "feedback").glob("*.md")}
    assert set(fb) == {"ada", "ben", "cy", "dee", "eve", "fay", "gus"}
    assert "**6 of 6 points.**" in fb["ada"]
    assert "the gradient was taken in train mode" in fb["ben"] and "leaves the eps-ball" in fb["ben"]
    assert "not written yet" in fb["cy"] and "can't allocate memory" in fb["cy"]      # the memory limit
    assert "raised OSError: [Errno 27] File too large" in fb["dee"]                       # the file size limit
    assert "my_fgsm ran for more than 4 s" in fb["dee"] and "no cell defines pgd_step" in fb["dee"]
    assert "raised ModuleNotFoundError" in fb["dee"]
    assert "ran past the 40 s" in fb["eve"]
    assert "not a notebook (not JSON" in fb["fay"] and "more than the 1 MB" in fb["gus"]


def test_a_submission_writes_only_in_its_own_temporary_folder(graded):
    """dee's notebook opens 'spilled.txt' for writing: in the child's working folder, which is gone."""
    assert not (REPO / "spilled.txt").exists() and not list(REPO.glob("**/spilled.txt"))


def test_the_command_line(tmp_path, capsys):
    nb = tmp_path / "in" / "zoe.ipynb"
    nb.parent.mkdir()
    nb.write_text("not json")
    assert main(["grade", str(nb.parent), "--out", str(tmp_path / "out"), "--lesson", "01"]) == 0
    assert "graded 1 submission(s)" in capsys.readouterr().out
    assert (tmp_path / "out" / "grades.csv").read_text().splitlines()[1:] == [
        "zoe,01,accuracy,0,2,unreadable", "zoe,01,cross_entropy,0,2,unreadable"]
    assert main(["grade", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_the_lesson_is_told_by_the_functions_defined():
    cells = ["def my_pair_distance(model, x, x_adv):\n    ...", "x = 1"]
    assert G.lesson_of(cells, "whatever.ipynb") == "07"
    assert G.lesson_of(["x = 1"], "03_adversarial_training.ipynb") == "03"
    assert G.lesson_of(["x = 1"], "notes.ipynb") is None


def test_only_definitions_are_kept_from_a_cell():
    code = G.definitions("%matplotlib inline\nimport torch\nmodel = train_for_hours()\n"
                         "def f(x):\n    return x\nprint(f(1))")
    assert code == "import torch\n\ndef f(x):\n    return x"
    assert G.definitions("def broken(:\n") is None


def test_every_lesson_has_two_graded_exercises_registered_as_its_notebook_calls_them():
    """The lesson and function of each exercise (used to grade a submission) are those of the
    notebook's grade cell `ce.exercises.grade("key", function)`."""
    import re
    from clead_edu.exercises import EXERCISES
    seen = {}
    for path in sorted((REPO / "notebooks").glob("0*_*.ipynb")):
        for cell in nbformat.read(path, 4).cells:
            for key, function in re.findall(r'ce\.exercises\.grade\("(\w+)", (\w+)\)', cell.source):
                assert (EXERCISES[key].lesson, EXERCISES[key].function) == (path.name[:2], function)
                seen.setdefault(path.name[:2], []).append(key)
    assert set(seen) == {f"0{i}" for i in range(1, 9)} and all(len(keys) >= 2 for keys in seen.values()), seen
    assert sorted(k for keys in seen.values() for k in keys) == sorted(EXERCISES)
