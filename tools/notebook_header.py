"""Give every notebook in notebooks/ the same first two cells: an "Open in Colab" badge and a
set-up cell that installs clead_edu on Colab. Idempotent: run it again after editing the text
below and the two cells are updated in place (found by their fixed cell ids), never duplicated.

    python tools/notebook_header.py            # rewrite notebooks/*.ipynb
    python tools/notebook_header.py --check    # exit 1 if a notebook lacks the current cells

The repository address is set in one place, pyproject.toml:

    [project.urls]
    Repository = "https://github.com/<user>/<repository>"

While it is unset, the badge says so and the set-up cell, on Colab, stops with a message that
says what to set. The branch that the badges open and the set-up cell clones is set beside it,
default main:

    [tool.clead_edu]
    student-branch = "student"

so that students get the branch where the instructor published the student edition
(`python -m clead_edu editions --out DIR --student-tree TREE`, README "For instructors")
rather than notebooks/ on main, which holds the worked code of the exercises.

The set-up cell reads three environment variables, for a fork or a test: CLEAD_EDU_REPOSITORY
(any address `git clone` accepts, a local file:// path included) replaces the repository
address, CLEAD_EDU_BRANCH the branch, and CLEAD_EDU_COLAB_DIR the folder it clones into
(/content/clead-edu: with a hyphen, so that this folder, in Colab's working directory, is not
what `import clead_edu` finds). The installation itself is tools/colab_setup.py, run from that clone.
"""
from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BRANCH = "main"
BADGE_ID, SETUP_ID = "colab-badge", "colab-setup"
# What the Colab clone checks out (a sparse checkout: the top-level files and these folders),
# so solutions/ and the instructor's material stay out of the student's working copy (on a
# student branch, notebooks/ is the student edition: no worked code of the code exercises).
CHECKOUT = ("clead_edu", "notebooks", "data", "tools")
GITHUB = re.compile(r"https://github\.com/([\w.-]+)/([\w.-]+)")
BRANCH_NAME = re.compile(r"[\w][\w./-]*")


def pyproject(root: Path | None = None) -> dict:
    return tomllib.loads(((root or ROOT) / "pyproject.toml").read_text())


def repo_url(root: Path | None = None) -> str:
    """`[project.urls] Repository` from pyproject.toml as https://github.com/<user>/<repository>
    (no trailing slash or .git), or "" while it is unset. A placeholder left in, or an address
    that is not a GitHub repository (Colab opens notebooks from GitHub), is an error."""
    url = pyproject(root).get("project", {}).get("urls", {}).get("Repository", "").strip()
    url = url.rstrip("/").removesuffix(".git")
    if not url:
        return ""
    if re.search(r"OWNER|<[^>]*>", url, re.IGNORECASE):   # the placeholder check
        raise ValueError(f"pyproject.toml [project.urls] Repository is a placeholder ({url}): "
                         "set it to the course's GitHub repository, https://github.com/<user>/<repository>")
    if not GITHUB.fullmatch(url):
        raise ValueError(f"pyproject.toml [project.urls] Repository = {url!r} is not a GitHub repository "
                         "address (https://github.com/<user>/<repository>), which Colab needs to open the notebooks")
    return url


def student_branch(root: Path | None = None) -> str:
    """`[tool.clead_edu] student-branch` from pyproject.toml: the branch the badges open and the
    set-up cell clones (default main). A name git would refuse is an error."""
    branch = str(pyproject(root).get("tool", {}).get("clead_edu", {}).get("student-branch", DEFAULT_BRANCH)).strip()
    if not BRANCH_NAME.fullmatch(branch) or ".." in branch or branch.endswith((".", "/", ".lock")):
        raise ValueError(f"pyproject.toml [tool.clead_edu] student-branch = {branch!r} is not a git branch name")
    return branch


