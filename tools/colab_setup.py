"""Install clead_edu on Google Colab without changing anything Colab already has.

Every notebook's set-up cell (written by tools/notebook_header.py) clones the course and then
calls `prepare(home, drive=DRIVE)` from this file, inside the notebook's kernel:

1. install, if `clead_edu` does not import yet: only the requirements Colab lacks, with every
   distribution already installed pinned to its version (a pip constraints file), then the
   package from the clone without its dependencies. Colab warns that upgrading its
   IPython, ipykernel, tornado or pyzmq can crash the runtime, and its torch is built for its
   GPU: so a requirement that Colab's own version does not meet stops here with a message
   instead of an upgrade;
2. say whether there is a GPU, and how to get one;
3. with drive=True, keep the checkpoint folder runs/ in Google Drive (MyDrive/clead_edu_runs),
   so models survive a disconnect and the next notebook (each gets its own runtime) reuses them;
4. move into the clone's notebooks/ folder, where the lessons find run_dir "../runs/notebooks"
   and data "../data".

Standard library only (and `packaging`, which Colab has): it runs before clead_edu is installed.
"""
from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

DRIVE_FOLDER = "clead_edu_runs"


def installed() -> dict[str, str]:
    """{canonical name: version} of every distribution on sys.path (the first one found wins,
    as for imports)."""
    have: dict[str, str] = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name:
            have.setdefault(canonicalize_name(name), dist.version)
    return have


def unmet(requirements: list[str], have: dict[str, str]) -> tuple[list[str], list[str]]:
    """Split the requirements that apply here into (missing, conflicts): missing are not installed
    at all; conflicts are installed at a version the requirement rejects, as 'ipython>=8 (have 7.34.0)'."""
    missing, conflicts = [], []
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        version = have.get(canonicalize_name(req.name))
        if version is None:
            missing.append(text)
        elif not req.specifier.contains(version, prereleases=True):
            conflicts.append(f"{text} (have {version})")
    return missing, conflicts


def constraints(have: dict[str, str]) -> str:
    """A pip constraints file that pins every installed distribution to its version
    (distributions whose version pip cannot parse are left out)."""
    lines = []
    for name, version in sorted(have.items()):
        try:
            Version(version)
        except InvalidVersion:
            continue
        lines.append(f"{name}=={version}")
    return "\n".join(lines) + "\n"


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-warn-script-location", *args], check=True)


def install(home: str) -> list[str]:
    """Install clead_edu from the clone at `home` and the requirements this Python lacks, changing
    no installed distribution. Returns the requirements it installed; raises RuntimeError when an
    installed version does not meet a requirement (nothing is installed then)."""
    with open(os.path.join(home, "pyproject.toml"), "rb") as f:
        requirements = tomllib.load(f)["project"]["dependencies"]
    have = installed()
    missing, conflicts = unmet(requirements, have)
    if conflicts:
        raise RuntimeError("clead_edu needs a newer version of what this Python already has: "
                           f"{', '.join(conflicts)}. On Colab, upgrading them can break the runtime; "
                           "the package's requirements should accept Colab's versions.")
    if missing:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write(constraints(have))
        try:
            pip("--constraint", f.name, *missing)
        finally:
            os.unlink(f.name)
    pip("--no-deps", "--no-build-isolation", home)     # after its requirements: no pip warning
    importlib.invalidate_caches()
    return missing


def gpu_note() -> str:
    """One line: the GPU in use, or how to get one on Colab."""
    import torch
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return ("No GPU: the quick preset runs on the CPU; for the full preset choose "
            "Runtime > Change runtime type > GPU (T4), then run the notebook again from the top.")


def use_drive(home: str, mountpoint: str) -> str:
    """Mount Google Drive at `mountpoint` and make home/runs a link to MyDrive/clead_edu_runs
    (checkpoints already in home/runs are copied there first). Returns the Drive folder."""
    from google.colab import drive
    drive.mount(mountpoint)
    target = os.path.join(mountpoint, "MyDrive", DRIVE_FOLDER)
    os.makedirs(target, exist_ok=True)
    runs = os.path.join(home, "runs")
    if os.path.islink(runs):
        os.unlink(runs)
    elif os.path.isdir(runs):
        shutil.copytree(runs, target, dirs_exist_ok=True)
        shutil.rmtree(runs)
    os.symlink(target, runs)
    return target


def is_installed(name: str = "clead_edu") -> bool:
    """True if `name` imports as a package with an __init__.py: a folder of that name in the
    working directory (a clone, say) imports too, as an empty namespace package, and does not count."""
    spec = importlib.util.find_spec(name)
    return spec is not None and spec.origin not in (None, "namespace")


def prepare(home: str, drive: bool = False) -> None:
    """The set-up cell's work on Colab (see the module docstring); safe to run again."""
    if not is_installed():
        added = install(home)
        print("installed clead_edu" + (f" and {', '.join(added)}" if added else "") + "; Colab's own packages unchanged")
    print(gpu_note())
    if drive:
        folder = use_drive(home, os.path.join(os.path.dirname(home), "drive"))
        print(f"checkpoints are kept in Google Drive: {folder}")
    os.chdir(os.path.join(home, "notebooks"))
    print("clead_edu ready; working in", os.getcwd())
