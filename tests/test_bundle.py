"""export / import of trained models: one zip with a SHA-256 manifest, verified before writing."""
import hashlib
import json
import zipfile

import pytest
import torch
from conftest import REPO  # noqa: F401  (conftest sets one thread)
from test_lesson import lesson, same

from clead_edu import bundle
from clead_edu.__main__ import main
from clead_edu.checkpoints import save_checkpoint
from clead_edu.models import build_model


@pytest.fixture
def runs(tmp_path):
    """Two checkpoints as the notebooks leave them, plus a training state that is not exported."""
    root = tmp_path / "runs" / "notebooks"
    for i, name in enumerate(["standard-e1-seed0", "clead-e1-seed0-lam0.5"]):
        torch.manual_seed(i)
        model = build_model("small_cnn", 10, 1, [0.5], [0.5])
        save_checkpoint(model, root / "digits-quick" / name / "model.pt", {"train": {"seed": i}})
    (root / "digits-quick" / "standard-e1-seed0" / "train_state.pt").write_bytes(b"resume state")
    return root


def files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def rewrite(src, dest, change):
    """Copy the zip src to dest with change(name, data) -> (name, data) applied to each member."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for name in zin.namelist():
            zout.writestr(*change(name, zin.read(name)))


def test_round_trip_restores_every_checkpoint_byte_for_byte(runs, tmp_path):
    archive = bundle.export(runs, tmp_path / "models.zip")
    manifest = json.loads(zipfile.ZipFile(archive).read("MANIFEST.json"))
    original = {k: v for k, v in files(runs).items() if not k.endswith("train_state.pt")}
    assert {e["path"] for e in manifest["files"]} == set(original) and len(original) == 4
    for e in manifest["files"]:
        assert e["bytes"] == len(original[e["path"]]) and e["sha256"] == hashlib.sha256(original[e["path"]]).hexdigest()
    to = tmp_path / "student" / "runs" / "notebooks"
    bundle.import_bundle(archive, to)
    assert files(to) == original
    bundle.import_bundle(archive, to)           # again: identical files are fine
    assert files(to) == original


def test_tampered_archive_is_rejected_and_nothing_is_written(runs, tmp_path):
    archive = bundle.export(runs, tmp_path / "models.zip")
    bad = tmp_path / "tampered.zip"
    rewrite(archive, bad, lambda n, d: (n, d[:-1] + bytes([d[-1] ^ 1]) if n.endswith("clead-e1-seed0-lam0.5/model.pt") else d))
    to = tmp_path / "student"
    with pytest.raises(bundle.BundleError, match="does not match the SHA-256"):
        bundle.import_bundle(bad, to)
    assert not to.exists()


@pytest.mark.parametrize("evil", ["../../outside/model.pt", "/tmp/abs/model.pt", "a/./model.pt", "a\\..\\model.pt",
                                  "digits-quick/x/evil.py"])
def test_paths_outside_the_folder_or_other_files_are_refused(runs, tmp_path, evil):
    """A manifest entry with a correct SHA-256 but an unsafe name is refused before writing."""
    archive = bundle.export(runs, tmp_path / "models.zip")
    manifest = json.loads(zipfile.ZipFile(archive).read("MANIFEST.json"))
    victim = manifest["files"][0]["path"]
    manifest["files"][0]["path"] = evil
    rewrite(archive, tmp_path / "evil.zip", lambda n, d: (evil, d) if n == victim else
            (n, json.dumps(manifest).encode()) if n == "MANIFEST.json" else (n, d))
    with pytest.raises(bundle.BundleError, match="refusing to import"):
        bundle.import_bundle(tmp_path / "evil.zip", tmp_path / "student" / "to")
    assert not (tmp_path / "student").exists() and not (tmp_path / "outside").exists()


def test_unlisted_member_not_a_zip_and_clashes_fail_clearly(runs, tmp_path):
    archive = bundle.export(runs, tmp_path / "models.zip")
    extra = tmp_path / "extra.zip"
    rewrite(archive, extra, lambda n, d: (n, d))
    with zipfile.ZipFile(extra, "a") as z:
        z.writestr("digits-quick/sneaky/model.pt", b"x")
    with pytest.raises(bundle.BundleError, match="does not match its manifest"):
        bundle.read_verified(extra)
    (tmp_path / "page.zip").write_text("<html>login</html>")
    with pytest.raises(bundle.BundleError, match="cannot open .* as a zip"):
        bundle.read_verified(tmp_path / "page.zip")
    to = tmp_path / "to"
    bundle.import_bundle(archive, to)
    target = to / "digits-quick" / "standard-e1-seed0" / "model.json"
    target.write_text("{}")
    with pytest.raises(bundle.BundleError, match="--overwrite"):
        bundle.import_bundle(archive, to)
    assert target.read_text() == "{}"
    bundle.import_bundle(archive, to, overwrite=True)
    assert target.read_bytes() == (runs / "digits-quick" / "standard-e1-seed0" / "model.json").read_bytes()
    with pytest.raises(bundle.BundleError, match="no checkpoint"):
        bundle.export(tmp_path / "empty", tmp_path / "none.zip")


def test_cli_and_a_notebook_loads_the_imported_model(tmp_path, capsys):
    """Instructor: trains (as a notebook would) and exports; student: imports into a fresh
    checkout, and the notebook's L.model loads that checkpoint instead of training."""
    teacher = lesson(tmp_path / "teacher")
    trained, _ = teacher.model("standard", progress=False)
    archive = tmp_path / "models.zip"
    assert main(["export", "--runs", str(tmp_path / "teacher" / "runs" / "notebooks"), "--out", str(archive)]) == 0
    student_runs = tmp_path / "student" / "runs" / "notebooks"
    assert main(["import", str(archive), "--to", str(student_runs)]) == 0
    capsys.readouterr()
    loaded, _ = lesson(tmp_path / "student").model("standard", progress=False)
    assert "loaded standard model from" in capsys.readouterr().out and same(trained, loaded)
    rewrite(archive, tmp_path / "bad.zip", lambda n, d: (n, d + b"!" if n.endswith(".json") and n != "MANIFEST.json" else d))
    assert main(["import", str(tmp_path / "bad.zip"), "--to", str(tmp_path / "other")]) == 2
    assert "does not match the SHA-256" in capsys.readouterr().err
