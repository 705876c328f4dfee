"""Google Colab, played offline: the notebooks' set-up cell on a Python that has Colab's packages.

Colab publishes its runtime's packages (github.com/googlecolab/backend-info, pip-freeze.gpu.txt).
COLAB below is tests/colab_packages.txt: the versions that matter here from its commit a724079
(2026-08-19, "Upgrade to Python 3.13": Python 3.13.15, numpy 2.1.3, numba 0.61.2, pandas 2.2.3,
tornado 6.5.7, packaging 26.3, torch 2.11.0+cu128; that file says which versions were read from
it). `python tools/colab_diff.py pip-freeze.gpu.txt` says what moved since. Colab has umap-learn
but not pyautoattack, so the set-up cell must install pyautoattack and nothing else.

The fast tests check tools/colab_setup.py and tools/colab_diff.py against these versions. The slow
one (marker `colab`) builds a fresh virtual environment with them, a stand-in `google.colab` (its
drive.mount makes a folder) and a Jupyter kernel, then executes notebooks 01, 02 and 07 in the
quick preset (on the photos, with the pretrained models: the environment is under test here, not
training) with papermill, their set-up cell as shipped cloning this working tree from a temporary
repository (CLEAD_EDU_REPOSITORY): 01 in a new runtime; 02 in the same runtime with DRIVE = True
(as a student sets it), so 01's model moves to the stand-in Drive; 07 in a new runtime (the clone
deleted, what the set-up cell installed removed) with DRIVE = True, reusing that model. It records
`pip freeze` before and after each notebook and fails if any installed package changed version.

What differs from Colab: Python 3.11 (the Python running the tests; Colab has 3.13.15: the
package's code needs 3.10, and every pinned version here has wheels for both), and torch
2.14.1 / torchvision 0.29.1, this environment's own, linked into the new environment rather than
copied (6 GB with their CUDA libraries; Colab has 2.11.0 / 0.26.0, checked separately: README,
Google Colab), with the setuptools that torch version requires (Colab has 75.2.0). llvmlite is
left to pip (the one numba 0.61.2 needs). Needs git and PyPI (about 50 small packages); caches
nothing between runs.
"""
import importlib.metadata as md
import json
import os
import runpy
import shutil
import subprocess
import sys
import time
import tomllib
import types
from pathlib import Path

import nbformat
import pytest
import torch
from conftest import REPO
from packaging.utils import canonicalize_name

S = runpy.run_path(str(REPO / "tools" / "colab_setup.py"))
D = runpy.run_path(str(REPO / "tools" / "colab_diff.py"))
COLAB = D["read_freeze"]((REPO / "tests" / "colab_packages.txt").read_text())
STAND_INS = ("torch", "torchvision", "setuptools")   # this environment's versions (module docstring)
DEPENDENCIES = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]


def test_pyproject_accepts_colabs_versions_and_lacks_only_pyautoattack():
    """No requirement asks Colab to upgrade what it has (ipython>=8 did); only pyautoattack is new."""
    assert S["unmet"](DEPENDENCIES, COLAB) == (["pyautoattack>=0.2,<0.3"], [])


def test_the_list_is_colabs_of_2026_08_19():
    """The versions read from Colab's list of 2026-08-19 (the ones that moved, and the pins kept)."""
    assert {n: COLAB[n] for n in ("numpy", "numba", "pandas", "tornado", "packaging", "umap-learn")} == {
        "numpy": "2.1.3", "numba": "0.61.2", "pandas": "2.2.3", "tornado": "6.5.7", "packaging": "26.3",
        "umap-learn": "0.5.12"}
    assert (COLAB["torch"], COLAB["ipython"], COLAB["ipywidgets"], COLAB["notebook"]) == (
        "2.11.0+cu128", "7.34.0", "7.7.1", "6.5.7")


