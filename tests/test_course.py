"""The course-building commands live in clead_edu.course: `import clead_edu` does not load them
(nor their heavy tools), a checkout runs them, an installed package says it needs the repository."""
import json
import shutil
import subprocess
import sys

from conftest import ENV, REPO

HEAVY = ("clead_edu.course", "clead_edu.graders", "otter", "mkdocs", "papermill")


def test_import_loads_no_course_building_module():
    """`import clead_edu` (in a fresh interpreter) imports none of the site, editions, bundle-build,
    graders, otter, mkdocs or papermill modules."""
    code = "import json, sys; import clead_edu; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.splitlines()[-1])
    assert "clead_edu.objectives" in loaded
    assert [m for m in loaded if m.split(".")[0] in HEAVY or m.startswith(HEAVY)] == []


def test_grade_registers_the_graders_when_it_first_runs():
    """`exercises.grade` loads the graders when first called: an unwritten answer is NotWrittenYet."""
    code = ("import sys, clead_edu as ce; assert not ce.exercises.GRADERS; "
            "ce.exercises.grade('accuracy', lambda model, x, y: None)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert "NotWrittenYet" in out.stderr and "no code exercise" not in out.stderr


def test_a_checkout_runs_them_and_an_installed_package_says_what_it_needs(tmp_path):
    """From the repository `editions --help` parses its options; from a copy of the package alone
    (as installed: no notebooks/, docs/ or mkdocs.yml beside it) `site` and `editions` stop with
    exit status 2 and one line saying they need the repository."""
    ok = subprocess.run([sys.executable, "-m", "clead_edu", "editions", "--help"], cwd=REPO, env=ENV,
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "--student-tree" in ok.stdout
    shutil.copytree(REPO / "clead_edu", tmp_path / "clead_edu", ignore=shutil.ignore_patterns("assets", "__pycache__"))
    env = {**ENV, "PYTHONPATH": str(tmp_path)}
    for command in ("site", "editions"):
        out = subprocess.run([sys.executable, "-m", "clead_edu", command, "--out", str(tmp_path / "x")],
                             cwd=tmp_path, env=env, capture_output=True, text=True)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert f"`python -m clead_edu {command}` needs the repository" in out.stderr
