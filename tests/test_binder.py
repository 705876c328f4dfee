"""Binder: binder/requirements.txt asks for nothing the course was not tested with.

Binder builds an image from binder/ (repo2docker): the student's packages, PyTorch's CPU build,
then postBuild installs the package. The check here, offline: every requirement there names a
package of constraints.txt (the versions the tests ran with) and admits its version, and it
covers what the student's requirements.txt installs.
"""
from pathlib import Path

from conftest import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def requirements(path: Path) -> list[Requirement]:
    """The requirements of a requirements file (options, comments and includes skipped)."""
    lines = [line.split(" #")[0].strip() for line in path.read_text().splitlines()]
    return [Requirement(line) for line in lines if line and not line.startswith(("#", "-"))]


def pins(path: Path) -> dict[str, str]:
    """{canonical name: version} of a constraints file of `name==version` lines."""
    return {canonicalize_name(r.name): str(r.specifier).removeprefix("==") for r in requirements(path)}


def not_admitted(reqs: list[Requirement], tested: dict[str, str]) -> list[str]:
    """The requirements that name no tested package or reject its tested version."""
    bad = []
    for req in reqs:
        version = tested.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            bad.append(f"{req} (tested: {version})")
    return bad


def test_binder_requirements_admit_the_tested_versions():
    assert not_admitted(requirements(REPO / "binder" / "requirements.txt"), pins(REPO / "constraints.txt")) == []


def test_the_check_names_a_requirement_that_rejects_the_tested_version():
    tested = {"torch": "2.14.1", "numpy": "2.4.6"}
    reqs = [Requirement("torch==2.11.0"), Requirement("numpy>=1.24"), Requirement("absent-pkg")]
    assert not_admitted(reqs, tested) == ["torch==2.11.0 (tested: 2.14.1)", "absent-pkg (tested: None)"]


def test_binder_has_the_students_packages_with_cpu_torch_and_installs_the_package():
    names = {canonicalize_name(r.name) for r in requirements(REPO / "binder" / "requirements.txt")}
    student = {canonicalize_name(r.name) for r in requirements(REPO / "requirements.txt")}
    assert names == student
    text = (REPO / "binder" / "requirements.txt").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text
    post = REPO / "binder" / "postBuild"
    assert "pip install --no-deps -e ." in post.read_text() and post.stat().st_mode & 0o111
