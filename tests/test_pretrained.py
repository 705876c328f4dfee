"""The pretrained bundle: built by one command, loaded by `L.model` (SHA-256 checked), never
trained over when CLEAD_EDU_NO_TRAINING is set, retrained on request, and the shipped photo
bundle holds every lesson model and is reproduced by retraining."""
import ast
import dataclasses
import json
import zipfile
from pathlib import Path, PurePosixPath

import pytest
import torch

import clead_edu as ce
from clead_edu import lesson
from clead_edu.course import pretrained
from clead_edu.bundle import read_verified
from clead_edu.checkpoints import with_defaults
from clead_edu.train import train

ROOT = Path(__file__).resolve().parents[1]
TWO = [("standard", {}), ("pgd_at", {})]


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    """A digits bundle of two 1-epoch models, built by `pretrained.build`."""
    tmp = tmp_path_factory.mktemp("pretrained")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pretrained, "lesson_models", lambda cfg: TWO)
        out = pretrained.build("digits", "quick", tmp / "build", tmp / "digits-quick.zip", threads=1, epochs=1)
    return out


def weights(model) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.state_dict().values()]


def test_build_writes_checked_archive_with_accuracies(tiny_bundle):
    """The archive holds model.pt + model.json of each model (SHA-256 verified), each model.json
    the clean test accuracy per epoch; accuracy.json has clean and PGD-20 per model."""
    files = read_verified(tiny_bundle)
    assert sorted(p.as_posix() for p in files) == ["pgd_at-e1-seed0/model.json", "pgd_at-e1-seed0/model.pt",
                                                  "standard-e1-seed0/model.json", "standard-e1-seed0/model.pt"]
    meta = json.loads(files[PurePosixPath("standard-e1-seed0/model.json")])
    assert 0.5 < meta["history"][0]["test_acc"] <= 1.0           # 1 epoch on digits beats chance (0.1)
    acc = {r["model"]: r for r in json.loads((tiny_bundle.parent / "build" / "digits-quick" / "accuracy.json").read_text())}
    assert acc["standard-e1-seed0"]["pgd20"] < acc["standard-e1-seed0"]["clean"]


def test_lesson_loads_the_bundle_without_training(tiny_bundle, tmp_path, monkeypatch):
    """L.model finds the model in the bundle and loads the bundle's weights; with
    CLEAD_EDU_NO_TRAINING set, a model the bundle lacks is an error, not a training run."""
    monkeypatch.setattr(lesson, "pretrained_archive", lambda name: tiny_bundle)
    monkeypatch.setenv("CLEAD_EDU_NO_TRAINING", "1")
    L = ce.setup("quick", "digits", epochs=1, run_dir=tmp_path / "runs", threads=1)
    model, history = L.model("standard")
    built = torch.load(tiny_bundle.parent / "build" / "digits-quick" / "standard-e1-seed0" / "model.pt",
                       weights_only=True)
    assert all(torch.equal(a, b) for a, b in zip(weights(model), built.values()))
    assert (tmp_path / "runs" / "digits-quick" / "standard-e1-seed0" / "model.pt").is_file()
    assert history and "test_acc" in history[0]
    with pytest.raises(RuntimeError, match="CLEAD_EDU_NO_TRAINING"):
        L.model("standard", lr=0.01)


def test_damaged_bundle_is_not_used(tiny_bundle, tmp_path, monkeypatch, capsys):
    """A bundle whose bytes do not match its manifest is refused (the model is not loaded)."""
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(tiny_bundle) as src, zipfile.ZipFile(bad, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(name, data[:-1] + bytes([data[-1] ^ 1]) if name.endswith("model.pt") else data)
    monkeypatch.setattr(lesson, "pretrained_archive", lambda name: bad)
    monkeypatch.setenv("CLEAD_EDU_NO_TRAINING", "1")
    L = ce.setup("quick", "digits", epochs=1, run_dir=tmp_path / "runs", threads=1)
    with pytest.raises(RuntimeError, match="CLEAD_EDU_NO_TRAINING"):
        L.model("standard")
    assert "SHA-256" in capsys.readouterr().out


def test_retrain_trains_anyway_and_reproduces(tiny_bundle, tmp_path, monkeypatch):
    """retrain=True trains the model here although the bundle has it; with the bundle's
    settings and seed the weights come out the same on this machine."""
    monkeypatch.setattr(lesson, "pretrained_archive", lambda name: tiny_bundle)
    L = ce.setup("quick", "digits", epochs=1, run_dir=tmp_path / "runs", threads=1)
    loaded = weights(L.model("standard")[0])
    retrained = weights(L.model("standard", retrain=True, progress=False)[0])
    assert all(torch.allclose(a.float(), b.float(), atol=1e-5) for a, b in zip(loaded, retrained))


def test_train_until_then_resume_equals_one_run(tmp_path):
    """train(until=1) then train(resume=True) gives the weights of one uninterrupted run."""
    data = ce.data.get_data("digits")
    cfg = ce.config.TrainConfig(objective="standard", epochs=2, seed=0)
    ce.device.seed_everything(0)
    whole = ce.models.model_for(data)
    train(whole, data.train, cfg, progress=False)
    ce.device.seed_everything(0)
    parts = ce.models.model_for(data)
    first = train(parts, data.train, cfg, out_dir=tmp_path, progress=False, until=1)
    assert len(first) == 1 and not (tmp_path / "model.pt").exists()
    ce.device.seed_everything(0)
    train(parts, data.train, cfg, out_dir=tmp_path, progress=False, resume=True)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(weights(whole), weights(parts)))


