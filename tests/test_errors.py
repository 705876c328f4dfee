"""Bad input gets a clear error or warning, never a silent wrong number (design.md sections 1, 4, 5)."""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from clead_edu import data as D
from clead_edu import train as T
from clead_edu.attacks import fgsm, pgd
from clead_edu.evaluate import predict
from clead_edu.models import build_model

REPO = Path(__file__).resolve().parents[1]
ATTACKS = {"fgsm": lambda m, x, y, **kw: fgsm(m, x, y, **kw),
           "pgd": lambda m, x, y, **kw: pgd(m, x, y, steps=2, **kw)}
attack_names = pytest.mark.parametrize("attack", list(ATTACKS))


class Softmaxed(nn.Module):
    """A classifier that (wrongly) returns probabilities."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).softmax(1)


# ----------------------------------------------------------------------------- attacks

@attack_names
def test_eps_in_255_units_is_refused(attack, standard_model, batch):
    """eps=8 (meant as 8/255) raises ValueError that says to write /255."""
    x, y = batch
    with pytest.raises(ValueError, match="/255"):
        ATTACKS[attack](standard_model, x[:4], y[:4], eps=8)


@attack_names
def test_eps_above_half_warns(attack, standard_model, batch):
    """An L-inf eps in (0.5, 1] is legal but suspicious: a warning mentions /255."""
    x, y = batch
    with pytest.warns(UserWarning, match="/255"):
        ATTACKS[attack](standard_model, x[:4], y[:4], eps=0.8)


@attack_names
@pytest.mark.parametrize("bad", ["times255", "normalised"])
def test_inputs_outside_unit_interval_are_refused(attack, bad, standard_model, batch, digits):
    """Images in 0-255 or already normalised raise ValueError mentioning [0, 1]."""
    x, y = batch
    x_bad = x[:4] * 255 if bad == "times255" else (x[:4] - digits.mean[0]) / digits.std[0]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ATTACKS[attack](standard_model, x_bad, y[:4], eps=0.1)


@pytest.mark.parametrize("use", ["fgsm", "pgd", "predict"])
def test_probability_outputs_are_refused(use, standard_model, batch):
    """A model ending in softmax raises ValueError mentioning probabilities (attacks and predict)."""
    x, y = batch
    model = Softmaxed(standard_model)
    with pytest.raises(ValueError, match="probabilities"):
        if use == "predict":
            predict(model, x)
        else:
            ATTACKS[use](model, x, y, eps=0.1)


# ----------------------------------------------------------------------------- data

def test_unknown_dataset_lists_the_choices():
    """An unknown dataset name raises ValueError listing the known datasets."""
    with pytest.raises(ValueError) as err:
        D.get_data("mnist")
    assert all(name in str(err.value) for name in ("'mnist'", "digits", "cifar10", "imagenette", "folder:"))


def test_missing_cifar_offline_says_what_and_where(tmp_path):
    """CIFAR-10 absent and no download: DatasetUnavailable names the folder, the root and digits."""
    with pytest.raises(D.DatasetUnavailable) as err:
        D.get_data("cifar10", root=tmp_path, download=False)
    msg = str(err.value)
    assert "cifar-10-batches-py" in msg and "cifar-10-python.tar.gz" in msg
    assert str(tmp_path.resolve()) in msg and "digits" in msg
    assert isinstance(err.value, FileNotFoundError)


def test_missing_folder_dataset(tmp_path):
    """folder:PATH without PATH/train raises DatasetUnavailable naming the path and the layout."""
    missing = tmp_path / "nonexistent"
    with pytest.raises(D.DatasetUnavailable) as err:
        D.get_data(f"folder:{missing}")
    msg = str(err.value)
    assert str(missing / "train") in msg and "digits" in msg and "ImageFolder" in msg


# ----------------------------------------------------------------------------- checkpoints

class Payload:
    """Unpickling this runs a shell command that creates a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"echo hacked > {self.marker}",)


@pytest.fixture
def saved(standard_model, tmp_path):
    """A checkpoint of the standard model: (path to model.pt, its bytes)."""
    path = T.save_checkpoint(standard_model, tmp_path / "model.pt")
    return path, path.read_bytes()


@pytest.mark.parametrize("other", ["architecture", "classes"])
def test_checkpoint_for_another_model(other, saved):
    """Loading into another architecture or class count raises CheckpointError naming the file."""
    path, _ = saved
    model = (build_model("preact_resnet18", 10, 1) if other == "architecture"
             else build_model("small_cnn", 5, 1))
    with pytest.raises(T.CheckpointError) as err:
        T.load_checkpoint(path, model)
    assert str(path) in str(err.value) and "small_cnn" in str(err.value)


def test_truncated_checkpoint(saved):
    """A truncated file (no JSON beside it) raises CheckpointError saying truncated or corrupt."""
    path, blob = saved
    path.with_suffix(".json").unlink()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(T.CheckpointError, match="truncated or corrupt") as err:
        T.load_checkpoint(path, build_model("small_cnn", 10, 1))
    assert str(path) in str(err.value)


def test_html_saved_as_checkpoint(tmp_path):
    """An HTML error page saved as model.pt raises CheckpointError saying it is a web page."""
    path = tmp_path / "model.pt"
    path.write_text("<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n")
    with pytest.raises(T.CheckpointError, match="HTML") as err:
        T.load_checkpoint(path, build_model("small_cnn", 10, 1))
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
    with pytest.raises(T.CheckpointError, match="Python objects or code") as err:
        T.load_checkpoint(path, build_model("small_cnn", 10, 1))
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
    with pytest.raises(T.CheckpointError, match="SHA-256") as err:
        T.load_checkpoint(path)
    assert str(path) in str(err.value)


def test_corrupt_json_beside_checkpoint(saved):
    """A model.json that is not JSON (e.g. an HTML page) raises CheckpointError naming it."""
    path, _ = saved
    path.with_suffix(".json").write_text("<!DOCTYPE html><html>502 Bad Gateway</html>")
    with pytest.raises(T.CheckpointError) as err:
        T.load_checkpoint(path)
    assert "model.json" in str(err.value)


def test_folder_instead_of_checkpoint(saved):
    """Passing the run folder instead of its model.pt raises CheckpointError, not IsADirectoryError."""
    path, _ = saved
    with pytest.raises(T.CheckpointError):
        T.load_checkpoint(path.parent, build_model("small_cnn", 10, 1))


def test_missing_checkpoint(tmp_path):
    """A path that does not exist raises CheckpointError naming it."""
    with pytest.raises(T.CheckpointError, match="does not exist"):
        T.load_checkpoint(tmp_path / "nothing.pt", build_model("small_cnn", 10, 1))


# ----------------------------------------------------------------------------- command line

def cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "clead_edu", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_cli_unknown_dataset(tmp_path):
    """`run --dataset nonsense` exits non-zero, names the dataset and the choices, writes nothing."""
    out = tmp_path / "out"
    res = cli("run", "--dataset", "nonsense", "--out", str(out), "--no-progress")
    assert res.returncode != 0
    assert "nonsense" in res.stderr and "digits" in res.stderr and "Traceback" not in res.stderr
    assert not out.exists()


def test_cli_eps_in_255_units(tmp_path):
    """`run --eps 8` exits non-zero with a message mentioning /255, before writing anything."""
    out = tmp_path / "out"
    res = cli("run", "--eps", "8", "--out", str(out), "--no-progress")
    assert res.returncode != 0
    assert "/255" in res.stderr and "Traceback" not in res.stderr
    assert not out.exists()