def test_colab_diff_says_what_moved(tmp_path):
    """tools/colab_diff.py: a moved version and a package gone are named, exit 1; the same list, exit 0.
    'name @ url' lines, comments and options are read as pip writes them."""
    tested = tmp_path / "tested.txt"
    tested.write_text("# tested\nnumpy==2.0.2\nIPython==7.34.0\numap_learn==0.5.12\ngoogle-colab==1.0.0\n")
    fresh = tmp_path / "pip-freeze.gpu.txt"
    fresh.write_text("# Do not modify\n--index-url x\nipython==7.34.0\nnumpy==2.1.3\n"
                     "google-colab @ file:///colabtools/dist/google_colab-1.0.0.tar.gz\ntorch==2.11.0\n")
    run = [sys.executable, str(REPO / "tools" / "colab_diff.py"), str(fresh), "--tested", str(tested)]
    res = subprocess.run(run, capture_output=True, text=True)
    assert res.returncode == 1, res.stderr
    assert res.stdout.splitlines() == ["numpy 2.0.2 -> 2.1.3", "umap-learn 0.5.12 -> (gone)",
                                       "google-colab 1.0.0 -> file:///colabtools/dist/google_colab-1.0.0.tar.gz"]
    res = subprocess.run(run[:2] + [str(tested), "--tested", str(tested)], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("nothing moved: the 4 packages")


def test_requires_python_is_what_the_package_needs():
    """requires-python admits 3.10, the oldest Python the package's code runs on: no module of
    the package imports a standard module newer than that (tomllib, 3.11, is for the tools and tests)."""
    import ast
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10"
    newer = {"tomllib": "3.11", "wsgiref.types": "3.11"}
    for path in (REPO / "clead_edu").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not set(names) & set(newer), f"{path.name} imports {set(names) & set(newer)} (Python 3.11+)"


def test_unmet_names_a_requirement_colab_would_have_to_upgrade():
    missing, conflicts = S["unmet"](["ipython>=8", "torch>=2.2", "absent-pkg", "numpy<2"], COLAB)
    assert missing == ["absent-pkg"] and conflicts == ["ipython>=8 (have 7.34.0)", "numpy<2 (have 2.1.3)"]


def test_constraints_pin_every_installed_version():
    text = S["constraints"]({**COLAB, "python-apt": "0.0.0", "odd": "1.0-foo-bar"})
    assert "torch==2.11.0+cu128\n" in text and "ipython==7.34.0\n" in text and "python-apt==0.0.0" in text
    assert "odd" not in text and len(text.splitlines()) == len(COLAB) + 1


def fake_pip(monkeypatch, have):
    """tools/colab_setup.py with `have` installed and pip recorded, not run (with the constraints it read)."""
    calls = []

    def run(cmd, **kw):
        c = cmd[cmd.index("--constraint") + 1] if "--constraint" in cmd else None
        calls.append((cmd[5:], Path(c).read_text() if c else None))
    monkeypatch.setitem(S["install"].__globals__, "installed", lambda: dict(have))
    monkeypatch.setattr(subprocess, "run", run)
    return calls


def test_install_adds_what_is_missing_with_everything_installed_pinned(monkeypatch):
    calls = fake_pip(monkeypatch, COLAB)
    assert S["install"](str(REPO)) == ["pyautoattack>=0.2,<0.3"]
    (missing, pins), (package, _) = calls
    assert package == ["--no-warn-script-location", "--no-deps", "--no-build-isolation", str(REPO)]
    assert missing[-1] == "pyautoattack>=0.2,<0.3" and pins == S["constraints"](COLAB)


def test_install_stops_before_pip_when_colab_would_need_an_upgrade(monkeypatch, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\ndependencies = ["ipython>=8", "tqdm"]\n')
    calls = fake_pip(monkeypatch, COLAB)
    with pytest.raises(RuntimeError, match=r"ipython>=8 \(have 7.34.0\)"):
        S["install"](str(tmp_path))
    assert calls == []


def test_drive_keeps_the_checkpoints_and_what_was_trained_before(monkeypatch, tmp_path):
    """runs/ becomes a link into MyDrive/clead_edu_runs; a checkpoint already in runs/ moves along."""
    drive = types.SimpleNamespace(mount=lambda p: os.makedirs(f"{p}/MyDrive", exist_ok=True))
    monkeypatch.setitem(sys.modules, "google.colab", types.SimpleNamespace(drive=drive))
    home = tmp_path / "content" / "clead_edu"
    (home / "runs" / "m").mkdir(parents=True)
    (home / "runs" / "m" / "model.pt").write_text("weights")
    for _ in range(2):   # the cell run twice: the same link
        folder = S["use_drive"](str(home), str(tmp_path / "content" / "drive"))
    assert folder == str(tmp_path / "content" / "drive" / "MyDrive" / "clead_edu_runs")
    assert (home / "runs").is_symlink() and (Path(folder) / "m" / "model.pt").read_text() == "weights"


def test_gpu_note_names_the_gpu_or_says_how_to_get_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "choose Runtime > Change runtime type > GPU (T4)" in S["gpu_note"]()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "Tesla T4")
    assert S["gpu_note"]() == "GPU: Tesla T4"


@pytest.mark.parametrize("init", [False, True], ids=["namespace folder", "package"])
def test_a_folder_named_like_the_package_is_not_an_installed_package(monkeypatch, tmp_path, init):
    """On Colab the working directory is /content: a clone in /content/clead_edu would import as
    an empty namespace package and the set-up would skip the installation."""
    (tmp_path / "clead_edu").mkdir()
    if init:
        (tmp_path / "clead_edu" / "__init__.py").write_text("")
    monkeypatch.delitem(sys.modules, "clead_edu")
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    assert S["is_installed"]() is init


# ---- the slow test: a fresh virtual environment with Colab's packages -------------------------

def link_torch(dest: Path) -> None:
    """Symlinks to this environment's torch, torchvision and their CUDA libraries, in dest."""
    dest.mkdir()
    for dist in md.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name in ("torch", "torchvision", "triton") or name.startswith(("nvidia-", "cuda-")):
            for top in {Path(str(f)).parts[0] for f in dist.files or []}:
                src = Path(dist.locate_file(top))
                if top != ".." and not top.endswith(".pth") and src.exists() and not (dest / top).exists():
                    (dest / top).symlink_to(src)


STUB = '''"""Stand-in for Colab's google.colab.drive: mount() makes a folder instead of mounting Drive."""
import os


def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
    os.makedirs(os.path.join(mountpoint, "MyDrive"), exist_ok=True)
    print("Mounted at", mountpoint)
'''


def colab_python(root: Path) -> Path:
    """A new virtual environment with COLAB's versions, google.colab and a kernelspec "colab"."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root / "venv"], check=True)
    py = root / "venv" / "bin" / "python"
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    link_torch(root / "torch")
    (site / "_torch.pth").write_text(f"{root / 'torch'}\n")
    pins = [f"{n}=={v}" for n, v in COLAB.items() if n not in STAND_INS]
    pins += [f"torch=={md.version('torch')}", f"torchvision=={md.version('torchvision')}", "setuptools"]
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-compile", *pins],
                   check=True)
    (site / "google" / "colab").mkdir(parents=True)
    (site / "google" / "colab" / "__init__.py").write_text('"""Stand-in for Colab\'s google.colab."""\n')
    (site / "google" / "colab" / "drive.py").write_text(STUB)
    spec = root / "jupyter" / "kernels" / "colab"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": [str(py), "-m", "ipykernel_launcher", "-f",
                                                           "{connection_file}"],
                                                  "display_name": "Colab (played)", "language": "python"}))
    return py


