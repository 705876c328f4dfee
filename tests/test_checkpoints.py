"""Checkpoints: round trip, and a CheckpointError naming the file for every unusable one."""
import json
import os
import pickle

import pytest
import torch

from clead_edu import checkpoints as CK
from clead_edu.models import build_model, model_for


def test_checkpoint_round_trip(standard_model, digits, batch, tmp_path):
    """save_checkpoint + load_checkpoint (with and without a model) reproduce the logits; JSON has sha256/model."""
    x, _ = batch
    path = CK.save_checkpoint(standard_model, tmp_path / "m" / "model.pt", {"note": "test"})
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["sha256"] == CK.sha256(path) and meta["note"] == "test"
    assert meta["model"]["arch"] == "small_cnn" and meta["model"]["num_classes"] == 10
    rebuilt = CK.load_checkpoint(path)                     # architecture from the JSON
    torch.manual_seed(1)
    into = CK.load_checkpoint(path, model_for(digits))     # into a freshly initialised model
    with torch.no_grad():
        ref = standard_model(x)
        for m in (rebuilt, into):
            assert not m.training and torch.equal(m(x), ref)


class Payload:
    """Unpickling this runs a shell command that creates a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"echo hacked > {self.marker}",)


@pytest.fixture
def saved(standard_model, tmp_path):
    """A checkpoint of the standard model: (path to model.pt, its bytes)."""
    path = CK.save_checkpoint(standard_model, tmp_path / "model.pt")
    return path, path.read_bytes()


@pytest.mark.parametrize("other", ["architecture", "classes"])
def test_checkpoint_for_another_model(other, saved):
    """Loading into another architecture or class count raises CheckpointError naming the file."""
    path, _ = saved
    model = (build_model("preact_resnet18", 10, 1) if other == "architecture"
             else build_model("small_cnn", 5, 1))
    with pytest.raises(CK.CheckpointError) as err:
        CK.load_checkpoint(path, model)
    assert str(path) in str(err.value) and "small_cnn" in str(err.value)


def test_truncated_checkpoint(saved):
    """A truncated file (no JSON beside it) raises CheckpointError saying truncated or corrupt."""
    path, blob = saved
    path.with_suffix(".json").unlink()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CK.CheckpointError, match="truncated or corrupt") as err:
        CK.load_checkpoint(path, build_model("small_cnn", 10, 1))
    assert str(path) in str(err.value)


def test_html_saved_as_checkpoint(tmp_path):
    """An HTML error page saved as model.pt raises CheckpointError saying it is a web page."""
    path = tmp_path / "model.pt"
    path.write_text("<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n")
    with pytest.raises(CK.CheckpointError, match="HTML") as err:
        CK.load_checkpoint(path, build_model("small_cnn", 10, 1))
    assert str(path) in str(err.value)


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_pickle_with_code_is_refused_and_not_run(writer, tmp_path):
    """A checkpoint that would run code when unpickled raises CheckpointError and the code never runs."""
    marker = tmp_path / "hacked.txt"
    blob = pickle.dumps(Payload(marker))
    pickle.loads(blob)                # the payload is live: plain unpickling runs it
    assert marker.exists()
    marker.unlink()
    path = tmp_path / "model.pt"
    if writer == "pickle":
        path.write_bytes(blob)
    else:
        torch.save({"fc.weight": torch.zeros(2), "extra": Payload(marker)}, path)
    with pytest.raises(CK.CheckpointError, match="Python objects or code") as err:
        CK.load_checkpoint(path, build_model("small_cnn", 10, 1))
    assert str(path) in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("change", ["flip", "truncate"])
def test_checkpoint_changed_after_saving(change, saved):
    """A model.pt that no longer matches its JSON raises a SHA-256 CheckpointError."""
    path, blob = saved
    data = bytearray(blob)
    if change == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[:-100]
    path.write_bytes(bytes(data))
    with pytest.raises(CK.CheckpointError, match="SHA-256") as err:
        CK.load_checkpoint(path)
    assert str(path) in str(err.value)


def test_corrupt_json_beside_checkpoint(saved):
    """A model.json that is not JSON (e.g. an HTML page) raises CheckpointError naming it."""
    path, _ = saved
    path.with_suffix(".json").write_text("<!DOCTYPE html><html>502 Bad Gateway</html>")
    with pytest.raises(CK.CheckpointError) as err:
        CK.load_checkpoint(path)
    assert "model.json" in str(err.value)


def test_folder_instead_of_checkpoint(saved):
    """Passing the run folder instead of its model.pt raises CheckpointError, not IsADirectoryError."""
    path, _ = saved
    with pytest.raises(CK.CheckpointError):
        CK.load_checkpoint(path.parent, build_model("small_cnn", 10, 1))


def test_missing_checkpoint(tmp_path):
    """A path that does not exist raises CheckpointError naming it."""
    with pytest.raises(CK.CheckpointError, match="does not exist"):
        CK.load_checkpoint(tmp_path / "nothing.pt", build_model("small_cnn", 10, 1))


# ----------------------------------------------------------------------------- command line


def test_a_training_state_from_before_a_setting_existed_or_was_renamed_resumes(tmp_path):
    """A state whose settings lack `precision` (added later, at its default) and spell
    `head_input` by its old name resumes; one with another learning rate does not."""
    import json
    from dataclasses import asdict
    from clead_edu.checkpoints import load_state, save_state
    from clead_edu.config import TrainConfig
    torch.manual_seed(0)
    cfg = TrainConfig(objective="pgd_at", epochs=2)
    model = build_model("small_cnn", 10, 1, (0.3,), (0.37,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1)
    path = tmp_path / "train_state.pt"
    save_state(path, cfg, model, None, opt, sched, [{"epoch": 1}])
    state = torch.load(path, weights_only=False)
    old = asdict(cfg)
    del old["precision"]
    old["released_head_input"] = old.pop("head_input")
    state["cfg"] = json.dumps(old)
    torch.save(state, path)
    assert load_state(path, cfg, model, None, opt, sched) == ([{"epoch": 1}], 1)
    assert load_state(path, TrainConfig(objective="pgd_at", epochs=2, lr=0.2), model, None, opt, sched) == ([], 0)
