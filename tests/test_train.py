"""train: objectives, accuracy after training, checkpoints, resuming an interrupted run, config checks."""
import json
import math

import pytest
import torch

from clead_edu import data as D
from clead_edu import train as T
from clead_edu.attacks import pgd
from clead_edu.evaluate import accuracy
from clead_edu.models import model_for

EPS = 0.2


def small_cfg(objective="standard", epochs=1, **kw):
    base = dict(batch_size=64, lr=0.05, eps=EPS, alpha=0.05, steps=2)
    return T.TrainConfig(objective=objective, epochs=epochs, **{**base, **kw})


def fresh_model(data):
    T.seed_everything(0)
    return model_for(data, "small_cnn")


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_standard_training_learns_digits(standard_model, digits):
    """Standard training reaches > 90% clean test accuracy (chance is 10%)."""
    x, y = D.take(digits.test)
    assert accuracy(standard_model, x, y) > 0.9


def test_pgd_at_beats_standard_under_pgd(standard_model, pgd_at_model, digits):
    """The PGD-AT model's PGD-10 accuracy (eps 0.2) is well above the standard model's."""
    x, y = D.take(digits.test)
    torch.manual_seed(0)
    robust = accuracy(pgd_at_model, x, y, pgd, eps=EPS, steps=10)
    plain = accuracy(standard_model, x, y, pgd, eps=EPS, steps=10)
    assert plain < 0.2 and robust > plain + 0.3


@pytest.mark.parametrize("objective,extra", [
    ("standard", {}), ("fgsm_at", {}), ("pgd_at", {}), ("trades", {}), ("clead", {}),
    ("clead", dict(positives="pair", mu=1.0, head_dim=16)),
], ids=["standard", "fgsm_at", "pgd_at", "trades", "clead", "clead-pair-mu1-head16"])
def test_each_objective_trains(objective, extra, digits):
    """One epoch of every objective on 256 images: finite loss, weights updated, model left in eval mode."""
    model = fresh_model(digits)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    hist = T.train(model, D.subset(digits.train, 256), small_cfg(objective, **extra), progress=False)
    assert len(hist) == 1 and hist[0]["epoch"] == 1
    assert math.isfinite(hist[0]["train_loss"]) and hist[0]["train_loss"] > 0
    assert 0 <= hist[0]["train_acc"] <= 1
    assert any(not torch.equal(init[k], v) for k, v in model.state_dict().items())
    assert not any(m.training for m in model.modules())


def test_training_loss_decreases(digits):
    """Three epochs of C-LEAD on 256 images: the loss goes down from the first to the last epoch."""
    model = fresh_model(digits)
    hist = T.train(model, D.subset(digits.train, 256), small_cfg("clead", epochs=3), progress=False)
    losses = [h["train_loss"] for h in hist]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]


def test_checkpoint_round_trip(standard_model, digits, batch, tmp_path):
    """save_checkpoint + load_checkpoint (with and without a model) reproduce the logits; JSON has sha256/model."""
    x, _ = batch
    path = T.save_checkpoint(standard_model, tmp_path / "m" / "model.pt", {"note": "test"})
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["sha256"] == T.sha256(path) and meta["note"] == "test"
    assert meta["model"]["arch"] == "small_cnn" and meta["model"]["num_classes"] == 10
    rebuilt = T.load_checkpoint(path)                     # architecture from the JSON
    torch.manual_seed(1)
    into = T.load_checkpoint(path, model_for(digits))     # into a freshly initialised model
    with torch.no_grad():
        ref = standard_model(x)
        for m in (rebuilt, into):
            assert not m.training and torch.equal(m(x), ref)


class Interrupted(Exception):
    pass


def test_resume_after_interruption_matches_straight_run(digits, tmp_path, monkeypatch):
    """A 3-epoch run killed after epoch 2, resumed with resume=True, ends with the same weights as a straight run.

    (Training 2 epochs and then asking for 3 is a different run: the cosine schedule
    depends on the total number of epochs, so that cannot reproduce a 3-epoch run.)
    """
    train_set, cfg = D.subset(digits.train, 256), small_cfg("pgd_at", epochs=3)
    straight = fresh_model(digits)
    T.train(straight, train_set, cfg, progress=False)

    real_run_epoch, calls = T.run_epoch, []

    def dies_in_epoch_3(loader, model, cfg, opt=None, *args, **kw):
        if opt is not None:
            calls.append(1)
            if len(calls) == 3:
                raise Interrupted
        return real_run_epoch(loader, model, cfg, opt, *args, **kw)

    monkeypatch.setattr(T, "run_epoch", dies_in_epoch_3)
    with pytest.raises(Interrupted):
        T.train(fresh_model(digits), train_set, cfg, out_dir=tmp_path, progress=False)
    monkeypatch.setattr(T, "run_epoch", real_run_epoch)
    assert (tmp_path / "train_state.pt").exists() and not (tmp_path / "model.pt").exists()

    resumed = fresh_model(digits)
    hist = T.train(resumed, train_set, cfg, out_dir=tmp_path, resume=True, progress=False)
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert same_weights(resumed, straight)
    assert (tmp_path / "model.pt").exists()


def test_resume_ignores_state_from_other_settings(digits, tmp_path):
    """resume=True does not continue from a state written with another config: it trains from scratch."""
    train_set = D.subset(digits.train, 256)
    T.train(fresh_model(digits), train_set, small_cfg(epochs=1, lr=0.2), out_dir=tmp_path, progress=False)
    straight = fresh_model(digits)
    T.train(straight, train_set, small_cfg(epochs=2), progress=False)
    resumed = fresh_model(digits)
    hist = T.train(resumed, train_set, small_cfg(epochs=2), out_dir=tmp_path, resume=True, progress=False)
    assert len(hist) == 2 and same_weights(resumed, straight)


def test_load_or_train_reuses_a_matching_checkpoint(digits, tmp_path):
    """load_or_train trains and saves once, then loads that model while the config matches; retrains if not."""
    train_set, cfg = D.subset(digits.train, 128), small_cfg()
    first, hist = T.load_or_train(tmp_path, fresh_model(digits), train_set, cfg, progress=False)
    stamp = (tmp_path / "model.pt").stat().st_mtime_ns
    torch.manual_seed(123)
    again, hist2 = T.load_or_train(tmp_path, model_for(digits), train_set, cfg, progress=False)
    assert same_weights(again, first) and hist2 == hist and not again.training
    assert (tmp_path / "model.pt").stat().st_mtime_ns == stamp
    other, _ = T.load_or_train(tmp_path, fresh_model(digits), train_set, small_cfg(lr=0.01), progress=False)
    assert not same_weights(other, first)


def test_train_config_rejects_bad_values():
    """TrainConfig refuses eps in 0-255 units and unknown objectives."""
    with pytest.raises(ValueError, match="/255"):
        T.TrainConfig(eps=8)
    with pytest.raises(ValueError, match="objective"):
        T.TrainConfig(objective="adversarial")