def snapshot(dest: Path) -> Path:
    """This working tree (tracked and untracked, not ignored files) committed to a new repository."""
    files = subprocess.run(["git", "-C", REPO, "ls-files", "-z", "-co", "--exclude-standard"],
                           capture_output=True, check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        if (REPO / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest / f)
    git = ["git", "-C", str(dest), "-c", "user.name=test", "-c", "user.email=test@example.org"]
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run(git + cmd, check=True)
    return dest


def freeze(py: Path) -> dict[str, str]:
    """{canonical name: version} from `pip freeze --all` ("" for a package installed from a folder)."""
    out = subprocess.run([py, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True).stdout
    pairs = [line.split(" @ ")[0].split("==") + [""] for line in out.splitlines() if line and line[0] != "#"]
    return {canonicalize_name(p[0]): p[1] for p in pairs}


def text(path: Path) -> str:
    """Everything a notebook printed."""
    cells = nbformat.read(path, as_version=4).cells
    return "".join(o.get("text", "") for c in cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.colab
def test_notebooks_run_on_colabs_packages_and_change_none(tmp_path, monkeypatch, artifacts):
    import papermill as pm
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and the repository's git checkout")
    monkeypatch.delenv("PYTHONPATH", raising=False)       # neither pip nor the kernel may see this checkout
    times, begin = {}, time.time()
    py = colab_python(tmp_path)
    times["environment"] = round(time.time() - begin, 1)
    print("Colab played: environment", times["environment"], "s")
    gpu_line = "GPU: " if torch.cuda.is_available() else "Runtime > Change runtime type > GPU"
    origin = snapshot(tmp_path / "origin")
    content, home = tmp_path / "content", tmp_path / "content" / "clead-edu"
    content.mkdir()
    for name, value in {"CLEAD_EDU_REPOSITORY": f"file://{origin}", "CLEAD_EDU_BRANCH": "main",
                        "CLEAD_EDU_COLAB_DIR": str(home),
                        "JUPYTER_PATH": str(tmp_path / "jupyter"), "OMP_NUM_THREADS": "1"}.items():
        monkeypatch.setenv(name, value)
    before, printed = freeze(py), {}
    assert before["ipython"] == "7.34.0" and "clead-edu" not in before and "pyautoattack" not in before
    for stem, drive, new_runtime in (("01_standard_training", False, True), ("02_attacks", True, False),
                                     ("07_feature_space", True, True)):
        if new_runtime and home.exists():         # a new runtime: a new /content, nothing installed; same Drive
            subprocess.run([py, "-m", "pip", "uninstall", "-q", "-y", "clead_edu", "pyautoattack"], check=True)
            shutil.rmtree(home)
        nb = nbformat.read(origin / "notebooks" / f"{stem}.ipynb", as_version=4)
        assert nb.cells[1].id == "colab-setup" and "DRIVE = False" in nb.cells[1].source
        if drive:
            nb.cells[1].source = nb.cells[1].source.replace("DRIVE = False", "DRIVE = True")
        nbformat.write(nb, tmp_path / f"{stem}.ipynb")
        start = time.time()
        pm.execute_notebook(str(tmp_path / f"{stem}.ipynb"), str(tmp_path / f"{stem}.out.ipynb"),
                            kernel_name="colab", cwd=str(content), parameters={"preset": "quick"},
                            progress_bar=False)
        times[stem] = round(time.time() - start, 1)
        print("Colab played:", stem, times[stem], "s")
        printed[stem], after = text(tmp_path / f"{stem}.out.ipynb"), freeze(py)
        changed = {n: f"{v} -> {after.get(n)}" for n, v in before.items() if after.get(n) != v}
        assert not changed, f"{stem}: the set-up cell changed installed packages: {changed}"
        assert set(after) - set(before) == {"clead-edu", "pyautoattack"}, stem
        installed = "installed clead_edu and pyautoattack>=0.2,<0.3; Colab's own packages unchanged"
        assert (installed in printed[stem]) == new_runtime, stem
        assert f"working in {home / 'notebooks'}" in printed[stem] and gpu_line in printed[stem]
        assert (home / "notebooks").is_dir() and not (home / "solutions").exists()   # sparse clone
        if stem == "01_standard_training":
            assert list((home / "runs" / "notebooks").rglob("model.pt")), "no checkpoint in the clone's runs/"
    drive_runs = content / "drive" / "MyDrive" / "clead_edu_runs"
    for stem in ("02_attacks", "07_feature_space"):
        assert "checkpoints are kept in Google Drive" in printed[stem], stem
        assert "[clead_edu] loaded standard model" in printed[stem], stem    # 01's, moved to Drive by 02
    assert (home / "runs").is_symlink() and len(list(drive_runs.rglob("model.pt"))) >= 3   # standard, pgd_at, clead
    times["total"] = round(time.time() - begin, 1)
    (artifacts / "colab_times.json").write_text(json.dumps(times, indent=1))
    print("Colab played:", times)
