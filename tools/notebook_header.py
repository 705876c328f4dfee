"""Give every notebook in notebooks/ the same first two cells: an "Open in Colab" badge and a
set-up cell that installs clead_edu on Colab. Idempotent: run it again after editing the text
below and the two cells are updated in place (found by their fixed cell ids), never duplicated.

    python tools/notebook_header.py            # rewrite notebooks/*.ipynb
    python tools/notebook_header.py --check    # exit 1 if a notebook lacks the current cells

The repository address comes from pyproject.toml ([project.urls] Repository) when it is set
there; otherwise from REPO_URL below, a PLACEHOLDER: replace it with the course's GitHub
repository (https://github.com/<owner>/<repo>) before publishing, then run this script.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
REPO_URL = "https://github.com/OWNER/clead_edu"   # PLACEHOLDER: the course's GitHub repository
BRANCH = "main"
BADGE_ID, SETUP_ID = "colab-badge", "colab-setup"
NOT_ON_COLAB = {"torch", "torchvision"}   # Colab's own builds are kept (never re-pinned)


def repo_url() -> str:
    """[project.urls] Repository (or Homepage) from pyproject.toml, else REPO_URL."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text()).get("project", {})
    urls = project.get("urls", {})
    return (urls.get("Repository") or urls.get("Homepage") or REPO_URL).rstrip("/").removesuffix(".git")


def requirements() -> list[str]:
    """The package's dependencies from pyproject.toml without torch and torchvision."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return [d for d in deps if re.split(r"[<>=!~ \[;]", d, maxsplit=1)[0].lower() not in NOT_ON_COLAB]


def badge_source(name: str, url: str) -> str:
    owner_repo = url.removeprefix("https://github.com/")
    link = f"https://colab.research.google.com/github/{owner_repo}/blob/{BRANCH}/notebooks/{name}"
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({link})"
            f" · run it in Google Colab; on your own machine, skip the next cell.")


def setup_source(url: str) -> str:
    reqs = ", ".join(json.dumps(r) for r in requirements())
    return f'''# Colab set-up: does nothing where clead_edu is installed (your machine, JupyterHub, papermill).
import os, sys
colab, home = "google.colab" in sys.modules, "/content/clead_edu"
try:
    import clead_edu  # noqa: F401
except ImportError:
    if not colab:
        raise ImportError("clead_edu is not installed in this kernel: run `pip install -r requirements.txt -e .` "
                          "in the repository, or pick the kernel registered for it (README, Set-up)") from None
    import importlib, subprocess
    if not os.path.isdir(home):
        subprocess.run(["git", "clone", "--depth", "1", "{url}", home], check=True)
    # the package without its dependencies (Colab's torch stays), then the others it needs
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", home], check=True)
    needs = [{reqs}]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *needs], check=True)
    importlib.invalidate_caches()
if colab and os.path.isdir(home):   # also after a restart: run_dir "../runs/notebooks" and "../data" in the clone
    os.chdir(home + "/notebooks")
    print("clead_edu ready; working in", os.getcwd())'''


def ensure_header(nb, name: str, url: str) -> bool:
    """Put the badge and set-up cells first (updating them if present); True if nb changed."""
    wanted = [nbformat.v4.new_markdown_cell(badge_source(name, url), id=BADGE_ID),
              nbformat.v4.new_code_cell(setup_source(url), id=SETUP_ID)]
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
    url, stale = repo_url(), []
    for path in sorted(Path(args.notebooks).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if ensure_header(nb, path.name, url):
            stale.append(path.name)
            if not args.check:
                nbformat.write(nb, path)
    verb = "out of date" if args.check else "updated"
    print(f"{len(stale)} notebook(s) {verb}: {', '.join(stale) or 'none'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
