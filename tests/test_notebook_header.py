"""tools/notebook_header.py: every notebook opens with the Colab badge and set-up cell, and
running the script again changes nothing."""
import importlib.util
import os
import shutil
import subprocess
import sys
import types

import nbformat
import pytest
from conftest import REPO

spec = importlib.util.spec_from_file_location("notebook_header", REPO / "tools" / "notebook_header.py")
H = importlib.util.module_from_spec(spec)
spec.loader.exec_module(H)


def test_every_notebook_has_the_header_first_and_keeps_its_parameters_cell():
    """In the repository: badge then set-up cell first, the current text (--check passes), one
    parameters cell after them (papermill injects its values after that cell)."""
    assert H.main(["--check"]) == 0
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        assert [c.id for c in cells[:2]] == [H.BADGE_ID, H.SETUP_ID], path.name
        assert cells[0].source == H.badge_source(path.name, H.repo_url(), H.student_branch())
        tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and tagged[0] > 1, path.name


def test_script_is_idempotent(tmp_path):
    """Header cells removed (or stale) are written once; a second run changes no byte."""
    for path in sorted((REPO / "notebooks").glob("*.ipynb"))[:3]:
        nb = nbformat.read(path, as_version=4)
        nb.cells = [c for c in nb.cells if c.id not in (H.BADGE_ID, H.SETUP_ID)]
        nb.cells.insert(1, nbformat.v4.new_markdown_cell("old badge", id=H.BADGE_ID))   # stale, misplaced
        nbformat.write(nb, tmp_path / path.name)
    assert H.main(["--check", "--notebooks", str(tmp_path)]) == 1
    assert H.main(["--notebooks", str(tmp_path)]) == 0
    first = {p.name: p.read_bytes() for p in tmp_path.glob("*.ipynb")}
    assert H.main(["--notebooks", str(tmp_path)]) == 0
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.ipynb")} == first
    for name in first:
        cells = nbformat.read(tmp_path / name, as_version=4).cells
        ids = [c.id for c in cells]
        assert ids[:2] == [H.BADGE_ID, H.SETUP_ID] and ids.count(H.BADGE_ID) == 1 and ids.count(H.SETUP_ID) == 1
        assert len(cells) == len(nbformat.read(REPO / "notebooks" / name, as_version=4).cells)


def setup_cell(url: str = "") -> str:
    return H.setup_source(url)


def on_colab(monkeypatch, importable: bool):
    """A kernel without clead_edu where google.colab is in sys.modules (Colab's kernel) or only importable."""
    monkeypatch.setitem(sys.modules, "clead_edu", None)          # import clead_edu -> ImportError
    monkeypatch.delenv("CLEAD_EDU_REPOSITORY", raising=False)
    monkeypatch.delenv("CLEAD_EDU_COLAB_DIR", raising=False)
    if importable:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: object() if n == "google.colab" else real(n, *a))
    else:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))


def test_setup_cell_does_nothing_where_clead_edu_imports(monkeypatch):
    calls = []
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    cwd = os.getcwd()
    exec(setup_cell("https://github.com/uni/course"), {})
    assert calls == [] and os.getcwd() == cwd


def test_setup_cell_off_colab_without_the_package_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "clead_edu", None)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    with pytest.raises(ImportError, match="pip install -r requirements.txt -e ."):
        exec(setup_cell("https://github.com/uni/course"), {})


@pytest.mark.parametrize("importable", [False, True], ids=["imported", "importable"])
def test_setup_cell_on_colab_with_the_address_unset_says_what_to_set(monkeypatch, importable):
    """No git call (no git error): a message naming [project.urls] Repository and the override."""
    calls = []
    on_colab(monkeypatch, importable)
    monkeypatch.setattr(subprocess, "run", lambda cmd, **k: calls.append(cmd))
    with pytest.raises(RuntimeError, match=r"set \[project.urls\] Repository in pyproject.toml.*CLEAD_EDU_REPOSITORY"):
        exec(setup_cell(""), {})
    assert calls == []


def test_setup_cell_on_colab_clones_sparsely_then_runs_the_clones_setup(monkeypatch, tmp_path):
    """The address from the cell (or CLEAD_EDU_REPOSITORY), a sparse clone without solutions/ into
    CLEAD_EDU_COLAB_DIR, then prepare() from that clone's tools/colab_setup.py with DRIVE."""
    calls, home = [], tmp_path / "clead_edu"
    on_colab(monkeypatch, importable=True)
    monkeypatch.setenv("CLEAD_EDU_COLAB_DIR", str(home))

    def run(cmd, **k):        # "git clone" makes the folder, with a tools/colab_setup.py that logs its calls
        calls.append(cmd)
        (home / "tools").mkdir(parents=True, exist_ok=True)
        (home / "tools" / "colab_setup.py").write_text(
            "def prepare(home, drive):\n    open(home + '/prepared', 'a').write(f'{home} {drive}\\n')\n")
    monkeypatch.setattr(subprocess, "run", run)
    exec(setup_cell("https://github.com/uni/course"), {})
    clone, sparse = calls
    assert clone[:2] == ["git", "clone"] and "--sparse" in clone and clone[-2:] == ["https://github.com/uni/course", str(home)]
    assert clone[clone.index("--branch") + 1] == "main"
    assert sparse[:5] == ["git", "-C", str(home), "sparse-checkout", "set"] and "solutions" not in sparse
    assert set(H.CHECKOUT) == set(sparse[5:]) and {"clead_edu", "notebooks"} <= set(sparse[5:])
    assert (home / "prepared").read_text() == f"{home} False\n"
    exec(setup_cell("https://github.com/uni/course").replace("DRIVE = False", "DRIVE = True"), {})
    assert len(calls) == 2 and (home / "prepared").read_text() == f"{home} False\n{home} True\n"   # no new clone