def test_lesson_05_ablation_is_the_bundled_one():
    """05's variants list is pretrained.ABLATION (else its models would not be in the bundle)."""
    cells = json.loads((ROOT / "notebooks" / "05_clead_defense.ipynb").read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if "".join(c["source"]).startswith("variants = ["))
    tree = ast.parse(source)
    assigned = next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "variants")
    assert ast.literal_eval(assigned) == pretrained.ABLATION


# ----------------------------------------------------------------------------- the shipped photo bundle

PHOTOS = lesson.pretrained_archive("cifar10-sample-quick")


def test_photo_bundle_has_every_lesson_model():
    """Every model the lessons load on photos (quick preset) is in the shipped bundle, with
    exactly the settings `L.model` asks for, and the archive's SHA-256s check out."""
    files = read_verified(PHOTOS)
    L = ce.setup("quick", "cifar10-sample", run_dir="unused", threads=1)
    for objective, changes in pretrained.lesson_models(L.cfg):
        cfg = L.cfg.for_objective(objective, **changes)
        meta = json.loads(files[PurePosixPath(f"{lesson.checkpoint_name(cfg, changes)}/model.json")])
        assert with_defaults(meta["train"]) == dataclasses.asdict(cfg)   # as `L.model` matches them


@pytest.mark.parametrize("objective", ["standard", "pgd_at"])
def test_photo_bundle_first_epoch_reproduces(objective, tmp_path):
    """Retraining a bundled photo model with its recorded settings reproduces its first
    epoch: the clean test accuracy (517 photos) after epoch 1 is within 4 points (about two
    binomial standard errors of the difference) of the bundle's recorded one."""
    L = dataclasses.replace(ce.setup("quick", "cifar10-sample", run_dir=tmp_path, threads=1), building=True)
    cfg = L.cfg.for_objective(objective)
    recorded = json.loads(read_verified(PHOTOS)[PurePosixPath(
        f"{lesson.checkpoint_name(cfg, {})}/model.json")])["history"][0]["test_acc"]
    ce.device.seed_everything(cfg.seed)                   # as L.model does, then the same model and data
    model = ce.models.model_for(L.data, L.cfg.arch)
    train_set = ce.data.subset(L.data.train, L.cfg.train_n, cfg.seed)
    again = train(model, train_set, cfg, test_set=L.data.test, progress=False, until=1)[0]["test_acc"]
    print(f"{objective} epoch 1: bundle {100 * recorded:.1f}%, retrained {100 * again:.1f}%")
    assert abs(again - recorded) <= 0.04


def test_quick_photo_settings_only_in_the_quick_preset():
    """The quick preset on the bundled photos trains on every photo, 15 epochs, PGD-3 with step
    eps/2; the full preset keeps its own settings; an override still wins."""
    quick = ce.from_preset("quick", "cifar10-sample")
    assert (quick.train_n, quick.train.epochs, quick.train.train_steps, quick.eval.eval_n) == (None, 15, 3, 200)
    assert quick.train.alpha == pytest.approx(quick.eps / 2)
    full = ce.from_preset("full", "cifar10-sample")
    assert (full.train.epochs, full.train.train_steps, full.train.alpha) == (30, 10, 2 / 255)
    assert ce.from_preset("quick", "cifar10-sample", epochs=3).train.epochs == 3


def test_jobs_below_one_is_refused_before_any_work():
    """`pretrained --jobs 0` stops with a message and trains nothing."""
    import argparse
    args = argparse.Namespace(jobs=0, dataset="digits", preset="quick", run_dir="unused", out=None, threads=1, epochs=1)
    with pytest.raises(SystemExit, match="--jobs must be at least 1"):
        pretrained.build_command(args)
