"""Student and teacher editions (`python -m clead_edu editions`, built by otter assign from the lessons):
the student edition holds no solution and stops at its first exercise with the grader's message;
the teacher edition is the lesson without otter's markup, so it passes its graders wherever the
lesson runs (tests/test_notebooks.py runs every lesson; one teacher edition runs here as well)."""
import json
import re
import shutil
import subprocess

import pytest
from conftest import REPO
from sealed import answer_lines, leaks
from sealed import solution_lines as secret_lines

from clead_edu.course import editions as E
from clead_edu.__main__ import main
from clead_edu.exercises import GRADERS

SOURCES = E.lessons(REPO / "notebooks")
SECRET = secret_lines(SOURCES) + answer_lines(SOURCES)    # the worked code and the answers of solutions/
GRADE_CALL = re.compile(r'ce\.exercises\.grade\("(\w+)", (\w+)\)')


def cells(path) -> list[dict]:
    return [{**c, "source": "".join(c["source"])} for c in json.loads(path.read_text())["cells"]]


def questions(path) -> dict[str, dict]:
    """{name: {'solution': code of the solution cell, 'id': its id, 'grader': code of the grader cell}}
    of a source notebook."""
    found, name, block = {}, None, None
    for c in cells(path):
        first = c["source"].split("\n")[0] if c["cell_type"] == "raw" else ""
        if first == "# BEGIN QUESTION":
            name = re.search(r"name: (\w+)", c["source"]).group(1)
            found[name] = {}
        elif first in ("# BEGIN SOLUTION", "# END SOLUTION", "# END QUESTION"):
            block = first
        elif c["cell_type"] == "code" and name and block == "# BEGIN SOLUTION":
            found[name].update(solution=c["source"], id=c.get("id"))
        elif c["cell_type"] == "code" and name and block == "# END SOLUTION":
            found[name]["grader"] = c["source"]
            name = block = None
    return found


def solution_lines(code: str) -> list[str]:
    """The lines between '# BEGIN SOLUTION' and '# END SOLUTION' (stripped, comments and blanks dropped)."""
    body = code.split("# BEGIN SOLUTION")[1].split("# END SOLUTION")[0]
    return [line.split("#")[0].strip() for line in body.splitlines() if line.split("#")[0].strip()]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return E.build_editions(tmp_path_factory.mktemp("editions"))


def test_every_lesson_has_code_exercises_graded_by_the_package():
    """Each lesson's exercises are graded by `ce.exercises.grade(name, ...)`, and the package's
    graders are exactly the lessons' exercises (registered when graders.py is imported, as
    `exercises.grade` does; not left to whichever test ran first)."""
    import clead_edu.graders  # noqa: F401
    names = []
    for path in SOURCES:
        qs = questions(path)
        assert qs, f"{path.name}: no code exercise"
        for name, q in qs.items():
            assert solution_lines(q["solution"]), (path.name, name)
            assert GRADE_CALL.fullmatch(q["grader"].strip()).group(1) == name, (path.name, q["grader"])
        names += list(qs)
    assert sorted(names) == sorted(GRADERS) and len(names) >= 7


def test_student_edition_has_no_solution_and_keeps_every_grader(built):
    for source, student in zip(SOURCES, built["student"]):
        code = {c.get("id"): c["source"] for c in cells(student) if c["cell_type"] == "code"}
        everything = "\n".join(code.values())
        for name, q in questions(source).items():
            assert q["grader"] in code.values()
            blank = code[q["id"]]
            assert [line.strip() for line in blank.splitlines()].count("...") == 1 and not [line for line in solution_lines(q["solution"]) if line in blank]
            assert q["solution"].split("# BEGIN SOLUTION")[1].split("# END SOLUTION")[0] not in everything
        assert "# BEGIN SOLUTION" not in everything and "otter" not in everything   # no markup, no otter at run time
        assert not [c for c in cells(student) if c["cell_type"] == "raw"]
        assert leaks(student.read_text(), SECRET) == [], student.name       # no line of any worked answer


def test_teacher_edition_is_the_lesson_without_the_markup(built):
    for source, teacher in zip(SOURCES, built["teacher"]):
        lesson = [(c.get("id"), c["cell_type"], c["source"]) for c in cells(source) if c["cell_type"] != "raw"]
        assert [(c.get("id"), c["cell_type"], c["source"]) for c in cells(teacher)] == lesson
        assert E.count_graders(teacher) == len(questions(source))
        tags = [c["metadata"].get("tags", []) for c in cells(teacher)]
        assert sum("parameters" in t for t in tags) == 1, "papermill's parameters cell must stay tagged"


