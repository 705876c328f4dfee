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
        assert f"blob/main/notebooks/{path.name})" in cells[0].source and "colab-badge.svg" in cells[0].source
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


def setup_cell() -> str:
    return H.setup_source(H.repo_url())


def test_setup_cell_does_nothing_where_clead_edu_imports(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    cwd = os.getcwd()
    exec(setup_cell(), {})
    assert calls == [] and os.getcwd() == cwd


def test_setup_cell_off_colab_without_the_package_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "clead_edu", None)          # import clead_edu -> ImportError
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    with pytest.raises(ImportError, match="pip install -r requirements.txt -e ."):
        exec(setup_cell(), {})


def test_setup_cell_on_colab_installs_without_touching_torch(monkeypatch):
    """On Colab (simulated): clone, `pip install --no-deps` the package, then its other
    requirements, none of them torch or torchvision; then work inside the clone's notebooks/."""
    calls, dirs = [], []
    monkeypatch.setitem(sys.modules, "clead_edu", None)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", lambda cmd, **k: calls.append(cmd))
    monkeypatch.setattr(os, "chdir", dirs.append)
    monkeypatch.setattr(os.path, "isdir", lambda p: bool(calls))    # the clone exists once cloned
    exec(setup_cell(), {})
    clone, package, others = calls
    assert clone[:2] == ["git", "clone"] and clone[-2:] == [H.repo_url(), "/content/clead_edu"]
    assert package[-2:] == ["--no-deps", "/content/clead_edu"]
    assert "umap-learn>=0.5.5" in others and not any(a.split(">")[0].split("=")[0] in ("torch", "torchvision")
                                                     for a in others)
    assert dirs == ["/content/clead_edu/notebooks"]


def test_setup_cell_on_colab_after_a_restart_only_changes_folder(monkeypatch):
    """Installed already (a restarted Colab runtime): no install, but back into the clone's notebooks/."""
    calls, dirs = [], []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", lambda cmd, **k: calls.append(cmd))
    monkeypatch.setattr(os, "chdir", dirs.append)
    monkeypatch.setattr(os.path, "isdir", lambda p: p == "/content/clead_edu")
    exec(setup_cell(), {})
    assert calls == [] and dirs == ["/content/clead_edu/notebooks"]


def test_repository_url_comes_from_pyproject_when_set(tmp_path, monkeypatch):
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    monkeypatch.setattr(H, "ROOT", tmp_path)
    assert H.repo_url() == H.REPO_URL
    text = (tmp_path / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(text.replace(
        "[project.optional-dependencies]", '[project.urls]\nRepository = "https://github.com/uni/course.git"\n\n'
        "[project.optional-dependencies]"))
    assert H.repo_url() == "https://github.com/uni/course"
    assert "colab.research.google.com/github/uni/course/blob/main/notebooks/x.ipynb" in H.badge_source("x.ipynb", H.repo_url())