def badge_source(name: str, url: str, branch: str = DEFAULT_BRANCH) -> str:
    if not url:
        return ("**Open in Colab:** not available yet: the course's repository address is not set "
                "(instructor: README, Google Colab). On your own machine, skip the next cell.")
    owner_repo = url.removeprefix("https://github.com/")
    link = f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/notebooks/{name}"
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({link})"
            f" · run it in Google Colab; on your own machine, skip the next cell.")


def setup_source(url: str, branch: str = DEFAULT_BRANCH) -> str:
    folders = " ".join(f'"{f}",' for f in CHECKOUT)
    return f'''# Set-up on Google Colab (elsewhere it only checks that clead_edu imports): clone the course,
# install what Colab lacks (never its torch, IPython or Jupyter), check for a GPU, go to notebooks/.
DRIVE = False   # True: keep trained models in Google Drive (MyDrive/clead_edu_runs); they survive a
                # disconnect and the other notebooks reuse them (Colab asks for permission once)
import importlib.util, os, subprocess, sys
try:
    colab = "google.colab" in sys.modules or importlib.util.find_spec("google.colab") is not None
except ImportError:
    colab = False
if colab:
    repo = os.environ.get("CLEAD_EDU_REPOSITORY", "{url}")
    branch = os.environ.get("CLEAD_EDU_BRANCH", "{branch}")   # [tool.clead_edu] student-branch
    home = os.environ.get("CLEAD_EDU_COLAB_DIR", "/content/clead-edu")   # not "clead_edu": see the tool
    if not repo:
        raise RuntimeError("The course's repository address is not set, so clead_edu cannot be installed. "
                           "Instructor: set [project.urls] Repository in pyproject.toml and run "
                           "`python tools/notebook_header.py` (README, Google Colab). Student: open the "
                           "notebook from the course's link, or set os.environ['CLEAD_EDU_REPOSITORY'] "
                           "to the course's GitHub address in a cell above and run this cell again.")
    if not os.path.isdir(home):   # the package, the lessons and their data; no solutions
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--sparse", "--branch", branch, repo, home], check=True)
        subprocess.run(["git", "-C", home, "sparse-checkout", "set", {folders[:-1]}], check=True)
    import runpy
    runpy.run_path(home + "/tools/colab_setup.py")["prepare"](home, drive=DRIVE)
else:
    try:
        import clead_edu  # noqa: F401
    except ImportError:
        raise ImportError("clead_edu is not installed in this kernel: run `pip install -r requirements.txt -e .` "
                          "in the repository, or pick the kernel registered for it (README, Set-up)") from None'''


def ensure_header(nb, name: str, url: str, branch: str = DEFAULT_BRANCH) -> bool:
    """Put the badge and set-up cells first (updating them if present); True if nb changed."""
    wanted = [nbformat.v4.new_markdown_cell(badge_source(name, url, branch), id=BADGE_ID),
              nbformat.v4.new_code_cell(setup_source(url, branch), id=SETUP_ID)]
    current = {c.get("id"): c for c in nb.cells if c.get("id") in (BADGE_ID, SETUP_ID)}
    if [c.get("id") for c in nb.cells[:2]] == [BADGE_ID, SETUP_ID] and \
            all(current[w.id].source == w.source for w in wanted):
        return False
    nb.cells = wanted + [c for c in nb.cells if c.get("id") not in (BADGE_ID, SETUP_ID)]
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if any notebook is out of date")
    ap.add_argument("--notebooks", default=str(ROOT / "notebooks"), help="folder of .ipynb files")
    args = ap.parse_args(argv)
    try:
        url, branch = repo_url(), student_branch()
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    stale = []
    for path in sorted(Path(args.notebooks).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if ensure_header(nb, path.name, url, branch):
            stale.append(path.name)
            if not args.check:
                nbformat.write(nb, path)
    verb = "out of date" if args.check else "updated"
    print(f"{len(stale)} notebook(s) {verb}: {', '.join(stale) or 'none'}")
    if not url:
        print("the repository address is unset: the badges say so ([project.urls] Repository in pyproject.toml)")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