def test_command_line_builds_one_lesson_and_rejects_an_unknown_one(tmp_path, capsys):
    assert main(["editions", "--out", str(tmp_path / "e"), "--only", "4", "--student-tree", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "1 lessons, 2 code exercises" in out and "publish it as branch 'main'" in out
    assert "a repository of its own, not the one of the sources" in out   # this repository's setting: main
    assert [p.name for p in (tmp_path / "e").rglob("*.ipynb")] == ["04_contrastive_learning.ipynb"] * 2
    assert [p.name for p in (tmp_path / "s" / "notebooks").iterdir()] == ["04_contrastive_learning.ipynb"]
    assert (tmp_path / "s" / "clead_edu" / "graders.py").is_file() and not (tmp_path / "s" / "solutions").exists()
    assert main(["editions", "--out", str(tmp_path), "--only", "09"]) == 2
    assert "no notebook numbered 09" in capsys.readouterr().err


def git_repository(root, files: list[str]):
    """A new git repository at root with these files of this one committed, pyproject.toml naming the
    course's address and student-branch "student", and one file left untracked."""
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, root / name)
    text = (REPO / "pyproject.toml").read_text().replace('student-branch = "main"', 'student-branch = "student"')
    (root / "pyproject.toml").write_text(text + '\n[project.urls]\nRepository = "https://github.com/uni/course"\n')
    (root / "untracked.txt").write_text("not committed")
    git = ["git", "-C", str(root), "-c", "user.name=test", "-c", "user.email=test@example.org"]
    for cmd in (["init", "-q", "-b", "main"], ["add", "pyproject.toml", *files], ["commit", "-q", "-m", "course"]):
        subprocess.run(git + cmd, check=True)


def test_student_tree_has_no_solution_and_points_colab_at_the_student_branch(built, tmp_path):
    """--student-tree: the tracked files but solutions/ and tests/, notebooks/ the student edition (no
    worked code), the badge opening and the set-up cell cloning [tool.clead_edu] student-branch."""
    if shutil.which("git") is None:
        pytest.skip("needs git")
    kept = ["README.md", "clead_edu/__init__.py", "tools/notebook_header.py", "tools/colab_setup.py"]
    git_repository(tmp_path / "course", kept + ["solutions/05_clead_defense.md", "tests/test_editions.py",
                                                [f"notebooks/{p.name}" for p in SOURCES][0]])
    tree = tmp_path / "tree"
    assert E.student_tree(tree, built["student"], tmp_path / "course") == "student"
    files = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
    assert files == sorted(kept + ["pyproject.toml"] + [f"notebooks/{p.name}" for p in SOURCES])
    for source in SOURCES:
        nb = cells(tree / "notebooks" / source.name)
        code = "\n".join(c["source"] for c in nb if c["cell_type"] == "code")
        for q in questions(source).values():
            assert q["solution"].split("# BEGIN SOLUTION")[1].split("# END SOLUTION")[0] not in code
        badge = f"colab.research.google.com/github/uni/course/blob/student/notebooks/{source.name}"
        assert badge in nb[0]["source"] and 'os.environ.get("CLEAD_EDU_BRANCH", "student")' in nb[1]["source"]
        assert '"https://github.com/uni/course"' in nb[1]["source"] and '"--branch", branch' in nb[1]["source"]
    readme = (tree / "README.md").read_text()
    assert "](solutions/" not in readme and "`solutions/` (instructors' copy only)" in readme
    assert "](notebooks/" in readme or "](docs/" in readme          # links into shipped folders stay
    with pytest.raises(ValueError, match="not empty"):
        E.student_tree(tree, built["student"], tmp_path / "course")


def test_the_real_student_tree_holds_no_line_of_any_worked_answer(built, tmp_path):
    """This repository's student tree, every text file: no line of a solution body, no answer of
    solutions/ (the package's own code is public: students call it)."""
    if shutil.which("git") is None:
        pytest.skip("needs git")
    E.student_tree(tmp_path / "tree", built["student"], REPO)
    files = [p for p in (tmp_path / "tree").rglob("*") if p.is_file() and p.suffix in (".py", ".md", ".ipynb",
                                                                                      ".toml", ".yml", ".txt", ".json")]
    assert len(files) > 50 and not (tmp_path / "tree" / "solutions").exists()
    assert {p.name: leaks(p.read_text(), SECRET) for p in files if leaks(p.read_text(), SECRET)} == {}


def test_student_markdown_keeps_no_link_into_a_folder_it_lacks():
    """Links into solutions/, tests/, .ci/ (also as ../solutions/) become their text; others stay."""
    text = ("See [the answers](../solutions/README.md), [CI](.ci/run), [tests](./tests/x.py), "
            "[lesson 1](notebooks/01_x.ipynb) and [docs](docs/design.md).")
    assert E.unlink_left_out(text) == (
        "See the answers (instructors' copy only), CI (instructors' copy only), tests (instructors' copy "
        "only), [lesson 1](notebooks/01_x.ipynb) and [docs](docs/design.md).")


def run(notebook, tmp_path):
    """Execute an edition's notebook (quick preset) in notebooks/ as the working folder; the
    executed copy is tmp_path/out.ipynb."""
    import papermill as pm
    return pm.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), cwd=str(REPO / "notebooks"),
                               parameters={"preset": "quick", "run_dir": str(tmp_path / "runs")},
                               kernel_name="python3", progress_bar=False)


@pytest.mark.notebook
def test_teacher_edition_passes_its_graders(built, tmp_path):
    nb = run(next(p for p in built["teacher"] if p.name.startswith("01")), tmp_path)
    out = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "exercise accuracy: right!" in out


@pytest.mark.notebook
def test_student_edition_stops_at_its_first_blank_with_the_graders_message(built, tmp_path):
    import papermill as pm
    with pytest.raises(pm.PapermillExecutionError) as err:
        run(next(p for p in built["student"] if p.name.startswith("04")), tmp_path)
    assert err.value.ename == "NotWrittenYet"
    assert "exercise similarities: not written yet: replace the ... in my_similarities" in err.value.evalue
    ran = json.loads((tmp_path / "out.ipynb").read_text())["cells"]
    failed = [c.get("id") for c in ran if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert failed == ["ex-similarities-grade"]


def test_the_site_leaves_out_the_editions_markup():
    import nbformat

    from clead_edu.course.site import for_reading
    nb = nbformat.read(REPO / "notebooks" / "04_contrastive_learning.ipynb", as_version=4)
    assert any(c.cell_type == "raw" for c in nb.cells)
    assert not [c for c in for_reading(nb).cells if c.cell_type == "raw"]