def test_the_repository_override_is_cloned_into_a_folder_not_named_like_the_package(monkeypatch):
    """By default into /content/clead-edu: Colab's working directory is /content, where a folder
    "clead_edu" would be what `import clead_edu` finds."""
    calls = []
    on_colab(monkeypatch, importable=False)
    monkeypatch.setenv("CLEAD_EDU_REPOSITORY", "file:///srv/course")
    monkeypatch.setattr(subprocess, "run", lambda cmd, **k: calls.append(cmd))
    with pytest.raises(FileNotFoundError):      # nothing was cloned, so no tools/colab_setup.py
        exec(setup_cell(""), {})
    assert calls[0][-2:] == ["file:///srv/course", "/content/clead-edu"]


def with_repository(tmp_path, monkeypatch, url: str | None, branch: str | None = None):
    text = (REPO / "pyproject.toml").read_text()
    if url is not None:
        text += f'\n[project.urls]\nRepository = "{url}"\n'
    if branch is not None:
        text = text.replace('student-branch = "main"', f'student-branch = "{branch}"')
    (tmp_path / "pyproject.toml").write_text(text)
    monkeypatch.setattr(H, "ROOT", tmp_path)


def test_repository_url_comes_from_pyproject_when_set(tmp_path, monkeypatch):
    with_repository(tmp_path, monkeypatch, None)
    assert H.repo_url() == "" and "not set" in H.badge_source("x.ipynb", "")
    assert "colab.research.google.com" not in H.badge_source("x.ipynb", "")
    assert 'CLEAD_EDU_REPOSITORY", "")' in H.setup_source("")
    with_repository(tmp_path, monkeypatch, "https://github.com/uni/course.git")
    assert H.repo_url() == "https://github.com/uni/course"
    assert "colab.research.google.com/github/uni/course/blob/main/notebooks/x.ipynb" in H.badge_source("x.ipynb", H.repo_url())
    assert '"https://github.com/uni/course")' in H.setup_source(H.repo_url())


def test_the_student_branch_from_pyproject_goes_into_the_badge_and_the_clone(tmp_path, monkeypatch):
    """[tool.clead_edu] student-branch: the badge opens that branch's notebooks/ and the set-up cell
    clones it (CLEAD_EDU_BRANCH overrides it); without it, main."""
    with_repository(tmp_path, monkeypatch, "https://github.com/uni/course", "student")
    url, branch = H.repo_url(), H.student_branch()
    assert branch == "student"
    assert "colab.research.google.com/github/uni/course/blob/student/notebooks/x.ipynb" in H.badge_source("x.ipynb", url, branch)
    for override, expected in ((None, "student"), ("main", "main")):
        calls = []
        on_colab(monkeypatch, importable=False)
        if override:
            monkeypatch.setenv("CLEAD_EDU_BRANCH", override)
        monkeypatch.setattr(subprocess, "run", lambda cmd, **k: calls.append(cmd))
        with pytest.raises(FileNotFoundError):      # nothing was cloned, so no tools/colab_setup.py
            exec(H.setup_source(url, branch), {})
        assert calls[0][calls[0].index("--branch") + 1] == expected
    (tmp_path / "pyproject.toml").write_text((tmp_path / "pyproject.toml").read_text().replace("student-branch", "other"))
    assert H.student_branch() == "main"


@pytest.mark.parametrize("branch", ["two words", "../up", "ends/", "-flag"])
def test_a_student_branch_git_would_refuse_is_refused(tmp_path, monkeypatch, capsys, branch):
    with_repository(tmp_path, monkeypatch, "https://github.com/uni/course", branch)
    shutil.copy(REPO / "notebooks" / "01_standard_training.ipynb", tmp_path)
    before = (tmp_path / "01_standard_training.ipynb").read_bytes()
    assert H.main(["--notebooks", str(tmp_path)]) == 2
    assert "student-branch" in capsys.readouterr().err
    assert (tmp_path / "01_standard_training.ipynb").read_bytes() == before


@pytest.mark.parametrize("url", ["https://github.com/OW" + "NER/clead_edu", "https://github.com/<user>/<repository>",
                                 "https://gitlab.com/uni/course", "git@github.com:uni/course.git"])
def test_a_placeholder_or_non_github_address_is_refused(tmp_path, monkeypatch, capsys, url):
    """The tool writes nothing and exits 2 with the reason (a notebook would otherwise link nowhere)."""
    with_repository(tmp_path, monkeypatch, url)
    shutil.copy(REPO / "notebooks" / "01_standard_training.ipynb", tmp_path)
    before = (tmp_path / "01_standard_training.ipynb").read_bytes()
    assert H.main(["--notebooks", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert ("placeholder" in err) == ("<" in url or "github.com/O" in url) and "Repository" in err
    assert (tmp_path / "01_standard_training.ipynb").read_bytes() == before


def test_no_file_in_the_repository_names_the_placeholder():
    """The word that marked the unset address appears only in the tool's placeholder check."""
    word = "OW" + "NER"
    if not (REPO / ".git").exists():
        pytest.skip("needs the repository's git checkout")
    hits = subprocess.run(["git", "grep", "-l", "--untracked", word], cwd=REPO, capture_output=True, text=True).stdout.split()
    assert hits in ([], ["tools/notebook_header.py"]), hits
    tool = (REPO / "tools" / "notebook_header.py").read_text()
    lines = [line for line in tool.splitlines() if word in line]
    assert len(lines) == 1 and lines[0].endswith("# the placeholder check"), lines
